//! Turning decoded pictures into the bytes a [`horsestream_proto::Frame`] carries: swscale to
//! the output size, then JPEG (or raw RGB24).
//!
//! Two JPEG encoders are available, measured in `benches/frame_encode.rs` on a 768×512 frame
//! (2 cores, quality 90): FFmpeg's `mjpeg` (swscale straight to full-range YUV 4:2:0, no RGB
//! step) takes ~5.5 ms and ~98 KB per frame, the `image` crate (swscale to RGB24 first)
//! ~13.5 ms and ~118 KB. `mjpeg` is the default; `image` stays as an option.

use std::path::{Path, PathBuf};

use ffmpeg_next::{Packet, Rational, codec, encoder, format::Pixel, frame, software::scaling};
use horsestream_proto::FrameEncoding;

use crate::IngestError;
use crate::rotate::{Rotation, rotate_frame};

/// Which library compresses frames to JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JpegBackend {
    /// FFmpeg's `mjpeg` encoder, fed YUVJ 4:2:0 by swscale.
    #[default]
    Ffmpeg,
    /// The `image` crate's baseline encoder, fed RGB24.
    Image,
}

/// How output frames are sized and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    pub encoding: FrameEncoding,
    /// JPEG quality 1–100 (libjpeg scale).
    pub jpeg_quality: u8,
    pub jpeg_backend: JpegBackend,
    /// Downscale (keeping the aspect ratio) to at most this width; `None` keeps the source size.
    pub max_width: Option<u32>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            encoding: FrameEncoding::Jpeg,
            jpeg_quality: 90,
            jpeg_backend: JpegBackend::default(),
            max_width: None,
        }
    }
}

/// Output size for a source of `w`×`h` capped to `max_width` (height rounded, at least 1).
pub fn output_size(w: u32, h: u32, max_width: Option<u32>) -> (u32, u32) {
    match max_width {
        Some(m) if m > 0 && w > m => {
            let oh = ((h as u64 * m as u64 + w as u64 / 2) / w as u64).max(1);
            (m, oh as u32)
        }
        _ => (w, h),
    }
}

/// FFmpeg's mjpeg quantiser scale for a libjpeg quality: libjpeg scales its standard tables
/// by `5000/q` % (q < 50) or `200 − 2q` %; mjpeg's `qscale` 8 is about 100 %.
pub fn mjpeg_qscale(quality: u8) -> i32 {
    let q = quality.clamp(1, 100) as f64;
    let percent = if q < 50.0 {
        5000.0 / q
    } else {
        200.0 - 2.0 * q
    };
    ((percent * 8.0 / 100.0).round() as i32).clamp(1, 31)
}

struct Scaler {
    key: (Pixel, u32, u32),
    ctx: scaling::Context,
    out: frame::Video,
}

/// Scales decoded pictures of one stream to a fixed output size and pixel format, and turns
/// them upright ([`Rotation`]). The output size is fixed by the first frame (the upright
/// source size capped to `max_width`); later frames of another size are scaled to it.
pub(crate) struct Picturer {
    path: PathBuf,
    format: Pixel,
    max_width: Option<u32>,
    rotation: Rotation,
    /// Round the output size down to even numbers (4:2:0 video encoders need it).
    even: bool,
    /// Upright output size.
    size: Option<(u32, u32)>,
    scaler: Option<Scaler>,
    rotated: frame::Video,
}

impl Picturer {
    pub fn new(path: &Path, format: Pixel, max_width: Option<u32>) -> Self {
        Picturer {
            path: path.to_path_buf(),
            format,
            max_width,
            rotation: Rotation::None,
            even: false,
            size: None,
            scaler: None,
            rotated: frame::Video::empty(),
        }
    }

    /// Output sizes rounded down to even numbers.
    pub fn even(mut self) -> Self {
        self.even = true;
        self
    }

    pub fn size(&self) -> Option<(u32, u32)> {
        self.size
    }

    /// Turns the following frames by `rotation`. Once the output size is fixed, a later
    /// change of rotation keeps that size (the turned picture is scaled to it).
    pub fn set_rotation(&mut self, rotation: Rotation) {
        if rotation != self.rotation {
            self.rotation = rotation;
            self.scaler = None;
        }
    }

    /// The picture the last [`Picturer::picture`] call made (`None` after a rotation change).
    pub fn last_mut(&mut self) -> Option<&mut frame::Video> {
        let s = self.scaler.as_mut()?;
        Some(if self.rotation == Rotation::None {
            &mut s.out
        } else {
            &mut self.rotated
        })
    }

    /// The scaled (and turned) picture of `src`.
    pub fn picture(&mut self, src: &frame::Video) -> Result<&mut frame::Video, IngestError> {
        let rot = self.rotation;
        let upright = rot.apply_size((src.width(), src.height()));
        let even = self.even;
        let (w, h) = *self.size.get_or_insert_with(|| {
            let (w, h) = output_size(upright.0, upright.1, self.max_width);
            if even {
                ((w & !1).max(2), (h & !1).max(2))
            } else {
                (w, h)
            }
        });
        // Scale to the turned-back size, then turn.
        let (sw, sh) = rot.apply_size((w, h));
        let key = (src.format(), src.width(), src.height());
        if self.scaler.as_ref().is_none_or(|s| s.key != key) {
            let flags = if (sw, sh) == (src.width(), src.height()) {
                scaling::Flags::POINT
            } else {
                scaling::Flags::AREA
            };
            let ctx = scaling::Context::get(key.0, key.1, key.2, self.format, sw, sh, flags)
                .map_err(IngestError::ffmpeg(&self.path, "setting up swscale"))?;
            self.scaler = Some(Scaler {
                key,
                ctx,
                out: frame::Video::new(self.format, sw, sh),
            });
        }
        let s = self.scaler.as_mut().expect("just set");
        s.ctx
            .run(src, &mut s.out)
            .map_err(IngestError::ffmpeg(&self.path, "scaling a frame"))?;
        if rot == Rotation::None {
            return Ok(&mut s.out);
        }
        if !rotate_frame(&s.out, rot, &mut self.rotated) {
            return Err(IngestError::Ffmpeg {
                path: self.path.clone(),
                during: "turning a frame upright (unsupported pixel format)",
                source: ffmpeg_next::Error::PatchWelcome,
            });
        }
        Ok(&mut self.rotated)
    }
}

/// Converts decoded frames of one stream into frame bytes. The output size is fixed by the
/// first frame; later frames of another size are scaled to it.
pub struct FrameEncoder {
    path: PathBuf,
    opts: EncodeOptions,
    picturer: Picturer,
    mjpeg: Option<encoder::Video>,
    packet: Packet,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .field("size", &self.picturer.size)
            .field("rotation", &self.picturer.rotation)
            .finish_non_exhaustive()
    }
}

fn target_format(opts: &EncodeOptions) -> Pixel {
    match (opts.encoding, opts.jpeg_backend) {
        (FrameEncoding::Jpeg, JpegBackend::Ffmpeg) => Pixel::YUVJ420P,
        _ => Pixel::RGB24,
    }
}

impl FrameEncoder {
    /// `path` only names the source in errors.
    pub fn new(path: &Path, opts: EncodeOptions) -> Result<Self, IngestError> {
        if !(1..=100).contains(&opts.jpeg_quality) {
            return Err(IngestError::Config(format!(
                "JPEG quality {} is not in 1..=100",
                opts.jpeg_quality
            )));
        }
        ffmpeg_next::init().map_err(IngestError::ffmpeg(path, "initialising"))?;
        Ok(FrameEncoder {
            path: path.to_path_buf(),
            opts,
            picturer: Picturer::new(path, target_format(&opts), opts.max_width),
            mjpeg: None,
            packet: Packet::empty(),
        })
    }

    /// The output frame size (upright), once the first frame went through.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.picturer.size()
    }

    /// Turns the following frames upright by `rotation` (from the source's display matrix).
    pub fn set_rotation(&mut self, rotation: Rotation) {
        self.picturer.set_rotation(rotation);
    }

    /// Scales, turns and encodes one decoded frame.
    pub fn encode(&mut self, src: &frame::Video) -> Result<Vec<u8>, IngestError> {
        let (encoding, backend, quality) = (
            self.opts.encoding,
            self.opts.jpeg_backend,
            self.opts.jpeg_quality,
        );
        let pic = self.picturer.picture(src)?;
        match (encoding, backend) {
            (FrameEncoding::Rgb24, _) => Ok(tight_rgb(pic)),
            (FrameEncoding::Jpeg, JpegBackend::Image) => {
                let rgb = tight_rgb(pic);
                let (w, h) = (pic.width(), pic.height());
                encode_rgb_jpeg(&rgb, w, h, quality).map_err(|source| IngestError::Jpeg {
                    path: self.path.clone(),
                    source,
                })
            }
            (FrameEncoding::Jpeg, JpegBackend::Ffmpeg) => Mjpeg {
                path: &self.path,
                quality,
                enc: &mut self.mjpeg,
                packet: &mut self.packet,
            }
            .encode(pic),
        }
    }
}

/// FFmpeg's mjpeg encoder, opened on the first picture.
struct Mjpeg<'a> {
    path: &'a Path,
    quality: u8,
    enc: &'a mut Option<encoder::Video>,
    packet: &'a mut Packet,
}

impl Mjpeg<'_> {
    fn encode(self, pic: &frame::Video) -> Result<Vec<u8>, IngestError> {
        let (w, h) = (pic.width(), pic.height());
        if self.enc.is_none() {
            let codec = encoder::find(codec::Id::MJPEG).ok_or_else(|| IngestError::Ffmpeg {
                path: self.path.to_path_buf(),
                during: "finding the mjpeg encoder",
                source: ffmpeg_next::Error::EncoderNotFound,
            })?;
            let mut enc = codec::context::Context::new_with_codec(codec)
                .encoder()
                .video()
                .map_err(IngestError::ffmpeg(self.path, "creating the mjpeg encoder"))?;
            enc.set_width(w);
            enc.set_height(h);
            enc.set_format(Pixel::YUVJ420P);
            enc.set_color_range(ffmpeg_next::color::Range::JPEG);
            enc.set_time_base(Rational(1, 10));
            let q = mjpeg_qscale(self.quality);
            enc.set_qmin(q);
            enc.set_qmax(q);
            let enc = enc
                .open()
                .map_err(IngestError::ffmpeg(self.path, "opening the mjpeg encoder"))?;
            *self.enc = Some(enc);
        }
        let enc = self.enc.as_mut().expect("just set");
        enc.send_frame(pic)
            .map_err(IngestError::ffmpeg(self.path, "encoding JPEG"))?;
        enc.receive_packet(self.packet)
            .map_err(IngestError::ffmpeg(self.path, "encoding JPEG"))?;
        Ok(self.packet.data().unwrap_or_default().to_vec())
    }
}

/// A packed RGB24 picture without row padding.
fn tight_rgb(pic: &frame::Video) -> Vec<u8> {
    let (w, h) = (pic.width() as usize, pic.height() as usize);
    let stride = pic.stride(0);
    let data = pic.data(0);
    if stride == w * 3 {
        return data[..w * 3 * h].to_vec();
    }
    let mut rgb = Vec::with_capacity(w * 3 * h);
    for row in data.chunks(stride).take(h) {
        rgb.extend_from_slice(&row[..w * 3]);
    }
    rgb
}

/// JPEG-encodes a tightly packed RGB24 picture with the `image` crate.
pub fn encode_rgb_jpeg(
    rgb: &[u8],
    w: u32,
    h: u32,
    quality: u8,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode(
        rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_width_keeps_aspect() {
        assert_eq!(output_size(768, 512, None), (768, 512));
        assert_eq!(output_size(768, 512, Some(1024)), (768, 512));
        assert_eq!(output_size(1920, 1080, Some(640)), (640, 360));
        assert_eq!(output_size(773, 512, Some(640)), (640, 424));
    }

    #[test]
    fn qscale_mapping() {
        assert_eq!(mjpeg_qscale(90), 2);
        assert_eq!(mjpeg_qscale(50), 8);
        assert_eq!(mjpeg_qscale(100), 1);
        assert_eq!(mjpeg_qscale(1), 31);
    }

    fn gradient(w: u32, h: u32) -> frame::Video {
        let mut f = frame::Video::new(Pixel::RGB24, w, h);
        let stride = f.stride(0);
        let data = f.data_mut(0);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let p = y * stride + x * 3;
                data[p] = (x * 255 / w as usize) as u8;
                data[p + 1] = (y * 255 / h as usize) as u8;
                data[p + 2] = 128;
            }
        }
        f
    }

    #[test]
    fn both_backends_make_decodable_jpeg_of_the_right_size() {
        for backend in [JpegBackend::Ffmpeg, JpegBackend::Image] {
            let opts = EncodeOptions {
                jpeg_backend: backend,
                max_width: Some(200),
                ..EncodeOptions::default()
            };
            let mut enc = FrameEncoder::new(Path::new("test"), opts).unwrap();
            let bytes = enc.encode(&gradient(320, 240)).unwrap();
            let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (200, 150), "{backend:?}");
            let px = img.get_pixel(199, 149);
            assert!(px[0] > 200 && px[1] > 200, "{backend:?} {px:?}");
        }
    }

    #[test]
    fn rgb24_is_tight() {
        let opts = EncodeOptions {
            encoding: FrameEncoding::Rgb24,
            ..EncodeOptions::default()
        };
        let mut enc = FrameEncoder::new(Path::new("test"), opts).unwrap();
        let bytes = enc.encode(&gradient(101, 33)).unwrap();
        assert_eq!(bytes.len(), 101 * 33 * 3);
    }
}
