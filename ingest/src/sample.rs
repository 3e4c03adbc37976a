//! A deterministic sample video made from one photo: hold, a smooth zoom with a pan left →
//! right → left, hold again. Used by tests and demos so nobody commits video files.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ffmpeg_next::{
    Dictionary, Packet, Rational, codec, encoder, format, format::Pixel, frame, software::scaling,
};

use crate::{Fps, IngestError};

/// What to render.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSpec {
    pub width: u32,
    pub height: u32,
    pub fps: Fps,
    pub duration: Duration,
    /// Whole photo at the start and at the end for this long each; the zoom fills the middle.
    pub hold: Duration,
    /// Largest zoom factor, reached half-way through the zoom (at most 1.4 keeps the horses
    /// of `horses.jpg` in view).
    pub max_zoom: f64,
    /// Put the MP4 index (`moov`) before the data.
    pub faststart: bool,
    /// x264 constant rate factor.
    pub crf: u8,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            width: 768,
            height: 512,
            fps: Fps { num: 25, den: 1 },
            duration: Duration::from_secs(20),
            hold: Duration::from_secs(3),
            max_zoom: 1.4,
            faststart: false,
            crf: 20,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInfo {
    pub duration_us: i64,
    pub fps: Fps,
    pub frame_count: u64,
    pub width: u32,
    pub height: u32,
    /// Time ranges (µs, half-open) in which every frame shows the whole photo.
    pub whole_photo_us: Vec<Range<i64>>,
}

/// The crop of the photo shown at time `t_s`: centre x, centre y (fractions of the photo)
/// and zoom factor.
fn view_at(spec: &SampleSpec, t_s: f64) -> (f64, f64, f64) {
    let hold = spec.hold.as_secs_f64();
    let zoom_len = spec.duration.as_secs_f64() - 2.0 * hold;
    if zoom_len <= 0.0 || t_s <= hold || t_s >= hold + zoom_len {
        return (0.5, 0.5, 1.0);
    }
    let u = (t_s - hold) / zoom_len; // 0..1
    let s = (std::f64::consts::PI * u).sin();
    let zoom = 1.0 + (spec.max_zoom.max(1.0) - 1.0) * s * s;
    // −1 (left) → +1 (right) at mid-way → −1 (left), within the slack the zoom leaves.
    let pan = -(2.0 * std::f64::consts::PI * u).cos();
    let slack = (1.0 - 1.0 / zoom) / 2.0;
    (0.5 + pan * slack, 0.5, zoom)
}

/// Bilinear render of the photo crop into `out` (tight RGB24, `w`×`h`). Fixed-point weights
/// keep it fast and bit-for-bit reproducible.
fn render(photo: &image::RgbImage, view: (f64, f64, f64), w: u32, h: u32, out: &mut [u8]) {
    let (pw, ph) = (photo.width() as f64, photo.height() as f64);
    let (cx, cy, zoom) = view;
    let (vw, vh) = (pw / zoom, ph / zoom);
    let (left, top) = (cx * pw - vw / 2.0, cy * ph - vh / 2.0);
    let taps = |n: u32, origin: f64, span: f64, max: u32| -> Vec<(usize, usize, u32)> {
        (0..n)
            .map(|i| {
                let s = (origin + (i as f64 + 0.5) * span / n as f64 - 0.5)
                    .clamp(0.0, (max - 1) as f64);
                let i0 = s.floor() as u32;
                let i1 = (i0 + 1).min(max - 1);
                let frac = ((s - i0 as f64) * 256.0).round() as u32;
                (i0 as usize, i1 as usize, frac.min(256))
            })
            .collect()
    };
    let xs = taps(w, left, vw, photo.width());
    let ys = taps(h, top, vh, photo.height());
    let src = photo.as_raw();
    let stride = photo.width() as usize * 3;
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        let (r0, r1) = (&src[y0 * stride..], &src[y1 * stride..]);
        let row = &mut out[y * w as usize * 3..(y + 1) * w as usize * 3];
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let a = r0[x0 * 3 + c] as u32 * (256 - fx) + r0[x1 * 3 + c] as u32 * fx;
                let b = r1[x0 * 3 + c] as u32 * (256 - fx) + r1[x1 * 3 + c] as u32 * fx;
                row[x * 3 + c] = ((a * (256 - fy) + b * fy + 32768) >> 16) as u8;
            }
        }
    }
}

/// Renders `spec` from `photo` into an H.264 (libx264, yuv420p) MP4 at `out`.
///
/// Output is deterministic for a given FFmpeg/x264 build: x264 runs single-threaded and the
/// muxer in bit-exact mode.
pub fn make_sample_video(
    photo: &Path,
    out: &Path,
    spec: &SampleSpec,
) -> Result<SampleInfo, IngestError> {
    if spec.fps.num == 0 || spec.fps.den == 0 || spec.width < 2 || spec.height < 2 {
        return Err(IngestError::Config(format!("bad sample spec {spec:?}")));
    }
    let img = image::open(photo)
        .map_err(|source| IngestError::Photo {
            path: photo.to_path_buf(),
            source,
        })?
        .to_rgb8();
    ffmpeg_next::init().map_err(IngestError::ffmpeg(out, "initialising"))?;
    let err = |during| IngestError::ffmpeg(out, during);
    let (w, h) = (spec.width & !1, spec.height & !1);
    let frame_rate = Rational(spec.fps.num as i32, spec.fps.den as i32);
    let enc_tb = frame_rate.invert();

    let mut octx = format::output_as(out, "mp4").map_err(err("creating the MP4"))?;
    let codec = encoder::find_by_name("libx264")
        .ok_or(ffmpeg_next::Error::EncoderNotFound)
        .map_err(err("finding libx264"))?;
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(err("creating the encoder"))?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(enc_tb);
    enc.set_frame_rate(Some(frame_rate));
    enc.set_gop(spec.fps.num / spec.fps.den.max(1));
    if global_header {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut x264 = Dictionary::new();
    x264.set("preset", "veryfast");
    x264.set("crf", &spec.crf.to_string());
    x264.set("threads", "1");
    let mut enc = enc
        .open_as_with(codec, x264)
        .map_err(err("opening libx264"))?;
    let stream_index = {
        let mut ost = octx.add_stream(codec).map_err(err("adding a stream"))?;
        ost.set_parameters(&enc);
        ost.set_time_base(enc_tb);
        ost.index()
    };
    let mut mux = Dictionary::new();
    mux.set("fflags", "+bitexact");
    if spec.faststart {
        mux.set("movflags", "+faststart");
    }
    octx.write_header_with(mux)
        .map_err(err("writing the MP4 header"))?;
    let ost_tb = octx.stream(stream_index).expect("stream added").time_base();

    let mut scaler = scaling::Context::get(
        Pixel::RGB24,
        w,
        h,
        Pixel::YUV420P,
        w,
        h,
        scaling::Flags::BILINEAR,
    )
    .map_err(err("setting up swscale"))?;
    let mut rgb = frame::Video::new(Pixel::RGB24, w, h);
    let mut yuv = frame::Video::new(Pixel::YUV420P, w, h);
    let mut tight = vec![0u8; (w * h * 3) as usize];
    let mut packet = Packet::empty();
    let mut drain =
        |enc: &mut encoder::Video, octx: &mut format::context::Output| -> Result<(), IngestError> {
            while enc.receive_packet(&mut packet).is_ok() {
                packet.set_stream(stream_index);
                // x264 leaves durations at 0; without them the MP4 says the stream is one frame
                // shorter than it is.
                packet.set_duration(1);
                packet.rescale_ts(enc_tb, ost_tb);
                packet
                    .write_interleaved(octx)
                    .map_err(err("writing a packet"))?;
            }
            Ok(())
        };

    let frame_count = (spec.duration.as_micros() * spec.fps.num as u128)
        .div_ceil(1_000_000 * spec.fps.den as u128) as u64;
    for i in 0..frame_count {
        let t = i as f64 * spec.fps.den as f64 / spec.fps.num as f64;
        render(&img, view_at(spec, t), w, h, &mut tight);
        let stride = rgb.stride(0);
        let dst = rgb.data_mut(0);
        for (y, row) in tight.chunks(w as usize * 3).enumerate() {
            dst[y * stride..y * stride + row.len()].copy_from_slice(row);
        }
        scaler
            .run(&rgb, &mut yuv)
            .map_err(err("converting to YUV"))?;
        yuv.set_pts(Some(i as i64));
        enc.send_frame(&yuv).map_err(err("encoding"))?;
        drain(&mut enc, &mut octx)?;
    }
    enc.send_eof().map_err(err("flushing the encoder"))?;
    drain(&mut enc, &mut octx)?;
    octx.write_trailer().map_err(err("finishing the MP4"))?;

    let duration_us = crate::resample::slot_pts_us(frame_count, spec.fps);
    let hold_us = (spec.hold.as_micros() as i64).min(duration_us);
    let whole_photo_us = if 2 * hold_us >= duration_us {
        std::iter::once(0..duration_us).collect()
    } else {
        vec![0..hold_us, duration_us - hold_us..duration_us]
    };
    Ok(SampleInfo {
        duration_us,
        fps: spec.fps,
        frame_count,
        width: w,
        height: h,
        whole_photo_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_holds_zooms_and_pans_back() {
        let spec = SampleSpec::default();
        assert_eq!(view_at(&spec, 0.0), (0.5, 0.5, 1.0));
        assert_eq!(view_at(&spec, 2.96), (0.5, 0.5, 1.0));
        assert_eq!(view_at(&spec, 17.0), (0.5, 0.5, 1.0));
        let (cx, _, z) = view_at(&spec, 10.0);
        assert!((z - 1.4).abs() < 1e-9 && cx > 0.5, "{cx} {z}");
        let (cx, _, z) = view_at(&spec, 5.0);
        assert!(z > 1.0 && cx < 0.5);
        let (cx, _, _) = view_at(&spec, 15.0);
        assert!(cx < 0.5);
        // The crop never leaves the photo and zoom never exceeds the maximum.
        for i in 0..=2000 {
            let (cx, cy, z) = view_at(&spec, i as f64 / 100.0);
            assert!(z <= 1.4 + 1e-12);
            assert!(cx - 0.5 / z >= -1e-12 && cx + 0.5 / z <= 1.0 + 1e-12);
            assert_eq!(cy, 0.5);
        }
    }

    #[test]
    fn smooth_zoom_steps_are_small() {
        let spec = SampleSpec::default();
        let mut prev = view_at(&spec, 0.0);
        for i in 1..500 {
            let v = view_at(&spec, i as f64 / 25.0);
            assert!((v.0 - prev.0).abs() < 0.01 && (v.2 - prev.2).abs() < 0.01);
            prev = v;
        }
    }
}
