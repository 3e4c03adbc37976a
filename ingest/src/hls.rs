//! HLS segments of a stream for playback, written at ingest: the same resampled, upright
//! frames the chunks carry, H.264-encoded (libx264) and cut by FFmpeg's `hls` muxer into
//! segments of exactly `segment_len` (keyframes are forced on the segment grid).
//!
//! Layout: `DIR/<stream>/index.m3u8` and `DIR/<stream>/seg_000000.ts`, … where `<stream>` is
//! [`stream_dir_name`] of the stream id. Segment `n` starts at the slot whose index is a
//! multiple of `segment_len × fps` and the MPEG-TS timestamps are exactly the chunks'
//! `pts_us` (in 90 kHz ticks; no mux delay is added), so a player can match overlay data
//! (frame `pts_us`) to what it shows. After an outage of a live stream the timestamps jump with the
//! gap; the segment holding the jump is longer in wall time than in frames.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use ffmpeg_next::{Dictionary, Packet, Rational, codec, encoder, format, format::Pixel};

use crate::encode::Picturer;
use crate::rotate::Rotation;
use crate::{Fps, Held, IngestError};

pub use horsestream_proto::stream_dir_name;

/// Where and how playback segments are written.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsConfig {
    /// Parent folder; each stream gets a sub-folder named by [`stream_dir_name`].
    pub dir: PathBuf,
    /// Segment length (default 2 s); a whole number of output frames.
    pub segment_len: Duration,
    /// x264 constant rate factor (default 23).
    pub crf: u8,
}

impl HlsConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        HlsConfig {
            dir: dir.into(),
            segment_len: Duration::from_secs(2),
            crf: 23,
        }
    }

    /// The folder of `stream_id`'s playlist and segments.
    pub fn stream_dir(&self, stream_id: &str) -> PathBuf {
        self.dir.join(stream_dir_name(stream_id))
    }
}

/// Frames per segment for `fps`, or an error if the segment is not a whole number of frames.
fn segment_slots(len: Duration, fps: Fps) -> Result<u64, IngestError> {
    let num = len.as_micros() * fps.num as u128;
    let den = 1_000_000 * fps.den as u128;
    if num == 0 || !num.is_multiple_of(den) {
        return Err(IngestError::Config(format!(
            "HLS segment length {len:?} is not a whole number of frames at {}/{} fps",
            fps.num, fps.den
        )));
    }
    Ok((num / den) as u64)
}

struct Open {
    octx: format::context::Output,
    enc: encoder::Video,
    stream_index: usize,
    enc_tb: Rational,
    ost_tb: Rational,
}

/// What the muxer and encoder are opened with.
struct Output {
    dir: PathBuf,
    playlist: PathBuf,
    crf: u8,
    fps: Fps,
    seg_slots: u64,
}

/// Encodes slots of one stream into HLS segments; opened on the first frame.
pub(crate) struct HlsWriter {
    out: Output,
    picturer: Picturer,
    /// The source frame whose picture `picturer` holds: a frame held over several slots is
    /// scaled once and sent again with the next pts.
    pictured: Option<Rc<Held>>,
    open: Option<Open>,
    last_index: Option<u64>,
    packet: Packet,
    finished: bool,
}

impl std::fmt::Debug for HlsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsWriter")
            .field("playlist", &self.out.playlist)
            .field("seg_slots", &self.out.seg_slots)
            .finish_non_exhaustive()
    }
}

impl HlsWriter {
    pub fn new(
        cfg: &HlsConfig,
        stream_id: &str,
        fps: Fps,
        max_width: Option<u32>,
    ) -> Result<Self, IngestError> {
        let seg_slots = segment_slots(cfg.segment_len, fps)?;
        let dir = cfg.stream_dir(stream_id);
        std::fs::create_dir_all(&dir).map_err(|source| IngestError::Io {
            path: dir.clone(),
            source,
        })?;
        let playlist = dir.join("index.m3u8");
        Ok(HlsWriter {
            picturer: Picturer::new(&playlist, Pixel::YUV420P, max_width).even(),
            pictured: None,
            out: Output {
                dir,
                playlist,
                crf: cfg.crf,
                fps,
                seg_slots,
            },
            open: None,
            last_index: None,
            packet: Packet::empty(),
            finished: false,
        })
    }

    pub fn set_rotation(&mut self, rotation: Rotation) {
        self.picturer.set_rotation(rotation);
        self.pictured = None;
    }

    /// Adds the frame shown in slot `index` (strictly increasing).
    pub fn push(&mut self, index: u64, held: &Rc<Held>) -> Result<(), IngestError> {
        if self.last_index.is_some_and(|l| index <= l) || self.finished {
            return Ok(());
        }
        let jumped = self.last_index.is_none_or(|l| index != l + 1);
        self.last_index = Some(index);
        let key = jumped || index.is_multiple_of(self.out.seg_slots);
        if !self.pictured.as_ref().is_some_and(|p| Rc::ptr_eq(p, held)) {
            self.pictured = None;
            self.picturer.picture(&held.frame)?;
            self.pictured = Some(held.clone());
        }
        let pic = self.picturer.last_mut().expect("pictured");
        pic.set_pts(Some(index as i64));
        pic.set_kind(if key {
            ffmpeg_next::picture::Type::I
        } else {
            ffmpeg_next::picture::Type::None
        });
        if self.open.is_none() {
            self.open = Some(self.out.open((pic.width(), pic.height()))?);
        }
        let open = self.open.as_mut().expect("just opened");
        open.enc
            .send_frame(pic)
            .map_err(IngestError::ffmpeg(&self.out.playlist, "encoding H.264"))?;
        Self::drain(open, &mut self.packet, &self.out.playlist)
    }

    fn drain(open: &mut Open, packet: &mut Packet, path: &Path) -> Result<(), IngestError> {
        while open.enc.receive_packet(packet).is_ok() {
            packet.set_stream(open.stream_index);
            packet.set_duration(1);
            packet.rescale_ts(open.enc_tb, open.ost_tb);
            packet
                .write_interleaved(&mut open.octx)
                .map_err(IngestError::ffmpeg(path, "writing an HLS segment"))?;
        }
        Ok(())
    }

    /// Flushes the encoder and ends the playlist (`#EXT-X-ENDLIST`). Idempotent.
    pub fn finish(&mut self) -> Result<(), IngestError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let path = &self.out.playlist;
        open.enc
            .send_eof()
            .map_err(IngestError::ffmpeg(path, "flushing the H.264 encoder"))?;
        Self::drain(open, &mut self.packet, path)?;
        open.octx
            .write_trailer()
            .map_err(IngestError::ffmpeg(path, "finishing the HLS playlist"))?;
        tracing::info!(playlist = %path.display(), "HLS segments finished");
        Ok(())
    }
}

impl Output {
    fn open(&self, (w, h): (u32, u32)) -> Result<Open, IngestError> {
        let path = &self.playlist;
        let err = |during| IngestError::ffmpeg(path, during);
        let mut octx = format::output_as(path, "hls").map_err(err("creating the HLS muxer"))?;
        let codec = encoder::find_by_name("libx264")
            .ok_or(ffmpeg_next::Error::EncoderNotFound)
            .map_err(err("finding libx264"))?;
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(err("creating the H.264 encoder"))?;
        let rate = Rational(self.fps.num as i32, self.fps.den as i32);
        let enc_tb = rate.invert();
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(enc_tb);
        enc.set_frame_rate(Some(rate));
        enc.set_gop(self.seg_slots as u32);
        if global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut x264 = Dictionary::new();
        x264.set("preset", "veryfast");
        x264.set("crf", &self.crf.to_string());
        // Keyframes only where we force them (on the segment grid); no B-frames, so packets
        // leave in presentation order (no reordering delay for live playback, and the hls
        // muxer's last-segment duration is right).
        x264.set("x264-params", "scenecut=0:bframes=0");
        let enc = enc
            .open_as_with(codec, x264)
            .map_err(err("opening libx264"))?;
        let stream_index = {
            let mut ost = octx.add_stream(codec).map_err(err("adding a stream"))?;
            ost.set_parameters(&enc);
            ost.set_time_base(enc_tb);
            ost.index()
        };
        let mut mux = Dictionary::new();
        mux.set(
            "hls_time",
            &format!(
                "{}",
                self.seg_slots as f64 * self.fps.den as f64 / self.fps.num as f64
            ),
        );
        mux.set("hls_list_size", "0");
        mux.set("hls_playlist_type", "event");
        mux.set("hls_flags", "independent_segments");
        mux.set(
            "hls_segment_filename",
            &self.dir.join("seg_%06d.ts").to_string_lossy(),
        );
        octx.write_header_with(mux)
            .map_err(err("writing the HLS header"))?;
        let ost_tb = octx.stream(stream_index).expect("stream added").time_base();
        tracing::info!(playlist = %path.display(), width = w, height = h, "HLS segments started");
        Ok(Open {
            octx,
            enc,
            stream_index,
            enc_tb,
            ost_tb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_become_safe_folder_names() {
        assert_eq!(stream_dir_name("paddock-1"), "paddock-1");
        assert_eq!(stream_dir_name("farm/cam 2"), "farm_cam_2");
        assert_eq!(stream_dir_name(".."), "_..");
        assert_eq!(stream_dir_name(""), "_");
        assert_eq!(stream_dir_name("é"), "__");
    }

    #[test]
    fn segments_are_whole_frames() {
        let ten = Fps::new(10, 1);
        assert_eq!(segment_slots(Duration::from_secs(2), ten).unwrap(), 20);
        assert!(segment_slots(Duration::from_millis(2050), ten).is_err());
        assert!(segment_slots(Duration::ZERO, ten).is_err());
        let ntsc = Fps::new(30000, 1001);
        assert!(segment_slots(Duration::from_secs(2), ntsc).is_err());
        assert_eq!(
            segment_slots(Duration::from_micros(1_001_000), ntsc).unwrap(),
            30
        );
    }
}
