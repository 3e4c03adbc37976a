//! Image resizing for model inputs: an antialiased triangle (bilinear) filter like Pillow's
//! `BILINEAR`, applied separably to a region of a frame, so a detection's crop is resized
//! straight out of the frame without being copied first.
//!
//! One resampler serves the detector's letterbox and the re-ID crops. Before, the crops went
//! through `image::imageops::resize` on a copied sub-image: in the demo that took more time
//! than the re-ID model's own runs.

use image::RgbImage;

/// A rectangle of a frame, in whole pixels, inside it and at least 1×1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Region {
    /// All of `image`.
    pub fn whole(image: &RgbImage) -> Region {
        Region {
            x: 0,
            y: 0,
            width: image.width(),
            height: image.height(),
        }
    }
}

/// Resizes `region` of `img` to `dw × dh` and hands each output pixel, rounded to whole values
/// as 8-bit resizers give them, to `emit(row, column, rgb)` in row-major order.
///
/// # Panics
/// If the region is empty or not inside the image, or the output is empty.
pub fn resize_region(
    img: &RgbImage,
    region: Region,
    dw: u32,
    dh: u32,
    mut emit: impl FnMut(usize, usize, [u8; 3]),
) {
    let Region {
        x,
        y,
        width: sw,
        height: sh,
    } = region;
    assert!(
        sw > 0 && sh > 0 && dw > 0 && dh > 0,
        "cannot resize an empty region"
    );
    assert!(
        x + sw <= img.width() && y + sh <= img.height(),
        "region outside the image"
    );
    // Separable: rows first into `tmp` (source rows × output width × RGB), then columns.
    let xs = taps(sw, dw);
    let ys = taps(sh, dh);
    let src = img.as_raw();
    let stride = img.width() as usize * 3;
    let (x0, dw_us) = (x as usize * 3, dw as usize);
    let mut tmp = vec![0f32; sh as usize * dw_us * 3];
    for (r, tmp_row) in tmp.chunks_exact_mut(dw_us * 3).enumerate() {
        let start = (y as usize + r) * stride + x0;
        let row = &src[start..start + sw as usize * 3];
        for ((first, weights), px) in xs.iter().zip(tmp_row.chunks_exact_mut(3)) {
            let mut acc = [0f32; 3];
            for (k, &w) in weights.iter().enumerate() {
                let p = &row[(first + k) * 3..(first + k) * 3 + 3];
                acc[0] += w * f32::from(p[0]);
                acc[1] += w * f32::from(p[1]);
                acc[2] += w * f32::from(p[2]);
            }
            px.copy_from_slice(&acc);
        }
    }
    // Columns: a whole output row at a time, adding each tap's row of `tmp` to it. The same
    // sums in the same order as pixel by pixel, but over contiguous rows, which vectorise.
    let row_len = dw_us * 3;
    let mut acc = vec![0f32; row_len];
    for (dy, (first, weights)) in ys.iter().enumerate() {
        acc.fill(0.0);
        for (k, &w) in weights.iter().enumerate() {
            let src = &tmp[(first + k) * row_len..][..row_len];
            for (a, &p) in acc.iter_mut().zip(src) {
                *a += w * p;
            }
        }
        for (dx, px) in acc.chunks_exact(3).enumerate() {
            emit(dy, dx, [to_u8(px[0]), to_u8(px[1]), to_u8(px[2])]);
        }
    }
}

/// `v` rounded half away from zero and clamped to 0–255, as `v.round()` would, without the
/// call to `roundf` that `round` compiles to on baseline x86-64 (it showed in profiles). The
/// weights are non-negative, so `v >= 0`, and `v - trunc(v)` is exact below 2²³.
fn to_u8(v: f32) -> u8 {
    let v = v.clamp(0.0, 255.0);
    let whole = v as u8;
    // Branch-free: the fraction is random pixel to pixel, and a branch on it mispredicts
    // half the time (that made the resize 2.5x slower). At 255 the fraction is 0.
    whole.wrapping_add(u8::from(v - f32::from(whole) >= 0.5))
}

/// Triangle-filter taps for each destination coordinate: first source index and normalised
/// weights. When shrinking, the filter widens by the scale factor (antialiasing), as Pillow's
/// `BILINEAR` resize does; when enlarging it is plain bilinear with half-pixel centres.
fn taps(src: u32, dst: u32) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1 source pixel at scale 1
    (0..dst)
        .map(|d| {
            let center = (d as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(src as usize);
            let mut weights: Vec<f64> = (lo..hi)
                .map(|i| (1.0 - ((i as f64 - center + 0.5) / filter_scale).abs()).max(0.0))
                .collect();
            let sum: f64 = weights.iter().sum();
            if sum > 0.0 {
                weights.iter_mut().for_each(|w| *w /= sum);
            }
            (lo, weights.into_iter().map(|w| w as f32).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    fn resized(img: &RgbImage, region: Region, dw: u32, dh: u32) -> RgbImage {
        let mut out = RgbImage::new(dw, dh);
        resize_region(img, region, dw, dh, |y, x, rgb| {
            out.put_pixel(x as u32, y as u32, Rgb(rgb));
        });
        out
    }

    /// A frame whose pixels encode their own coordinates.
    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 200])
        })
    }

    #[test]
    fn rounding_matches_f32_round_everywhere_it_is_used() {
        for i in 0..=(256 * 64) {
            let v = i as f32 / 64.0 - 0.25;
            assert_eq!(to_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
        for v in [0.499_999_97_f32, 0.5, 254.5, 254.499_98, 1e-30, 300.0] {
            assert_eq!(to_u8(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
        }
    }

    /// The filter written out pixel by pixel, each output value summed tap by tap: what
    /// `resize_region`'s row-at-a-time column pass must equal bit for bit.
    fn resized_pixel_by_pixel(img: &RgbImage, dw: u32, dh: u32) -> RgbImage {
        let (sw, sh) = img.dimensions();
        let (xs, ys) = (taps(sw, dw), taps(sh, dh));
        let rows: Vec<Vec<[f32; 3]>> = (0..sh)
            .map(|y| {
                xs.iter()
                    .map(|(first, weights)| {
                        let mut acc = [0f32; 3];
                        for (k, &w) in weights.iter().enumerate() {
                            let p = img.get_pixel((first + k) as u32, y).0;
                            for c in 0..3 {
                                acc[c] += w * f32::from(p[c]);
                            }
                        }
                        acc
                    })
                    .collect()
            })
            .collect();
        RgbImage::from_fn(dw, dh, |x, y| {
            let (first, weights) = &ys[y as usize];
            let mut acc = [0f32; 3];
            for (k, &w) in weights.iter().enumerate() {
                for c in 0..3 {
                    acc[c] += w * rows[first + k][x as usize][c];
                }
            }
            Rgb(acc.map(to_u8))
        })
    }

    #[test]
    fn rows_at_a_time_equal_pixel_by_pixel_exactly() {
        // Pseudo-random pixels, so every rounding is exercised.
        let mut state = 0x2545_f491_u32;
        let img = RgbImage::from_fn(97, 61, |_, _| {
            let mut px = [0u8; 3];
            for v in &mut px {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *v = (state >> 24) as u8;
            }
            Rgb(px)
        });
        for (dw, dh) in [(52, 35), (128, 256), (97, 61), (13, 200), (1, 1)] {
            assert_eq!(
                resized(&img, Region::whole(&img), dw, dh),
                resized_pixel_by_pixel(&img, dw, dh),
                "{dw}x{dh}"
            );
        }
    }

    #[test]
    fn the_same_size_is_a_copy_of_the_region() {
        let img = ramp(40, 30);
        let region = Region {
            x: 5,
            y: 7,
            width: 20,
            height: 10,
        };
        let out = resized(&img, region, 20, 10);
        let expected = image::imageops::crop_imm(&img, 5, 7, 20, 10).to_image();
        assert_eq!(out, expected);
    }

    #[test]
    fn a_region_resizes_as_its_copy_would() {
        let img = ramp(64, 48);
        let region = Region {
            x: 9,
            y: 4,
            width: 33,
            height: 27,
        };
        let copy = image::imageops::crop_imm(&img, 9, 4, 33, 27).to_image();
        let whole = Region::whole(&copy);
        for (dw, dh) in [(16, 12), (50, 70), (33, 9)] {
            assert_eq!(resized(&img, region, dw, dh), resized(&copy, whole, dw, dh));
        }
    }

    #[test]
    fn a_flat_colour_stays_that_colour_at_any_scale() {
        let img = RgbImage::from_pixel(37, 23, Rgb([12, 130, 251]));
        let region = Region::whole(&img);
        for (dw, dh) in [(1, 1), (5, 90), (224, 224)] {
            let out = resized(&img, region, dw, dh);
            assert!(out.pixels().all(|p| p.0 == [12, 130, 251]), "{dw}x{dh}");
        }
    }

    #[test]
    #[should_panic(expected = "region outside the image")]
    fn a_region_outside_the_image_is_refused() {
        let img = ramp(10, 10);
        let region = Region {
            x: 5,
            y: 0,
            width: 6,
            height: 10,
        };
        resized(&img, region, 3, 3);
    }
}
