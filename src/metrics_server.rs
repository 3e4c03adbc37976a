//! `GET /metrics` (Prometheus text format) for a process's counters, served from a thread of
//! its own so the workers (timely's, ingest's) never wait on it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;

/// Binds `addr` now (so a taken port is an error at start-up) and serves `render()` until the
/// process ends.
pub fn spawn(
    addr: SocketAddr,
    render: impl Fn() -> String + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let render = Arc::new(render);
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let rt = match crate::options::runtime() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "metrics server not started"),
            };
            rt.block_on(async move {
                let app = Router::new().route(
                    "/metrics",
                    get(move || {
                        let text = render();
                        async move { ([("content-type", "text/plain; version=0.0.4")], text) }
                    }),
                );
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::error!(error = %e, "metrics server stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "metrics server not started"),
                }
            });
        })?;
    tracing::info!(%addr, "serving /metrics");
    Ok(())
}
