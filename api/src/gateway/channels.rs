//! What the gateway sends: the channels a client can subscribe to (each guarded by a
//! permission), the rooms of a stream, and each domain [`Event`] as a named JSON message.

use horsestream_proto::{Event, EventKind};
use serde_json::json;

use crate::auth::Permission;

/// A family of server events a client subscribes to on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `detection:update`: boxes, track ids and poses.
    Detections,
    /// `chunk:processed`: a chunk of the stream went through the dataflow.
    Chunks,
    /// `stream:status`: running, reconnecting, stopped.
    Status,
    /// `horse:update`: identities and gait.
    Horses,
    /// `metrics:update`: throughput and latency of the stream's processing.
    Metrics,
    /// `alert:*`: alerts raised on the stream.
    Alerts,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Detections,
        Channel::Chunks,
        Channel::Status,
        Channel::Horses,
        Channel::Metrics,
        Channel::Alerts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Detections => "detections",
            Channel::Chunks => "chunks",
            Channel::Status => "status",
            Channel::Horses => "horses",
            Channel::Metrics => "metrics",
            Channel::Alerts => "alerts",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What a role must hold to receive this channel.
    pub fn permission(self) -> Permission {
        match self {
            Channel::Detections | Channel::Chunks | Channel::Status => Permission::StreamsRead,
            Channel::Horses => Permission::HorsesRead,
            Channel::Metrics | Channel::Alerts => Permission::AnalyticsRead,
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The room of everyone subscribed to a stream, whatever the channels.
pub fn stream_room(stream_id: &str) -> String {
    format!("stream:{stream_id}")
}

/// The room events of one channel of a stream are emitted to.
pub fn channel_room(stream_id: &str, channel: Channel) -> String {
    format!("stream:{stream_id}#{channel}")
}

/// A domain event as the gateway emits it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub stream_id: String,
    /// The Socket.io event name: [`Event::name`] (`chunk:processed`, ...).
    pub name: &'static str,
    pub channel: Channel,
    pub payload: serde_json::Value,
}

impl Outgoing {
    pub fn room(&self) -> String {
        channel_room(&self.stream_id, self.channel)
    }
}

/// Maps an event to its stream, channel and camelCase JSON payload. The match is exhaustive
/// on purpose: a new [`EventKind`] does not compile until it is given a channel and payload.
pub fn outgoing(event: &Event) -> Outgoing {
    match &event.kind {
        EventKind::ChunkProcessed(c) => Outgoing {
            stream_id: c.stream_id.clone(),
            name: event.name(),
            channel: Channel::Chunks,
            payload: json!({
                "streamId": c.stream_id,
                "chunkId": c.chunk_id,
                "sequence": c.sequence,
                "frames": c.frames,
                "detections": c.detections,
                "maxHorsesPerFrame": c.max_horses_per_frame,
                "startPtsUs": c.start_pts_us,
                "endPtsUs": c.end_pts_us,
                "emittedAtUs": event.emitted_at_us,
                "version": event.version,
            }),
        },
        EventKind::StreamStatus(st) => Outgoing {
            stream_id: st.stream_id.clone(),
            name: event.name(),
            channel: Channel::Status,
            payload: json!({
                "streamId": st.stream_id,
                "state": st.state,
                "reason": st.reason,
                "atUs": st.at_us,
                "attempt": st.attempt,
                "gap": st.gap.map(|(from, to)| json!({ "fromUs": from, "toUs": to })),
                "emittedAtUs": event.emitted_at_us,
                "version": event.version,
            }),
        },
        EventKind::DetectionUpdate(d) => Outgoing {
            stream_id: d.stream_id.clone(),
            name: event.name(),
            channel: Channel::Detections,
            payload: json!({
                "streamId": d.stream_id,
                "chunkId": d.chunk_id,
                "sequence": d.sequence,
                "frames": d.frames.iter().map(|f| json!({
                    "index": f.index,
                    "ptsUs": f.pts_us,
                    "captureTimeUs": f.capture_time_us,
                    "boxes": f.boxes.iter().map(|b| json!({
                        "x": b.bbox.x, "y": b.bbox.y, "w": b.bbox.w, "h": b.bbox.h,
                        "confidence": b.confidence,
                        "trackId": b.track_id,
                        "horse": b.horse,
                        // `[x, y, score]` per keypoint (AP-10K order); empty without pose.
                        "keypoints": b.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect::<Vec<_>>(),
                        "interpolated": b.interpolated,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "emittedAtUs": event.emitted_at_us,
                "version": event.version,
            }),
        },
        EventKind::HorseUpdate(h) => Outgoing {
            stream_id: h.stream_id.clone(),
            name: event.name(),
            channel: Channel::Horses,
            payload: json!({
                "streamId": h.stream_id,
                "horseId": h.horse_id,
                "number": h.number,
                "displayName": h.display_name,
                "firstSeenUs": h.first_seen_us,
                "lastSeenUs": h.last_seen_us,
                "trackIds": h.track_ids,
                "emittedAtUs": event.emitted_at_us,
                "version": event.version,
            }),
        },
        EventKind::MetricsUpdate(m) => Outgoing {
            stream_id: m.stream_id.clone(),
            name: event.name(),
            channel: Channel::Metrics,
            payload: json!({
                "streamId": m.stream_id,
                "horseId": m.horse_id,
                "number": m.number,
                "trackId": m.track_id,
                "startUs": m.start_us,
                "endUs": m.end_us,
                "speed": m.speed,
                "acceleration": m.acceleration,
                "unit": m.unit,
                "strideHz": m.stride_hz,
                "gaitClass": m.gait_class,
                "distance": m.distance,
                "emittedAtUs": event.emitted_at_us,
                "version": event.version,
            }),
        },
        EventKind::AlertRaised(a) => Outgoing {
            stream_id: a.stream_id.clone(),
            name: event.name(),
            channel: Channel::Alerts,
            payload: json!({
                "streamId": a.stream_id,
                "alertId": a.alert_id,
                "horseId": a.horse_id,
                "kind": a.kind,
                "severity": a.severity,
                "message": a.message,
                "atUs": a.at_us,
                "emittedAtUs": event.emitted_at_us,
                "version": event.version,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use horsestream_proto::ChunkProcessed;

    use super::*;
    use crate::auth::{Role, allows};

    #[test]
    fn chunk_processed_goes_to_the_chunks_room_of_its_stream() {
        let e = Event {
            version: 1,
            emitted_at_us: 42,
            kind: EventKind::ChunkProcessed(ChunkProcessed {
                stream_id: "paddock-1".into(),
                chunk_id: "paddock-1:3".into(),
                sequence: 3,
                frames: 20,
                detections: 5,
                max_horses_per_frame: 2,
                start_pts_us: 0,
                end_pts_us: 2_000_000,
            }),
        };
        let o = outgoing(&e);
        assert_eq!(o.name, "chunk:processed");
        assert_eq!(o.room(), "stream:paddock-1#chunks");
        assert_eq!(o.payload["streamId"], "paddock-1");
        assert_eq!(o.payload["maxHorsesPerFrame"], 2);
        assert_eq!(o.payload["emittedAtUs"], 42);
    }

    #[test]
    fn stream_status_goes_to_the_status_room() {
        let e = Event {
            version: 1,
            emitted_at_us: 9,
            kind: EventKind::StreamStatus(horsestream_proto::StreamStatus {
                stream_id: "cam".into(),
                state: "active".into(),
                reason: String::new(),
                at_us: 8,
                attempt: 2,
                gap: Some((1, 5)),
            }),
        };
        let o = outgoing(&e);
        assert_eq!(
            (o.name, o.room()),
            ("stream:status", "stream:cam#status".into())
        );
        assert_eq!(o.payload["gap"], json!({ "fromUs": 1, "toUs": 5 }));
        assert_eq!(o.payload["attempt"], 2);
    }

    #[test]
    fn analysis_events_go_to_their_channels() {
        use horsestream_proto::{
            AlertRaised, BoundingBox, DetectionUpdate, FrameBoxes, HorseUpdate, Keypoint,
            MetricsUpdate, TrackedBox,
        };
        let at = |kind| Event {
            version: 1,
            emitted_at_us: 5,
            kind,
        };
        let d = outgoing(&at(EventKind::DetectionUpdate(DetectionUpdate {
            stream_id: "cam".into(),
            chunk_id: "cam:0".into(),
            sequence: 0,
            frames: vec![FrameBoxes {
                index: 3,
                pts_us: 300_000,
                capture_time_us: 9,
                boxes: vec![TrackedBox {
                    bbox: BoundingBox {
                        x: 1.0,
                        y: 2.0,
                        w: 3.0,
                        h: 4.0,
                    },
                    confidence: 0.5,
                    track_id: Some(7),
                    horse: Some(2),
                    keypoints: vec![Keypoint {
                        x: 1.5,
                        y: 2.5,
                        score: 0.75,
                    }],
                    interpolated: false,
                }],
            }],
        })));
        assert_eq!(
            (d.name, d.room()),
            ("detection:update", "stream:cam#detections".into())
        );
        assert_eq!(d.payload["frames"][0]["boxes"][0]["trackId"], 7);
        assert_eq!(d.payload["frames"][0]["boxes"][0]["horse"], 2);
        assert_eq!(
            d.payload["frames"][0]["boxes"][0]["keypoints"],
            json!([[1.5, 2.5, 0.75]])
        );
        assert_eq!(d.payload["frames"][0]["ptsUs"], 300_000);
        let h = outgoing(&at(EventKind::HorseUpdate(HorseUpdate {
            stream_id: "cam".into(),
            horse_id: 11,
            number: 2,
            display_name: "Horse_2".into(),
            first_seen_us: 1,
            last_seen_us: 2,
            track_ids: vec![7],
        })));
        assert_eq!(
            (h.name, h.room()),
            ("horse:update", "stream:cam#horses".into())
        );
        assert_eq!(h.payload["displayName"], "Horse_2");
        let m = outgoing(&at(EventKind::MetricsUpdate(MetricsUpdate {
            stream_id: "cam".into(),
            horse_id: 11,
            number: 2,
            track_id: 7,
            start_us: 0,
            end_us: 4,
            speed: 1.5,
            acceleration: 0.0,
            unit: "metres_per_second".into(),
            stride_hz: None,
            gait_class: "walk".into(),
            distance: 6.0,
        })));
        assert_eq!(
            (m.name, m.room()),
            ("metrics:update", "stream:cam#metrics".into())
        );
        assert_eq!(m.payload["gaitClass"], "walk");
        let a = outgoing(&at(EventKind::AlertRaised(AlertRaised {
            stream_id: "cam".into(),
            alert_id: 3,
            horse_id: None,
            kind: "zone_exit".into(),
            severity: "warning".into(),
            message: "left paddock".into(),
            at_us: 4,
        })));
        assert_eq!(
            (a.name, a.room()),
            ("alert:raised", "stream:cam#alerts".into())
        );
        assert_eq!(a.payload["kind"], "zone_exit");
    }

    #[test]
    fn channel_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("everything"), None);
    }

    /// Role × channel: which live channels each role may receive.
    #[test]
    fn channel_rbac_matrix() {
        #[rustfmt::skip]
        let table: &[(Channel, bool, bool, bool)] = &[
            //                     admin manager viewer
            (Channel::Detections,  true, true,  true),
            (Channel::Chunks,      true, true,  true),
            (Channel::Status,      true, true,  true),
            (Channel::Horses,      true, true,  true),
            (Channel::Metrics,     true, true,  false),
            (Channel::Alerts,      true, true,  false),
        ];
        assert_eq!(table.len(), Channel::ALL.len());
        for &(c, admin, manager, viewer) in table {
            for (role, want) in [
                (Role::Admin, admin),
                (Role::Manager, manager),
                (Role::Viewer, viewer),
            ] {
                assert_eq!(allows(role, c.permission()), want, "{role} {c}");
            }
        }
    }
}
