//! Crash recovery with exactly-once effect (issue 8): `horsestream dataflow` is killed with
//! SIGKILL at random points of a run and restarted until it finishes; the database must then
//! hold exactly what an uninterrupted run stores — no missing row, no duplicate, the same
//! track ids on every box, the same horses (names, first/last seen, track ids), gait windows,
//! alerts, and rows in every table.
//!
//! How track ids survive (docs/crash-recovery.md): **checkpoints, not a rebuild.** After each
//! chunk the tracking and horses stages encode their state for the chunk's stream (DeepSORT
//! tracks with their Kalman filters and re-ID galleries, the overlap frames' ids, horses with
//! galleries, gait samples and alert-rule state); the sink stores it in the transaction that
//! stores the chunk's detections (`stream_checkpoints`, both stores). A worker that sees a
//! stream for the first time resumes it from the newest checkpoint stored with a chunk before
//! the one it reads; a chunk stored before the crash but not yet acknowledged to Kafka is
//! read again, recomputed from the state before it, and its keyed rows add nothing.
//!
//! Input: the 20 s sample video (3 chunks: [0, 10), [9, 19), [18, 20) s) ingested once into
//! a staging topic. The uninterrupted run (`--until-end` over the staging topic) goes into a
//! SQLite file. Each trial has its own topic, fed as a live ingest would: the test publishes
//! the staged chunks one by one (the next once the previous is stored), and `horsestream
//! dataflow` runs live, is killed, restarted, and stopped once every chunk is stored and
//! acknowledged. Trials alternate between a fresh PostgreSQL/TimescaleDB database on the
//! shared server and a fresh SQLite file. Each trial's seed picks what a kill waits for — a
//! number of chunks stored (the kill then often lands between a chunk's transaction and its
//! offset's commit: the chunk is read again after the restart) or a number of chunks
//! acknowledged (the restart resumes mid-stream from a checkpoint) — a random delay after it
//! (so kills also land inside a chunk's analysis and writes), and whether the restarted
//! process is killed again. Every seed is printed; a failing one is reproduced with
//! `CRASH_SEEDS=7 cargo test --test crash_recovery`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_proto::{Event, EventKind};
use horsestream_sinks::kafka::KafkaConfig;
use horsestream_sinks::{Store, StoreStats};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const TRIALS: u64 = 10;
/// Chunks of the 20 s sample.
const CHUNKS: usize = 3;
/// Frames of the 20 s sample at 10 fps, the overlap second counted twice.
const FRAMES: usize = 220;

/// A dataflow process, killed (SIGKILL) and reaped if still running when dropped.
struct Dataflow(Child);

impl Drop for Dataflow {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// splitmix64: the trial's random choices, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything compared between runs.
#[derive(Debug, PartialEq)]
struct Contents {
    frames: Vec<horsestream_sinks::FrameRow>,
    analysis: (Vec<HorseFacts>, Vec<horsestream_sinks::GaitRow>),
    alerts: Vec<AlertFacts>,
    /// Rows per table: a duplicate anywhere shows here.
    rows: Vec<(&'static str, i64)>,
    stats: StoreStats,
}

const TABLES: [&str; 6] = [
    "detections",
    "video_chunks",
    "horses",
    "horse_features",
    "gait_metrics",
    "alerts",
];

/// Rows of each of [`TABLES`] in the (single-stream) database at `url`.
fn row_counts(url: &str) -> Vec<(&'static str, i64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for table in TABLES {
            let q = format!("SELECT count(*) FROM {table}");
            let (n,): (i64,) = if url.starts_with("postgres") {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query_as(sqlx::AssertSqlSafe(q))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            } else {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                sqlx::query_as(sqlx::AssertSqlSafe(q))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            };
            out.push((table, n));
        }
        out
    })
}

fn contents(rt: &tokio::runtime::Runtime, url: &str, stream: &str) -> Contents {
    let stats = rt.block_on(async { Store::connect(url).await.unwrap().stats().await.unwrap() });
    Contents {
        frames: stored(url, stream),
        analysis: analysis(url, stream),
        alerts: alerts(url, stream),
        rows: row_counts(url),
        stats,
    }
}

/// Chunks of `stream` stored at `url` (0 while the schema is not there yet).
fn stored_chunks(rt: &tokio::runtime::Runtime, store: &Store, stream: &str) -> usize {
    rt.block_on(store.frames(stream))
        .map(|frames| {
            frames
                .into_iter()
                .map(|f| f.chunk_id)
                .collect::<BTreeSet<_>>()
                .len()
        })
        .unwrap_or(0)
}

fn start_dataflow(k: &KafkaConfig, url: &str, group: &str, log: &Path) -> Dataflow {
    let mut args: Vec<String> = ["dataflow", "--database-url", url, "--group-id", group]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(topic_args(k));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Dataflow(
        Command::new(env!("CARGO_BIN_EXE_horsestream"))
            .args(&args)
            .env("HORSESTREAM_LOG", "warn,horsestream_dataflow=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The next offset group `group` would read on the chunks topic (the sample's chunks are all
/// on one partition, from offset 0: the count of chunks acknowledged).
fn committed(consumer: &BaseConsumer, k: &KafkaConfig) -> usize {
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
            Offset::Offset(o) => o as usize,
            _ => 0,
        })
        .sum()
}

/// What a kill waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trigger {
    /// Chunks stored in the database.
    Stored,
    /// Chunks acknowledged to Kafka.
    Committed,
}

/// What happened in one trial, for the summary and the coverage checks.
#[derive(Debug)]
struct Trial {
    seed: u64,
    backend: &'static str,
    trigger: Trigger,
    /// (chunks stored, chunks acknowledged) when each kill landed (only kills of a running
    /// process).
    killed_at: Vec<(usize, usize)>,
    /// Restarts that resumed a stream from a checkpoint.
    restored: usize,
    attempts: usize,
}

/// One staged chunk record: key, payload, broker timestamp (ms).
type Staged = (String, Vec<u8>, i64);

/// The records of the staging topic, in order.
/// The `alert:raised` events on `k`'s events topic, as (time µs, kind, message): read until
/// `want` arrived and then nothing new for 3 s, or 60 s passed.
fn published_alerts(k: &KafkaConfig, want: usize) -> Vec<(i64, String, String)> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("alerts"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[k.events_topic.as_str()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut out, mut last) = (Vec::new(), Instant::now());
    while Instant::now() < deadline && (out.len() < want || last.elapsed() < Duration::from_secs(3))
    {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let event = Event::decode(m.unwrap().payload().unwrap_or_default()).unwrap();
            last = Instant::now();
            if let EventKind::AlertRaised(a) = event.kind {
                out.push((a.at_us, a.kind, a.message));
            }
        }
    }
    out.sort();
    out
}

fn staged_records(k: &KafkaConfig) -> Vec<Staged> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("stage"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", k.max_message_bytes.to_string())
        .set("max.partition.fetch.bytes", k.max_message_bytes.to_string())
        .create()
        .unwrap();
    consumer.subscribe(&[k.chunks_topic.as_str()]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < CHUNKS {
        assert!(
            Instant::now() < deadline,
            "the staged chunks are not readable"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            out.push((
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                m.payload().unwrap().to_vec(),
                m.timestamp().to_millis().unwrap(),
            ));
        }
    }
    out
}

/// Runs a trial: the dataflow live on `k`'s topic into `url`, the staged chunks published one
/// by one as the previous one is stored, killed as the seed says, until every chunk is stored
/// and acknowledged.
#[allow(clippy::too_many_arguments)]
fn run_with_kills(
    rt: &tokio::runtime::Runtime,
    k: &KafkaConfig,
    staged: &[Staged],
    url: &str,
    stream: &str,
    seed: u64,
    backend: &'static str,
) -> Trial {
    let mut rng = Rng(seed);
    let kills = 1 + rng.below(2) as usize;
    let trigger = if (seed / 2).is_multiple_of(2) {
        Trigger::Stored
    } else {
        Trigger::Committed
    };
    let group = k.chunks_topic.clone();
    let log = tempfile::NamedTempFile::new().unwrap();
    let store = rt.block_on(Store::connect(url)).unwrap();
    let producer = horsestream_sinks::kafka::TopicProducer::new(k, &k.chunks_topic).unwrap();
    let offsets: BaseConsumer = k
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let progress = |t: Trigger| match t {
        Trigger::Stored => stored_chunks(rt, &store, stream),
        Trigger::Committed => committed(&offsets, k),
    };
    let mut trial = Trial {
        seed,
        backend,
        trigger,
        killed_at: Vec::new(),
        restored: 0,
        attempts: 1,
    };
    let mut published = 0;
    // Where the next kill lands: once `progress(trigger)` reaches the target, after a delay.
    // The target leaves work to interrupt; half the kills on `Stored` come at once, between
    // the chunk's transaction and its offset's commit, while its horses, gait rows and
    // events are written.
    let next_kill = |rng: &mut Rng, now: usize| {
        let target = if rng.below(5) == 0 {
            now
        } else {
            (now + 1).min(CHUNKS - 1)
        };
        let delay = match (trigger, rng.below(2)) {
            (Trigger::Stored, 0) => Duration::ZERO,
            _ => Duration::from_millis(rng.below(2500)),
        };
        (target, delay)
    };
    let mut kill_at = Some(next_kill(&mut rng, 0));
    let mut child = start_dataflow(k, url, &group, log.path());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "seed {seed}: no progress");
        let stored = stored_chunks(rt, &store, stream);
        if published < CHUNKS && stored >= published {
            let (key, payload, ts) = &staged[published];
            rt.block_on(producer.send_at(key, payload, *ts)).unwrap();
            published += 1;
        }
        if stored == CHUNKS && committed(&offsets, k) == CHUNKS {
            break;
        }
        if let Some((target, delay)) = kill_at
            && progress(trigger) >= target
        {
            std::thread::sleep(delay);
            child.0.kill().unwrap(); // SIGKILL
            child.0.wait().unwrap();
            let now = (progress(Trigger::Stored), progress(Trigger::Committed));
            trial.killed_at.push(now);
            kill_at =
                (trial.killed_at.len() < kills).then(|| next_kill(&mut rng, progress(trigger)));
            child = start_dataflow(k, url, &group, log.path());
            trial.attempts += 1;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "seed {seed}: the dataflow ended: {}",
            std::fs::read_to_string(log.path()).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    let text = std::fs::read_to_string(log.path()).unwrap();
    trial.restored = text.matches("tracker restored from checkpoint").count();
    trial
}

#[test]
fn kill_9_at_random_points_then_restart_stores_exactly_the_uninterrupted_rows() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (name, k) = ingested_sample("crash");
    let dir = tempfile::tempdir().unwrap();

    // The uninterrupted run.
    let reference = format!("sqlite://{}", dir.path().join("reference.db").display());
    register_with_zone(&reference, &name);
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
    let expected = contents(&rt, &reference, &name);
    assert_eq!(expected.frames.len(), FRAMES, "all frames stored");
    assert_eq!(expected.stats.chunks, CHUNKS as i64);
    let (horses, gait) = &expected.analysis;
    assert!(horses.len() >= 3, "horses {horses:?}");
    assert!(!gait.is_empty(), "no gait windows");
    assert!(!expected.alerts.is_empty(), "no alerts");
    // Each stored alert was announced once, live.
    let stored: Vec<_> = expected
        .alerts
        .iter()
        .map(|(at, kind, _, message, _, _)| (*at, kind.clone(), message.clone()))
        .collect();
    assert_eq!(published_alerts(&k, stored.len()), stored);
    let tracked: BTreeSet<i64> = expected
        .frames
        .iter()
        .flat_map(|f| f.track_ids.iter().flatten().copied())
        .collect();
    eprintln!(
        "reference: {} frames, {} detections, tracks {tracked:?}, {} horses, {} gait windows, \
         {} alerts",
        expected.frames.len(),
        expected.stats.detections,
        horses.len(),
        gait.len(),
        expected.alerts.len()
    );
    let checkpoints = rt.block_on(async {
        let store = Store::connect(&reference).await.unwrap();
        store.checkpoint_sequences(&name).await.unwrap()
    });
    assert_eq!(checkpoints, vec![0, 1, 2], "a checkpoint per chunk");

    let staged = staged_records(&k);
    let seeds: Vec<u64> = match std::env::var("CRASH_SEEDS") {
        Ok(s) => s.split(',').map(|v| v.trim().parse().unwrap()).collect(),
        Err(_) => (1..=TRIALS).collect(),
    };
    let mut trials = Vec::new();
    for &seed in &seeds {
        let own_pg;
        let (url, backend) = if seed % 2 == 0 {
            own_pg = OwnDatabase::create(&rt, "crash");
            (own_pg.url.clone(), "postgres")
        } else {
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("t{seed}.db")).display()
            );
            (url, "sqlite")
        };
        register_with_zone(&url, &name);
        let topics = fresh_topics(&format!("{name}-t{seed}"));
        let trial = run_with_kills(&rt, &topics, &staged, &url, &name, seed, backend);
        eprintln!(
            "seed {} ({}, kill on {:?}): killed with (stored, acknowledged) chunks {:?}, {} \
             runs, resumed from a checkpoint {} time(s)",
            trial.seed,
            trial.backend,
            trial.trigger,
            trial.killed_at,
            trial.attempts,
            trial.restored
        );
        let got = contents(&rt, &url, &name);
        assert_eq!(
            got.frames.len(),
            FRAMES,
            "seed {seed} ({backend}): frames missing"
        );
        for (g, e) in got.frames.iter().zip(&expected.frames) {
            assert_eq!(g, e, "seed {seed} ({backend}): first differing frame");
        }
        assert_eq!(got.stats, expected.stats, "seed {seed} ({backend}): counts");
        assert_eq!(
            got.analysis, expected.analysis,
            "seed {seed} ({backend}): horses or gait"
        );
        assert_eq!(
            got.alerts, expected.alerts,
            "seed {seed} ({backend}): alerts"
        );
        assert_eq!(
            got.rows, expected.rows,
            "seed {seed} ({backend}): rows per table"
        );
        trials.push(trial);
    }

    // The trials did crash mid-stream, and restarts did resume from checkpoints.
    let kills: usize = trials.iter().map(|t| t.killed_at.len()).sum();
    let mid_stream = trials
        .iter()
        .flat_map(|t| &t.killed_at)
        .filter(|&&(stored, _)| (1..CHUNKS).contains(&stored))
        .count();
    let replayed = trials
        .iter()
        .flat_map(|t| &t.killed_at)
        .filter(|&&(stored, acked)| stored > acked)
        .count();
    let resumed = trials.iter().filter(|t| t.restored > 0).count();
    eprintln!(
        "{} trials, {kills} kills: {mid_stream} with 1..{} chunks stored, {replayed} with stored \
         chunks not yet acknowledged; {resumed} trials resumed from a checkpoint",
        trials.len(),
        CHUNKS - 1
    );
    if seeds.len() >= TRIALS as usize {
        assert!(kills >= seeds.len(), "too few kills landed: {trials:?}");
        assert!(
            mid_stream >= 1 && resumed >= 1 && replayed >= 1,
            "the kills missed the cases this test is for: {trials:?}"
        );
    }
}
