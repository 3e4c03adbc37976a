//! The HTTP API and Socket.io gateway of horsestream: axum routes under `/api/v1` (health,
//! readiness, auth with argon2 + JWT and the seed's RBAC) and a socketioxide gateway on the same
//! router that pushes live events from the events topic, and the REST resources (streams,
//! detections, models, horses, alerts, camera PTZ/snapshot, HLS playback and its overlay) over
//! the store, with their OpenAPI document, and the web client at `/`; over plain HTTP or HTTPS/WSS
//! (rustls), with Prometheus counters on a listener of their own. Called by `horsestream api`.

pub mod auth;
pub mod camera;
pub mod error;
pub mod gateway;
pub mod json;
pub mod metrics;
pub mod params;
pub mod rest;
mod state;
pub mod tls;
pub mod web;

use std::future::Future;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::{Router, middleware, routing::get};
use socketioxide::SocketIo;

pub use error::{AppError, ErrorBody};
pub use gateway::EventsConfig;
pub use json::ApiJson;
pub use metrics::ApiMetrics;
pub use state::{AppState, CameraSettings, EventsStatus, ModelSettings, PlaybackSettings};

/// Process-level failures: binding, serving, the events consumer. Request failures are
/// [`AppError`]s.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot serve HTTP")]
    Io(#[from] std::io::Error),
    #[error("Kafka client of the events topic")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("events topic {topic}: {why}")]
    Topic { topic: String, why: String },
}

/// The API's routes and the Socket.io gateway, without the live-events feed.
pub fn app(state: AppState) -> Router {
    build(state).0
}

/// The router and the handle of its Socket.io gateway (to emit to sockets).
pub fn build(state: AppState) -> (Router, SocketIo) {
    let (socket_layer, io) = gateway::layer(state.clone());
    let router = Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(ready))
        .merge(auth::routes::routes())
        .merge(rest::routes())
        .route_layer(middleware::from_fn(metrics::matched_route))
        .fallback(web::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        // Socket.io requests are answered by the socket layer before this one: they are
        // counted by the gateway's own metrics, not as HTTP requests.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
        .layer(socket_layer);
    (router, io)
}

async fn health() -> ApiJson<serde_json::Value> {
    ApiJson(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// 200 once the live-events consumer is positioned on the events topic, else 503.
async fn ready(State(state): State<AppState>) -> Result<ApiJson<serde_json::Value>, AppError> {
    let e = state.events();
    if !state.events_ready() {
        return Err(AppError::Unavailable(
            "live events consumer not assigned to the events topic yet".into(),
        ));
    }
    Ok(ApiJson(serde_json::json!({
        "status": "ready",
        "events": {
            "received": e.received.load(Ordering::Relaxed),
            "emitted": e.emitted.load(Ordering::Relaxed),
            "undecodable": e.undecodable.load(Ordering::Relaxed),
        }
    })))
}

/// Serves the API and the gateway on `listener` until `shutdown` resolves, feeding the
/// gateway from the events topic when `events` is given (readiness is immediate without).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    events: Option<EventsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve_with(
        listener,
        state,
        ServeOptions {
            events,
            metrics: None,
        },
        shutdown,
    )
    .await
}

/// What [`serve_with`] runs besides the API.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// The live-events feed of the gateway.
    pub events: Option<EventsConfig>,
    /// Where `GET /metrics` is served (plain HTTP, apart from the API so that it is neither
    /// public nor behind the API's TLS).
    pub metrics: Option<tokio::net::TcpListener>,
}

/// Like [`serve`] on any listener: a [`tokio::net::TcpListener`] for HTTP, a
/// [`tls::TlsListener`] for HTTPS and WSS.
pub async fn serve_with<L>(
    listener: L,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let ServeOptions {
        events,
        metrics: metrics_listener,
    } = options;
    let (router, io) = build(state.clone());
    let metrics_server =
        metrics_listener.map(|l| tokio::spawn(serve_metrics(l, state.clone(), io.clone())));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let feed = match events {
        Some(cfg) => {
            let consumer = gateway::events::EventsConsumer::new(&cfg)?;
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(gateway::run_events(
                io.clone(),
                state.clone(),
                consumer,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )))
        }
        None => {
            state.events().ready.store(true, Ordering::Release);
            None
        }
    };
    tracing::info!(addr = ?listener.local_addr().ok(), "api listening");
    let io_for_close = io.clone();
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            // Open sockets would keep the graceful shutdown waiting forever.
            io_for_close.close().await;
        })
        .await;
    if let Some(feed) = feed {
        let _ = feed.await;
    }
    if let Some(m) = metrics_server {
        m.abort();
    }
    Ok(result?)
}

async fn serve_metrics(listener: tokio::net::TcpListener, state: AppState, io: SocketIo) {
    let addr = listener.local_addr().ok();
    let app = Router::new().route(
        "/metrics",
        get(async move || {
            let text = metrics::render(&state, &io).await;
            ([("content-type", "text/plain; version=0.0.4")], text)
        }),
    );
    tracing::info!(?addr, "serving /metrics");
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}
