//! PostgreSQL goes away for 60 s (issue 8) while a chunk's results are being written: the
//! dataflow holds its progress (no offset committed past what the database has), resumes by
//! itself when the server is back, and the database ends with exactly the rows of an
//! uninterrupted run, track ids, horses and gait included. Uses a private TimescaleDB
//! instance (started by `scripts/services.sh pg-start` with its own HORSESTREAM_HOME and
//! port) so that stopping it disturbs no other test.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(60);

/// A PostgreSQL of our own, stopped when dropped.
struct OwnPostgres {
    home: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Self {
        let pg = OwnPostgres {
            home: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        pg.services("pg-start");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/horsestream", self.port)
    }

    /// `scripts/services.sh COMMAND` for this instance.
    fn script(&self, command: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh"))
            .arg(command)
            .env("HORSESTREAM_HOME", self.home.path())
            .env("HS_PG_PORT", self.port.to_string());
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

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.script("pg-stop").output();
    }
}

/// Chunks of `stream` stored at `url`, or `None` while the database does not answer.
fn stored_chunks(url: &str, stream: &str) -> Option<usize> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = horsestream_sinks::Store::connect(url).await.ok()?;
        let frames = store.frames(stream).await.ok()?;
        let chunks: std::collections::BTreeSet<String> =
            frames.into_iter().map(|f| f.chunk_id).collect();
        Some(chunks.len())
    })
}

/// The next offset the consumer group `group` would read, summed over the topic's partitions
/// (the sample's chunks are all on one partition, from offset 0: this is the count of chunks
/// the dataflow has acknowledged).
fn committed(k: &horsestream_sinks::kafka::KafkaConfig, group: &str) -> i64 {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(&k.chunks_topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(&k.chunks_topic, p.id());
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

#[test]
fn a_60_s_database_outage_loses_and_duplicates_nothing() {
    let pg = OwnPostgres::start();
    let url = pg.url();
    let (name, k) = ingested_sample("outage");
    register(&url, &name);

    let log = tempfile::NamedTempFile::new().unwrap();
    let mut args = vec![
        "dataflow".to_owned(),
        "--until-end".into(),
        "--database-url".into(),
        url.clone(),
        "--group-id".into(),
        name.clone(),
    ];
    args.extend(topic_args(&k));
    let mut child = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(&args)
        .env("HORSESTREAM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();

    // Take the database away as soon as the first chunk is in: the others are then being
    // analysed or written.
    let deadline = Instant::now() + Duration::from_secs(180);
    let before = loop {
        assert!(Instant::now() < deadline, "no chunk stored in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the dataflow ended early"
        );
        match stored_chunks(&url, &name) {
            Some(n) if n >= 1 => break n,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    pg.services("pg-stop");
    let stopped_at = chrono::Utc::now();
    assert!(
        before < 3,
        "the run finished before the outage ({before} chunks)"
    );

    // While it is down, the dataflow keeps running; what it acknowledges is compared below
    // with what the database held when it stopped.
    let outage = Instant::now();
    let mut acked_during_outage = 0;
    while outage.elapsed() < OUTAGE {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the dataflow gave up during the outage"
        );
        acked_during_outage = acked_during_outage.max(committed(&k, &name));
        std::thread::sleep(Duration::from_secs(1));
    }

    pg.services("pg-start");
    let out = {
        let deadline = Instant::now() + Duration::from_secs(180);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the dataflow did not finish after the database came back"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        child.wait_with_output().unwrap()
    };
    let stderr = std::fs::read_to_string(log.path()).unwrap();
    assert!(out.status.success(), "dataflow: {stderr}");
    assert!(
        stderr.contains("retrying"),
        "the outage hit the sink's writes: {stderr}"
    );
    assert_eq!(
        committed(&k, &name),
        3,
        "every chunk acknowledged at the end"
    );

    // Exactly the rows of an uninterrupted run of the same chunks.
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("sqlite://{}", dir.path().join("ref.db").display());
    register(&reference, &name);
    run_ok(
        &[
            "dataflow",
            "--until-end",
            "--database-url",
            &reference,
            "--group-id",
            &format!("{name}-reference"),
        ],
        &k,
    );
    let expected = stored(&reference, &name);
    assert_eq!(expected.len(), 220);
    assert_eq!(stored(&url, &name), expected, "rows after the outage");
    assert_eq!(analysis(&url, &name), analysis(&reference, &name));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (errors, held) = rt.block_on(async {
        let store = horsestream_sinks::Store::connect(&url).await.unwrap();
        // Chunks committed before the server stopped (`stored_at` is set in the chunk's
        // first transaction and kept when the chunk is written again; nothing commits while
        // the server is down).
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let (held,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM video_chunks WHERE stream_id = $1 AND stored_at < $2",
        )
        .bind(&name)
        .bind(stopped_at)
        .fetch_one(&pool)
        .await
        .unwrap();
        (store.chunk_errors().await.unwrap(), held)
    });
    assert!(errors.is_empty(), "nothing refused: {errors:?}");
    assert!(
        (before as i64..3).contains(&held),
        "{held} chunks before the outage"
    );
    assert!(
        acked_during_outage <= held,
        "offset {acked_during_outage} committed during the outage, with {held} chunks stored"
    );
}
