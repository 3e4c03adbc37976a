//! `horsestream dataflow --metrics-listen`: a running dataflow's metrics over HTTP in
//! Prometheus' text format, following what it processes: the totals, and per stream, operator,
//! model, table, partition and reason the families the Grafana dashboard charts.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_sinks::kafka::TopicProducer;

fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Every sample of a scrape, `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Kills and reaps the dataflow whatever the test's outcome.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_dataflow_serves_its_metrics() {
    let (name, k) = ingested_sample("metrics");
    // One record that is not a chunk, on the stream's key: a dropped chunk, reason decode.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = TopicProducer::new(&k, &k.chunks_topic).unwrap();
    rt.block_on(producer.send(&name, b"not a protobuf chunk \xff\xff"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("m.db").display());
    register(&store, &name);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    // No --until-end: a live dataflow, stopped by the test.
    let child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reap(child);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(text) = scrape(port) {
            last = text;
            if last.contains("\nhorsestream_chunks_processed_total 3\n")
                && last.contains("\nhorsestream_chunk_errors_total 1\n")
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The lag gauges are read every 5 s: wait for the scrape that has them.
    while Instant::now() < deadline && !last.contains("horsestream_kafka_consumer_lag{") {
        std::thread::sleep(Duration::from_millis(500));
        last = scrape(port).unwrap_or(last);
    }
    drop(child);
    assert!(last.starts_with("HTTP/1.1 200"), "{last}");
    let s = samples(&last);
    let get = |key: &str| -> f64 {
        *s.get(key)
            .unwrap_or_else(|| panic!("{key} missing from\n{last}"))
    };
    assert_eq!(get("horsestream_chunks_processed_total"), 3.0);
    assert_eq!(get("horsestream_frames_total"), 220.0);
    assert_eq!(get("horsestream_chunk_errors_total"), 1.0);
    // Retries depend on the store's load (SQLite's busy lock): only their families are checked.
    get("horsestream_sink_retries_total");
    assert!(
        last.contains("# TYPE horsestream_sink_write_retries_total counter\n"),
        "{last}"
    );

    // Per stream: frames in and out, and a lag that is never negative.
    let stream = format!("stream_id=\"{name}\"");
    assert_eq!(
        get(&format!("horsestream_stream_frames_in_total{{{stream}}}")),
        220.0
    );
    assert_eq!(
        get(&format!("horsestream_stream_frames_out_total{{{stream}}}")),
        220.0
    );
    assert!(get(&format!("horsestream_chunk_lag_seconds{{{stream}}}")) >= 0.0);

    // Each operator saw each of the 3 chunks once, and took some time over them.
    for op in ["decode", "detect", "track", "horses", "sink"] {
        let label = format!("{{operator=\"{op}\"}}");
        assert_eq!(
            get(&format!(
                "horsestream_operator_latency_seconds_count{label}"
            )),
            3.0,
            "{op}"
        );
        assert!(get(&format!("horsestream_operator_latency_seconds_sum{label}")) > 0.0);
        assert_eq!(
            get(&format!(
                "horsestream_operator_latency_seconds_bucket{{operator=\"{op}\",le=\"+Inf\"}}"
            )),
            3.0
        );
    }

    // The 220 frames are 200 distinct ones: chunk 1 repeats chunk 0's last second and chunk
    // 2 repeats chunk 1's, and a repeated frame takes the result found for it before instead
    // of being analysed again. So 200 frames in batches of 8: 25 batches' worth in all.
    // Chunks of 100, 90 and 10 new frames analysed one by one are 12 + 11 + 1 full batches
    // and batches of 4, 2 and 2 frames (27 calls); chunks that reach the worker together
    // share batches: 26 calls for either pair, 25 for all three.
    assert_eq!(get("horsestream_frames_reused_total"), 20.0);
    let fill = |what: &str| {
        get(&format!(
            "horsestream_inference_batch_fill_{what}{{model=\"detector\"}}"
        ))
    };
    let calls = fill("count");
    assert!((25.0..=27.0).contains(&calls), "{calls} detector calls");
    assert_eq!(fill("sum"), 25.0);
    assert_eq!(
        get("horsestream_inference_seconds_count{model=\"detector\"}"),
        calls
    );
    for model in ["detector", "reid"] {
        let ms = get(&format!(
            "horsestream_inference_seconds_sum{{model=\"{model}\"}}"
        )) * 1e3;
        assert!(ms > 0.0, "{model}: {ms} ms");
    }
    assert_eq!(get("horsestream_model_available{model=\"detector\"}"), 1.0);

    // The sink's rows are the rows stored.
    let frames = stored(&store, &name);
    let detections: usize = frames.iter().map(|f| f.boxes.len()).sum();
    assert!(detections > 0);
    assert_eq!(
        get("horsestream_sink_rows_total{table=\"detections\"}"),
        detections as f64
    );
    assert_eq!(
        get("horsestream_sink_rows_total{table=\"video_chunks\"}"),
        3.0
    );
    assert_eq!(
        get("horsestream_sink_rows_total{table=\"chunk_errors\"}"),
        1.0
    );
    let (horses, gait) = analysis(&store, &name);
    assert_eq!(
        get("horsestream_sink_rows_total{table=\"gait_metrics\"}"),
        gait.len() as f64
    );
    // A horse's row is written again by every chunk it is seen in.
    assert!(get("horsestream_sink_rows_total{table=\"horses\"}") >= horses.len() as f64);
    assert_eq!(
        get("horsestream_chunks_dropped_total{reason=\"decode\"}"),
        1.0
    );

    // Kafka consumer lag: every partition of the topic, read by one of the two workers.
    let lags: Vec<f64> = (0..k.partitions)
        .map(|p| {
            get(&format!(
                "horsestream_kafka_consumer_lag{{topic=\"{}\",partition=\"{p}\"}}",
                k.chunks_topic
            ))
        })
        .collect();
    assert!(lags.iter().all(|l| (0.0..=4.0).contains(l)), "{lags:?}");
}
