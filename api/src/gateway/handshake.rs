//! The handshake: a socket connects only with a valid access token, from the auth payload
//! `{ token }` (what `socket.io-client`'s `auth` option sends) or an `Authorization: Bearer`
//! header. The socket is disconnected by the server when that token expires; clients refresh
//! their token and reconnect.

use std::time::Duration;

use serde::Deserialize;
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use tokio::task::AbortHandle;

use crate::AppState;
use crate::auth::{Principal, authenticate_token, now_secs};
use crate::gateway::streams;

#[derive(Debug, Default, Deserialize)]
pub struct HandshakeAuth {
    #[serde(default)]
    token: Option<String>,
}

/// Why a handshake was refused; its `Display` is the `message` of the client's
/// `connect_error`.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("unauthorized: missing token")]
    MissingToken,
    #[error("unauthorized: {0}")]
    Refused(String),
}

fn header_token(s: &SocketRef) -> Option<String> {
    let value = s.req_parts().headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Connect middleware: refuses the socket unless it presents a valid access token.
pub async fn authenticate(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<HandshakeAuth>,
) -> Result<(), HandshakeError> {
    let token = auth
        .ok()
        .and_then(|a| a.token)
        .filter(|t| !t.is_empty())
        .or_else(|| header_token(&s))
        .ok_or(HandshakeError::MissingToken);
    let token = token.inspect_err(|_| {
        state
            .metrics()
            .handshakes_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })?;
    let principal = authenticate_token(&state, &token).map_err(|e| {
        state
            .metrics()
            .handshakes_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(sid = %s.id, error = %e, "socket handshake refused");
        HandshakeError::Refused(e.to_string())
    })?;
    s.extensions.insert(principal);
    register_events(&s);
    Ok(())
}

/// Registers the socket's event handlers. It runs in the middleware, before the `connect`
/// packet is sent: socketioxide spawns the connect handler as a task *after* sending that
/// packet, so handlers registered there could miss a `subscribe` that a client emits as soon
/// as it is connected; the event would be dropped without an answer (CI saw a reconnecting
/// client's subscribe never acknowledged).
fn register_events(s: &SocketRef) {
    s.on("subscribe", streams::subscribe);
    s.on("unsubscribe", streams::unsubscribe);
    s.on_fallback(streams::unknown_event);
}

/// The socket is in: count it and register its expiry and its disconnect handler (its event
/// handlers are already registered, see [`register_events`]).
pub async fn on_connect(
    s: SocketRef,
    io: SocketIo,
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) {
    tracing::debug!(sid = %s.id, user = %p.username, role = %p.role, "socket connected");
    state.metrics().connected();
    let sid = s.id;
    let left = Duration::from_secs(p.expires_at.saturating_sub(now_secs()));
    let expiry = tokio::spawn(async move {
        tokio::time::sleep(left).await;
        if let Some(s) = io.get_socket(sid) {
            tracing::debug!(%sid, "socket token expired, disconnecting");
            let _ = s.emit("auth:expired", &serde_json::json!({}));
            let _ = s.disconnect();
        }
    });
    s.extensions.insert(ExpiryTimer(expiry.abort_handle()));
    s.on_disconnect(
        async |s: SocketRef, State(state): State<AppState>, reason: DisconnectReason| {
            state.metrics().disconnected(&reason.to_string());
            if let Some(ExpiryTimer(t)) = s.extensions.get::<ExpiryTimer>() {
                t.abort();
            }
        },
    );
}

#[derive(Debug, Clone)]
struct ExpiryTimer(AbortHandle);
