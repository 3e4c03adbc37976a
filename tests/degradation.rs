//! Graceful degradation (docs/degradation.md): when the detector fails at run time, the
//! dataflow keeps consuming; the chunks it cannot analyse are recorded `degraded` with a
//! `stream:status` event, the sessions are rebuilt from the model files until that works,
//! analysis then resumes by itself, and a replay analyses the degraded chunks.
//!
//! Inference fails for real: the detector is an ONNX model with a fixed batch of 50 frames
//! (as a TensorRT engine or a fixed-batch export is), written by the test, so ONNX Runtime
//! refuses the sample's last chunk (20 frames) at run time. While the sessions are down the
//! model file is corrupted (the rebuild fails its sha256 check), then restored.

mod common;
#[path = "../models/tests/support/onnx.rs"]
mod onnx;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_proto::{Event, EventKind};
use horsestream_sinks::Store;
use horsestream_sinks::kafka::KafkaConfig;
use onnx::*;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

const BATCH: i64 = 50;

/// YOLOX's signature with a fixed batch: `images [50,3,416,416] -> output [50,3549,85]`, all
/// zeros (no object), computed from the input so the input stays in the graph.
fn fixed_batch_detector() -> Vec<u8> {
    model(GraphProto {
        node: vec![
            node(
                "ReduceMean",
                &["images"],
                "mean",
                vec![ints_attr("axes", vec![1, 2, 3]), int_attr("keepdims", 0)],
            ),
            node("Reshape", &["mean", "column"], "mean3", vec![]),
            node("Mul", &["mean3", "zero"], "zeros", vec![]),
            node("Expand", &["zeros", "out_shape"], "output", vec![]),
        ],
        name: "fixed-batch".into(),
        initializer: vec![
            int64_tensor("column", vec![-1, 1, 1]),
            float_tensor("zero", vec![], vec![0.0]),
            int64_tensor("out_shape", vec![BATCH, 3549, 85]),
        ],
        input: vec![value_info(
            "images",
            &[Some(BATCH), Some(3), Some(416), Some(416)],
        )],
        output: vec![value_info("output", &[Some(BATCH), Some(3549), Some(85)])],
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Kills and reaps the dataflow whatever the test's outcome.
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `stream:status` states the dataflow announced per stream, in order.
fn statuses_announced(k: &KafkaConfig, stream: &str) -> Vec<String> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("degradation-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&k.events_topic]).unwrap();
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 20 {
        match consumer.poll(Duration::from_millis(250)) {
            Some(Ok(m)) if m.key() == Some(stream.as_bytes()) => {
                idle = 0;
                if let Ok(Event {
                    kind: EventKind::StreamStatus(s),
                    ..
                }) = Event::decode(m.payload().unwrap_or_default())
                {
                    out.push(s.state);
                }
            }
            Some(Ok(_)) => idle = 0,
            Some(Err(_)) | None => idle += 1,
        }
    }
    out
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap()
        .to_rfc3339()
}

#[test]
fn a_failing_model_degrades_chunks_then_analysis_resumes_and_replay_fills_them_in() {
    let url = required_env("HORSESTREAM_DATABASE_URL");
    let a = unique("degraded-a");
    let b = unique("degraded-b");
    let k = fresh_topics(&a);
    register(&url, &a);
    register(&url, &b);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::connect(&url)).unwrap();
    let statuses = |stream: &str| -> Vec<String> {
        rt.block_on(store.chunk_statuses(stream))
            .unwrap()
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    };

    // The fixed-batch detector, vouched for by an override manifest.
    let models = tempfile::tempdir().unwrap();
    let model_path = models.path().join("yolox_nano.onnx");
    let good = fixed_batch_detector();
    std::fs::write(&model_path, &good).unwrap();
    let manifest = horsestream_models::DEFAULT_MANIFEST
        .replacen(
            "1c0f404d267fc5e0c173f160a61f599b80dade2be362aa45856b244e5f00c38e",
            &sha256_hex(&good),
            1,
        )
        .replacen(
            "shape = [\"N\", 3, 416, 416]",
            "shape = [50, 3, 416, 416]",
            1,
        )
        .replacen("shape = [\"N\", 3549, 85]", "shape = [50, 3549, 85]", 1);
    let manifest_path = models.path().join("manifest.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let log = models.path().join("dataflow.log");

    // One worker, so one set of sessions sees every stream; a retry at every chunk.
    let dataflow = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args([
            "dataflow",
            "--workers",
            "1",
            "--database-url",
            &url,
            "--group-id",
            &a,
            "--model-dir",
            models.path().to_str().unwrap(),
            "--manifest",
            manifest_path.to_str().unwrap(),
            "--no-reid",
            "--batch-size",
            &BATCH.to_string(),
            "--model-retry-max-ms",
            "0",
            // The model's failure is batch arithmetic over whole chunks (100, 100 and 20
            // frames); reusing the overlap's results would leave 100, 90 and 10 to analyse,
            // and which of them fail would depend on which chunks arrive together.
            "--no-overlap-reuse",
        ])
        .args(topic_args(&k))
        .env("HORSESTREAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let dataflow = Reap(dataflow);
    let started_us = chrono::Utc::now().timestamp_micros();
    let video = sample().0.to_str().unwrap().to_owned();
    let ingest = |stream: &str| run_ok(&["ingest", "--input", &video, "--stream-id", stream], &k);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // A: two full chunks analysed; the 20-frame chunk makes ONNX Runtime fail at run time.
    ingest(&a);
    wait_for("stream A's three chunks", || statuses(&a).len() == 3);
    assert_eq!(
        statuses(&a),
        ["processed", "processed", "degraded"],
        "{}",
        log_text()
    );
    assert!(
        log_text().contains("model failed: chunks are degraded"),
        "{}",
        log_text()
    );

    // The model file goes bad while the sessions are down: every rebuild fails, so every
    // chunk of B is degraded, and the dataflow keeps consuming.
    std::fs::write(&model_path, b"not an onnx model".repeat(100)).unwrap();
    ingest(&b);
    wait_for("stream B's three degraded chunks", || {
        statuses(&b) == ["degraded", "degraded", "degraded"]
    });
    assert!(log_text().contains("sha256"), "{}", log_text());

    // The file is back: the next chunk rebuilds the sessions and analysis resumes. B's chunks,
    // published again, are analysed (its last one fails again: 20 frames).
    std::fs::write(&model_path, &good).unwrap();
    ingest(&b);
    wait_for("stream B analysed again", || {
        statuses(&b) == ["processed", "processed", "degraded"]
    });
    assert!(
        log_text().contains("models work again, analysis resumed"),
        "{}",
        log_text()
    );
    // Chunk 2's row already said `degraded` from the first round, so the rows above can match
    // before the second round's chunk 2 is done: its announcement is what says it is.
    wait_for("stream B's second round announced", || {
        statuses_announced(&k, &b).len() >= 3
    });
    drop(dataflow);

    // The degraded and recovered transitions went out as stream:status events.
    assert_eq!(statuses_announced(&k, &a), ["degraded"]);
    assert_eq!(
        statuses_announced(&k, &b),
        ["degraded", "recovered", "degraded"]
    );

    // A replay with the shipped models analyses A's degraded chunk.
    let now_us = chrono::Utc::now().timestamp_micros();
    run_ok(
        &[
            "replay",
            "--stream",
            &a,
            "--from",
            &rfc3339(started_us - 60_000_000),
            "--to",
            &rfc3339(now_us + 60_000_000),
            "--database-url",
            &url,
            "--no-reid",
        ],
        &k,
    );
    assert_eq!(statuses(&a), ["processed", "processed", "processed"]);
    assert!(Path::new(&model_path).exists());
}
