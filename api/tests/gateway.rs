//! The gateway end to end against the real Kafka (`scripts/services.sh`) and the OFFICIAL
//! `socket.io-client` (npm, `api/tests/js`): two gateway replicas on loopback read a unique
//! events topic; a Node client logs in over HTTP, connects with its token, subscribes, receives
//! real `Event`s produced to Kafka, loses its transport and resumes after reconnecting and
//! resubscribing, and is disconnected by the server when its token expires, refreshes it and
//! resumes again; a viewer on the second replica receives every event too. Handshakes without
//! a token or with a forged / `alg: none` / refresh token are refused.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use horsestream_api::auth::{AuthConfig, Role};
use horsestream_api::{AppState, EventsConfig};
use horsestream_proto::{ChunkProcessed, Event, EventKind, StreamStatus};
use horsestream_sinks::kafka::{KafkaConfig, TopicProducer};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use common::*;

/// The access-token lifetime of this test: long enough for the first two phases, short
/// enough that the server-side expiry disconnect happens during the test.
const ACCESS_TTL: Duration = Duration::from_secs(8);
const WAIT: Duration = Duration::from_secs(30);

fn brokers() -> String {
    std::env::var("HORSESTREAM_KAFKA_BROKERS").expect(
        "HORSESTREAM_KAFKA_BROKERS is not set: start the services and \
         `eval \"$(bash scripts/services.sh env)\"` (this test needs the real Kafka)",
    )
}

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// `npm ci` of the test clients, from the committed package-lock.json.
fn npm_ci() {
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(js_dir())
        .output()
        .expect("npm must be installed (Node 20+) to run the gateway test");
    assert!(
        out.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn create_topic(kafka: &KafkaConfig, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

/// Status code of `GET path` on a loopback server.
async fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Replica {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), horsestream_api::Error>>,
}

async fn start_replica(kafka: &KafkaConfig) -> Replica {
    let mut auth = AuthConfig::new(SECRET.to_vec()).unwrap();
    auth.access_ttl = ACCESS_TTL;
    let state = AppState::new(&auth, store());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let events = EventsConfig::new(kafka.clone());
    let task = tokio::spawn(horsestream_api::serve(
        listener,
        state,
        Some(events),
        async {
            let _ = stopped.await;
        },
    ));
    let deadline = tokio::time::Instant::now() + WAIT;
    while http_status(addr, "/api/v1/ready").await != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica on {addr} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Replica {
        addr,
        stop: Some(stop),
        task,
    }
}

fn chunk_event(stream: &str, sequence: u64) -> Event {
    Event {
        version: 1,
        emitted_at_us: 1_700_000_000_000_000 + sequence as i64,
        kind: EventKind::ChunkProcessed(ChunkProcessed {
            stream_id: stream.into(),
            chunk_id: format!("{stream}:{sequence}"),
            sequence,
            frames: 20,
            detections: 7,
            max_horses_per_frame: 3,
            start_pts_us: sequence as i64 * 2_000_000,
            end_pts_us: (sequence as i64 + 1) * 2_000_000,
        }),
    }
}

/// Everything the Node client printed so far, and the lines still to come.
struct Transcript {
    lines: Vec<Value>,
    rx: mpsc::UnboundedReceiver<Value>,
}

impl Transcript {
    async fn wait_for(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.lines) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) => {
                    assert_ne!(v["type"], "error", "node client failed: {v}");
                    self.lines.push(v);
                }
                Ok(None) => panic!(
                    "node client exited while waiting for {what}:\n{}",
                    self.dump()
                ),
                Err(_) => panic!("timed out waiting for {what}:\n{}", self.dump()),
            }
        }
    }

    fn dump(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn of<'a>(lines: &'a [Value], ty: &'a str, client: &'a str) -> impl Iterator<Item = &'a Value> {
    lines
        .iter()
        .filter(move |l| l["type"] == ty && l["client"] == client)
}

fn subscribed(lines: &[Value], client: &str) -> usize {
    of(lines, "subscribed", client).count()
}

fn got_chunk(lines: &[Value], client: &str, sequence: u64) -> bool {
    of(lines, "event", client)
        .any(|l| l["name"] == "chunk:processed" && l["payload"]["sequence"] == sequence)
}

fn disconnected(lines: &[Value], client: &str, reason: &str) -> usize {
    of(lines, "disconnect", client)
        .filter(|l| l["reason"] == reason)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_socketio_client_receives_events_across_reconnects_and_replicas() {
    let brokers = brokers();
    npm_ci();
    let topic = format!("horsestream.events.test-{}", uuid::Uuid::new_v4().simple());
    let stream = format!("paddock-{}", uuid::Uuid::new_v4().simple());
    let mut kafka = KafkaConfig::new(&brokers);
    kafka.events_topic.clone_from(&topic);
    create_topic(&kafka, &topic).await;
    let mut replicas = vec![start_replica(&kafka).await, start_replica(&kafka).await];
    let producer = TopicProducer::new(&kafka, &topic).unwrap();
    let publish = async |e: Event| {
        producer
            .send(e.stream_id(), &e.encode_to_vec())
            .await
            .unwrap();
    };

    let urls: Vec<String> = replicas
        .iter()
        .map(|r| format!("http://{}", r.addr))
        .collect();
    let mut child = Command::new("node")
        .arg(js_dir().join("gateway-client.mjs"))
        .current_dir(js_dir())
        .env("HS_URLS", urls.join(","))
        .env("HS_STREAM", &stream)
        .env("HS_ADMIN_USER", "admin")
        .env("HS_ADMIN_PASSWORD", password(Role::Admin))
        .env("HS_VIEWER_USER", "viewer")
        .env("HS_VIEWER_PASSWORD", password(Role::Viewer))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node must be installed (Node 20+) to run the gateway test");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v = serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({ "type": "raw", "line": line }));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut t = Transcript {
        lines: Vec::new(),
        rx,
    };

    // Phase 1: both clients subscribed (A on replica 0, B on replica 1) receive the first
    // chunk and a status event; an event of another stream reaches nobody.
    t.wait_for("both clients subscribed", |l| {
        subscribed(l, "A") >= 1 && subscribed(l, "B") >= 1
    })
    .await;
    publish(chunk_event("some-other-stream", 99)).await;
    publish(chunk_event(&stream, 1)).await;
    publish(Event {
        version: 1,
        emitted_at_us: 5,
        kind: EventKind::StreamStatus(StreamStatus {
            stream_id: stream.clone(),
            state: "active".into(),
            reason: String::new(),
            at_us: 5,
            attempt: 0,
            gap: None,
        }),
    })
    .await;
    t.wait_for("chunk 1 and the status on both", |l| {
        ["A", "B"].iter().all(|c| {
            got_chunk(l, c, 1)
                && of(l, "event", c)
                    .any(|e| e["name"] == "stream:status" && e["payload"]["state"] == "active")
        })
    })
    .await;

    // Phase 2: A loses its transport; it reconnects and resubscribes by itself.
    writeln!(stdin, "drop A").unwrap();
    t.wait_for("A reconnected and resubscribed", |l| {
        disconnected(l, "A", "transport close") >= 1 && subscribed(l, "A") >= 2
    })
    .await;
    publish(chunk_event(&stream, 2)).await;
    t.wait_for("chunk 2 on both", |l| {
        got_chunk(l, "A", 2) && got_chunk(l, "B", 2)
    })
    .await;

    // Phase 3: the tokens expire; the server disconnects both sockets, the clients refresh
    // their tokens over HTTP, reconnect and resubscribe.
    t.wait_for("expiry disconnects and resubscriptions", |l| {
        let a = of(l, "disconnect", "A").count();
        let b = of(l, "disconnect", "B").count();
        disconnected(l, "A", "io server disconnect") >= 1
            && disconnected(l, "B", "io server disconnect") >= 1
            && subscribed(l, "A") > a
            && subscribed(l, "B") > b
    })
    .await;
    publish(chunk_event(&stream, 3)).await;
    t.wait_for("chunk 3 on both", |l| {
        got_chunk(l, "A", 3) && got_chunk(l, "B", 3)
    })
    .await;

    writeln!(stdin, "quit").unwrap();
    t.wait_for("the client to finish", |l| {
        l.iter().any(|x| x["type"] == "done")
    })
    .await;
    let status = child.wait().unwrap();
    assert!(status.success(), "node exited with {status}");
    let l = &t.lines;

    // Refused and accepted handshakes.
    for case in [
        "no-token",
        "empty-token",
        "forged",
        "alg-none",
        "refresh-as-access",
    ] {
        let r = l
            .iter()
            .find(|x| x["type"] == "refused" && x["case"] == case)
            .unwrap_or_else(|| panic!("no {case} line:\n{}", t.dump()));
        assert_eq!(r["connected"], false, "{case} must be refused: {r}");
        let msg = r["message"].as_str().unwrap();
        assert!(msg.starts_with("unauthorized"), "{case}: {msg}");
    }
    assert!(
        l.iter()
            .any(|x| x["type"] == "accepted" && x["connected"] == true)
    );
    let check = |case: &str| {
        l.iter()
            .find(|x| x["type"] == "check" && x["case"] == case)
            .unwrap_or_else(|| panic!("no {case} check"))["ack"]
            .clone()
    };
    assert_eq!(check("viewer-metrics")["error"]["code"], "forbidden");
    assert_eq!(check("malformed")["error"]["code"], "invalid_body");
    assert_eq!(check("unknown-channel")["error"]["code"], "invalid_body");
    assert_eq!(check("unsubscribe")["ok"], true);

    // What each client subscribed to.
    let first_ack = |c: &str| of(l, "subscribed", c).next().unwrap()["ack"].clone();
    assert_eq!(
        first_ack("A")["channels"],
        serde_json::json!(["chunks", "status"])
    );
    assert_eq!(
        first_ack("B")["channels"],
        serde_json::json!(["detections", "chunks", "status", "horses"])
    );

    // Every chunk exactly once per client, nothing from the other stream, exact payload.
    for c in ["A", "B"] {
        let seqs: Vec<u64> = of(l, "event", c)
            .filter(|e| e["name"] == "chunk:processed")
            .map(|e| {
                assert_eq!(e["payload"]["streamId"], stream.as_str(), "{e}");
                e["payload"]["sequence"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 3], "client {c}:\n{}", t.dump());
    }
    let first = of(l, "event", "A")
        .find(|e| e["name"] == "chunk:processed")
        .unwrap();
    assert_eq!(
        first["payload"],
        serde_json::json!({
            "streamId": stream, "chunkId": format!("{stream}:1"), "sequence": 1, "frames": 20,
            "detections": 7, "maxHorsesPerFrame": 3, "startPtsUs": 2_000_000,
            "endPtsUs": 4_000_000, "emittedAtUs": 1_700_000_000_000_001_i64, "version": 1,
        })
    );
    assert!(of(l, "refreshed", "A").count() >= 1 && of(l, "refreshed", "B").count() >= 1);

    for r in &mut replicas {
        let _ = r.stop.take().unwrap().send(());
    }
    for r in replicas {
        tokio::time::timeout(WAIT, r.task)
            .await
            .expect("replica shuts down")
            .unwrap()
            .unwrap();
    }
}
