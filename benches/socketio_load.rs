//! Gateway fan-out under load: N official `socket.io-client`s (default 1,000, spread over
//! `HS_LOAD_PROCS` Node processes running `benches/socketio_load.mjs`, default 2) connected to one API on loopback and subscribed to one stream;
//! events published to the real Kafka events topic at a fixed rate; the latency of every
//! delivery from publication (the event's `emitted_at_us`, stamped when it is handed to the
//! producer) to its receipt in the client, and the events/s and deliveries/s sustained.
//!
//! Run: `bash scripts/services.sh start && eval "$(bash scripts/services.sh env)" &&
//! bash scripts/web-build.sh && cargo bench --bench socketio_load`
//! Knobs (environment): `HS_LOAD_CLIENTS` (1000), `HS_LOAD_RATES` (events/s, comma-separated,
//! one run each, default `10,50,100`), `HS_LOAD_SECONDS` (20 per run), `HS_LOAD_KIND` (`chunk`
//! for `chunk:processed`, ~300 B; `detections` for a `detection:update` of 20 frames × 3
//! boxes, ~4 KB). A documented harness rather than criterion: each run is seconds long and
//! its latency distribution is the sample.
//!
//! The clients and the API share the machine's cores, and the clients of one Node process take
//! each event in turn on its one event loop, so the last of 500 gets it after the other 499 were
//! handled: the all-deliveries percentiles include that queueing. `HS_LOAD_PROBES` (10) of the
//! clients run in a process of their own; their percentiles (`probe`) are what one client sees
//! of a gateway serving all of them. A run also reports `lost` deliveries (events a client did
//! not get within 10 s of the last publication).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use horsestream_api::auth::{AuthConfig, InMemoryUserStore, Role, users};
use horsestream_api::{AppState, EventsConfig};
use horsestream_proto::{
    BoundingBox, ChunkProcessed, DetectionUpdate, Event, EventKind, FrameBoxes, TrackedBox,
};
use horsestream_sinks::kafka::{KafkaConfig, TopicProducer, ensure_topics};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn event(kind: &str, stream: &str, seq: u64) -> Event {
    let kind = if kind == "detections" {
        EventKind::DetectionUpdate(DetectionUpdate {
            stream_id: stream.into(),
            chunk_id: format!("{stream}:{seq}"),
            sequence: seq,
            frames: (0..20)
                .map(|i| FrameBoxes {
                    index: i,
                    pts_us: seq as i64 * 2_000_000 + i as i64 * 100_000,
                    capture_time_us: 0,
                    boxes: (0..3)
                        .map(|k| TrackedBox {
                            bbox: BoundingBox {
                                x: 10.0 + 120.0 * k as f32,
                                y: 40.0,
                                w: 100.0,
                                h: 80.0,
                            },
                            confidence: 0.9,
                            track_id: Some(k as u64 + 1),
                            horse: Some(k + 1),
                            keypoints: Vec::new(),
                            interpolated: false,
                        })
                        .collect(),
                })
                .collect(),
        })
    } else {
        EventKind::ChunkProcessed(ChunkProcessed {
            stream_id: stream.into(),
            chunk_id: format!("{stream}:{seq}"),
            sequence: seq,
            frames: 100,
            detections: 300,
            max_horses_per_frame: 3,
            start_pts_us: seq as i64 * 9_000_000,
            end_pts_us: seq as i64 * 9_000_000 + 10_000_000,
        })
    };
    Event {
        version: 1,
        emitted_at_us: 0,
        kind,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name this bench skips it.
    if let Some(f) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"socketio_load".contains(&f)
    {
        return;
    }
    let brokers = std::env::var("HORSESTREAM_KAFKA_BROKERS")
        .expect("HORSESTREAM_KAFKA_BROKERS: eval \"$(bash scripts/services.sh env)\"");
    let clients: usize = env_or("HS_LOAD_CLIENTS", 1000);
    let procs: usize = env_or("HS_LOAD_PROCS", 2usize).clamp(1, clients.max(1));
    let probes: usize = env_or("HS_LOAD_PROBES", 10usize).min(clients);
    let loaded = clients - probes;
    let seconds: u64 = env_or("HS_LOAD_SECONDS", 20);
    let kind: String = env_or("HS_LOAD_KIND", "chunk".to_owned());
    let rates: Vec<u64> = env_or("HS_LOAD_RATES", "10,50,100".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert!(
        web.join("node_modules/socket.io-client").exists(),
        "run `bash scripts/web-build.sh` first (it installs socket.io-client into web/)"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let suffix = format!("{}-{}", std::process::id(), now_us());
    let mut kafka = KafkaConfig::new(&brokers);
    kafka.chunks_topic = format!("horsestream.bench-{suffix}.chunks");
    kafka.events_topic = format!("horsestream.bench-{suffix}.events");
    rt.block_on(ensure_topics(&kafka)).unwrap();

    let auth = AuthConfig::new(b"socketio load bench secret, 32+ bytes".to_vec()).unwrap();
    let users = InMemoryUserStore::new();
    users
        .insert(
            "viewer",
            &users::hash_password("bench").unwrap(),
            Role::Viewer,
        )
        .unwrap();
    let state = AppState::new(&auth, Arc::new(users));
    let token = state
        .tokens()
        .issue(1, "viewer", Role::Viewer)
        .unwrap()
        .access_token;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(horsestream_api::serve(
        listener,
        state.clone(),
        Some(EventsConfig::new(kafka.clone())),
        async {
            let _ = stopped.await;
        },
    ));
    while !state.events_ready() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let producer = TopicProducer::new(&kafka, &kafka.events_topic).unwrap();
    let stream = "bench-stream";

    println!(
        "socketio_load: {clients} clients, {kind} events, {seconds} s per rate, API on {addr}"
    );
    println!(
        "| events/s published | deliveries/s | p50 ms | p99 ms | max ms | probe p50 / p99 ms | lost |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for rate in rates {
        // The load processes, then the probe process (its clients alone on their event loop).
        let shares: Vec<usize> = (0..procs)
            .map(|i| loaded / procs + usize::from(i < loaded % procs))
            .chain(std::iter::once(probes))
            .filter(|&n| n > 0)
            .collect();
        let mut nodes: Vec<_> = shares
            .iter()
            .map(|&share| {
                let mut node = Command::new("node")
                    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/socketio_load.mjs"))
                    .env("HS_URL", format!("http://{addr}"))
                    .env("HS_TOKEN", &token)
                    .env("HS_STREAM", stream)
                    .env("HS_CLIENTS", share.to_string())
                    .env("HS_WEB_DIR", &web)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("node (20+)");
                let stdin = node.stdin.take().unwrap();
                let lines = BufReader::new(node.stdout.take().unwrap()).lines();
                (node, stdin, lines, share)
            })
            .collect();
        for (_, _, lines, _) in &mut nodes {
            let ready = lines.next().expect("node's first line").unwrap();
            assert!(ready.contains("\"ready\""), "node said {ready}");
        }

        let total = rate * seconds;
        let start = Instant::now();
        let sent_at_start = now_us();
        rt.block_on(async {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending = Vec::with_capacity(total as usize);
            for seq in 0..total {
                tick.tick().await;
                let mut e = event(&kind, stream, seq);
                e.emitted_at_us = now_us();
                let bytes = e.encode_to_vec();
                let p = producer.clone();
                pending.push(tokio::spawn(async move {
                    p.send(stream, &bytes).await.unwrap();
                }));
            }
            for p in pending {
                p.await.unwrap();
            }
        });
        let publish_secs = start.elapsed().as_secs_f64();
        let mut latencies: Vec<i64> = Vec::new();
        let mut probe: Vec<i64> = Vec::new();
        let mut lost = 0;
        let mut last_receipt_us = 0;
        for (_, stdin, _, _) in &mut nodes {
            writeln!(stdin, "end {total}").unwrap();
        }
        for (i, (node, _, lines, share)) in nodes.iter_mut().enumerate() {
            let line = lines.next().expect("node's result").unwrap();
            let result: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("node's result ({} bytes): {e}", line.len()));
            lost += result["lost"].as_i64().unwrap_or(0);
            last_receipt_us = last_receipt_us.max(result["lastReceiptUs"].as_i64().unwrap_or(0));
            let these = result["latenciesUs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_i64());
            if probes > 0 && i == shares.len() - 1 && *share == probes {
                probe.extend(these.clone());
            }
            latencies.extend(these);
            let _ = node.wait();
        }
        latencies.sort_unstable();
        probe.sort_unstable();
        let pct = |v: &[i64], p: f64| {
            v.get(((p * v.len() as f64) as usize).min(v.len().saturating_sub(1)))
                .map_or(f64::NAN, |&us| us as f64 / 1000.0)
        };
        let span_s = (last_receipt_us - sent_at_start) as f64 / 1e6;
        println!(
            "| {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {lost} |",
            total as f64 / publish_secs,
            latencies.len() as f64 / span_s.max(1e-9),
            pct(&latencies, 0.5),
            pct(&latencies, 0.99),
            latencies.last().map_or(f64::NAN, |&us| us as f64 / 1000.0),
            pct(&probe, 0.5),
            pct(&probe, 0.99),
        );
    }
    let _ = stop.send(());
    let _ = rt.block_on(server);
}
