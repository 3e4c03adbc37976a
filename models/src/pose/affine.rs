//! Top-down crops as RTMPose (mmpose `TopdownAffine`, rtmlib `top_down_affine`) makes them: the
//! box becomes a centre and a scale padded by `bbox_padding` and widened or heightened to the
//! network's aspect ratio; an affine map sends that rectangle onto the network input, and the
//! crop is sampled through it with bilinear interpolation and a black border (OpenCV
//! `warpAffine`, `INTER_LINEAR`, `BORDER_CONSTANT` 0). Keypoints go back through the inverse.
//!
//! Coordinates follow OpenCV: pixel `i` is at coordinate `i` (its centre).

use horsestream_proto::BoundingBox;
use image::RgbImage;

/// A 2×3 affine map: `(x, y) → (a·x + b·y + c, d·x + e·y + f)` for `m = [a, b, c, d, e, f]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub m: [f64; 6],
}

impl Affine {
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.m;
        (a * x + b * y + c, d * x + e * y + f)
    }

    /// The inverse map; `None` when the map is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [a, b, c, d, e, f] = self.m;
        let det = a * e - b * d;
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine {
            m: [ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f)],
        })
    }
}

/// The source rectangle a crop covers: its centre and its size (`scale` in mmpose's words).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropRegion {
    pub center: [f64; 2],
    pub size: [f64; 2],
}

/// The region of `bbox` for an input of `input_w × input_h`: centre of the box; size = box size
/// × `padding`, then the shorter side (relative to the input's aspect ratio) lengthened so that
/// `size_w / size_h = input_w / input_h`. A degenerate box is taken as at least 1 px.
pub fn crop_region(bbox: &BoundingBox, input_w: u32, input_h: u32, padding: f32) -> CropRegion {
    let (x, y) = (f64::from(bbox.x), f64::from(bbox.y));
    let (w, h) = (f64::from(bbox.w).max(1.0), f64::from(bbox.h).max(1.0));
    let padding = f64::from(padding);
    let (mut sw, mut sh) = (w * padding, h * padding);
    let aspect = f64::from(input_w) / f64::from(input_h);
    if sw > sh * aspect {
        sh = sw / aspect;
    } else {
        sw = sh * aspect;
    }
    CropRegion {
        center: [x + w / 2.0, y + h / 2.0],
        size: [sw, sh],
    }
}

/// The map from source pixels to network-input pixels: the region's centre goes to the input's
/// centre `(input_w / 2, input_h / 2)`, scaled by `input_w / size_w` (the same along y, the
/// region having the input's aspect ratio), no rotation — mmpose's `get_warp_matrix` with
/// `rot = 0`.
pub fn warp_matrix(region: &CropRegion, input_w: u32, input_h: u32) -> Affine {
    let s = f64::from(input_w) / region.size[0];
    let [cx, cy] = region.center;
    Affine {
        m: [
            s,
            0.0,
            f64::from(input_w) / 2.0 - s * cx,
            0.0,
            s,
            f64::from(input_h) / 2.0 - s * cy,
        ],
    }
}

/// Samples the crop: for each input pixel `(u, v)`, the source point `to_source(u, v)` (the
/// inverse of the [`warp_matrix`], as `warpAffine` with `WARP_INVERSE_MAP` takes it)
/// interpolated bilinearly between its 4 neighbours, neighbours outside the image counting as
/// black, rounded to a whole 0–255 value (the 8-bit output of `warpAffine`). `store(u, v, rgb)`
/// receives every pixel.
pub fn warp_bilinear(
    img: &RgbImage,
    to_source: &Affine,
    input_w: u32,
    input_h: u32,
    mut store: impl FnMut(usize, usize, [f32; 3]),
) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let raw = img.as_raw();
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let i = ((y * w + x) * 3) as usize;
        [
            f32::from(raw[i]),
            f32::from(raw[i + 1]),
            f32::from(raw[i + 2]),
        ]
    };
    for v in 0..input_h as usize {
        for u in 0..input_w as usize {
            let (sx, sy) = to_source.apply(u as f64, v as f64);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p10) = (pixel(x0, y0), pixel(x0 + 1, y0));
            let (p01, p11) = (pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
            let mut rgb = [0f32; 3];
            for (c, out) in rgb.iter_mut().enumerate() {
                let top = p00[c] + (p10[c] - p00[c]) * fx;
                let bottom = p01[c] + (p11[c] - p01[c]) * fx;
                *out = (top + (bottom - top) * fy).round().clamp(0.0, 255.0);
            }
            store(u, v, rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
        BoundingBox { x, y, w, h }
    }

    #[test]
    fn region_is_padded_and_made_to_the_input_aspect() {
        // Wide box, square input: height raised to the padded width.
        let r = crop_region(&bbox(100.0, 100.0, 160.0, 80.0), 256, 256, 1.25);
        assert_eq!(r.center, [180.0, 140.0]);
        assert_eq!(r.size, [200.0, 200.0]);
        // Tall box, 192×256 input (w/h = 0.75): width raised to 0.75 × padded height.
        let r = crop_region(&bbox(0.0, 0.0, 40.0, 200.0), 192, 256, 1.25);
        assert_eq!(r.center, [20.0, 100.0]);
        assert_eq!(r.size, [187.5, 250.0]);
        // Degenerate box: at least 1 px.
        let r = crop_region(&bbox(5.0, 5.0, 0.0, 0.0), 256, 256, 1.0);
        assert_eq!(r.size, [1.0, 1.0]);
    }

    #[test]
    fn warp_sends_the_region_onto_the_input() {
        let r = crop_region(&bbox(100.0, 100.0, 160.0, 80.0), 256, 256, 1.25);
        let m = warp_matrix(&r, 256, 256);
        let close = |(a, b): (f64, f64), (x, y): (f64, f64)| {
            assert!(
                (a - x).abs() < 1e-9 && (b - y).abs() < 1e-9,
                "({a}, {b}) vs ({x}, {y})"
            );
        };
        // Centre → centre; the region's corners → the input's corners.
        close(m.apply(180.0, 140.0), (128.0, 128.0));
        close(m.apply(80.0, 40.0), (0.0, 0.0));
        close(m.apply(280.0, 240.0), (256.0, 256.0));
        let inv = m.inverse().unwrap();
        let (x, y) = inv.apply(64.0, 192.0);
        assert!(
            (x - 130.0).abs() < 1e-9 && (y - 190.0).abs() < 1e-9,
            "{x} {y}"
        );
    }

    #[test]
    fn inverse_undoes_a_general_map() {
        let m = Affine {
            m: [0.8, -0.6, 12.0, 0.6, 0.8, -3.0],
        };
        let (u, v) = m.apply(7.0, -2.0);
        let (x, y) = m.inverse().unwrap().apply(u, v);
        assert!((x - 7.0).abs() < 1e-12 && (y + 2.0).abs() < 1e-12);
        assert!(
            Affine {
                m: [1.0, 2.0, 0.0, 2.0, 4.0, 0.0]
            }
            .inverse()
            .is_none()
        );
    }

    #[test]
    fn sampling_is_bilinear_with_a_black_border() {
        // A 4×1 ramp 0, 100, 200, 250; the identity-scale map shifted by half a pixel samples
        // between neighbours (input u at source u + 0.5); beyond the right edge the border is
        // black.
        let mut img = RgbImage::new(4, 1);
        for (x, v) in [0u8, 100, 200, 250].into_iter().enumerate() {
            img.put_pixel(x as u32, 0, image::Rgb([v, v / 2, 0]));
        }
        let shift = Affine {
            m: [1.0, 0.0, 0.5, 0.0, 1.0, 0.0],
        };
        let mut got = [[0f32; 3]; 5];
        warp_bilinear(&img, &shift, 5, 1, |u, _, rgb| got[u] = rgb);
        let red: Vec<f32> = got.iter().map(|p| p[0]).collect();
        assert_eq!(red, vec![50.0, 150.0, 225.0, 125.0, 0.0]);
        assert_eq!(got[1][1], 75.0);
    }
}
