//! `horsestream ingest --database-url` runs the streams of the `streams` table: 20 camera
//! streams (the project's GStreamer RTSP camera, with a login kept server-side as the API
//! keeps it) are started and stopped by changing the table, as `POST /api/v1/streams/{id}/
//! start|stop` does, while one ingest process keeps running. A file stream is read once to
//! its end, a camera that never answers is marked `error`, and a restarted camera stream
//! continues its chunk sequence. Uses a database of its own on the test server, so no other
//! test's streams are picked up.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_proto::{Event, EventKind, FrameChunk};
use horsestream_sinks::kafka::KafkaConfig;
use horsestream_sinks::{NewStream, Store, StreamPatch};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

const PASSWORD: &str = "s3cret-Pw";
const CAMERAS: usize = 20;

struct Camera(Child);

impl Camera {
    fn start(port: u16) -> Self {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rtsp-camera.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["--port", &port.to_string(), "--fps", "10"])
            .args(["--user", "viewer", "--password", PASSWORD])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting scripts/rtsp-camera.py (GStreamer from scripts/install-deps.sh)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("ready"), "camera said {line:?}");
        Camera(child)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stream(id: &str, url: &str, secret: Option<&str>) -> NewStream {
    NewStream {
        id: id.to_owned(),
        name: id.to_owned(),
        source_url: url.to_owned(),
        source_kind: horsestream_ingest::SourceSpec::parse(url)
            .unwrap()
            .kind()
            .to_owned(),
        credentials_secret: secret.map(str::to_owned),
        calibration: None,
        zones: Vec::new(),
        enabled: false,
    }
}

/// What `POST /api/v1/streams/{id}/start` (`run`) or `…/stop` writes.
fn set_running(store: &Store, rt: &tokio::runtime::Runtime, id: &str, run: bool) {
    let patch = StreamPatch {
        enabled: Some(run),
        status: Some(if run { "starting" } else { "stopped" }.to_owned()),
        ..StreamPatch::default()
    };
    rt.block_on(store.update_stream(id, &patch)).unwrap();
}

/// Waits (at most `limit`, a guard against a hang, not a measured time) until `done`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn status(store: &Store, rt: &tokio::runtime::Runtime, id: &str) -> String {
    rt.block_on(store.get_stream(id)).unwrap().status
}

fn chunks_recorded(store: &Store, rt: &tokio::runtime::Runtime, id: &str) -> Vec<u64> {
    rt.block_on(store.chunk_statuses(id))
        .unwrap()
        .into_iter()
        .map(|(seq, state)| {
            assert_eq!(state, "ingested", "nothing processes these chunks");
            seq
        })
        .collect()
}

/// Every message of `topic` from the start, read until `count` of them are in or `until`.
fn read_topic(k: &KafkaConfig, topic: &str) -> Vec<(String, Vec<u8>)> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("catalogue-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let mut idle = 0;
    // Read until the consumer has seen nothing new for a few polls after the last message.
    while idle < 20 {
        match consumer.poll(Duration::from_millis(250)) {
            Some(Ok(m)) => {
                idle = 0;
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                out.push((key, m.payload().unwrap_or_default().to_vec()));
            }
            Some(Err(_)) | None => idle += 1,
        }
    }
    out
}

/// The body of `GET path` from a plain HTTP/1.1 server.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

#[test]
fn twenty_camera_streams_start_and_stop_through_the_streams_table() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = OwnDatabase::create(&rt, "ingest_catalogue");
    let store = rt.block_on(Store::connect(&db.url)).unwrap();
    let name = unique("catalogue");
    let k = fresh_topics(&name);
    let port = free_port();
    let _camera = Camera::start(port);

    // The login is stored as the API stores it; the URL holds none.
    let secret = format!(r#"{{"username":"viewer","password":"{PASSWORD}"}}"#);
    let camera_url = format!("rtsp://127.0.0.1:{port}/cam");
    let cams: Vec<String> = (0..CAMERAS).map(|i| format!("cam-{i:02}")).collect();
    for id in &cams {
        rt.block_on(store.create_stream(&stream(id, &camera_url, Some(&secret))))
            .unwrap();
    }
    let (sample, _) = sample();
    let file_url = format!("file://{}", sample.display());
    rt.block_on(store.create_stream(&stream("file-1", &file_url, None)))
        .unwrap();
    // Port 9 (discard) on loopback: nothing answers RTSP there.
    rt.block_on(store.create_stream(&stream("dead-cam", "rtsp://127.0.0.1:9/cam", None)))
        .unwrap();

    let log = tempfile::NamedTempFile::new().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(["ingest", "--database-url", &db.url, "--poll-ms", "500"])
        .args(["--metrics-listen", &metrics_addr])
        .args(topic_args(&k))
        .env("HORSESTREAM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();

    // Nothing is enabled yet: nothing runs, nothing is recorded.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        ingest.try_wait().unwrap().is_none(),
        "ingest ended early: {}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    for id in &cams {
        assert_eq!(status(&store, &rt, id), "stopped");
    }

    // Start all of them, the file and the dead camera: each goes active (the dead one error)
    // and every camera's first chunk (10 s) is recorded.
    for id in cams
        .iter()
        .chain(["file-1".to_owned(), "dead-cam".to_owned()].iter())
    {
        set_running(&store, &rt, id, true);
    }
    let limit = Duration::from_secs(180);
    wait_for("every camera stream active", limit, || {
        cams.iter().all(|id| status(&store, &rt, id) == "active")
    });
    wait_for("the dead camera marked error", limit, || {
        status(&store, &rt, "dead-cam") == "error"
    });
    wait_for("the file read to its end", limit, || {
        status(&store, &rt, "file-1") == "ended"
    });
    wait_for("a chunk of every camera recorded", limit, || {
        cams.iter()
            .all(|id| !chunks_recorded(&store, &rt, id).is_empty())
    });
    assert_eq!(chunks_recorded(&store, &rt, "file-1"), vec![0, 1, 2]);

    // Stop the first half. Their last chunks come out, their status stays `stopped`, and
    // their chunk records stop growing while the other half's go on.
    let (stopped, kept) = cams.split_at(CAMERAS / 2);
    for id in stopped {
        set_running(&store, &rt, id, false);
    }
    // Their stream:status `stopped` event is the last word of their threads.
    let stopped_event = |events: &[(String, Vec<u8>)], id: &str| {
        events.iter().any(|(key, b)| {
            key == id
                && matches!(Event::decode(b).map(|e| e.kind),
                            Ok(EventKind::StreamStatus(s)) if s.state == "stopped")
        })
    };
    wait_for("every stopped stream's final status event", limit, || {
        let events = read_topic(&k, &k.events_topic);
        stopped.iter().all(|id| stopped_event(&events, id))
    });
    let at_stop: BTreeMap<&String, Vec<u64>> = stopped
        .iter()
        .map(|id| (id, chunks_recorded(&store, &rt, id)))
        .collect();
    let kept_before: BTreeMap<&String, usize> = kept
        .iter()
        .map(|id| (id, chunks_recorded(&store, &rt, id).len()))
        .collect();
    wait_for("a new chunk of every running stream", limit, || {
        kept.iter()
            .all(|id| chunks_recorded(&store, &rt, id).len() > kept_before[id])
    });
    for id in stopped {
        assert_eq!(
            chunks_recorded(&store, &rt, id),
            at_stop[id],
            "{id} kept going"
        );
        assert_eq!(status(&store, &rt, id), "stopped");
    }
    for id in kept {
        assert_eq!(status(&store, &rt, id), "active");
    }

    // Start one stopped stream again: it continues after its last chunk.
    let again = &stopped[0];
    set_running(&store, &rt, again, true);
    let before = at_stop[again].clone();
    wait_for("the restarted stream's next chunk", limit, || {
        chunks_recorded(&store, &rt, again).len() > before.len()
    });
    let after = chunks_recorded(&store, &rt, again);
    assert!(after[before.len()] > *before.last().unwrap());

    // The process's metrics: 11 cameras and the dead one run (the file ended); the counters
    // agree with the records.
    let metrics = http_get(&metrics_addr, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "horsestream_ingest_streams_running 12"),
        "{metrics}"
    );
    let file_chunks = "horsestream_ingest_chunks_total{stream=\"file-1\"} 3";
    assert!(metrics.lines().any(|l| l == file_chunks), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "horsestream_ingest_status_changes_total{stream=\"dead-cam\",state=\"error\"}"
        )),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "horsestream_ingest_stream_active{stream=\"cam-19\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(PASSWORD));

    // A clean stop of the process: every stream ends with its trailing chunk published.
    let _ = Command::new("kill")
        .args(["-TERM", &ingest.id().to_string()])
        .status();
    wait_for("ingest to exit", limit, || {
        ingest.try_wait().unwrap().is_some()
    });
    let out = ingest.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    assert!(out.status.success(), "ingest: {stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("ingest: stopped (0 chunks published but not recorded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains(PASSWORD),
        "the password leaked into the log"
    );

    // On the bus: per stream, sequences unique and increasing, each chunk recorded, and no
    // chunk of a stream after its stop request took effect; no event holds the password.
    let mut sequences: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, bytes) in read_topic(&k, &k.chunks_topic) {
        let chunk = FrameChunk::decode(&bytes).unwrap();
        assert_eq!(chunk.stream_id, key);
        assert!(!chunk.source.contains(PASSWORD), "{}", chunk.source);
        sequences.entry(key).or_default().push(chunk.sequence);
    }
    for (id, seqs) in &sequences {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{id}: sequences {seqs:?} repeat or go back"
        );
        let recorded: BTreeSet<u64> = chunks_recorded(&store, &rt, id).into_iter().collect();
        assert_eq!(
            seqs.iter().copied().collect::<BTreeSet<_>>(),
            recorded,
            "{id}: what was published is what was recorded"
        );
    }
    assert_eq!(sequences.len(), CAMERAS + 1, "every camera and the file");
    assert!(!sequences.contains_key("dead-cam"));
    for id in &stopped[1..] {
        assert_eq!(sequences[id], at_stop[id], "{id} published after its stop");
    }
    let events = read_topic(&k, &k.events_topic);
    for (_, b) in &events {
        assert!(
            !String::from_utf8_lossy(b).contains(PASSWORD),
            "an event holds the password"
        );
    }
    let dead: Vec<String> = events
        .iter()
        .filter(|(key, _)| key == "dead-cam")
        .filter_map(|(_, b)| match Event::decode(b).ok()?.kind {
            EventKind::StreamStatus(s) => Some(s.state),
            _ => None,
        })
        .collect();
    assert!(dead.iter().any(|s| s == "error"), "{dead:?}");
    assert!(!dead.iter().any(|s| s == "active"), "{dead:?}");
}

/// `(id, owner)` of every stream of the table, by id.
fn owners(db: &OwnDatabase, rt: &tokio::runtime::Runtime) -> Vec<(String, Option<String>)> {
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query_as("SELECT id, ingest_owner FROM streams ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
    })
}

/// An ingest process, killed if still running when dropped (a failed assertion).
struct Ingest(Child);

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_ingest(
    db: &OwnDatabase,
    k: &KafkaConfig,
    id: &str,
    metrics_addr: &str,
    log: &tempfile::NamedTempFile,
) -> Ingest {
    let child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(["ingest", "--database-url", &db.url, "--poll-ms", "500"])
        .args(["--ingest-id", id, "--max-streams", "3", "--lease-secs", "3"])
        .args(["--metrics-listen", metrics_addr])
        .args(topic_args(k))
        .env("HORSESTREAM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    Ingest(child)
}

#[test]
fn two_ingest_processes_split_the_table_and_take_over_from_a_killed_one() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = OwnDatabase::create(&rt, "ingest_catalogue");
    let store = rt.block_on(Store::connect(&db.url)).unwrap();
    let k = fresh_topics(&unique("leases"));
    let port = free_port();
    let _camera = Camera::start(port);
    let secret = format!(r#"{{"username":"viewer","password":"{PASSWORD}"}}"#);
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let cams: Vec<String> = (0..4).map(|i| format!("cam-{i}")).collect();
    for id in &cams {
        let mut s = stream(id, &url, Some(&secret));
        s.enabled = true;
        rt.block_on(store.create_stream(&s)).unwrap();
    }

    // Two processes of at most 3 streams each share the 4 streams; each runs on one only.
    let (log_a, log_b) = (
        tempfile::NamedTempFile::new().unwrap(),
        tempfile::NamedTempFile::new().unwrap(),
    );
    let (metrics_a, metrics_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut a = start_ingest(&db, &k, "ingest-a", &metrics_a, &log_a);
    let mut b = start_ingest(&db, &k, "ingest-b", &metrics_b, &log_b);
    let limit = Duration::from_secs(120);
    wait_for("every stream held and active", limit, || {
        owners(&db, &rt).iter().all(|(_, o)| o.is_some())
            && cams.iter().all(|id| status(&store, &rt, id) == "active")
    });
    let split = owners(&db, &rt);
    let held = |name: &str| {
        split
            .iter()
            .filter(|(_, o)| o.as_deref() == Some(name))
            .count()
    };
    assert_eq!(held("ingest-a") + held("ingest-b"), 4, "{split:?}");
    assert!(held("ingest-a") <= 3 && held("ingest-b") <= 3, "{split:?}");
    wait_for("a chunk of every stream", limit, || {
        cams.iter()
            .all(|id| !chunks_recorded(&store, &rt, id).is_empty())
    });

    // `kill -9` one: once its leases run out the other takes streams up to its 3; one
    // stream waits, and says so in the metrics.
    let (victim, survivor, survivor_metrics) = if held("ingest-a") >= held("ingest-b") {
        (&mut a, "ingest-b", &metrics_b)
    } else {
        (&mut b, "ingest-a", &metrics_a)
    };
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    wait_for("the survivor to hold 3 streams", limit, || {
        owners(&db, &rt)
            .iter()
            .filter(|(_, o)| o.as_deref() == Some(survivor))
            .count()
            == 3
    });
    wait_for("the waiting stream counted", limit, || {
        http_get(survivor_metrics, "/metrics")
            .lines()
            .any(|l| l == "horsestream_ingest_pending_streams 1")
    });
    let taken: Vec<String> = owners(&db, &rt)
        .into_iter()
        .filter(|(_, o)| o.as_deref() == Some(survivor))
        .map(|(id, _)| id)
        .collect();
    let before: BTreeMap<String, usize> = taken
        .iter()
        .map(|id| (id.clone(), chunks_recorded(&store, &rt, id).len()))
        .collect();
    wait_for(
        "new chunks of every stream the survivor holds",
        limit,
        || {
            taken
                .iter()
                .all(|id| chunks_recorded(&store, &rt, id).len() > before[id])
        },
    );

    // The survivor stops cleanly and gives its streams back.
    let survivor_child = if survivor == "ingest-a" {
        &mut a
    } else {
        &mut b
    };
    let _ = Command::new("kill")
        .args(["-TERM", &survivor_child.0.id().to_string()])
        .status();
    wait_for("the survivor to exit", limit, || {
        survivor_child.0.try_wait().unwrap().is_some()
    });
    assert!(survivor_child.0.wait().unwrap().success());
    for (id, owner) in owners(&db, &rt) {
        assert!(
            owner.is_none() || owner.as_deref() != Some(survivor),
            "{id} still held by {owner:?}"
        );
    }

    // No chunk id was published twice, across both processes and the takeover.
    let mut sequences: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, bytes) in read_topic(&k, &k.chunks_topic) {
        let chunk = FrameChunk::decode(&bytes).unwrap();
        sequences.entry(key).or_default().push(chunk.sequence);
    }
    assert_eq!(sequences.len(), 4);
    for (id, seqs) in &sequences {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{id}: sequences {seqs:?} repeat or go back"
        );
    }
    let logs = std::fs::read_to_string(log_a.path()).unwrap()
        + &std::fs::read_to_string(log_b.path()).unwrap();
    assert!(!logs.contains(PASSWORD), "the password leaked into a log");
}
