//! Domain types and their one conversion to and from the wire: infallible to proto
//! (`From`), fallible from proto (`TryFrom`, which checks the invariants the wire cannot).

use prost::Message;

use crate::live::{AlertRaised, DetectionUpdate, HorseUpdate, MetricsUpdate};
use crate::wire;

/// Why bytes or a wire message are not a valid domain value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtoError {
    #[error("not a valid protobuf message: {0}")]
    Decode(String),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> ProtoError {
    ProtoError::Invalid {
        what,
        why: why.into(),
    }
}

/// A file-system-safe folder name for a stream id, where ingest writes the stream's HLS
/// playback and the API reads it: ASCII letters, digits, `-`, `_` and `.` stay, every other
/// byte becomes `_`; a name of only dots gets a leading `_`.
pub fn stream_dir_name(stream_id: &str) -> String {
    let mut name: String = stream_id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.bytes().all(|b| b == b'.') {
        name.insert(0, '_');
    }
    name
}

/// The id of the `sequence`-th chunk of a stream.
pub fn chunk_id(stream_id: &str, sequence: u64) -> String {
    format!("{stream_id}:{sequence}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEncoding {
    Jpeg,
    Rgb24,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub index: u32,
    pub pts_us: i64,
    pub capture_time_us: i64,
    pub data: Vec<u8>,
}

/// A run of frames of one stream at a fixed rate, overlapping its predecessor.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameChunk {
    pub stream_id: String,
    pub sequence: u64,
    pub start_pts_us: i64,
    pub end_pts_us: i64,
    pub fps_num: u32,
    pub fps_den: u32,
    pub width: u32,
    pub height: u32,
    pub source: String,
    pub encoding: FrameEncoding,
    pub stream_start_time_us: i64,
    /// 32 lowercase hex digits (a W3C trace-id) shared by every tracing span of this chunk,
    /// in ingest and in the dataflow; empty when the producer set none.
    pub trace_id: String,
    pub frames: Vec<Frame>,
}

/// Whether `id` is a trace id as [`FrameChunk::trace_id`] holds them: 32 lowercase hex
/// digits, not all zero (W3C Trace Context).
pub fn is_trace_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0')
}

impl FrameChunk {
    pub fn chunk_id(&self) -> String {
        chunk_id(&self.stream_id, self.sequence)
    }

    pub fn encode_to_vec(&self) -> Vec<u8> {
        wire::FrameChunk::from(self.clone()).encode_to_vec()
    }

    /// Decodes and validates a chunk received from the bus.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let wire =
            wire::FrameChunk::decode(bytes).map_err(|e| ProtoError::Decode(e.to_string()))?;
        Self::try_from(wire)
    }
}

impl From<FrameEncoding> for wire::FrameEncoding {
    fn from(e: FrameEncoding) -> Self {
        match e {
            FrameEncoding::Jpeg => wire::FrameEncoding::Jpeg,
            FrameEncoding::Rgb24 => wire::FrameEncoding::Rgb24,
        }
    }
}

impl From<FrameChunk> for wire::FrameChunk {
    fn from(c: FrameChunk) -> Self {
        let chunk_id = c.chunk_id();
        wire::FrameChunk {
            stream_id: c.stream_id,
            chunk_id,
            sequence: c.sequence,
            start_pts_us: c.start_pts_us,
            end_pts_us: c.end_pts_us,
            fps_num: c.fps_num,
            fps_den: c.fps_den,
            width: c.width,
            height: c.height,
            source: c.source,
            encoding: wire::FrameEncoding::from(c.encoding) as i32,
            stream_start_time_us: c.stream_start_time_us,
            trace_id: c.trace_id,
            frames: c
                .frames
                .into_iter()
                .map(|f| wire::Frame {
                    index: f.index,
                    pts_us: f.pts_us,
                    capture_time_us: f.capture_time_us,
                    data: f.data,
                })
                .collect(),
        }
    }
}

/// Largest frame side accepted from the wire; anything larger is a corrupt or hostile header.
pub const MAX_FRAME_SIDE: u32 = 16_384;

/// Longest stream id accepted from the wire (bytes), as the gateway's rooms allow.
pub const MAX_STREAM_ID_LEN: usize = 128;

/// Largest magnitude of any time on the wire (µs): the end of year 9999. Times and
/// timestamps within it can be added and subtracted pairwise without overflow downstream.
pub const MAX_TIME_US: i64 = 253_402_300_799_999_999;

fn check_time(what: &'static str, us: i64) -> Result<(), ProtoError> {
    if us.unsigned_abs() > MAX_TIME_US as u64 {
        return Err(invalid(what, format!("{us} µs is out of range")));
    }
    Ok(())
}

impl TryFrom<wire::FrameChunk> for FrameChunk {
    type Error = ProtoError;

    fn try_from(w: wire::FrameChunk) -> Result<Self, ProtoError> {
        if w.stream_id.is_empty() {
            return Err(invalid("stream_id", "empty"));
        }
        if w.stream_id.len() > MAX_STREAM_ID_LEN {
            return Err(invalid(
                "stream_id",
                format!("{} bytes, more than {MAX_STREAM_ID_LEN}", w.stream_id.len()),
            ));
        }
        if w.stream_id.chars().any(char::is_control) {
            return Err(invalid("stream_id", "holds a control character"));
        }
        check_time("stream_start_time_us", w.stream_start_time_us)?;
        check_time("start_pts_us", w.start_pts_us)?;
        check_time("end_pts_us", w.end_pts_us)?;
        if w.chunk_id != chunk_id(&w.stream_id, w.sequence) {
            return Err(invalid(
                "chunk_id",
                format!("{:?} does not match stream and sequence", w.chunk_id),
            ));
        }
        if w.fps_num == 0 || w.fps_den == 0 {
            return Err(invalid("fps", format!("{}/{}", w.fps_num, w.fps_den)));
        }
        if w.width == 0 || w.height == 0 || w.width > MAX_FRAME_SIDE || w.height > MAX_FRAME_SIDE {
            return Err(invalid("frame size", format!("{}x{}", w.width, w.height)));
        }
        if w.end_pts_us < w.start_pts_us {
            return Err(invalid("time range", "end before start"));
        }
        let encoding = match wire::FrameEncoding::try_from(w.encoding) {
            Ok(wire::FrameEncoding::Jpeg) => FrameEncoding::Jpeg,
            Ok(wire::FrameEncoding::Rgb24) => FrameEncoding::Rgb24,
            _ => return Err(invalid("encoding", format!("{}", w.encoding))),
        };
        let mut frames = Vec::with_capacity(w.frames.len());
        for (i, f) in w.frames.into_iter().enumerate() {
            if f.index as usize != i {
                return Err(invalid(
                    "frame index",
                    format!("{} at position {i}", f.index),
                ));
            }
            if f.data.is_empty() {
                return Err(invalid("frame data", format!("frame {i} is empty")));
            }
            check_time("frame pts", f.pts_us)?;
            check_time("frame capture time", f.capture_time_us)?;
            if encoding == FrameEncoding::Rgb24
                && f.data.len() != w.width as usize * w.height as usize * 3
            {
                return Err(invalid(
                    "frame data",
                    format!("frame {i} has wrong RGB size"),
                ));
            }
            frames.push(Frame {
                index: f.index,
                pts_us: f.pts_us,
                capture_time_us: f.capture_time_us,
                data: f.data,
            });
        }
        Ok(FrameChunk {
            stream_id: w.stream_id,
            sequence: w.sequence,
            start_pts_us: w.start_pts_us,
            end_pts_us: w.end_pts_us,
            fps_num: w.fps_num,
            fps_den: w.fps_den,
            width: w.width,
            height: w.height,
            source: w.source,
            encoding,
            stream_start_time_us: w.stream_start_time_us,
            // A malformed trace id costs the chunk its trace, not its analysis.
            trace_id: if is_trace_id(&w.trace_id) {
                w.trace_id
            } else {
                String::new()
            },
            frames,
        })
    }
}

/// An axis-aligned box in source-image pixels, top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl From<BoundingBox> for wire::BoundingBox {
    fn from(b: BoundingBox) -> Self {
        wire::BoundingBox {
            x: b.x,
            y: b.y,
            w: b.w,
            h: b.h,
        }
    }
}

/// A box a peer sent, which must be there.
pub(crate) fn required_box(b: Option<wire::BoundingBox>) -> Result<BoundingBox, ProtoError> {
    let b = b.ok_or_else(|| invalid("bbox", "missing"))?;
    Ok(BoundingBox {
        x: b.x,
        y: b.y,
        w: b.w,
        h: b.h,
    })
}

/// A detection confidence a peer sent, which must lie in 0..=1.
pub(crate) fn checked_confidence(c: f32) -> Result<f32, ProtoError> {
    if (0.0..=1.0).contains(&c) {
        Ok(c)
    } else {
        Err(invalid("confidence", c.to_string()))
    }
}

/// One body keypoint of a detection (pose), in source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    /// The pose model's confidence: RTMPose's SimCC maximum, mostly in 0–1 but not bounded;
    /// `<= 0` means the model did not locate the keypoint.
    pub score: f32,
}

/// The most keypoints one detection may carry (AP-10K has 17; COCO-WholeBody's 133 are not
/// for horses).
pub const MAX_KEYPOINTS: usize = 64;

/// The largest coordinate a keypoint may have, pixels: a keypoint lies on or near its frame
/// (at most [`MAX_FRAME_SIDE`]); the margin allows for a box padded beyond the border.
pub const MAX_KEYPOINT_COORD: f32 = 4.0 * MAX_FRAME_SIDE as f32;

impl From<Keypoint> for wire::Keypoint {
    fn from(k: Keypoint) -> Self {
        wire::Keypoint {
            x: k.x,
            y: k.y,
            score: k.score,
        }
    }
}

/// Keypoints a peer sent: at most [`MAX_KEYPOINTS`], each finite and within
/// [`MAX_KEYPOINT_COORD`] of the origin.
pub(crate) fn checked_keypoints(ks: Vec<wire::Keypoint>) -> Result<Vec<Keypoint>, ProtoError> {
    if ks.len() > MAX_KEYPOINTS {
        return Err(invalid(
            "keypoints",
            format!("{} keypoints, more than {MAX_KEYPOINTS}", ks.len()),
        ));
    }
    ks.into_iter()
        .map(|k| {
            let inside = |v: f32| v.is_finite() && v.abs() <= MAX_KEYPOINT_COORD;
            if !inside(k.x) || !inside(k.y) || !k.score.is_finite() {
                return Err(invalid(
                    "keypoints",
                    format!("({}, {}) score {} is not a finite point", k.x, k.y, k.score),
                ));
            }
            Ok(Keypoint {
                x: k.x,
                y: k.y,
                score: k.score,
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub frame_index: u32,
    pub pts_us: i64,
    pub class_id: u32,
    pub confidence: f32,
    pub bbox: BoundingBox,
    pub track_id: Option<u64>,
    /// The pose, in the pose model's keypoint order; empty when pose is off for the stream.
    pub keypoints: Vec<Keypoint>,
    /// Not found by the detector: a confirmed track's box in a frame it was missed in,
    /// interpolated between its sightings (confidence 0, no embedding).
    pub interpolated: bool,
    /// Scored below the detector's threshold (but above its `low_score_threshold`): inside
    /// the dataflow only a track may keep it, as a continuation (ByteTrack's second
    /// association); one no track takes is dropped before anything is stored. Not on the wire.
    pub candidate: bool,
}

impl From<Detection> for wire::Detection {
    fn from(d: Detection) -> Self {
        wire::Detection {
            frame_index: d.frame_index,
            pts_us: d.pts_us,
            class_id: d.class_id,
            confidence: d.confidence,
            bbox: Some(d.bbox.into()),
            track_id: d.track_id,
            keypoints: d.keypoints.into_iter().map(Into::into).collect(),
            interpolated: d.interpolated,
        }
    }
}

impl TryFrom<wire::Detection> for Detection {
    type Error = ProtoError;
    fn try_from(w: wire::Detection) -> Result<Self, ProtoError> {
        Ok(Detection {
            frame_index: w.frame_index,
            pts_us: w.pts_us,
            class_id: w.class_id,
            confidence: checked_confidence(w.confidence)?,
            bbox: required_box(w.bbox)?,
            track_id: w.track_id,
            keypoints: checked_keypoints(w.keypoints)?,
            interpolated: w.interpolated,
            candidate: false,
        })
    }
}

/// The detections found on one frame of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    pub index: u32,
    pub pts_us: i64,
    pub capture_time_us: i64,
    pub detections: Vec<Detection>,
    /// Appearance embedding of each detected box (same order), when a re-ID model runs;
    /// interpolated boxes come after the detected ones and have none.
    pub embeddings: Vec<Vec<f32>>,
}

/// What the dataflow made of one chunk: handed to the sinks.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedChunk {
    pub stream_id: String,
    pub sequence: u64,
    pub start_pts_us: i64,
    pub end_pts_us: i64,
    pub stream_start_time_us: i64,
    /// Size of the source frames, pixels (0 × 0 when unknown): boxes must fall inside it.
    pub frame_width: u32,
    pub frame_height: u32,
    pub frames: Vec<FrameResult>,
}

impl ProcessedChunk {
    pub fn chunk_id(&self) -> String {
        chunk_id(&self.stream_id, self.sequence)
    }

    pub fn detection_count(&self) -> usize {
        self.frames.iter().map(|f| f.detections.len()).sum()
    }

    /// The `chunk:processed` summary of this chunk.
    pub fn summary(&self) -> ChunkProcessed {
        ChunkProcessed {
            stream_id: self.stream_id.clone(),
            chunk_id: self.chunk_id(),
            sequence: self.sequence,
            frames: self.frames.len() as u32,
            detections: self.detection_count() as u32,
            max_horses_per_frame: self
                .frames
                .iter()
                .map(|f| f.detections.len() as u32)
                .max()
                .unwrap_or(0),
            start_pts_us: self.start_pts_us,
            end_pts_us: self.end_pts_us,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkProcessed {
    pub stream_id: String,
    pub chunk_id: String,
    pub sequence: u64,
    pub frames: u32,
    pub detections: u32,
    pub max_horses_per_frame: u32,
    pub start_pts_us: i64,
    pub end_pts_us: i64,
}

/// A live stream's state: `connecting`, `active`, `stalled`, `error` or `stopped`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    pub stream_id: String,
    pub state: String,
    pub reason: String,
    pub at_us: i64,
    pub attempt: u64,
    /// The outage an `active` status ended, capture time in µs.
    pub gap: Option<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    ChunkProcessed(ChunkProcessed),
    StreamStatus(StreamStatus),
    DetectionUpdate(DetectionUpdate),
    HorseUpdate(HorseUpdate),
    MetricsUpdate(MetricsUpdate),
    AlertRaised(AlertRaised),
}

/// A live event with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub version: u32,
    pub emitted_at_us: i64,
    pub kind: EventKind,
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::ChunkProcessed(_) => "chunk:processed",
            EventKind::StreamStatus(_) => "stream:status",
            EventKind::DetectionUpdate(_) => "detection:update",
            EventKind::HorseUpdate(_) => "horse:update",
            EventKind::MetricsUpdate(_) => "metrics:update",
            EventKind::AlertRaised(_) => "alert:raised",
        }
    }

    /// The stream the event is about (the Kafka key and the gateway room).
    pub fn stream_id(&self) -> &str {
        match &self.kind {
            EventKind::ChunkProcessed(c) => &c.stream_id,
            EventKind::StreamStatus(s) => &s.stream_id,
            EventKind::DetectionUpdate(d) => &d.stream_id,
            EventKind::HorseUpdate(h) => &h.stream_id,
            EventKind::MetricsUpdate(m) => &m.stream_id,
            EventKind::AlertRaised(a) => &a.stream_id,
        }
    }

    pub fn encode_to_vec(&self) -> Vec<u8> {
        wire::Event::from(self.clone()).encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let wire = wire::Event::decode(bytes).map_err(|e| ProtoError::Decode(e.to_string()))?;
        Self::try_from(wire)
    }
}

impl From<Event> for wire::Event {
    fn from(e: Event) -> Self {
        let kind = match e.kind {
            EventKind::ChunkProcessed(c) => {
                wire::event::Kind::ChunkProcessed(wire::ChunkProcessed {
                    stream_id: c.stream_id,
                    chunk_id: c.chunk_id,
                    sequence: c.sequence,
                    frames: c.frames,
                    detections: c.detections,
                    max_horses_per_frame: c.max_horses_per_frame,
                    start_pts_us: c.start_pts_us,
                    end_pts_us: c.end_pts_us,
                })
            }
            EventKind::StreamStatus(s) => wire::event::Kind::StreamStatus(wire::StreamStatus {
                stream_id: s.stream_id,
                state: s.state,
                reason: s.reason,
                at_us: s.at_us,
                attempt: s.attempt,
                gap_from_us: s.gap.map_or(0, |g| g.0),
                gap_to_us: s.gap.map_or(0, |g| g.1),
            }),
            EventKind::DetectionUpdate(d) => wire::event::Kind::DetectionUpdate(d.into()),
            EventKind::HorseUpdate(h) => wire::event::Kind::HorseUpdate(h.into()),
            EventKind::MetricsUpdate(m) => wire::event::Kind::MetricsUpdate(m.into()),
            EventKind::AlertRaised(a) => wire::event::Kind::AlertRaised(a.into()),
        };
        wire::Event {
            version: e.version,
            emitted_at_us: e.emitted_at_us,
            kind: Some(kind),
        }
    }
}

impl TryFrom<wire::Event> for Event {
    type Error = ProtoError;
    fn try_from(w: wire::Event) -> Result<Self, ProtoError> {
        let kind = match w.kind.ok_or_else(|| invalid("event kind", "missing"))? {
            wire::event::Kind::ChunkProcessed(c) => EventKind::ChunkProcessed(ChunkProcessed {
                stream_id: c.stream_id,
                chunk_id: c.chunk_id,
                sequence: c.sequence,
                frames: c.frames,
                detections: c.detections,
                max_horses_per_frame: c.max_horses_per_frame,
                start_pts_us: c.start_pts_us,
                end_pts_us: c.end_pts_us,
            }),
            wire::event::Kind::StreamStatus(s) => {
                if s.stream_id.is_empty() {
                    return Err(invalid("stream_id", "empty"));
                }
                EventKind::StreamStatus(StreamStatus {
                    gap: (s.gap_to_us > s.gap_from_us).then_some((s.gap_from_us, s.gap_to_us)),
                    stream_id: s.stream_id,
                    state: s.state,
                    reason: s.reason,
                    at_us: s.at_us,
                    attempt: s.attempt,
                })
            }
            wire::event::Kind::DetectionUpdate(d) => EventKind::DetectionUpdate(d.try_into()?),
            wire::event::Kind::HorseUpdate(h) => EventKind::HorseUpdate(h.try_into()?),
            wire::event::Kind::MetricsUpdate(m) => EventKind::MetricsUpdate(m.try_into()?),
            wire::event::Kind::AlertRaised(a) => EventKind::AlertRaised(a.try_into()?),
        };
        Ok(Event {
            version: w.version,
            emitted_at_us: w.emitted_at_us,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_chunk() -> impl Strategy<Value = FrameChunk> {
        (
            "[a-z0-9-]{1,12}",
            any::<u64>(),
            0i64..1_000_000_000,
            0i64..20_000_000,
            1u32..120,
            1u32..1001,
            1u32..4096,
            1u32..4096,
            proptest::collection::vec(
                (
                    -MAX_TIME_US..=MAX_TIME_US,
                    -MAX_TIME_US..=MAX_TIME_US,
                    proptest::collection::vec(any::<u8>(), 1..64),
                ),
                0..8,
            ),
        )
            .prop_map(
                |(stream_id, sequence, start, len, fps_num, fps_den, width, height, frames)| {
                    FrameChunk {
                        stream_id,
                        sequence,
                        start_pts_us: start,
                        end_pts_us: start + len,
                        fps_num,
                        fps_den,
                        width,
                        height,
                        source: "file:///x.mp4".into(),
                        encoding: FrameEncoding::Jpeg,
                        stream_start_time_us: 1_700_000_000_000_000,
                        trace_id: format!("{:032x}", u128::from(sequence) + 1),
                        frames: frames
                            .into_iter()
                            .enumerate()
                            .map(|(i, (pts_us, capture_time_us, data))| Frame {
                                index: i as u32,
                                pts_us,
                                capture_time_us,
                                data,
                            })
                            .collect(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn frame_chunk_round_trips(chunk in arb_chunk()) {
            let bytes = chunk.encode_to_vec();
            prop_assert_eq!(FrameChunk::decode(&bytes).unwrap(), chunk);
        }

        #[test]
        fn detection_round_trips(
            frame_index in any::<u32>(), pts_us in any::<i64>(), class_id in 0u32..80,
            confidence in 0.0f32..=1.0, x in -1e4f32..1e4, y in -1e4f32..1e4, w in 0f32..1e4, h in 0f32..1e4,
            track_id in proptest::option::of(any::<u64>()),
            keypoints in proptest::collection::vec((-1e4f32..1e4, -1e4f32..1e4, -1f32..2.0), 0..=17),
        ) {
            let keypoints = keypoints.into_iter().map(|(x, y, score)| Keypoint { x, y, score }).collect();
            let d = Detection { frame_index, pts_us, class_id, confidence, bbox: BoundingBox { x, y, w, h }, track_id, keypoints, interpolated: false, candidate: false };
            let back = Detection::try_from(wire::Detection::from(d.clone())).unwrap();
            prop_assert_eq!(back, d);
        }

        #[test]
        fn event_round_trips(seq in any::<u64>(), frames in any::<u32>(), dets in any::<u32>(), at in any::<i64>()) {
            let e = Event {
                version: crate::EVENT_SCHEMA_VERSION,
                emitted_at_us: at,
                kind: EventKind::ChunkProcessed(ChunkProcessed {
                    stream_id: "s".into(), chunk_id: chunk_id("s", seq), sequence: seq,
                    frames, detections: dets, max_horses_per_frame: 3, start_pts_us: 0, end_pts_us: 1,
                }),
            };
            prop_assert_eq!(Event::decode(&e.encode_to_vec()).unwrap(), e);
        }

        #[test]
        fn stream_status_round_trips(at in any::<i64>(), attempt in any::<u64>(), gap in proptest::option::of((0i64..1_000_000, 1i64..1_000_000))) {
            let e = Event {
                version: crate::EVENT_SCHEMA_VERSION,
                emitted_at_us: at,
                kind: EventKind::StreamStatus(StreamStatus {
                    stream_id: "cam-1".into(), state: "active".into(), reason: String::new(),
                    at_us: at, attempt, gap: gap.map(|(a, len)| (a, a + len)),
                }),
            };
            prop_assert_eq!(Event::decode(&e.encode_to_vec()).unwrap(), e);
        }

        #[test]
        fn live_events_round_trip(
            seq in any::<u64>(), x in -1e4f32..1e4, conf in 0.0f32..=1.0,
            track in proptest::option::of(any::<u64>()), horse in proptest::option::of(1u32..100),
            speed in 0.0f64..20.0, stride in proptest::option::of(0.5f64..3.0), id in 1i64..1_000,
        ) {
            let kinds = vec![
                EventKind::DetectionUpdate(DetectionUpdate {
                    stream_id: "s".into(), chunk_id: chunk_id("s", seq), sequence: seq,
                    frames: vec![crate::FrameBoxes {
                        index: 0, pts_us: 100_000, capture_time_us: 7,
                        boxes: vec![crate::TrackedBox {
                            bbox: BoundingBox { x, y: 1.0, w: 2.0, h: 3.0 },
                            confidence: conf, track_id: track, horse,
                            keypoints: vec![Keypoint { x, y: 2.5, score: conf }; 17],
                            interpolated: false,
                        }],
                    }],
                }),
                EventKind::HorseUpdate(HorseUpdate {
                    stream_id: "s".into(), horse_id: id, number: 2, display_name: "Horse_2".into(),
                    first_seen_us: 1, last_seen_us: 5, track_ids: vec![3, 9],
                }),
                EventKind::MetricsUpdate(MetricsUpdate {
                    stream_id: "s".into(), horse_id: id, number: 1, track_id: 4, start_us: 0,
                    end_us: 4_000_000, speed, acceleration: -0.5, unit: "metres_per_second".into(),
                    stride_hz: stride, gait_class: "trot".into(), distance: speed * 4.0,
                }),
                EventKind::AlertRaised(AlertRaised {
                    stream_id: "s".into(), alert_id: id, horse_id: Some(id), kind: "no_movement".into(),
                    severity: "warning".into(), message: "Horse_1 has not moved for 10 min".into(), at_us: 3,
                }),
            ];
            for kind in kinds {
                let e = Event { version: crate::EVENT_SCHEMA_VERSION, emitted_at_us: 1, kind };
                prop_assert_eq!(Event::decode(&e.encode_to_vec()).unwrap(), e);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = FrameChunk::decode(&bytes);
        }
    }

    /// A detection of the given keypoints, as a peer would send it.
    fn with_keypoints(keypoints: Vec<wire::Keypoint>) -> wire::Detection {
        wire::Detection {
            confidence: 0.5,
            bbox: Some(wire::BoundingBox::default()),
            keypoints,
            ..Default::default()
        }
    }

    #[test]
    fn keypoints_that_are_not_finite_points_or_too_many_are_refused() {
        let kp = |x: f32, y: f32, score: f32| wire::Keypoint { x, y, score };
        let ok = Detection::try_from(with_keypoints(vec![kp(3.0, 4.0, 0.9); 17])).unwrap();
        assert_eq!(
            ok.keypoints[16],
            Keypoint {
                x: 3.0,
                y: 4.0,
                score: 0.9
            }
        );
        for bad in [
            vec![kp(f32::NAN, 1.0, 0.5)],
            vec![kp(1.0, f32::INFINITY, 0.5)],
            vec![kp(1.0, 1.0, f32::NAN)],
            vec![kp(MAX_KEYPOINT_COORD * 2.0, 1.0, 0.5)],
            vec![kp(1.0, 1.0, 0.5); MAX_KEYPOINTS + 1],
        ] {
            assert!(matches!(
                Detection::try_from(with_keypoints(bad)),
                Err(ProtoError::Invalid {
                    what: "keypoints",
                    ..
                })
            ));
        }
        // A detection of a producer that predates keypoints decodes with none.
        let old = wire::Detection {
            confidence: 0.5,
            bbox: Some(wire::BoundingBox::default()),
            ..Default::default()
        };
        assert!(Detection::try_from(old).unwrap().keypoints.is_empty());
    }

    #[test]
    fn a_detection_update_keypoint_is_checked_like_a_detections() {
        let w = wire::Event {
            version: 1,
            emitted_at_us: 0,
            kind: Some(wire::event::Kind::DetectionUpdate(wire::DetectionUpdate {
                stream_id: "s".into(),
                frames: vec![wire::FrameBoxes {
                    boxes: vec![wire::TrackedBox {
                        bbox: Some(wire::BoundingBox::default()),
                        confidence: 0.5,
                        keypoints: vec![wire::Keypoint {
                            x: f32::NAN,
                            y: 0.0,
                            score: 1.0,
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })),
        };
        assert!(matches!(
            Event::decode(&w.encode_to_vec()),
            Err(ProtoError::Invalid {
                what: "keypoints",
                ..
            })
        ));
    }

    #[test]
    fn a_metrics_update_with_nan_speed_is_refused() {
        let w = wire::Event {
            version: 1,
            emitted_at_us: 0,
            kind: Some(wire::event::Kind::MetricsUpdate(wire::MetricsUpdate {
                stream_id: "s".into(),
                speed: f64::NAN,
                ..Default::default()
            })),
        };
        assert!(matches!(
            Event::decode(&w.encode_to_vec()),
            Err(ProtoError::Invalid {
                what: "metrics",
                ..
            })
        ));
    }

    #[test]
    fn a_detection_update_box_is_checked_like_a_detection() {
        let update = |b: wire::TrackedBox| wire::Event {
            version: 1,
            emitted_at_us: 0,
            kind: Some(wire::event::Kind::DetectionUpdate(wire::DetectionUpdate {
                stream_id: "s".into(),
                frames: vec![wire::FrameBoxes {
                    boxes: vec![b],
                    ..Default::default()
                }],
                ..Default::default()
            })),
        };
        let b = wire::BoundingBox::default();
        let high = update(wire::TrackedBox {
            bbox: Some(b),
            confidence: 2.0,
            ..Default::default()
        });
        assert!(matches!(
            Event::decode(&high.encode_to_vec()),
            Err(ProtoError::Invalid {
                what: "confidence",
                ..
            })
        ));
        let missing = update(wire::TrackedBox {
            confidence: 0.5,
            ..Default::default()
        });
        assert!(matches!(
            Event::decode(&missing.encode_to_vec()),
            Err(ProtoError::Invalid { what: "bbox", .. })
        ));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = FrameChunk::decode(b"\xff\xff\xff\xffnot a chunk").unwrap_err();
        assert!(matches!(err, ProtoError::Decode(_)), "{err:?}");
    }

    #[test]
    fn a_malformed_trace_id_is_dropped_and_the_chunk_kept() {
        let chunk = |trace_id: &str| FrameChunk {
            stream_id: "s".into(),
            sequence: 0,
            start_pts_us: 0,
            end_pts_us: 1,
            fps_num: 10,
            fps_den: 1,
            width: 2,
            height: 1,
            source: String::new(),
            encoding: FrameEncoding::Rgb24,
            stream_start_time_us: 0,
            trace_id: trace_id.into(),
            frames: vec![],
        };
        let good = "4bf92f3577b34da6a3ce929d0e0e4736";
        let back = FrameChunk::decode(&chunk(good).encode_to_vec()).unwrap();
        assert_eq!(back.trace_id, good);
        for bad in [
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "00000000000000000000000000000000",
            "4bf92f35",
            "4bf92f3577b34da6a3ce929d0e0e4736\n",
        ] {
            let back = FrameChunk::decode(&chunk(bad).encode_to_vec()).unwrap();
            assert_eq!(back.trace_id, "", "{bad:?}");
        }
    }

    #[test]
    fn empty_message_is_invalid_not_a_panic() {
        let err = FrameChunk::decode(&[]).unwrap_err();
        assert_eq!(err, invalid("stream_id", "empty"));
    }

    #[test]
    fn hostile_stream_ids_and_out_of_range_times_are_refused() {
        let ok = wire::FrameChunk::from(FrameChunk {
            stream_id: "s".into(),
            sequence: 0,
            start_pts_us: 0,
            end_pts_us: 1,
            fps_num: 10,
            fps_den: 1,
            width: 2,
            height: 1,
            source: String::new(),
            encoding: FrameEncoding::Rgb24,
            stream_start_time_us: MAX_TIME_US,
            trace_id: String::new(),
            frames: vec![Frame {
                index: 0,
                pts_us: -MAX_TIME_US,
                capture_time_us: MAX_TIME_US,
                data: vec![0; 6],
            }],
        });
        assert!(FrameChunk::try_from(ok.clone()).is_ok());
        let refused = |edit: &dyn Fn(&mut wire::FrameChunk), what: &str| {
            let mut w = ok.clone();
            edit(&mut w);
            w.chunk_id = chunk_id(&w.stream_id, w.sequence);
            match FrameChunk::try_from(w) {
                Err(ProtoError::Invalid { what: got, .. }) => assert_eq!(got, what),
                other => panic!("{what}: {other:?}"),
            }
        };
        refused(&|w| w.stream_id = "s".repeat(129), "stream_id");
        refused(&|w| w.stream_id = "cam\0".into(), "stream_id");
        refused(&|w| w.stream_id = "cam\n1".into(), "stream_id");
        refused(
            &|w| w.stream_start_time_us = i64::MAX,
            "stream_start_time_us",
        );
        refused(&|w| w.start_pts_us = i64::MIN, "start_pts_us");
        refused(&|w| w.end_pts_us = MAX_TIME_US + 1, "end_pts_us");
        refused(&|w| w.frames[0].pts_us = i64::MIN, "frame pts");
        refused(
            &|w| w.frames[0].capture_time_us = i64::MAX,
            "frame capture time",
        );
    }

    #[test]
    fn absurd_frame_size_is_refused() {
        let mut w = wire::FrameChunk::from(FrameChunk {
            stream_id: "s".into(),
            sequence: 0,
            start_pts_us: 0,
            end_pts_us: 1,
            fps_num: 10,
            fps_den: 1,
            width: 10,
            height: 10,
            source: String::new(),
            encoding: FrameEncoding::Jpeg,
            stream_start_time_us: 0,
            trace_id: String::new(),
            frames: vec![],
        });
        w.width = 100_000;
        assert!(matches!(
            FrameChunk::try_from(w),
            Err(ProtoError::Invalid {
                what: "frame size",
                ..
            })
        ));
    }
}
