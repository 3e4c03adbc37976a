//! `horsestream api` as operators run it, through the real binary, the real Kafka and the
//! OFFICIAL Node `socket.io-client` (`api/tests/js/ops-client.mjs`):
//!
//! - HTTPS + WSS with a certificate this test generates (rcgen): a request that verifies the
//!   server against the generated CA succeeds, one that trusts another CA and plain HTTP to the
//!   TLS port fail, and a Node client that trusts the CA logs in over HTTPS, connects over WSS
//!   and receives an event from the events topic (one that does not trust it is refused);
//! - `GET /metrics` (`--metrics-listen`) scraped during a run with a socket client subscribed,
//!   some requests made and events published: each metric family with plausible values;
//! - hostile Socket.io payloads (wrong types, missing fields, huge strings, unknown streams,
//!   unknown events, binary attachments, deep nesting, SQL injection, an oversized message):
//!   each gets its error ack or `gateway:error` event, is counted, and the hostile client and a
//!   well-behaved one keep receiving events.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::{Duration, Instant};

use common::{new_ca, required_env, unique};
use horsestream_proto::{ChunkProcessed, Event, EventKind, StreamStatus};
use horsestream_sinks::kafka::{KafkaConfig, TopicProducer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("api/tests/js")
}

/// `npm ci` of the test clients once per test binary, from the committed package-lock.json.
fn npm_ci() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(js_dir())
            .output()
            .expect("npm must be installed (Node 20+) to run this test");
        assert!(
            out.status.success(),
            "npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A fresh events topic on the test broker.
fn events_topic(prefix: &str) -> KafkaConfig {
    let mut k = KafkaConfig::new(required_env("HORSESTREAM_KAFKA_BROKERS"));
    let name = unique(prefix);
    k.chunks_topic = format!("{name}.chunks");
    k.events_topic = format!("{name}.events");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(horsestream_sinks::kafka::ensure_topics(&k))
        .unwrap();
    k
}

fn publish(k: &KafkaConfig, events: &[Event]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = TopicProducer::new(k, &k.events_topic).unwrap();
    for e in events {
        rt.block_on(producer.send(e.stream_id(), &e.encode_to_vec()))
            .unwrap();
    }
}

fn chunk_event(stream: &str, sequence: u64) -> Event {
    Event {
        version: 1,
        emitted_at_us: now_us(),
        kind: EventKind::ChunkProcessed(ChunkProcessed {
            stream_id: stream.into(),
            chunk_id: format!("{stream}:{sequence}"),
            sequence,
            frames: 20,
            detections: 3,
            max_horses_per_frame: 1,
            start_pts_us: sequence as i64 * 2_000_000,
            end_pts_us: (sequence as i64 + 1) * 2_000_000,
        }),
    }
}

/// A running `horsestream api`, killed (and waited for) when dropped.
struct Api {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Api {
    fn start(k: &KafkaConfig, extra: &[&str]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let hash = horsestream_api::auth::users::hash_password(ADMIN_PASSWORD).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
            .args([
                "api",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--brokers",
                &k.brokers,
                "--events-topic",
                &k.events_topic,
            ])
            .args(extra)
            .env(
                "HORSESTREAM_JWT_SECRET",
                "an-api-ops-test-secret-of-32-bytes-or-more",
            )
            .env("HORSESTREAM_ADMIN_PASSWORD_HASH", hash)
            .env("HORSESTREAM_LOG", "info")
            // Users in memory unless the test gives a database (not the shared one's admin).
            .env_remove("HORSESTREAM_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting horsestream api");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                // Into the log before it is announced: whoever waits for a line may read the
                // log at once.
                {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let (mut addr, mut metrics) = (None, None);
        let deadline = Instant::now() + WAIT;
        while addr.is_none() || metrics.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("api did not start:\n{}", stderr.lock().unwrap()));
            if let Some(rest) = line.split("api listening on ").nth(1) {
                addr = Some(rest.split("://").nth(1).unwrap().parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("horsestream: metrics on http://") {
                metrics = Some(rest.trim_end_matches("/metrics").parse().unwrap());
            }
        }
        Api {
            child,
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
            stderr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET /metrics`, parsed into `series → value`.
    fn scrape(&self) -> BTreeMap<String, f64> {
        let (status, body) = http(self.metrics, "GET", "/metrics", None, None);
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse().unwrap())
            })
            .collect()
    }

    /// Waits until `GET /api/v1/ready` (plain HTTP) answers 200.
    fn wait_ready_plain(&self) {
        let deadline = Instant::now() + WAIT;
        while http(self.addr, "GET", "/api/v1/ready", None, None).0 != 200 {
            assert!(Instant::now() < deadline, "never ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One HTTP/1.1 request over plain TCP; (status, body). Status 0 when there was no HTTP answer.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request_bytes(addr, method, path, body, token).as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> String {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf);
    if !text.starts_with("HTTP/1.1 ") {
        return (0, text.into_owned());
    }
    let status = text[9..12].parse().unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // Bodies here are small JSON documents, sent whole or in one chunk.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split_once("\r\n")
            .map_or("", |(_, rest)| rest)
            .rsplit_once("\r\n0\r\n")
            .map_or("", |(b, _)| b)
    } else {
        body
    };
    (status, body.to_owned())
}

fn login(addr: SocketAddr) -> String {
    let (status, body) = http(
        addr,
        "POST",
        "/api/v1/auth/login",
        Some(&json!({ "username": "admin", "password": ADMIN_PASSWORD })),
        None,
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The Node client, its transcript so far and its stdin; killed when dropped.
struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: Vec<Value>,
    rx: mpsc::Receiver<Value>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(url: &str, stream: &str, mode: &str, ca: Option<&Path>) -> Node {
        npm_ci();
        let mut c = Command::new("node");
        c.arg(js_dir().join("ops-client.mjs"))
            .current_dir(js_dir())
            .env("HS_URL", url)
            .env("HS_STREAM", stream)
            .env("HS_MODE", mode)
            .env("HS_USER", "admin")
            .env("HS_PASSWORD", ADMIN_PASSWORD)
            .env_remove("NODE_EXTRA_CA_CERTS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(ca) = ca {
            c.env("HS_CA", ca);
        }
        let mut child = c
            .spawn()
            .expect("node must be installed (Node 20+) to run this test");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({ "type": "raw", "line": line }));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            stdin,
            lines: Vec::new(),
            rx,
        }
    }

    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Reads lines until `done` holds for the transcript.
    fn wait_for(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    assert_ne!(v["type"], "error", "node client failed: {v}");
                    self.lines.push(v);
                }
                Err(_) => panic!("waiting for {what}:\n{}", self.dump()),
            }
        }
    }

    fn dump(&self) -> String {
        self.lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn has<'a>(lines: &'a [Value], ty: &'a str) -> impl Iterator<Item = &'a Value> {
    lines.iter().filter(move |l| l["type"] == ty)
}

fn got_chunk(lines: &[Value], client: &str, sequence: u64) -> bool {
    has(lines, "event").any(|l| {
        l["client"] == client
            && l["name"] == "chunk:processed"
            && l["payload"]["sequence"] == sequence
    })
}

// ------------------------------------------------------------------------------- TLS

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::CertifiedKey,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = new_ca("horsestream test CA");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "horsestream api");
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("server.pem"),
            format!("{}{}", leaf.pem(), ca.cert.pem()),
        )
        .unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// One HTTPS request that trusts only `ca`; (status, body) or the TLS error.
async fn https(
    addr: SocketAddr,
    ca: &rcgen::Certificate,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let version = tls.get_ref().1.protocol_version();
    assert!(version.is_some(), "a TLS version was negotiated");
    tls.write_all(request_bytes(addr, method, path, body, None).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    Ok(parse_response(&buf))
}

#[test]
fn https_and_wss_with_a_generated_certificate() {
    let k = events_topic("api-tls");
    let pki = Pki::new();
    let api = Api::start(
        &k,
        &[
            "--tls-cert",
            pki.path("server.pem").to_str().unwrap(),
            "--tls-key",
            pki.path("server.key").to_str().unwrap(),
        ],
    );
    assert!(
        api.log()
            .contains(&format!("api listening on https://{}", api.addr)),
        "{}",
        api.log()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();

    // HTTPS that verifies the server against the generated CA.
    let (status, body) = rt
        .block_on(https(api.addr, &pki.ca.cert, "GET", "/api/v1/health", None))
        .expect("an HTTPS request trusting the generated CA");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );
    let deadline = Instant::now() + WAIT;
    while rt
        .block_on(https(api.addr, &pki.ca.cert, "GET", "/api/v1/ready", None))
        .unwrap()
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "never ready:\n{}", api.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // A client that trusts another CA refuses the server; plain HTTP gets no HTTP answer.
    let other = new_ca("some other CA");
    let refused = rt
        .block_on(https(api.addr, &other.cert, "GET", "/api/v1/health", None))
        .expect_err("a client trusting another CA must refuse the certificate");
    assert!(
        refused.contains("UnknownIssuer") || refused.contains("invalid peer certificate"),
        "{refused}"
    );
    let (status, answer) = http(api.addr, "GET", "/api/v1/health", None, None);
    assert_eq!(
        status, 0,
        "plain HTTP to the TLS port was answered: {answer}"
    );
    let failures = api.scrape()["horsestream_api_tls_handshake_failures_total"];
    assert!(failures >= 2.0, "{failures} failed handshakes counted");

    // The official socket.io-client: login over HTTPS, WSS, one event from the topic.
    let stream = unique("tls-paddock");
    let url = format!("https://{}", api.addr);
    let mut node = Node::start(&url, &stream, "watch", Some(&pki.path("ca.pem")));
    node.wait_for("subscribed over WSS", |l| has(l, "subscribed").count() == 1);
    let login = has(&node.lines, "login").next().unwrap().clone();
    assert!(
        login["tls"]
            .as_str()
            .unwrap_or_default()
            .starts_with("TLSv1."),
        "{login}"
    );
    let connected = has(&node.lines, "connected").next().unwrap().clone();
    assert_eq!(connected["transport"], "websocket", "{connected}");
    let sub = has(&node.lines, "subscribed").next().unwrap().clone();
    assert_eq!(sub["ack"]["ok"], true, "{sub}");
    publish(&k, &[chunk_event(&stream, 7)]);
    node.wait_for("the event over WSS", |l| got_chunk(l, "A", 7));

    node.send("untrusted");
    node.wait_for("the untrusting client's refusal", |l| {
        has(l, "untrusted").count() == 1
    });
    let untrusted = has(&node.lines, "untrusted").next().unwrap().clone();
    assert_eq!(untrusted["connected"], false, "{untrusted}");
    assert!(
        untrusted["cause"]
            .as_str()
            .unwrap_or_default()
            .contains("certificate"),
        "{untrusted}"
    );
    node.send("quit");
    node.wait_for("the client to leave", |l| has(l, "bye").count() == 1);
}

// ------------------------------------------------------------------------------- metrics

fn series(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("{name} missing in {m:#?}"))
}

#[test]
fn metrics_are_scraped_during_a_run() {
    let k = events_topic("api-metrics");
    let api = Api::start(&k, &[]);
    api.wait_ready_plain();
    let stream = unique("metrics-paddock");
    let mut node = Node::start(&format!("http://{}", api.addr), &stream, "watch", None);
    node.wait_for("subscribed", |l| has(l, "subscribed").count() == 1);

    let before = api.scrape();
    for _ in 0..2 {
        assert_eq!(http(api.addr, "GET", "/api/v1/health", None, None).0, 200);
    }
    assert_eq!(
        http(api.addr, "GET", "/api/v1/no-such-route", None, None).0,
        404
    );
    assert_eq!(
        http(api.addr, "GET", "/api/v1/streams/paddock-1", None, None).0,
        401
    );
    let mut status = chunk_event(&stream, 0);
    status.kind = EventKind::StreamStatus(StreamStatus {
        stream_id: stream.clone(),
        state: "active".into(),
        reason: String::new(),
        at_us: now_us(),
        attempt: 0,
        gap: None,
    });
    publish(
        &k,
        &[chunk_event(&stream, 1), chunk_event(&stream, 2), status],
    );
    node.wait_for("the three events", |l| {
        got_chunk(l, "A", 1)
            && got_chunk(l, "A", 2)
            && has(l, "event").any(|e| e["name"] == "stream:status")
    });

    let m = api.scrape();
    let text_of = |m: &BTreeMap<String, f64>| format!("{m:#?}");
    assert_eq!(
        series(&m, "horsestream_api_socket_clients"),
        1.0,
        "{}",
        text_of(&m)
    );
    assert_eq!(series(&m, "horsestream_api_socket_connects_total"), 1.0);
    assert_eq!(
        series(
            &m,
            &format!("horsestream_api_room_subscriptions{{stream=\"{stream}\"}}")
        ),
        1.0
    );
    assert_eq!(series(&m, "horsestream_api_events_received_total"), 3.0);
    assert_eq!(series(&m, "horsestream_api_events_undecodable_total"), 0.0);
    assert_eq!(
        series(
            &m,
            "horsestream_api_events_emitted_total{event=\"chunk:processed\"}"
        ),
        2.0
    );
    assert_eq!(
        series(
            &m,
            "horsestream_api_events_emitted_total{event=\"stream:status\"}"
        ),
        1.0
    );
    // The lag of events emitted just now: three observations, none negative, all in the
    // histogram's finite buckets.
    assert_eq!(
        series(&m, "horsestream_api_event_delivery_lag_seconds_count"),
        3.0
    );
    assert_eq!(
        series(
            &m,
            "horsestream_api_event_delivery_lag_seconds_bucket{le=\"60\"}"
        ),
        3.0
    );
    assert!(series(&m, "horsestream_api_event_delivery_lag_seconds_sum") >= 0.0);
    let requests = |m: &BTreeMap<String, f64>, route: &str, method: &str, status: u16| {
        m.get(&format!(
            "horsestream_api_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
    };
    assert_eq!(
        requests(&m, "/api/v1/health", "GET", 200)
            - requests(&before, "/api/v1/health", "GET", 200),
        2.0
    );
    assert_eq!(requests(&m, "/api/v1/auth/login", "POST", 200), 1.0);
    assert_eq!(requests(&m, "/api/v1/streams/{id}", "GET", 401), 1.0);
    assert_eq!(requests(&m, "unmatched", "GET", 404), 1.0);
    let ready = requests(&m, "/api/v1/ready", "GET", 200);
    assert!(ready >= 1.0, "{}", text_of(&m));
    // Every request timed: the histogram of a route counts its requests.
    assert_eq!(
        series(
            &m,
            "horsestream_api_http_request_duration_seconds_count{route=\"/api/v1/health\"}"
        ),
        requests(&m, "/api/v1/health", "GET", 200)
    );
    assert_eq!(
        series(
            &m,
            "horsestream_api_http_request_duration_seconds_bucket{route=\"/api/v1/auth/login\",le=\"+Inf\"}"
        ),
        1.0
    );

    // A socket holds at most 64 streams: 70 more subscriptions, 63 accepted, 7 refused.
    node.send("flood 70");
    node.wait_for("70 more subscriptions", |l| has(l, "flood").count() == 1);
    let flood = has(&node.lines, "flood").next().unwrap().clone();
    let max = horsestream_api::gateway::MAX_STREAMS_PER_SOCKET as u64;
    assert_eq!(flood["ok"], max - 1, "{flood}");
    assert_eq!(
        flood["codes"]["too_many_subscriptions"],
        71 - max,
        "{flood}"
    );
    let m = api.scrape();
    assert_eq!(
        series(
            &m,
            "horsestream_api_socket_rejected_total{event=\"subscribe\",code=\"too_many_subscriptions\"}"
        ),
        (71 - max) as f64
    );
    let rooms = m
        .keys()
        .filter(|s| s.starts_with("horsestream_api_room_subscriptions{"))
        .count();
    assert_eq!(rooms as u64, max, "{}", text_of(&m));

    // The client leaves: the gauges go back down.
    node.send("quit");
    node.wait_for("the client to leave", |l| has(l, "bye").count() == 1);
    let deadline = Instant::now() + WAIT;
    loop {
        let m = api.scrape();
        if series(&m, "horsestream_api_socket_clients") == 0.0 {
            assert!(
                !m.keys()
                    .any(|s| s.starts_with("horsestream_api_room_subscriptions{")),
                "the rooms are gone with their last socket: {}",
                text_of(&m)
            );
            let left: f64 = m
                .iter()
                .filter(|(s, _)| s.starts_with("horsestream_api_socket_disconnects_total{"))
                .map(|(_, v)| v)
                .sum();
            assert_eq!(left, 1.0, "{}", text_of(&m));
            break;
        }
        assert!(Instant::now() < deadline, "{}", text_of(&m));
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------------------------- hostile input

#[test]
fn hostile_socket_payloads_get_clear_errors_and_are_counted() {
    let k = events_topic("api-hostile");
    let db = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", db.path().join("api.db").display());
    let api = Api::start(&k, &["--database-url", &db_url]);
    api.wait_ready_plain();
    let stream = unique("hostile").replace('_', "-");
    let mut node = Node::start(&format!("http://{}", api.addr), &stream, "hostile", None);
    node.wait_for("the hostile cases", |l| has(l, "ready").count() == 1);
    assert_eq!(
        has(&node.lines, "created").next().unwrap()["status"],
        201,
        "{}",
        node.dump()
    );

    // Each case's answer: the error code of its ack or of its `gateway:error` event.
    let expected: &[(&str, &str)] = &[
        ("number instead of object", "invalid_body"),
        ("string instead of object", "invalid_body"),
        ("null", "invalid_body"),
        ("missing streamId", "invalid_body"),
        ("streamId of the wrong type", "invalid_body"),
        ("channels not an array", "invalid_body"),
        ("channels of the wrong type", "invalid_body"),
        ("unknown field", "invalid_body"),
        ("unknown channel", "invalid_body"),
        ("empty streamId", "invalid_body"),
        ("control characters in streamId", "invalid_body"),
        ("room separator in streamId", "invalid_body"),
        ("huge streamId (90 KB)", "invalid_body"),
        ("huge channel name (90 KB)", "invalid_body"),
        ("unknown stream", "not_found"),
        ("SQL injection in streamId", "not_found"),
        ("SQL injection in a channel", "invalid_body"),
        ("deeply nested JSON (1,000 levels)", "invalid_body"),
        ("binary attachment instead of object", "invalid_body"),
        ("binary streamId", "invalid_body"),
        ("unsubscribe with the wrong types", "invalid_body"),
        ("unknown event", "unknown_event"),
        ("unknown event with a binary attachment", "unknown_event"),
        ("no ack: malformed subscribe", "invalid_body"),
        ("no ack: unknown event", "unknown_event"),
    ];
    let cases: Vec<Value> = has(&node.lines, "case").cloned().collect();
    let mut report = Vec::new();
    let mut counted: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (name, code) in expected {
        let case = cases
            .iter()
            .find(|c| c["name"] == *name)
            .unwrap_or_else(|| panic!("case {name} not run:\n{}", node.dump()));
        let error = if case["ack"].is_object() {
            &case["ack"]["error"]
        } else {
            &case["gatewayError"]["error"]
        };
        let message = error["message"].as_str().unwrap_or_default();
        let ok = error["code"] == *code
            && !message.is_empty()
            && message.len() < 400
            && case["connected"] == true;
        if !ok {
            report.push(format!("{name}: want {code}, got {case}"));
        }
        let event = match case["event"].as_str().unwrap() {
            e @ ("subscribe" | "unsubscribe") => e.to_owned(),
            _ => "unknown".to_owned(),
        };
        *counted.entry((event, code.to_string())).or_default() += 1.0;
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    if let Some(e) = cases.iter().find(|c| c["name"] == "no ack: unknown event") {
        assert_eq!(e["gatewayError"]["event"], "unknown", "{e}");
    }

    // The hostile client and the witness both still receive the stream's events.
    assert_eq!(has(&node.lines, "subscribed").count(), 2, "{}", node.dump());
    publish(&k, &[chunk_event(&stream, 1)]);
    node.wait_for("event 1 on both clients", |l| {
        got_chunk(l, "W", 1) && got_chunk(l, "H", 1)
    });

    // A message over the payload limit closes that client's connection (the engine.io rule);
    // it reconnects and subscribes again, and the witness never noticed.
    node.send("oversize");
    node.wait_for("the oversized message", |l| {
        has(l, "done").any(|d| d["cmd"] == "oversize")
    });
    let oversize = has(&node.lines, "oversize").next().unwrap().clone();
    assert_eq!(oversize["reason"], "transport close", "{oversize}");
    let h2 = has(&node.lines, "subscribed")
        .find(|s| s["client"] == "H2")
        .unwrap()
        .clone();
    assert_eq!(h2["ack"]["ok"], true, "{h2}");
    assert!(
        !has(&node.lines, "disconnect").any(|d| d["client"] == "W"),
        "{}",
        node.dump()
    );
    publish(&k, &[chunk_event(&stream, 2)]);
    node.wait_for("event 2 on the witness and the reconnected client", |l| {
        got_chunk(l, "W", 2) && got_chunk(l, "H2", 2)
    });

    // Every refusal counted, by event and code; the oversized message's disconnect too.
    let m = api.scrape();
    for ((event, code), n) in &counted {
        let name =
            format!("horsestream_api_socket_rejected_total{{event=\"{event}\",code=\"{code}\"}}");
        assert_eq!(m.get(&name).copied(), Some(*n), "{name} in {m:#?}");
    }
    let disconnects: f64 = m
        .iter()
        .filter(|(s, _)| s.starts_with("horsestream_api_socket_disconnects_total{"))
        .map(|(_, v)| v)
        .sum();
    assert!(disconnects >= 1.0, "{m:#?}");
    assert_eq!(series(&m, "horsestream_api_socket_clients"), 2.0, "{m:#?}");

    // The SQL-injection strings did nothing: the streams table answers as before.
    let token = login(api.addr);
    let (status, body) = http(api.addr, "GET", "/api/v1/streams", None, Some(&token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&stream), "{body}");
    node.send("quit");
    node.wait_for("the clients to leave", |l| has(l, "bye").count() == 1);
}
