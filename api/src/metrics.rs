//! What `horsestream api --metrics-listen` reports on `GET /metrics` (Prometheus text format):
//! socket clients and their subscriptions per stream, live events received from the topic and
//! emitted by kind with their delivery lag, socket messages refused, TLS handshakes that
//! failed, and HTTP requests by route template, method and status with their latency.
//! Counters are kept here; [`render`] reads the rooms from the gateway at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use socketioxide::SocketIo;

use crate::AppState;

/// Upper bounds (seconds) of the event delivery lag histogram.
pub const LAG_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upper bounds (seconds) of the HTTP request latency histogram.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The route label of requests no route matched (the web client's files, 404s).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations `<= bounds[i]` (not cumulative; summed when rendered).
    counts: Vec<u64>,
    /// Observations above the last bound.
    over: u64,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            over: 0,
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        self.sum += v;
        match self.bounds.iter().position(|&b| v <= b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }

    /// `name_bucket{labels,le=…}`, `name_sum`, `name_count` lines; `labels` is `k="v",…` or
    /// empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {:.6}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {total}", braces(labels));
    }
}

#[derive(Debug, Default)]
struct Http {
    /// (route template, method, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// route template → latency.
    latency: BTreeMap<String, Histogram>,
}

/// The API process's counters, shared through [`AppState::metrics`].
#[derive(Debug)]
pub struct ApiMetrics {
    /// Sockets connected now (past the handshake).
    pub socket_clients: AtomicU64,
    pub socket_connects: AtomicU64,
    /// Handshakes refused (no, forged or expired token).
    pub handshakes_refused: AtomicU64,
    /// TLS handshakes that failed or timed out (HTTPS listener only).
    pub tls_handshake_failures: AtomicU64,
    disconnects: Mutex<BTreeMap<String, u64>>,
    /// (event, error code) → socket messages refused.
    rejected: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Event name → events emitted to their room.
    emitted: Mutex<BTreeMap<&'static str, u64>>,
    lag: Mutex<Histogram>,
    http: Mutex<Http>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            socket_clients: AtomicU64::new(0),
            socket_connects: AtomicU64::new(0),
            handshakes_refused: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            disconnects: Mutex::default(),
            rejected: Mutex::default(),
            emitted: Mutex::default(),
            lag: Mutex::new(Histogram::new(&LAG_BUCKETS)),
            http: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ApiMetrics {
    pub fn connected(&self) {
        self.socket_connects.fetch_add(1, Ordering::Relaxed);
        self.socket_clients.fetch_add(1, Ordering::Relaxed);
    }

    /// A socket left; `reason` is socketioxide's `DisconnectReason` (a small fixed set).
    pub fn disconnected(&self, reason: &str) {
        let _ = self
            .socket_clients
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        *lock(&self.disconnects)
            .entry(reason.to_owned())
            .or_default() += 1;
    }

    /// A socket message was answered with an error `code`. `event` is a fixed name
    /// (`subscribe`, `unsubscribe`, `unknown`), never the client's text.
    pub fn rejected(&self, event: &'static str, code: &'static str) {
        *lock(&self.rejected).entry((event, code)).or_default() += 1;
    }

    pub fn rejected_count(&self, event: &'static str, code: &'static str) -> u64 {
        lock(&self.rejected)
            .get(&(event, code))
            .copied()
            .unwrap_or(0)
    }

    /// An event was emitted to its room `lag_secs` after the dataflow emitted it.
    pub fn emitted(&self, name: &'static str, lag_secs: f64) {
        *lock(&self.emitted).entry(name).or_default() += 1;
        lock(&self.lag).observe(lag_secs);
    }

    pub fn request(&self, route: &str, method: &str, status: u16, secs: f64) {
        let mut http = lock(&self.http);
        *http
            .requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        http.latency
            .entry(route.to_owned())
            .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
            .observe(secs);
    }

    /// The text exposition; `rooms` is (stream id, sockets subscribed) and `events` the
    /// consumer's (received, undecodable).
    pub fn render_with(&self, rooms: &[(String, usize)], events: (u64, u64)) -> String {
        let mut out = String::new();
        let simple = [
            (
                "horsestream_api_socket_clients",
                "gauge",
                "Socket.io clients connected now.",
                self.socket_clients.load(Ordering::Relaxed),
            ),
            (
                "horsestream_api_socket_connects_total",
                "counter",
                "Socket.io clients that passed the handshake.",
                self.socket_connects.load(Ordering::Relaxed),
            ),
            (
                "horsestream_api_socket_handshakes_refused_total",
                "counter",
                "Socket.io handshakes refused (missing, invalid or expired token).",
                self.handshakes_refused.load(Ordering::Relaxed),
            ),
            (
                "horsestream_api_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed or timed out.",
                self.tls_handshake_failures.load(Ordering::Relaxed),
            ),
            (
                "horsestream_api_events_received_total",
                "counter",
                "Records read from the events topic.",
                events.0,
            ),
            (
                "horsestream_api_events_undecodable_total",
                "counter",
                "Records of the events topic that are not a valid Event (skipped).",
                events.1,
            ),
        ];
        for (name, kind, help, value) in simple {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        head(
            &mut out,
            "horsestream_api_socket_disconnects_total",
            "counter",
            "Socket.io clients that left, by reason.",
        );
        for (reason, n) in lock(&self.disconnects).iter() {
            let _ = writeln!(
                out,
                "horsestream_api_socket_disconnects_total{{reason=\"{}\"}} {n}",
                escape(reason)
            );
        }
        head(
            &mut out,
            "horsestream_api_room_subscriptions",
            "gauge",
            "Sockets subscribed to a stream now, by stream.",
        );
        for (stream, n) in rooms {
            let _ = writeln!(
                out,
                "horsestream_api_room_subscriptions{{stream=\"{}\"}} {n}",
                escape(stream)
            );
        }
        head(
            &mut out,
            "horsestream_api_socket_rejected_total",
            "counter",
            "Socket.io messages answered with an error, by event and error code.",
        );
        for ((event, code), n) in lock(&self.rejected).iter() {
            let _ = writeln!(
                out,
                "horsestream_api_socket_rejected_total{{event=\"{event}\",code=\"{code}\"}} {n}"
            );
        }
        head(
            &mut out,
            "horsestream_api_events_emitted_total",
            "counter",
            "Live events emitted to their stream's room, by event name.",
        );
        for (name, n) in lock(&self.emitted).iter() {
            let _ = writeln!(
                out,
                "horsestream_api_events_emitted_total{{event=\"{name}\"}} {n}"
            );
        }
        head(
            &mut out,
            "horsestream_api_event_delivery_lag_seconds",
            "histogram",
            "Time from the event's emitted_at to its emission to the room.",
        );
        lock(&self.lag).render(&mut out, "horsestream_api_event_delivery_lag_seconds", "");
        let http = lock(&self.http);
        head(
            &mut out,
            "horsestream_api_http_requests_total",
            "counter",
            "HTTP requests by route template, method and status.",
        );
        for ((route, method, status), n) in &http.requests {
            let _ = writeln!(
                out,
                "horsestream_api_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        head(
            &mut out,
            "horsestream_api_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by route template (until the response head).",
        );
        for (route, h) in &http.latency {
            h.render(
                &mut out,
                "horsestream_api_http_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
            );
        }
        out
    }
}

/// The exposition of `state`'s counters with the gateway's rooms as they are now.
pub async fn render(state: &AppState, io: &SocketIo) -> String {
    let mut rooms = Vec::new();
    let Ok(all) = io.rooms().await;
    for room in all {
        // `stream:{id}` holds every subscriber of the stream; `stream:{id}#{channel}` its
        // channels.
        let Some(stream) = room.strip_prefix("stream:") else {
            continue;
        };
        if stream.contains('#') {
            continue;
        }
        let n = io.to(room.clone()).sockets().len();
        rooms.push((stream.to_owned(), n));
    }
    rooms.sort();
    let e = state.events();
    state.metrics().render_with(
        &rooms,
        (
            e.received.load(Ordering::Relaxed),
            e.undecodable.load(Ordering::Relaxed),
        ),
    )
}

/// Inner middleware (a `route_layer`): hands the matched route template to [`track`] through
/// the response's extensions.
pub async fn matched_route(req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(p) = path {
        res.extensions_mut().insert(p);
    }
    res
}

/// Outer middleware: counts every request by route template, method and status and times it.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    state.metrics().request(
        route,
        method.as_str(),
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&LAG_BUCKETS);
        for v in [0.001, 0.02, 0.02, 3.0, 120.0, -1.0, f64::NAN] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.025\"} 5\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 6\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"60\"} 6\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 7\n"), "{out}");
        assert!(out.contains("x_count 7\n"), "{out}");
        assert!(out.contains("x_sum 123.041000\n"), "{out}");
    }

    #[test]
    fn every_family_is_rendered_with_its_labels() {
        let m = ApiMetrics::default();
        m.connected();
        m.connected();
        m.disconnected("client namespace disconnect");
        m.rejected("subscribe", "invalid_body");
        m.rejected("subscribe", "invalid_body");
        m.emitted("chunk:processed", 0.02);
        m.request("/api/v1/streams/{id}", "GET", 404, 0.003);
        m.request(UNMATCHED_ROUTE, "GET", 200, 0.001);
        let text = m.render_with(&[("odd\"id".into(), 3)], (5, 1));
        for line in [
            "horsestream_api_socket_clients 1",
            "horsestream_api_socket_connects_total 2",
            "horsestream_api_socket_disconnects_total{reason=\"client namespace disconnect\"} 1",
            "horsestream_api_room_subscriptions{stream=\"odd\\\"id\"} 3",
            "horsestream_api_socket_rejected_total{event=\"subscribe\",code=\"invalid_body\"} 2",
            "horsestream_api_events_received_total 5",
            "horsestream_api_events_undecodable_total 1",
            "horsestream_api_events_emitted_total{event=\"chunk:processed\"} 1",
            "horsestream_api_event_delivery_lag_seconds_bucket{le=\"0.025\"} 1",
            "horsestream_api_http_requests_total{route=\"/api/v1/streams/{id}\",method=\"GET\",status=\"404\"} 1",
            "horsestream_api_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"200\"} 1",
            "horsestream_api_http_request_duration_seconds_bucket{route=\"/api/v1/streams/{id}\",le=\"0.005\"} 1",
            "horsestream_api_http_request_duration_seconds_count{route=\"unmatched\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        m.disconnected("x");
        m.disconnected("x");
        assert_eq!(m.socket_clients.load(Ordering::Relaxed), 0);
    }
}
