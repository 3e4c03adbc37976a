//! `subscribe {streamId, channels?}` and `unsubscribe {streamId, channels?}`: join or leave the
//! rooms of a stream. Each requested channel is checked against the caller's role; without
//! `channels`, the socket gets every channel its role may read. With a store, only registered
//! streams can be subscribed to, and a socket holds at most [`MAX_STREAMS_PER_SOCKET`] streams.
//! The acknowledgement is `{ ok: true, streamId, channels }` or the API's
//! `{ error: { code, message } }` (a `gateway:error` event when no ack was asked for); any other
//! event is refused with `unknown_event`. Error messages quote at most [`MAX_QUOTED`] bytes of
//! what the client sent.

use serde::{Deserialize, Serialize};
use socketioxide::extract::{Event, Extension, SocketRef, State, TryData};

use crate::AppState;
use crate::auth::{Permission, Principal, now_secs};
use crate::error::AppError;
use crate::gateway::channels::{Channel, channel_room, stream_room};
use crate::gateway::reply::Reply;

/// Longest stream id accepted.
pub const MAX_STREAM_ID_LEN: usize = 128;
/// Most streams one socket may be subscribed to at once.
pub const MAX_STREAMS_PER_SOCKET: usize = 64;
/// Longest part of a client's input quoted back in an error message, bytes.
pub const MAX_QUOTED: usize = 160;

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
        message: clip(&message.into()),
    }
}

/// `s` cut to [`MAX_QUOTED`] bytes (on a character boundary), marked when cut.
pub fn clip(s: &str) -> String {
    if s.len() <= MAX_QUOTED {
        return s.to_owned();
    }
    let mut end = MAX_QUOTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
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

/// The streams `s` is subscribed to now.
fn subscribed_streams(s: &SocketRef) -> usize {
    s.rooms()
        .iter()
        .filter(|r| r.starts_with("stream:") && !r.contains('#'))
        .count()
}

/// With a store, the stream must be registered; without one, any well-formed id is accepted.
async fn check_registered(state: &AppState, id: &str) -> Result<(), AppError> {
    let Ok(store) = state.store() else {
        return Ok(());
    };
    match store.get_stream(id).await {
        Ok(_) => Ok(()),
        Err(horsestream_sinks::SinkError::NotFound { .. }) => Err(AppError::NotFound(format!(
            "no stream {id:?} is registered"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn subscribe(
    s: SocketRef,
    Extension(p): Extension<Principal>,
    State(state): State<AppState>,
    TryData(req): TryData<SubscribeRequest>,
    reply: Reply,
) {
    let checked = match check(&p, req) {
        Ok((req, channels)) => {
            let rooms = s.rooms();
            let already = rooms.iter().any(|r| *r == stream_room(&req.stream_id));
            if !already && subscribed_streams(&s) >= MAX_STREAMS_PER_SOCKET {
                Err(AppError::BadRequest {
                    status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                    code: "too_many_subscriptions",
                    message: format!(
                        "a socket may subscribe to at most {MAX_STREAMS_PER_SOCKET} streams"
                    ),
                })
            } else {
                check_registered(&state, &req.stream_id)
                    .await
                    .map(|()| (req, channels))
            }
        }
        Err(e) => Err(e),
    };
    match checked {
        Ok((req, channels)) => {
            let mut rooms = vec![stream_room(&req.stream_id)];
            rooms.extend(channels.iter().map(|&c| channel_room(&req.stream_id, c)));
            s.join(rooms);
            tracing::debug!(sid = %s.id, user = %p.username, stream = %req.stream_id, ?channels, "subscribed");
            reply.ok(&SubscribeAck {
                ok: true,
                stream_id: req.stream_id,
                channels: channels.iter().map(|c| c.as_str()).collect(),
            });
        }
        Err(e) => reply.refuse("subscribe", &e),
    }
}

/// Leaves the named channels of a stream, or the whole stream when none are named.
pub async fn unsubscribe(
    s: SocketRef,
    Extension(p): Extension<Principal>,
    TryData(req): TryData<UnsubscribeRequest>,
    reply: Reply,
) {
    let req = match req
        .map_err(|e| invalid(format!("expected {{streamId, channels?}}: {e}")))
        .and_then(|r| check_stream_id(&r.stream_id).map(|()| r))
    {
        Ok(r) => r,
        Err(e) => return reply.refuse("unsubscribe", &e),
    };
    let named = match req.channels.as_deref() {
        None | Some([]) => None,
        Some(names) => match names
            .iter()
            .map(|n| Channel::parse(n).ok_or_else(|| invalid(format!("unknown channel {n:?}"))))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(v) => Some(v),
            Err(e) => return reply.refuse("unsubscribe", &e),
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
    reply.ok(&SubscribeAck {
        ok: true,
        stream_id: req.stream_id,
        channels: leave.iter().map(|c| c.as_str()).collect(),
    });
}

/// Any event the gateway does not handle: refused with `unknown_event` (its payload, binary
/// attachments included, is not read).
pub async fn unknown_event(Event(name): Event, reply: Reply) {
    reply.refuse(
        "unknown",
        &AppError::bad_request(
            "unknown_event",
            format!(
                "unknown event {:?}; the gateway handles subscribe and unsubscribe",
                clip(&name)
            ),
        ),
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
    fn quotes_of_client_input_are_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(MAX_QUOTED);
        let c = clip(&long);
        assert!(c.len() < MAX_QUOTED + 20, "{c}");
        assert!(c.ends_with(&format!("({} bytes)", long.len())), "{c}");
        let e = invalid("x".repeat(100_000));
        assert!(e.to_string().len() < MAX_QUOTED + 20);
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
