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
