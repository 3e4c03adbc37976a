//! `horsestream ingest` on a live RTSP camera (the project's GStreamer test camera): chunks
//! reach the chunks topic and the stream's `stream:status` transitions reach the events topic.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_proto::{Event, EventKind, FrameChunk};
use horsestream_sinks::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

fn read_all(k: &KafkaConfig, topic: &str, until: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("live-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while !until(&out) && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.unwrap().payload().unwrap_or_default().to_vec());
        }
    }
    out
}

#[test]
fn live_rtsp_ingest_publishes_chunks_and_stream_status() {
    let name = unique("live");
    let k = fresh_topics(&name);

    let port = free_port();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rtsp-camera.py");
    let mut camera = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting scripts/rtsp-camera.py (GStreamer from scripts/install-deps.sh)");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(camera.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("ready"), "camera said {line:?}");
    }

    let url = format!("rtsp://viewer:s3cret@127.0.0.1:{port}/cam");
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(["ingest", "--input", &url, "--stream-id", &name])
        .args(["--brokers", &k.brokers, "--chunks-topic", &k.chunks_topic])
        .args(["--events-topic", &k.events_topic])
        .env("HORSESTREAM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The first chunk (10 s) completes after ~10 s of live video.
    let chunks = read_all(&k, &k.chunks_topic, |c| !c.is_empty());
    let _ = Command::new("kill")
        .args(["-INT", &ingest.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ingest.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = ingest.kill();
    let out = ingest.wait_with_output().unwrap();
    let _ = camera.kill();
    let _ = camera.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest: {stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the password leaked into the log: {stderr}"
    );

    assert!(!chunks.is_empty(), "no chunk from the live camera");
    let chunk = FrameChunk::decode(&chunks[0]).unwrap();
    assert_eq!(
        (chunk.stream_id.as_str(), chunk.sequence),
        (name.as_str(), 0)
    );
    assert_eq!(chunk.frames.len(), 100, "10 s at 10 fps");
    assert!(!chunk.source.contains("s3cret"), "{}", chunk.source);

    let states: Vec<String> = read_all(&k, &k.events_topic, |e| {
        e.iter().any(|b| {
            matches!(Event::decode(b).map(|e| e.kind),
                Ok(EventKind::StreamStatus(s)) if s.state == "stopped")
        })
    })
    .iter()
    .filter_map(|b| match Event::decode(b).ok()?.kind {
        EventKind::StreamStatus(s) => Some(s.state),
        _ => None,
    })
    .collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("connecting"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "active"), "{states:?}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("stopped"),
        "{states:?}"
    );
}
