//! Kafka restarts while `horsestream ingest` publishes (issue 8): no chunk is lost and none is
//! duplicated, on the topic and in the database. Uses a private broker (started by
//! `scripts/services.sh kafka-start` with its own HORSESTREAM_HOME and ports, the installed
//! jars) so that stopping it disturbs no other test.
//!
//! The restart lands mid-ingest by construction, not by timing: once two chunks are on the
//! topic the ingest process is paused (SIGSTOP), the broker is stopped, the ingest resumes
//! and publishes into the dead broker for a while (its producer holds and retries the chunk),
//! then the broker starts again and the ingest finishes. The topic must then hold exactly
//! the chunks an ingest of the same file into the shared broker publishes (ids, sequences,
//! frame times), each once, and the dataflow must store each once.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_ingest::{SampleSpec, make_sample_video};
use horsestream_proto::FrameChunk;
use horsestream_sinks::kafka::{KafkaConfig, ensure_topics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// A Kafka broker of our own, stopped when dropped.
struct OwnKafka {
    home: tempfile::TempDir,
    port: u16,
    controller_port: u16,
}

impl OwnKafka {
    fn start() -> Self {
        let kafka = OwnKafka {
            home: tempfile::tempdir().unwrap(),
            port: free_port(),
            controller_port: free_port(),
        };
        kafka.services("kafka-start");
        kafka
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, command: &str) -> Command {
        let shared = required_env("HORSESTREAM_HOME");
        let mut c = Command::new("bash");
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh"))
            .arg(command)
            .env("HORSESTREAM_HOME", self.home.path())
            .env("HS_KAFKA_PORT", self.port.to_string())
            .env("HS_KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("HS_KAFKA_LIBS", Path::new(&shared).join("kafka/libs"))
            .env("HS_KAFKA_HEAP", "256m");
        c
    }

    fn services(&self, command: &str) {
        let out = self.script(command).output().unwrap();
        assert!(
            out.status.success(),
            "services.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnKafka {
    fn drop(&mut self) {
        let _ = self.script("kafka-stop").output();
    }
}

/// A child process, killed and reaped if still running when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Records on the chunks topic.
fn topic_len(k: &KafkaConfig) -> i64 {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("watermarks"))
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&k.chunks_topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (lo, hi) = consumer
                .fetch_watermarks(&k.chunks_topic, p.id(), Duration::from_secs(10))
                .unwrap();
            hi - lo
        })
        .sum()
}

/// One published chunk as compared between runs: id, sequence, pts range, frame pts.
type ChunkFacts = (String, u64, i64, i64, Vec<i64>);

/// Every record of the chunks topic, decoded, in (partition, offset) order.
fn topic_chunks(k: &KafkaConfig) -> Vec<ChunkFacts> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("read"))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", k.max_message_bytes.to_string())
        .set("max.partition.fetch.bytes", k.max_message_bytes.to_string())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&k.chunks_topic), Duration::from_secs(10))
        .unwrap();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        let (lo, hi) = consumer
            .fetch_watermarks(&k.chunks_topic, p.id(), Duration::from_secs(10))
            .unwrap();
        if hi > lo {
            ends.insert(p.id(), hi);
            tpl.add_partition_offset(&k.chunks_topic, p.id(), Offset::Offset(lo))
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut by_position = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while by_position.len() < ends.values().sum::<i64>() as usize {
        assert!(Instant::now() < deadline, "could not read the topic back");
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.unwrap();
        let c = FrameChunk::decode(m.payload().unwrap()).unwrap();
        by_position.insert(
            (m.partition(), m.offset()),
            (
                c.chunk_id(),
                c.sequence,
                c.start_pts_us,
                c.end_pts_us,
                c.frames.iter().map(|f| f.pts_us).collect(),
            ),
        );
    }
    by_position.into_values().collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broker_restart_mid_ingest_loses_and_duplicates_no_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("sample60.mp4");
    make_sample_video(
        &horses_jpg(),
        &video,
        &SampleSpec {
            duration: Duration::from_secs(60),
            ..SampleSpec::default()
        },
    )
    .unwrap();
    let name = unique("broker");

    // The reference: the same file into fresh topics of the shared broker, uninterrupted.
    let shared = fresh_topics(&format!("{name}-ref"));
    run_ok(
        &[
            "ingest",
            "--input",
            video.to_str().unwrap(),
            "--stream-id",
            &name,
        ],
        &shared,
    );
    let expected = topic_chunks(&shared);
    assert_eq!(expected.len(), 7, "60 s in 10 s chunks with 1 s overlap");

    let kafka = OwnKafka::start();
    let mut k = KafkaConfig::new(kafka.brokers());
    k.chunks_topic = format!("{name}.chunks");
    k.events_topic = format!("{name}.events");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ensure_topics(&k)).unwrap();

    let mut args: Vec<String> = ["ingest", "--input", video.to_str().unwrap(), "--stream-id"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(name.clone());
    args.extend(topic_args(&k));
    let mut ingest = Running(
        Command::new(env!("CARGO_BIN_EXE_horsestream"))
            .args(&args)
            .env("HORSESTREAM_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    wait_for("two chunks on the private broker", || topic_len(&k) >= 2);
    signal(&ingest.0, "-STOP");
    kafka.services("kafka-stop");
    signal(&ingest.0, "-CONT");
    // The ingest carries on against the stopped broker: its next chunk waits in the producer.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        ingest.0.try_wait().unwrap().is_none(),
        "the ingest gave up while the broker was down"
    );
    kafka.services("kafka-start");
    wait_for("the ingest to finish", || {
        ingest.0.try_wait().unwrap().is_some()
    });
    let status = ingest.0.wait().unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    ingest
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    ingest
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "ingest: {stderr}");
    assert!(
        stdout.contains("7 chunks"),
        "ingest reports what it published: {stdout}"
    );

    // On the topic: each chunk once, in order, the same as the uninterrupted ingest.
    let got = topic_chunks(&k);
    assert_eq!(
        got, expected,
        "chunks on the topic after the broker restart"
    );

    // In the database: each chunk stored once, every frame.
    let url = format!("sqlite://{}", dir.path().join("broker.db").display());
    register(&url, &name);
    run_ok(
        &[
            "dataflow",
            "--until-end",
            "--no-reid",
            "--database-url",
            &url,
            "--group-id",
            &name,
        ],
        &k,
    );
    let stats = rt.block_on(async {
        let store = horsestream_sinks::Store::connect(&url).await.unwrap();
        assert!(store.chunk_errors().await.unwrap().is_empty());
        store.stats().await.unwrap()
    });
    let frames: usize = expected.iter().map(|c| c.4.len()).sum();
    assert_eq!(stats.chunks, 7, "{stats:?}");
    assert_eq!(stats.frames, frames as i64, "{stats:?}");
    let rows = stored(&url, &name);
    assert_eq!(rows.len(), frames);
    let mut ids: Vec<_> = rows.iter().map(|f| (&f.chunk_id, f.frame_index)).collect();
    ids.dedup();
    assert_eq!(ids.len(), frames, "no frame twice");
}
