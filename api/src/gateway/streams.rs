//! `subscribe {streamId, channels?}` and `unsubscribe {streamId, channels?}`: join or leave the
//! rooms of a stream. Each requested channel is checked against the caller's role; without
//! `channels`, the socket gets every channel its role may read. The acknowledgement is
//! `{ ok: true, streamId, channels }` or the API's `{ error: { code, message } }`.

use serde::{Deserialize, Serialize};
use socketioxide::extract::{AckSender, Extension, SocketRef, TryData};

use crate::auth::{Permission, Principal, now_secs};
use crate::error::AppError;
use crate::gateway::channels::{Channel, channel_room, stream_room};

/// Longest stream id accepted.
pub const MAX_STREAM_ID_LEN: usize = 128;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscribeRequest {
    pub stream_id: String,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

pub type UnsubscribeRequest = SubscribeRequest;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeAck {
    ok: bool,
    stream_id: String,
    channels: Vec<&'static str>,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::BadRequest {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_body",
        message: message.into(),
    }
}

fn check_stream_id(id: &str) -> Result<(), AppError> {
    if id.is_empty() || id.len() > MAX_STREAM_ID_LEN {
        return Err(invalid(format!(
            "streamId must have 1 to {MAX_STREAM_ID_LEN} bytes"
        )));
    }
    if id.chars().any(|c| c.is_control() || c == '#') {
        return Err(invalid(
            "streamId must not contain control characters or '#'",
        ));
    }
    Ok(())
}

/// The channels a request names (all the role may read when it names none), checked.
pub fn resolve_channels(
    p: &Principal,
    requested: Option<&[String]>,
) -> Result<Vec<Channel>, AppError> {
    match requested {
        None | Some([]) => Ok(Channel::ALL
            .into_iter()
            .filter(|c| p.can(c.permission()))
            .collect()),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                let c = Channel::parse(n).ok_or_else(|| {
                    invalid(format!(
                        "unknown channel {n:?}; known: {}",
                        Channel::ALL.map(|c| c.as_str()).join(", ")
                    ))
                })?;
                p.require(c.permission())?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            Ok(out)
        }
    }
}

fn check(
    p: &Principal,
    req: Result<SubscribeRequest, impl std::fmt::Display>,
) -> Result<(SubscribeRequest, Vec<Channel>), AppError> {
    if p.expires_at <= now_secs() {
        return Err(AppError::unauthorized("token expired"));
    }
    let req = req.map_err(|e| invalid(format!("expected {{streamId, channels?}}: {e}")))?;
    p.require(Permission::StreamsRead)?;
    check_stream_id(&req.stream_id)?;
    let channels = resolve_channels(p, req.channels.as_deref())?;
    Ok((req, channels))
}

fn reply<T: Serialize>(ack: AckSender, body: &T) {
    if let Err(e) = ack.send(body) {
        tracing::debug!(error = %e, "cannot send acknowledgement");
    }
}

pub async fn subscribe(
    s: SocketRef,
    Extension(p): Extension<Principal>,
    TryData(req): TryData<SubscribeRequest>,
    ack: AckSender,
) {
    match check(&p, req) {
        Ok((req, channels)) => {
            let mut rooms = vec![stream_room(&req.stream_id)];
            rooms.extend(channels.iter().map(|&c| channel_room(&req.stream_id, c)));
            s.join(rooms);
            tracing::debug!(sid = %s.id, user = %p.username, stream = %req.stream_id, ?channels, "subscribed");
            reply(
                ack,
                &SubscribeAck {
                    ok: true,
                    stream_id: req.stream_id,
                    channels: channels.iter().map(|c| c.as_str()).collect(),
                },
            );
        }
        Err(e) => {
            tracing::debug!(sid = %s.id, user = %p.username, error = %e, "subscribe refused");
            reply(ack, &e.body());
        }
    }
}

/// Leaves the named channels of a stream, or the whole stream when none are named.
pub async fn unsubscribe(
    s: SocketRef,
    Extension(p): Extension<Principal>,
    TryData(req): TryData<UnsubscribeRequest>,
    ack: AckSender,
) {
    let req = match req
        .map_err(|e| invalid(format!("expected {{streamId, channels?}}: {e}")))
        .and_then(|r| check_stream_id(&r.stream_id).map(|()| r))
    {
        Ok(r) => r,
        Err(e) => return reply(ack, &e.body()),
    };
    let named = match req.channels.as_deref() {
        None | Some([]) => None,
        Some(names) => match names
            .iter()
            .map(|n| Channel::parse(n).ok_or_else(|| invalid(format!("unknown channel {n:?}"))))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(v) => Some(v),
            Err(e) => return reply(ack, &e.body()),
        },
    };
    let leave = named.clone().unwrap_or_else(|| Channel::ALL.to_vec());
    let mut rooms: Vec<String> = leave
        .iter()
        .map(|&c| channel_room(&req.stream_id, c))
        .collect();
    if named.is_none() {
        rooms.push(stream_room(&req.stream_id));
    }
    s.leave(rooms);
    tracing::debug!(sid = %s.id, user = %p.username, stream = %req.stream_id, "unsubscribed");
    reply(
        ack,
        &SubscribeAck {
            ok: true,
            stream_id: req.stream_id,
            channels: leave.iter().map(|c| c.as_str()).collect(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: 1,
            username: "u".into(),
            role,
            expires_at: now_secs() + 60,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_channels_means_every_channel_the_role_may_read() {
        let all = resolve_channels(&principal(Role::Manager), None).unwrap();
        assert_eq!(all, Channel::ALL.to_vec());
        let viewer = resolve_channels(&principal(Role::Viewer), Some(&[])).unwrap();
        assert!(!viewer.contains(&Channel::Metrics) && !viewer.contains(&Channel::Alerts));
        assert!(viewer.contains(&Channel::Detections));
    }

    #[test]
    fn named_channels_are_checked() {
        let v = principal(Role::Viewer);
        let ok = resolve_channels(&v, Some(&names(&["chunks", "detections", "chunks"]))).unwrap();
        assert_eq!(ok, vec![Channel::Chunks, Channel::Detections]);
        let denied = resolve_channels(&v, Some(&names(&["chunks", "metrics"]))).unwrap_err();
        assert_eq!(denied.code(), "forbidden");
        let unknown = resolve_channels(&v, Some(&names(&["video"]))).unwrap_err();
        assert_eq!(unknown.code(), "invalid_body");
    }

    #[test]
    fn stream_ids_are_bounded() {
        assert!(check_stream_id("paddock-1").is_ok());
        assert!(check_stream_id("").is_err());
        assert!(check_stream_id("a#b").is_err());
        assert!(check_stream_id(&"x".repeat(MAX_STREAM_ID_LEN + 1)).is_err());
    }

    #[test]
    fn expired_principals_cannot_subscribe() {
        let mut p = principal(Role::Admin);
        p.expires_at = now_secs() - 1;
        let req: Result<_, String> = Ok(SubscribeRequest {
            stream_id: "s".into(),
            channels: None,
        });
        assert_eq!(check(&p, req).unwrap_err().code(), "unauthorized");
    }
}
