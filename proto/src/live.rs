//! The live events that follow committed analysis rows: every box of a chunk
//! (`detection:update`), a horse seen (`horse:update`), a gait window (`metrics:update`) and
//! a fired alert rule (`alert:raised`). Wire conversions validate what a peer could get wrong.

use crate::domain::{
    BoundingBox, Keypoint, ProtoError, checked_confidence, checked_keypoints, invalid, required_box,
};
use crate::wire;

/// A box as the live view draws it: the detection, its track and its horse.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedBox {
    pub bbox: BoundingBox,
    pub confidence: f32,
    pub track_id: Option<u64>,
    /// The stream's horse number (`Horse_{n}`).
    pub horse: Option<u32>,
    /// The detection's pose; empty when pose is off for the stream.
    pub keypoints: Vec<Keypoint>,
    /// A track's box in a frame the detector missed it in ([`crate::Detection::interpolated`]).
    pub interpolated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameBoxes {
    pub index: u32,
    pub pts_us: i64,
    pub capture_time_us: i64,
    pub boxes: Vec<TrackedBox>,
}

/// Every box of one chunk, sent once its rows are committed.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionUpdate {
    pub stream_id: String,
    pub chunk_id: String,
    pub sequence: u64,
    pub frames: Vec<FrameBoxes>,
}

/// A horse of a stream was seen, new or again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HorseUpdate {
    pub stream_id: String,
    /// Row id in `horses`.
    pub horse_id: i64,
    /// Stable number within the stream, from 1.
    pub number: u32,
    pub display_name: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub track_ids: Vec<u64>,
}

/// One gait window of a horse.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsUpdate {
    pub stream_id: String,
    pub horse_id: i64,
    pub number: u32,
    pub track_id: u64,
    /// Window, wall-clock µs since the Unix epoch.
    pub start_us: i64,
    pub end_us: i64,
    pub speed: f64,
    pub acceleration: f64,
    pub unit: String,
    pub stride_hz: Option<f64>,
    pub gait_class: String,
    pub distance: f64,
}

/// An alert rule fired (the row is in `alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRaised {
    pub stream_id: String,
    pub alert_id: i64,
    pub horse_id: Option<i64>,
    pub kind: String,
    pub severity: String,
    pub message: String,
    pub at_us: i64,
}

fn non_empty(what: &'static str, s: &str) -> Result<(), ProtoError> {
    if s.is_empty() {
        Err(invalid(what, "empty"))
    } else {
        Ok(())
    }
}

impl From<DetectionUpdate> for wire::DetectionUpdate {
    fn from(d: DetectionUpdate) -> Self {
        wire::DetectionUpdate {
            stream_id: d.stream_id,
            chunk_id: d.chunk_id,
            sequence: d.sequence,
            frames: d
                .frames
                .into_iter()
                .map(|f| wire::FrameBoxes {
                    index: f.index,
                    pts_us: f.pts_us,
                    capture_time_us: f.capture_time_us,
                    boxes: f
                        .boxes
                        .into_iter()
                        .map(|b| wire::TrackedBox {
                            bbox: Some(b.bbox.into()),
                            confidence: b.confidence,
                            track_id: b.track_id,
                            horse: b.horse,
                            keypoints: b.keypoints.into_iter().map(Into::into).collect(),
                            interpolated: b.interpolated,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<wire::DetectionUpdate> for DetectionUpdate {
    type Error = ProtoError;
    fn try_from(w: wire::DetectionUpdate) -> Result<Self, ProtoError> {
        non_empty("stream_id", &w.stream_id)?;
        let frames = w
            .frames
            .into_iter()
            .map(|f| {
                let boxes = f
                    .boxes
                    .into_iter()
                    .map(|b| {
                        Ok(TrackedBox {
                            bbox: required_box(b.bbox)?,
                            confidence: checked_confidence(b.confidence)?,
                            track_id: b.track_id,
                            horse: b.horse,
                            keypoints: checked_keypoints(b.keypoints)?,
                            interpolated: b.interpolated,
                        })
                    })
                    .collect::<Result<_, ProtoError>>()?;
                Ok(FrameBoxes {
                    index: f.index,
                    pts_us: f.pts_us,
                    capture_time_us: f.capture_time_us,
                    boxes,
                })
            })
            .collect::<Result<_, ProtoError>>()?;
        Ok(DetectionUpdate {
            stream_id: w.stream_id,
            chunk_id: w.chunk_id,
            sequence: w.sequence,
            frames,
        })
    }
}

impl From<HorseUpdate> for wire::HorseUpdate {
    fn from(h: HorseUpdate) -> Self {
        wire::HorseUpdate {
            stream_id: h.stream_id,
            horse_id: h.horse_id,
            number: h.number,
            display_name: h.display_name,
            first_seen_us: h.first_seen_us,
            last_seen_us: h.last_seen_us,
            track_ids: h.track_ids,
        }
    }
}

impl TryFrom<wire::HorseUpdate> for HorseUpdate {
    type Error = ProtoError;
    fn try_from(w: wire::HorseUpdate) -> Result<Self, ProtoError> {
        non_empty("stream_id", &w.stream_id)?;
        Ok(HorseUpdate {
            stream_id: w.stream_id,
            horse_id: w.horse_id,
            number: w.number,
            display_name: w.display_name,
            first_seen_us: w.first_seen_us,
            last_seen_us: w.last_seen_us,
            track_ids: w.track_ids,
        })
    }
}

impl From<MetricsUpdate> for wire::MetricsUpdate {
    fn from(m: MetricsUpdate) -> Self {
        wire::MetricsUpdate {
            stream_id: m.stream_id,
            horse_id: m.horse_id,
            number: m.number,
            track_id: m.track_id,
            start_us: m.start_us,
            end_us: m.end_us,
            speed: m.speed,
            acceleration: m.acceleration,
            unit: m.unit,
            stride_hz: m.stride_hz,
            gait_class: m.gait_class,
            distance: m.distance,
        }
    }
}

impl TryFrom<wire::MetricsUpdate> for MetricsUpdate {
    type Error = ProtoError;
    fn try_from(w: wire::MetricsUpdate) -> Result<Self, ProtoError> {
        non_empty("stream_id", &w.stream_id)?;
        if !(w.speed.is_finite() && w.acceleration.is_finite() && w.distance.is_finite()) {
            return Err(invalid(
                "metrics",
                "non-finite speed, acceleration or distance",
            ));
        }
        Ok(MetricsUpdate {
            stream_id: w.stream_id,
            horse_id: w.horse_id,
            number: w.number,
            track_id: w.track_id,
            start_us: w.start_us,
            end_us: w.end_us,
            speed: w.speed,
            acceleration: w.acceleration,
            unit: w.unit,
            stride_hz: w.stride_hz,
            gait_class: w.gait_class,
            distance: w.distance,
        })
    }
}

impl From<AlertRaised> for wire::AlertRaised {
    fn from(a: AlertRaised) -> Self {
        wire::AlertRaised {
            stream_id: a.stream_id,
            alert_id: a.alert_id,
            horse_id: a.horse_id,
            kind: a.kind,
            severity: a.severity,
            message: a.message,
            at_us: a.at_us,
        }
    }
}

impl TryFrom<wire::AlertRaised> for AlertRaised {
    type Error = ProtoError;
    fn try_from(w: wire::AlertRaised) -> Result<Self, ProtoError> {
        non_empty("stream_id", &w.stream_id)?;
        non_empty("alert kind", &w.kind)?;
        Ok(AlertRaised {
            stream_id: w.stream_id,
            alert_id: w.alert_id,
            horse_id: w.horse_id,
            kind: w.kind,
            severity: w.severity,
            message: w.message,
            at_us: w.at_us,
        })
    }
}
