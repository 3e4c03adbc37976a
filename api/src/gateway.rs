//! The Socket.io gateway (socketioxide) on the API's router: a JWT is required on the
//! handshake, clients `subscribe {streamId, channels}` to a stream's rooms, and a background
//! task pushes every live event from the events topic to the rooms of its stream.

pub mod channels;
pub mod events;
mod handshake;
mod streams;

use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

use crate::AppState;

pub use channels::{Channel, Outgoing, channel_room, outgoing, stream_room};
pub use events::{EventsConfig, run_events};
pub use streams::{SubscribeRequest, UnsubscribeRequest};

/// The Socket.io layer to put on the router, and the handle that emits to its sockets.
pub fn layer(state: AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder().with_state(state).build_layer();
    io.ns("/", handshake::on_connect.with(handshake::authenticate));
    (layer, io)
}
