//! The HTTP API of horsestream (axum). So far it serves a health endpoint; the REST routes
//! and the Socket.io gateway are built on this router. Called by `horsestream api`.

use std::net::SocketAddr;

use axum::{Json, Router, routing::get};

/// The API's routes.
pub fn app() -> Router {
    Router::new().route("/api/v1/health", get(health))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Serves [`app`] on `addr` until the process is stopped.
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "api listening");
    axum::serve(listener, app()).await
}
