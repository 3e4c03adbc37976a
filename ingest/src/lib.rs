//! Ingest for horsestream: decode a video file with FFmpeg, resample it by timestamps to a fixed
//! rate, encode frames as JPEG and cut them into overlapping [`FrameChunk`]s for the bus.
//! Called by the `horsestream` binary (which supplies the publish callback) and by tests.

mod chunker;
mod decode;
mod encode;
mod error;
mod hls;
mod input;
mod live;
mod resample;
mod rotate;
mod sample;

use std::cell::OnceCell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use horsestream_proto::{Frame, FrameChunk};

pub use chunker::{Chunk, ChunkLayout, ChunkSpan, Chunker, Timed, expected_chunks};
pub use decode::{Decoded, VideoSource};
pub use encode::{
    EncodeOptions, FrameEncoder, JpegBackend, encode_rgb_jpeg, mjpeg_qscale, output_size,
};
pub use error::IngestError;
pub use hls::{HlsConfig, stream_dir_name};
pub use input::{SourceSpec, YoutubeOptions};
pub use live::{
    Backoff, BackoffConfig, Gap, LiveConfig, LiveStats, RebroadcastConfig, RtspTransport,
    SplitMix64, StopSignal, StreamState, StreamStatus, ingest_live, ingest_source, redact_url,
};
pub use resample::{Resampler, Slot, TimeBase, slot_pts_us};
pub use rotate::{Rotation, rotation_from_display_matrix};
pub use sample::{SampleInfo, SampleSpec, make_sample_video};

/// A frame rate as a fraction, e.g. `10/1` or `30000/1001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fps {
    pub num: u32,
    pub den: u32,
}

impl Fps {
    pub const fn new(num: u32, den: u32) -> Self {
        Fps { num, den }
    }
}

/// How a file is turned into chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Output frame rate (default 10/1).
    pub fps: Fps,
    /// Chunk length (default 10 s).
    pub chunk_len: Duration,
    /// Overlap between consecutive chunks (default 1 s).
    pub chunk_overlap: Duration,
    pub encode: EncodeOptions,
    /// Decoder threads; 0 lets FFmpeg choose.
    pub decode_threads: usize,
    /// Wall-clock time (µs since the Unix epoch) of pts 0; `None` uses the time ingest starts.
    /// `capture_time_us` of a frame is this plus its pts.
    pub stream_start_time_us: Option<i64>,
    /// Also write HLS playback segments of the stream (default: no).
    pub hls: Option<HlsConfig>,
    /// The first chunk sequence to cut (default 0); see [`Chunker::starting_at`]. A live
    /// stream restarted on the same `stream_start_time_us` passes the sequence after its
    /// last recorded chunk.
    pub first_sequence: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            fps: Fps::new(10, 1),
            chunk_len: Duration::from_secs(10),
            chunk_overlap: Duration::from_secs(1),
            encode: EncodeOptions::default(),
            decode_threads: 0,
            stream_start_time_us: None,
            hls: None,
            first_sequence: 0,
        }
    }
}

/// What one [`ingest_file`] run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStats {
    /// Source frames decoded.
    pub frames_decoded: u64,
    /// Output slots produced by the resampler (each counted once, overlaps not doubled).
    pub frames_emitted: u64,
    /// Chunks published.
    pub chunks: u64,
    /// Frames in published chunks (overlapping frames counted in each chunk).
    pub frames_published: u64,
    /// Decoded duration: first pts to the end of the last frame.
    pub duration_us: i64,
    /// The run was stopped before the end of the file.
    pub stopped: bool,
}

/// A decoded source frame waiting to be shown in one or more slots (sample-and-hold repeats
/// it); encoded at most once, and the HLS writer scales it at most once.
pub(crate) struct Held {
    frame: ffmpeg_next::frame::Video,
    bytes: OnceCell<Rc<Vec<u8>>>,
}

impl Held {
    pub(crate) fn new(frame: ffmpeg_next::frame::Video) -> Rc<Held> {
        Rc::new(Held {
            frame,
            bytes: OnceCell::new(),
        })
    }

    /// The frame's bytes, encoded by `encoder` on first use.
    pub(crate) fn bytes(&self, encoder: &mut FrameEncoder) -> Result<Rc<Vec<u8>>, IngestError> {
        if let Some(b) = self.bytes.get() {
            return Ok(b.clone());
        }
        let b = Rc::new(encoder.encode(&self.frame)?);
        let _ = self.bytes.set(b.clone());
        Ok(b)
    }
}

/// Sets how much FFmpeg's own logger prints to stderr (it prints encoder statistics at its
/// default level). Errors that matter reach callers as [`IngestError`]s either way.
pub fn set_ffmpeg_log_level(level: ffmpeg_next::util::log::Level) {
    ffmpeg_next::util::log::set_level(level);
}

pub use ffmpeg_next::util::log::Level as FfmpegLogLevel;

/// The wire chunk for a cut `chunk` of `stream_id`: frames numbered within the chunk, each
/// with its capture time (`stream_start` + pts). Shared by file and live ingest.
pub(crate) fn frame_chunk(
    chunk: Chunk<Rc<Vec<u8>>>,
    stream_id: &str,
    stream_start: i64,
    cfg: &IngestConfig,
    (width, height): (u32, u32),
    source: &str,
) -> FrameChunk {
    let frames = chunk
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| Frame {
            index: i as u32,
            pts_us: f.pts_us,
            capture_time_us: stream_start + f.pts_us,
            data: f.item.as_ref().clone(),
        })
        .collect();
    FrameChunk {
        stream_id: stream_id.to_string(),
        sequence: chunk.sequence,
        start_pts_us: chunk.start_pts_us,
        end_pts_us: chunk.end_pts_us,
        fps_num: cfg.fps.num,
        fps_den: cfg.fps.den,
        width,
        height,
        source: source.to_owned(),
        encoding: cfg.encode.encoding,
        stream_start_time_us: stream_start,
        trace_id: new_trace_id(),
        frames,
    }
}

/// The tracing target of every per-chunk span (ingest's here, the dataflow's stages): show
/// them with `HORSESTREAM_LOG=horsestream::trace=info` and `HORSESTREAM_LOG_SPANS=1`.
pub const TRACE_TARGET: &str = "horsestream::trace";

/// The span of one chunk's way out of ingest (its protobuf encoding and its publication are
/// children, opened by the publish callback), carrying the chunk's trace id.
pub fn ingest_span(chunk: &FrameChunk) -> tracing::Span {
    tracing::info_span!(target: "horsestream::trace", "ingest", trace_id = %chunk.trace_id,
                        chunk_id = %chunk.chunk_id(), frames = chunk.frames.len())
}

/// A fresh trace id for a chunk: 128 bits from the process's random hash keys, the clock and
/// a counter, as 32 lowercase hex digits (W3C Trace Context's trace-id).
pub fn new_trace_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEYS: OnceLock<(
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    )> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, b) = KEYS.get_or_init(Default::default);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let half = |keys: &std::collections::hash_map::RandomState| {
        let mut h = keys.build_hasher();
        h.write_u128(t);
        h.write_u64(n);
        h.write_u32(std::process::id());
        h.finish()
    };
    // All zeros is not a valid trace id; 2^-128 odds, but cheap to rule out.
    format!("{:016x}{:016x}", half(a), half(b) | 1)
}

/// `h264 768x512` or `h264 768x512 rotated 90°` for source descriptions.
pub(crate) fn describe_video(codec: &str, (w, h): (u32, u32), rotation: Rotation) -> String {
    match rotation {
        Rotation::None => format!("{codec} {w}x{h}"),
        r => format!("{codec} {w}x{h} rotated {}°", r.degrees()),
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Decodes `path`, resamples it to `cfg.fps`, and calls `publish` with each chunk as soon as it
/// is complete (the whole video is never held in memory).
///
/// On bad input the error names the file and the reason ([`IngestError`]). If the file breaks
/// part-way (truncated, corrupt data, read error), chunks that were completely decoded before
/// the break **have already been published** and stay published (they are correct and their
/// ids are deterministic, so a retry overwrites rather than duplicates); the chunk being
/// filled when the break was found, and any trailing chunk, are dropped. A faststart MP4 cut
/// short is detected at the end by comparing the decoded end with the container's duration,
/// so its last complete chunks are published before the error is returned.
pub fn ingest_file<E>(
    path: &Path,
    stream_id: &str,
    cfg: &IngestConfig,
    publish: &mut dyn FnMut(FrameChunk) -> Result<(), E>,
) -> Result<IngestStats, IngestError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    ingest_file_until(path, stream_id, cfg, &StopSignal::new(), publish)
}

/// [`ingest_file`] that ends early when `stop` is signalled: the chunks of the frames
/// decoded so far are published (the last one ends after its last frame) and the stats say
/// `stopped`.
pub fn ingest_file_until<E>(
    path: &Path,
    stream_id: &str,
    cfg: &IngestConfig,
    stop: &StopSignal,
    publish: &mut dyn FnMut(FrameChunk) -> Result<(), E>,
) -> Result<IngestStats, IngestError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if stream_id.is_empty() {
        return Err(IngestError::Config("empty stream id".into()));
    }
    let layout = ChunkLayout::new(cfg.chunk_len, cfg.chunk_overlap, cfg.fps)?;
    let mut source = VideoSource::open(path, cfg.decode_threads)?;
    let mut encoder = FrameEncoder::new(path, cfg.encode)?;
    encoder.set_rotation(source.rotation());
    let mut hls = match &cfg.hls {
        Some(h) => {
            let mut w = hls::HlsWriter::new(h, stream_id, cfg.fps, cfg.encode.max_width)?;
            w.set_rotation(source.rotation());
            Some(w)
        }
        None => None,
    };
    let stream_start = cfg.stream_start_time_us.unwrap_or_else(now_us);
    let description = format!(
        "file://{} ({})",
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display(),
        describe_video(
            source.codec_name(),
            (source.width(), source.height()),
            source.rotation()
        ),
    );
    tracing::info!(path = %path.display(), stream_id, codec = source.codec_name(), "ingest started");

    let mut resampler: Resampler<Rc<Held>> = Resampler::new(source.time_base(), cfg.fps);
    let mut chunker: Chunker<Rc<Vec<u8>>> = Chunker::starting_at(layout, cfg.first_sequence);
    let mut stats = IngestStats::default();

    let mut on_slots = |slots: Vec<Slot<Rc<Held>>>,
                        encoder: &mut FrameEncoder,
                        chunker: &mut Chunker<Rc<Vec<u8>>>,
                        stats: &mut IngestStats|
     -> Result<Vec<Chunk<Rc<Vec<u8>>>>, IngestError> {
        let mut done = Vec::new();
        for slot in slots {
            if let Some(h) = hls.as_mut() {
                h.push(slot.index, &slot.frame)?;
            }
            let bytes = slot.frame.bytes(encoder)?;
            stats.frames_emitted += 1;
            done.extend(chunker.push(slot.index, bytes));
        }
        Ok(done)
    };
    let mut send = |chunk: Chunk<Rc<Vec<u8>>>,
                    encoder: &FrameEncoder,
                    stats: &mut IngestStats|
     -> Result<(), IngestError> {
        let size = encoder.size().expect("a chunk has encoded frames");
        let chunk = frame_chunk(chunk, stream_id, stream_start, cfg, size, &description);
        let chunk_id = chunk.chunk_id();
        let n = chunk.frames.len() as u64;
        let _span = ingest_span(&chunk).entered();
        tracing::debug!(chunk_id, frames = n, "publishing chunk");
        publish(chunk).map_err(|e| IngestError::Publish {
            path: path.to_path_buf(),
            chunk_id,
            source: e.into(),
        })?;
        stats.chunks += 1;
        stats.frames_published += n;
        Ok(())
    };

    while let Some(Decoded { pts, frame }) = source.next_frame()? {
        if stop.is_stopped() {
            stats.stopped = true;
            break;
        }
        stats.frames_decoded += 1;
        let slots = resampler.push(pts, Held::new(frame));
        for chunk in on_slots(slots, &mut encoder, &mut chunker, &mut stats)? {
            send(chunk, &encoder, &mut stats)?;
        }
    }
    if !stats.stopped
        && let (Some(end), Some(origin)) = (source.end_pts(), resampler.origin())
    {
        let slots = resampler.finish(end);
        for chunk in on_slots(slots, &mut encoder, &mut chunker, &mut stats)? {
            send(chunk, &encoder, &mut stats)?;
        }
        for chunk in chunker.finish() {
            send(chunk, &encoder, &mut stats)?;
        }
        stats.duration_us = source.time_base().to_us(end - origin);
    }
    if stats.stopped {
        for chunk in chunker.finish() {
            send(chunk, &encoder, &mut stats)?;
        }
    }
    if let Some(h) = hls.as_mut() {
        h.finish()?;
    }
    if resampler.dropped() > 0 {
        tracing::warn!(path = %path.display(), dropped = resampler.dropped(), "frames with backwards pts dropped");
    }
    tracing::info!(path = %path.display(), stream_id, ?stats, "ingest finished");
    Ok(stats)
}
