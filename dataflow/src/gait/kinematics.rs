//! Smoothed ground-contact position, velocity, speed and acceleration per sample.
//!
//! The smoother is a Savitzky–Golay filter generalised to uneven sampling: for every sample a
//! quadratic in time is fitted by least squares to the samples within ±`smoothing/2` of it, and
//! its value, first and second derivative at that instant are the smoothed position, velocity
//! and acceleration. Because it works on timestamps, a dropped frame or a gap only widens the
//! spacing of the points the fit sees; at a track's ends the window is one-sided.

use horsestream_proto::BoundingBox;

use super::{Calibration, TrackSample};

/// The space positions (and so speeds) are expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Ground plane, metres (a calibration was given).
    GroundMetres,
    /// Image, pixels.
    ImagePixels,
}

/// Kinematics at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KinematicSample {
    pub t_us: i64,
    /// Smoothed ground-contact point (metres or px, see [`Space`]).
    pub position: [f64; 2],
    /// Per second.
    pub velocity: [f64; 2],
    /// `|velocity|`.
    pub speed: f64,
    /// Tangential acceleration (rate of change of speed), per second².
    pub acceleration: f64,
    /// The raw box width, px (the body-length proxy).
    pub width_px: f64,
    /// The raw box height, px (carries the stride oscillation).
    pub height_px: f64,
}

/// The ground contact point of a box: its bottom-centre, image px.
pub fn ground_contact(b: &BoundingBox) -> [f64; 2] {
    [
        f64::from(b.x) + f64::from(b.w) / 2.0,
        f64::from(b.y) + f64::from(b.h),
    ]
}

/// Kinematics of every usable sample of `track`, which should be in time order: samples not
/// later than the previous kept one, non-finite boxes and points the calibration cannot map
/// are skipped. Positions are in metres with a calibration, px without.
pub fn kinematics(
    track: &[TrackSample],
    calibration: Option<&Calibration>,
    smoothing_us: i64,
) -> (Space, Vec<KinematicSample>) {
    let space = if calibration.is_some() {
        Space::GroundMetres
    } else {
        Space::ImagePixels
    };
    let mut ts = Vec::with_capacity(track.len());
    let mut pts = Vec::with_capacity(track.len());
    let mut boxes = Vec::with_capacity(track.len());
    for s in track {
        if ts.last().is_some_and(|&t| s.t_us <= t) {
            continue;
        }
        let p = ground_contact(&s.bbox);
        let p = match calibration {
            Some(c) => c.to_ground(p),
            None => Some(p),
        };
        if let Some(p) = p.filter(|p| p.iter().all(|v| v.is_finite())) {
            ts.push(s.t_us);
            pts.push(p);
            boxes.push(s.bbox);
        }
    }
    let half = smoothing_us.max(0) / 2;
    let secs: Vec<f64> = ts.iter().map(|&t| t as f64 * 1e-6).collect();
    let mut out = Vec::with_capacity(ts.len());
    let (mut lo, mut hi) = (0, 0);
    for i in 0..ts.len() {
        while ts[i] - ts[lo] > half {
            lo += 1;
        }
        while hi + 1 < ts.len() && ts[hi + 1] - ts[i] <= half {
            hi += 1;
        }
        let (mut lo_i, mut hi_i) = (lo, hi.max(i));
        // A derivative needs a neighbour: widen to the nearest samples if the window is empty.
        if lo_i == hi_i {
            lo_i = lo_i.saturating_sub(usize::from(i + 1 == ts.len()));
            hi_i = (hi_i + 1).min(ts.len() - 1);
        }
        let s = &secs[lo_i..=hi_i];
        let fx = local_quadratic(s, pts[lo_i..=hi_i].iter().map(|p| p[0]), secs[i]);
        let fy = local_quadratic(s, pts[lo_i..=hi_i].iter().map(|p| p[1]), secs[i]);
        let velocity = [fx[1], fy[1]];
        let accel = [2.0 * fx[2], 2.0 * fy[2]];
        let speed = velocity[0].hypot(velocity[1]);
        let acceleration = if speed > 1e-9 {
            (velocity[0] * accel[0] + velocity[1] * accel[1]) / speed
        } else {
            accel[0].hypot(accel[1])
        };
        out.push(KinematicSample {
            t_us: ts[i],
            position: [fx[0], fy[0]],
            velocity,
            speed,
            acceleration,
            width_px: f64::from(boxes[i].w),
            height_px: f64::from(boxes[i].h),
        });
    }
    (space, out)
}

/// Least-squares `a + b·s + c·s²` with `s = t - t_i`, as `[a, b, c]`. Falls back to a line
/// with fewer than 3 points (or a degenerate system), and to a constant with one.
fn local_quadratic(ts: &[f64], xs: impl Iterator<Item = f64> + Clone, ti: f64) -> [f64; 3] {
    let n = ts.len();
    let mut sp = [0.0f64; 5];
    let mut sx = [0.0f64; 3];
    for (&t, x) in ts.iter().zip(xs.clone()) {
        let s = t - ti;
        let mut p = 1.0;
        for (k, acc) in sp.iter_mut().enumerate() {
            *acc += p;
            if k < 3 {
                sx[k] += x * p;
            }
            p *= s;
        }
    }
    if n >= 3 {
        let m = [
            [sp[0], sp[1], sp[2]],
            [sp[1], sp[2], sp[3]],
            [sp[2], sp[3], sp[4]],
        ];
        if let Some(c) = solve3(m, sx) {
            return c;
        }
    }
    if n >= 2 {
        let det = sp[0] * sp[2] - sp[1] * sp[1];
        if det.abs() > 1e-18 {
            let a = (sx[0] * sp[2] - sp[1] * sx[1]) / det;
            let b = (sp[0] * sx[1] - sp[1] * sx[0]) / det;
            return [a, b, 0.0];
        }
    }
    [sx[0] / sp[0].max(1.0), 0.0, 0.0]
}

/// Solves `m·x = r` by Cramer's rule; `None` if `m` is (nearly) singular.
fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    let scale = m[0][0] * m[1][1] * m[2][2];
    if !(d.is_finite() && d.abs() > 1e-12 * scale.abs().max(1e-300)) {
        return None;
    }
    let mut out = [0.0; 3];
    for (col, o) in out.iter_mut().enumerate() {
        let mut mc = m;
        for (row, rv) in r.iter().enumerate() {
            mc[row][col] = *rv;
        }
        *o = det(&mc) / d;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_us: i64, x: f32, y: f32) -> TrackSample {
        TrackSample {
            t_us,
            bbox: BoundingBox {
                x,
                y,
                w: 40.0,
                h: 20.0,
            },
            pose: None,
        }
    }

    #[test]
    fn constant_velocity_is_exact_at_ends_and_across_a_gap() {
        // 30 px/s right, 10 px/s down; 10 fps with 1.3 s missing.
        let track: Vec<_> = (0..40)
            .filter(|i| !(15..28).contains(i))
            .map(|i| {
                let t = i as f64 * 0.1;
                sample((t * 1e6) as i64, (30.0 * t) as f32, (10.0 * t) as f32)
            })
            .collect();
        let (space, k) = kinematics(&track, None, 700_000);
        assert_eq!(space, Space::ImagePixels);
        assert_eq!(k.len(), track.len());
        for s in &k {
            assert!((s.velocity[0] - 30.0).abs() < 1e-3, "{s:?}");
            assert!((s.velocity[1] - 10.0).abs() < 1e-3, "{s:?}");
            assert!(s.acceleration.abs() < 1e-3, "{s:?}");
        }
        assert!(
            (k[0].position[0] - 20.0).abs() < 1e-3,
            "bottom-centre x = x + w/2"
        );
        assert!(
            (k[0].position[1] - 20.0).abs() < 1e-3,
            "bottom-centre y = y + h"
        );
    }

    #[test]
    fn constant_acceleration_is_recovered() {
        // x = 5 t + 0.5·2 t² px in metres at 10 px/m: v = 5 + 2t m/s, a = 2 m/s².
        let track: Vec<_> = (0..30)
            .map(|i| {
                let t = i as f64 * 0.1;
                sample((t * 1e6) as i64, (10.0 * (5.0 * t + t * t)) as f32, 0.0)
            })
            .collect();
        let (space, k) = kinematics(&track, Some(&Calibration::PixelsPerMetre(10.0)), 700_000);
        assert_eq!(space, Space::GroundMetres);
        for s in &k {
            let t = s.t_us as f64 * 1e-6;
            assert!((s.speed - (5.0 + 2.0 * t)).abs() < 1e-3, "{s:?}");
            assert!((s.acceleration - 2.0).abs() < 1e-3, "{s:?}");
        }
    }

    #[test]
    fn out_of_order_and_unmappable_samples_are_skipped() {
        let track = [
            sample(0, 0.0, 0.0),
            sample(100_000, 1.0, 0.0),
            sample(50_000, 9.0, 0.0),
        ];
        let (_, k) = kinematics(&track, None, 700_000);
        assert_eq!(k.len(), 2);
        // A homography whose horizon row sends y + h = 20 to w = 0.
        let h = Calibration::Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, -20.0]]);
        let (_, k) = kinematics(&track[..2], Some(&h), 700_000);
        assert!(k.is_empty());
    }
}
