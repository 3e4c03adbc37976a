//! Detector letterboxing: resize keeping the aspect ratio so the image fits a square, place it
//! at the top-left (YOLOX) or in the centre (Ultralytics YOLOv5/YOLOv8), pad the rest, and
//! write planar (CHW) f32 in the model's channel order.

use image::RgbImage;

use crate::manifest::{ChannelOrder, DetectionParams, LetterboxPlacement};
use crate::normalize::PixelNorm;
use crate::resample::{Region, resize_region};

/// How to letterbox for one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxSpec {
    /// Side of the square output, in pixels.
    pub size: u32,
    /// Padding, in 0–255 pixel units (mapped through `pixel_range` like any pixel).
    pub pad_value: u8,
    pub channel_order: ChannelOrder,
    /// 0 maps to `pixel_range[0]`, 255 to `pixel_range[1]`.
    pub pixel_range: [f32; 2],
    pub placement: LetterboxPlacement,
}

impl LetterboxSpec {
    pub fn from_detection(p: &DetectionParams) -> LetterboxSpec {
        LetterboxSpec {
            size: p.input_size,
            pad_value: p.pad_value,
            channel_order: p.channel_order,
            pixel_range: p.pixel_range,
            placement: p.letterbox,
        }
    }

    /// Number of f32 values of one letterboxed image (3 · size²).
    pub fn tensor_len(&self) -> usize {
        3 * (self.size as usize) * (self.size as usize)
    }
}

/// Where a source image ended up inside the letterboxed square.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Network pixels per source pixel (`min(size / w, size / h)`).
    pub scale: f32,
    pub resized_width: u32,
    pub resized_height: u32,
    /// Left and top padding in network pixels: where the resized image starts (0 at the
    /// top-left placement).
    pub pad_x: u32,
    pub pad_y: u32,
    pub source_width: u32,
    pub source_height: u32,
}

/// Letterboxes `img` into a new `[3, size, size]` buffer.
pub fn letterbox(img: &RgbImage, spec: &LetterboxSpec) -> (Vec<f32>, Letterbox) {
    let mut out = vec![0.0; spec.tensor_len()];
    let lb = letterbox_into(img, spec, &mut out);
    (out, lb)
}

/// Letterboxes `img` into `out` (length [`LetterboxSpec::tensor_len`], e.g. one slot of a batch).
///
/// Resizing is an antialiased bilinear (triangle) filter like Pillow's `BILINEAR`. At the
/// top-left placement the resized size is truncated like YOLOX's `int(w * r)`; centred, it is
/// rounded and the left/top padding is `(size - resized) / 2` rounded down, like Ultralytics'
/// `letterbox` (`round(w * r)`, `round(dw - 0.1)`). YOLOX's demo uses OpenCV's `INTER_LINEAR`,
/// which ignores all but 2×2 source pixels when shrinking; camera frames shrink 2–5×, where that
/// aliases. On `horses.jpg` the antialiased resize gives the reference scores of
/// `shared/models/README.md` (0.80, 0.64, 0.59; OpenCV's gives 0.79, 0.59, 0.52).
pub fn letterbox_into(img: &RgbImage, spec: &LetterboxSpec, out: &mut [f32]) -> Letterbox {
    let size = spec.size as usize;
    assert_eq!(
        out.len(),
        spec.tensor_len(),
        "letterbox output buffer has the wrong length"
    );
    let (sw, sh) = img.dimensions();
    assert!(sw > 0 && sh > 0, "cannot letterbox an empty image");

    let r = f64::min(spec.size as f64 / sw as f64, spec.size as f64 / sh as f64);
    let (rw, rh) = match spec.placement {
        LetterboxPlacement::TopLeft => ((sw as f64 * r) as u32, (sh as f64 * r) as u32),
        LetterboxPlacement::Center => (
            (sw as f64 * r).round() as u32,
            (sh as f64 * r).round() as u32,
        ),
    };
    let (rw, rh) = (rw.clamp(1, spec.size), rh.clamp(1, spec.size));
    let (pad_x, pad_y) = match spec.placement {
        LetterboxPlacement::TopLeft => (0, 0),
        LetterboxPlacement::Center => ((spec.size - rw) / 2, (spec.size - rh) / 2),
    };
    let (px, py) = (pad_x as usize, pad_y as usize);

    let norm = PixelNorm::range(spec.channel_order, spec.pixel_range);
    let plane_len = size * size;
    norm.fill(out, plane_len, [spec.pad_value; 3]);

    resize_region(img, Region::whole(img), rw, rh, |dy, dx, rgb| {
        norm.store(out, plane_len, (py + dy) * size + px + dx, rgb);
    });

    Letterbox {
        scale: r as f32,
        resized_width: rw,
        resized_height: rh,
        pad_x,
        pad_y,
        source_width: sw,
        source_height: sh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LetterboxSpec {
        LetterboxSpec {
            size: 416,
            pad_value: 114,
            channel_order: ChannelOrder::Bgr,
            pixel_range: [0.0, 255.0],
            placement: LetterboxPlacement::TopLeft,
        }
    }

    fn at(t: &[f32], plane: usize, x: usize, y: usize) -> f32 {
        t[plane * 416 * 416 + y * 416 + x]
    }

    #[test]
    fn scale_fits_the_longer_side() {
        let (_, lb) = letterbox(&RgbImage::new(832, 416), &spec());
        assert_eq!(
            (lb.scale, lb.resized_width, lb.resized_height),
            (0.5, 416, 208)
        );
        let (_, lb) = letterbox(&RgbImage::new(100, 200), &spec());
        assert_eq!(
            (lb.scale, lb.resized_width, lb.resized_height),
            (2.08, 208, 416)
        );
        let (_, lb) = letterbox(&RgbImage::new(773, 512), &spec());
        assert!((lb.scale - 416.0 / 773.0).abs() < 1e-6);
        // 773 · (416 / 773) is 415.999… in f64; YOLOX truncates it the same way.
        assert_eq!((lb.resized_width, lb.resized_height), (415, 275));
        assert_eq!((lb.source_width, lb.source_height), (773, 512));
    }

    #[test]
    fn image_is_top_left_and_the_rest_is_padding() {
        let img = RgbImage::from_pixel(832, 416, image::Rgb([10, 20, 30]));
        let (t, _) = letterbox(&img, &spec());
        for plane in 0..3 {
            assert_eq!(at(&t, plane, 415, 207), [30.0, 20.0, 10.0][plane]);
            assert_eq!(at(&t, plane, 0, 208), 114.0);
            assert_eq!(at(&t, plane, 415, 415), 114.0);
        }
        // Tall image: padding on the right.
        let img = RgbImage::from_pixel(100, 200, image::Rgb([10, 20, 30]));
        let (t, _) = letterbox(&img, &spec());
        assert_eq!(at(&t, 0, 207, 415), 30.0);
        assert_eq!(at(&t, 0, 208, 0), 114.0);
    }

    #[test]
    fn planes_are_bgr_and_values_unscaled() {
        let mut img = RgbImage::new(416, 416);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]);
        }
        let (t, lb) = letterbox(&img, &spec());
        assert_eq!(lb.scale, 1.0);
        // Same size: an exact copy, planes B, G, R.
        assert_eq!(at(&t, 0, 300, 5), 7.0);
        assert_eq!(at(&t, 1, 300, 5), 5.0);
        assert_eq!(at(&t, 2, 300, 5), (300 % 256) as f32);
    }

    #[test]
    fn rgb_order_and_pixel_range_are_honoured() {
        let s = LetterboxSpec {
            channel_order: ChannelOrder::Rgb,
            pixel_range: [0.0, 1.0],
            ..spec()
        };
        let img = RgbImage::from_pixel(416, 200, image::Rgb([255, 0, 51]));
        let (t, _) = letterbox(&img, &s);
        assert_eq!(at(&t, 0, 0, 0), 1.0);
        assert_eq!(at(&t, 1, 0, 0), 0.0);
        assert!((at(&t, 2, 0, 0) - 0.2).abs() < 1e-6);
        assert!((at(&t, 0, 0, 300) - 114.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn downscaling_interpolates_between_neighbours() {
        // Columns alternate 0 / 200; halving samples exactly between two columns.
        let mut img = RgbImage::new(832, 832);
        for (x, _, p) in img.enumerate_pixels_mut() {
            let v = if x % 2 == 0 { 0 } else { 200 };
            *p = image::Rgb([v, v, v]);
        }
        let (t, _) = letterbox(&img, &spec());
        assert_eq!(at(&t, 0, 100, 100), 100.0);
    }
}

impl Letterbox {
    /// Maps a corner box in network pixels back to the source image: remove the padding, divide
    /// by the scale, clip to the image, and return top-left `x, y, w, h`.
    pub fn to_source(&self, x1: f32, y1: f32, x2: f32, y2: f32) -> horsestream_proto::BoundingBox {
        let (w, h) = (self.source_width as f32, self.source_height as f32);
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        let x1 = ((x1 - px) / self.scale).clamp(0.0, w);
        let y1 = ((y1 - py) / self.scale).clamp(0.0, h);
        let x2 = ((x2 - px) / self.scale).clamp(0.0, w);
        let y2 = ((y2 - py) / self.scale).clamp(0.0, h);
        horsestream_proto::BoundingBox {
            x: x1,
            y: y1,
            w: (x2 - x1).max(0.0),
            h: (y2 - y1).max(0.0),
        }
    }
}

#[cfg(test)]
mod to_source_tests {
    use super::*;

    #[test]
    fn divides_by_scale_and_clips_to_the_image() {
        let lb = Letterbox {
            scale: 0.5,
            resized_width: 400,
            resized_height: 200,
            pad_x: 0,
            pad_y: 0,
            source_width: 800,
            source_height: 400,
        };
        let b = lb.to_source(10.0, 20.0, 60.0, 120.0);
        assert_eq!((b.x, b.y, b.w, b.h), (20.0, 40.0, 100.0, 200.0));
        // Partly outside (left, and into the padding below the image).
        let b = lb.to_source(-5.0, 150.0, 50.0, 300.0);
        assert_eq!((b.x, b.y, b.w, b.h), (0.0, 300.0, 100.0, 100.0));
    }

    #[test]
    fn centred_padding_is_removed_before_scaling() {
        // An 800×400 source in a 416 square, centred: scale 0.52, 416×208 at y = 104.
        let lb = Letterbox {
            scale: 0.52,
            resized_width: 416,
            resized_height: 208,
            pad_x: 0,
            pad_y: 104,
            source_width: 800,
            source_height: 400,
        };
        let b = lb.to_source(52.0, 104.0 + 26.0, 104.0, 104.0 + 52.0);
        assert!(
            (b.x - 100.0).abs() < 1e-4 && (b.y - 50.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.w - 100.0).abs() < 1e-4 && (b.h - 50.0).abs() < 1e-4,
            "{b:?}"
        );
    }

    #[test]
    fn centred_letterbox_places_the_image_in_the_middle() {
        let spec = LetterboxSpec {
            size: 32,
            pad_value: 114,
            channel_order: ChannelOrder::Rgb,
            pixel_range: [0.0, 255.0],
            placement: LetterboxPlacement::Center,
        };
        // 64×30 → scale 0.5 → 32×15: 17 rows of padding, 8 above and 9 below (Ultralytics:
        // top = round(8.5 - 0.1) = 8).
        let img = RgbImage::from_pixel(64, 30, image::Rgb([10, 20, 30]));
        let (t, lb) = letterbox(&img, &spec);
        assert_eq!((lb.resized_width, lb.resized_height), (32, 15));
        assert_eq!((lb.pad_x, lb.pad_y), (0, 8));
        let at = |plane: usize, x: usize, y: usize| t[plane * 32 * 32 + y * 32 + x];
        assert_eq!(at(0, 5, 7), 114.0);
        assert_eq!(at(0, 5, 8), 10.0);
        assert_eq!(at(2, 31, 22), 30.0);
        assert_eq!(at(2, 31, 23), 114.0);
        // A tall image is centred horizontally, its size rounded: 20×50 → scale 0.64 → 12.8
        // rounds to 13 wide (YOLOX would truncate to 12); padding 19 → 9 on the left.
        let img = RgbImage::from_pixel(20, 50, image::Rgb([200, 0, 0]));
        let (t, lb) = letterbox(&img, &spec);
        assert_eq!(
            (lb.resized_width, lb.resized_height, lb.pad_x, lb.pad_y),
            (13, 32, 9, 0)
        );
        assert_eq!(t[16 * 32 + 8], 114.0);
        assert_eq!(t[16 * 32 + 9], 200.0);
        assert_eq!(t[16 * 32 + 21], 200.0);
        assert_eq!(t[16 * 32 + 22], 114.0);
    }
}
