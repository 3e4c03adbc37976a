//! Box geometry shared by the tracker and the metrics: IoU and the conversion between the
//! project's top-left boxes and the (centre x, centre y, aspect w/h, height) measurement space
//! of the Kalman filter.

use horsestream_proto::BoundingBox;

/// Intersection over union of two boxes; 0 when either box is empty or they do not touch.
pub fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let ix = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
    let iy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    let union = a.w * a.h + b.w * b.h - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// True when a box can be tracked: finite, with positive width and height.
pub fn is_valid(b: &BoundingBox) -> bool {
    b.x.is_finite()
        && b.y.is_finite()
        && b.w.is_finite()
        && b.h.is_finite()
        && b.w > 0.0
        && b.h > 0.0
}

/// (centre x, centre y, aspect ratio w/h, height), the filter's measurement.
pub fn to_xyah(b: &BoundingBox) -> [f64; 4] {
    let (x, y, w, h) = (
        f64::from(b.x),
        f64::from(b.y),
        f64::from(b.w),
        f64::from(b.h),
    );
    [x + w / 2.0, y + h / 2.0, w / h, h]
}

/// Inverse of [`to_xyah`].
pub fn from_xyah(m: &[f64]) -> BoundingBox {
    let (cx, cy, a, h) = (m[0], m[1], m[2], m[3]);
    let w = a * h;
    BoundingBox {
        x: (cx - w / 2.0) as f32,
        y: (cy - h / 2.0) as f32,
        w: w as f32,
        h: h as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bb(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
        BoundingBox { x, y, w, h }
    }

    #[test]
    fn iou_hand_cases() {
        // Identical boxes: 1.
        assert_eq!(
            iou(&bb(0.0, 0.0, 10.0, 10.0), &bb(0.0, 0.0, 10.0, 10.0)),
            1.0
        );
        // Half overlap along x: inter 50, union 150 → 1/3.
        let v = iou(&bb(0.0, 0.0, 10.0, 10.0), &bb(5.0, 0.0, 10.0, 10.0));
        assert!((v - 1.0 / 3.0).abs() < 1e-6);
        // Touching edges: 0.
        assert_eq!(
            iou(&bb(0.0, 0.0, 10.0, 10.0), &bb(10.0, 0.0, 10.0, 10.0)),
            0.0
        );
        // Contained: inter 25, union 100 → 0.25.
        let v = iou(&bb(0.0, 0.0, 10.0, 10.0), &bb(2.0, 2.0, 5.0, 5.0));
        assert!((v - 0.25).abs() < 1e-6);
    }

    #[test]
    fn xyah_round_trip() {
        let b = bb(10.0, 20.0, 40.0, 80.0);
        assert_eq!(to_xyah(&b), [30.0, 60.0, 0.5, 80.0]);
        assert_eq!(from_xyah(&to_xyah(&b)), b);
    }
}
