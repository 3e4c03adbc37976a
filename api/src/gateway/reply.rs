//! How the gateway answers a client's message: with the acknowledgement when the client asked
//! for one, else with a `gateway:error` event (`{ event, error: { code, message } }`) for a
//! refusal. Every refusal is counted in `horsestream_api_socket_rejected_total`.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef, State};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;

use crate::AppState;
use crate::error::AppError;

/// The event a refusal without acknowledgement is reported on.
pub const ERROR_EVENT: &str = "gateway:error";

/// The answer to one message: its acknowledgement, if the client asked for one.
pub struct Reply {
    socket: SocketRef,
    ack: AckSender,
    wants_ack: bool,
    state: Option<AppState>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("sid", &self.socket.id)
            .field("wants_ack", &self.wants_ack)
            .finish_non_exhaustive()
    }
}

impl FromMessageParts<LocalAdapter> for Reply {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<LocalAdapter>>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let Ok(socket) = SocketRef::from_message_parts(s, v, ack_id);
        let Ok(ack) = AckSender::from_message_parts(s, v, ack_id);
        let state = State::<AppState>::from_message_parts(s, v, ack_id)
            .ok()
            .map(|State(st)| st);
        Ok(Reply {
            socket,
            ack,
            wants_ack: ack_id.is_some(),
            state,
        })
    }
}

impl Reply {
    pub fn wants_ack(&self) -> bool {
        self.wants_ack
    }

    /// Acknowledges with `body` (nothing is sent when the client asked for no acknowledgement).
    pub fn ok<T: Serialize>(self, body: &T) {
        if let Err(e) = self.ack.send(body) {
            tracing::debug!(sid = %self.socket.id, error = %e, "cannot send acknowledgement");
        }
    }

    /// Refuses the message `event` (a fixed name, never the client's text) with `e`: counted,
    /// acknowledged with the API's error body, or sent as `gateway:error` without an ack.
    pub fn refuse(self, event: &'static str, e: &AppError) {
        if let Some(state) = &self.state {
            state.metrics().rejected(event, e.code());
        }
        tracing::debug!(sid = %self.socket.id, event, code = e.code(), error = %e, "socket message refused");
        let body = e.body();
        if self.wants_ack {
            self.ok(&body)
        } else if let Err(err) = self.socket.emit(
            ERROR_EVENT,
            &serde_json::json!({ "event": event, "error": body.error }),
        ) {
            tracing::debug!(sid = %self.socket.id, error = %err, "cannot send gateway:error");
        }
    }
}
