//! The Socket.io gateway (socketioxide) on the API's router: a JWT is required on the
//! handshake, clients `subscribe {streamId, channels}` to a stream's rooms, and a background
//! task pushes every live event from the events topic to the rooms of its stream. Messages
//! the gateway refuses are answered per `reply.rs` and counted (see docs/bad-input.md).

pub mod channels;
pub mod events;
mod handshake;
pub mod reply;
mod streams;

use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

use crate::AppState;

pub use channels::{Channel, Outgoing, channel_room, outgoing, stream_room};
pub use events::{EventsConfig, run_events};
pub use reply::ERROR_EVENT;
pub use streams::{
    MAX_QUOTED, MAX_STREAM_ID_LEN, MAX_STREAMS_PER_SOCKET, SubscribeRequest, UnsubscribeRequest,
};

/// Largest Socket.io message a client may send, bytes (engine.io's `maxPayload`); a bigger one
/// closes that client's connection (the engine.io rule; the client may reconnect).
pub const MAX_PAYLOAD: u64 = 100_000;

/// The Socket.io layer to put on the router, and the handle that emits to its sockets.
pub fn layer(state: AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .max_payload(MAX_PAYLOAD)
        // Over WebSocket the limit is the message size (engine.io's `maxPayload` bounds polling).
        .ws_max_message_size(MAX_PAYLOAD as usize)
        .ws_max_frame_size(MAX_PAYLOAD as usize)
        .with_state(state)
        .build_layer();
    io.ns("/", handshake::on_connect.with(handshake::authenticate));
    (layer, io)
}
