//! `horsestream dataflow --metrics-listen`: a running dataflow's counters over HTTP in
//! Prometheus' text format, following what it processes.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn a_running_dataflow_serves_its_counters() {
    let (name, k) = ingested_sample("metrics");
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("m.db").display());
    register(&store, &name);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    // No --until-end: a live dataflow, stopped by the test.
    let mut child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args([
            "dataflow",
            "--database-url",
            &store,
            "--group-id",
            &name,
            "--metrics-listen",
            &listen,
        ])
        .args(topic_args(&k))
        .env("HORSESTREAM_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(text) = scrape(port) {
            last = text;
            if last.contains("\nhorsestream_chunks_processed_total 3\n") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    assert!(
        last.contains("\nhorsestream_chunks_processed_total 3\n"),
        "{last}"
    );
    assert!(last.contains("\nhorsestream_frames_total 220\n"), "{last}");
    assert!(
        last.contains("\nhorsestream_chunk_errors_total 0\n"),
        "{last}"
    );
}
