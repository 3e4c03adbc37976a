//! Soak with a slow sink (issue 8): a live camera → `horsestream ingest` → Kafka →
//! `horsestream dataflow` → a PostgreSQL database whose chunk writes are made slower than the
//! camera delivers chunks (a trigger sleeps `SOAK_SINK_DELAY_S`, default 12 s, in every
//! `video_chunks` insert, while a chunk of 10 s with 1 s overlap arrives every 9 s). The
//! backlog must then pile up in Kafka, not in memory: the resident set of each process stays
//! flat, and the records a dataflow worker holds stay within its in-flight bound.
//!
//! Every `SOAK_SAMPLE_S` (2) seconds it records, per process, VmRSS from `/proc`, and from the
//! dataflow's `/metrics` the records read and the chunks finished, plus the chunks published to
//! the topic, into a CSV (`SOAK_OUT`, default `$CARGO_TARGET_TMPDIR/soak.csv`) and prints a
//! summary: peak RSS per process, the steady-state band (samples after warm-up: the first
//! chunk stored and a quarter of the run) and the largest number of records in flight.
//!
//! CI runs the two-minute version; the 30-minute soak is the ignored test:
//!
//! ```sh
//! eval "$(bash scripts/services.sh env)"
//! SOAK_OUT=soak-30min.csv cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! Checks (counts and ratios of memory, never durations): records in flight in the dataflow
//! never above `IN_FLIGHT_BOUND`; the sink really was the bottleneck (published − finished ≥
//! 2 at the end), so the run tested backpressure at all; and in the long run, steady RSS of
//! ingest and dataflow within ±10 % of its median.

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use horsestream_sinks::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Records a dataflow process may hold: per worker `records_per_epoch` (2) times
/// (`max_epochs_in_flight` (2) + the epoch being fed), for 2 workers.
const IN_FLIGHT_BOUND: u64 = 2 * 3 * 2;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process, stopped and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident set of `pid` in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A counter of the Prometheus text at `addr`'s `/metrics`.
fn metrics(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Records on the chunks topic.
fn published(consumer: &BaseConsumer, k: &KafkaConfig) -> i64 {
    let Ok(metadata) = consumer.fetch_metadata(Some(&k.chunks_topic), Duration::from_secs(10))
    else {
        return 0;
    };
    metadata.topics()[0]
        .partitions()
        .iter()
        .filter_map(|p| {
            consumer
                .fetch_watermarks(&k.chunks_topic, p.id(), Duration::from_secs(10))
                .ok()
        })
        .map(|(lo, hi)| hi - lo)
        .sum()
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t_s: f64,
    ingest_kib: u64,
    dataflow_kib: u64,
    records_in: u64,
    finished: u64,
    published: i64,
}

/// Peak, and the steady band as (min, median, max), of one column of the samples.
fn band(samples: &[Sample], steady: &[Sample], f: impl Fn(&Sample) -> u64) -> (u64, u64, u64, u64) {
    let peak = samples.iter().map(&f).max().unwrap_or(0);
    let mut v: Vec<u64> = steady.iter().map(&f).collect();
    v.sort_unstable();
    (peak, v[0], v[v.len() / 2], v[v.len() - 1])
}

/// CI: two minutes (`SOAK_SECONDS`). The records in flight in the dataflow stay within its
/// bound while the backlog piles up in Kafka; RSS is sampled and reported, not judged (two
/// minutes is all warm-up: model arenas, the consumers' prefetch).
#[test]
fn with_a_slow_sink_the_backlog_stays_in_kafka_and_the_dataflow_queue_bounded() {
    soak(env_u64("SOAK_SECONDS", 120), false);
}

/// The 30-minute soak (`SOAK_SECONDS`, default 1800), with the RSS flatness check:
/// `cargo test --release --test soak -- --ignored --nocapture`. Not in CI: its length, and at
/// the time of writing it fails — ingest's live path grows by ~13 MiB a minute (see the
/// report in docs/crash-recovery.md).
#[test]
#[ignore = "30 minutes; run with --ignored"]
fn thirty_minutes_with_a_slow_sink_rss_stays_flat() {
    soak(env_u64("SOAK_SECONDS", 1800), true);
}

fn soak(seconds: u64, judge_rss: bool) {
    let sample_every = Duration::from_secs(env_u64("SOAK_SAMPLE_S", 2));
    let delay_s = env_u64("SOAK_SINK_DELAY_S", 12);
    let out_path = std::env::var("SOAK_OUT")
        .unwrap_or_else(|_| format!("{}/soak.csv", env!("CARGO_TARGET_TMPDIR")));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = OwnDatabase::create(&rt, "soak");
    let name = unique("soak");
    register(&db.url, &name);
    // The slow sink: every chunk row written sleeps first, inside the chunk's transaction.
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE FUNCTION soak_slow_sink() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({delay_s}); RETURN NEW; END $$"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "CREATE TRIGGER soak_slow_sink BEFORE INSERT ON video_chunks \
             FOR EACH ROW EXECUTE FUNCTION soak_slow_sink()",
        )
        .execute(&pool)
        .await
        .unwrap();
    });
    let k = fresh_topics(&name);

    // A live camera serving the sample in a loop, in real time.
    let port = free_port();
    let mut camera = Running(
        Command::new("/usr/bin/python3")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rtsp-camera.py"))
            .args(["--port", &port.to_string(), "--fps", "10", "--file"])
            .arg(&sample().0)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting scripts/rtsp-camera.py"),
    );
    let mut line = String::new();
    std::io::BufReader::new(camera.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("ready"), "camera said {line:?}");

    let spawn = |args: Vec<String>, log: &std::path::Path| {
        let mut all = args;
        all.extend(topic_args(&k));
        Running(
            Command::new(env!("CARGO_BIN_EXE_horsestream"))
                .args(&all)
                .env("HORSESTREAM_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let logs = tempfile::tempdir().unwrap();
    let ingest = spawn(
        vec![
            "ingest".into(),
            "--input".into(),
            format!("rtsp://127.0.0.1:{port}/cam"),
            "--stream-id".into(),
            name.clone(),
        ],
        &logs.path().join("ingest.log"),
    );
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let dataflow = spawn(
        vec![
            "dataflow".into(),
            "--database-url".into(),
            db.url.clone(),
            "--group-id".into(),
            name.clone(),
            "--metrics-listen".into(),
            metrics_addr.clone(),
        ],
        &logs.path().join("dataflow.log"),
    );

    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("soak-watch"))
        .create()
        .unwrap();
    let mut csv = std::fs::File::create(&out_path).unwrap();
    writeln!(
        csv,
        "t_s,ingest_rss_kib,dataflow_rss_kib,records_in,chunks_finished,chunks_published"
    )
    .unwrap();
    let mut samples: Vec<Sample> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(sample_every);
        for (what, p) in [("ingest", &ingest), ("dataflow", &dataflow)] {
            assert!(
                p.0.id() > 0 && rss_kib(p.0.id()) > 0,
                "{what} ended: {}",
                std::fs::read_to_string(logs.path().join(format!("{what}.log")))
                    .unwrap_or_default()
            );
        }
        let text = metrics(&metrics_addr).unwrap_or_default();
        let s = Sample {
            t_s: start.elapsed().as_secs_f64(),
            ingest_kib: rss_kib(ingest.0.id()),
            dataflow_kib: rss_kib(dataflow.0.id()),
            records_in: counter(&text, "horsestream_records_in_total"),
            finished: counter(&text, "horsestream_chunks_processed_total")
                + counter(&text, "horsestream_chunk_errors_total"),
            published: published(&consumer, &k),
        };
        writeln!(
            csv,
            "{:.1},{},{},{},{},{}",
            s.t_s, s.ingest_kib, s.dataflow_kib, s.records_in, s.finished, s.published
        )
        .unwrap();
        samples.push(s);
    }
    drop(csv);

    let warm = samples
        .iter()
        .position(|s| s.finished >= 1 && s.t_s >= seconds as f64 / 4.0)
        .expect("no chunk was stored: see the dataflow log");
    let steady = &samples[warm..];
    assert!(
        steady.len() >= 10,
        "too few steady samples: {}",
        steady.len()
    );
    let last = samples.last().unwrap();
    let in_flight = samples
        .iter()
        .map(|s| s.records_in.saturating_sub(s.finished))
        .max()
        .unwrap();
    eprintln!(
        "soak: {seconds} s, sink delay {delay_s} s/chunk, {} samples ({} steady) in {out_path}",
        samples.len(),
        steady.len()
    );
    eprintln!(
        "chunks: {} published, {} read by the dataflow, {} finished; most records in flight {in_flight} \
         (bound {IN_FLIGHT_BOUND})",
        last.published, last.records_in, last.finished
    );
    let mut flat = Vec::new();
    for (what, f) in [
        ("ingest", (|s: &Sample| s.ingest_kib) as fn(&Sample) -> u64),
        ("dataflow", |s: &Sample| s.dataflow_kib),
    ] {
        let (peak, min, median, max) = band(&samples, steady, f);
        let (lo, hi) = (
            min as f64 / median as f64 - 1.0,
            max as f64 / median as f64 - 1.0,
        );
        eprintln!(
            "{what}: peak RSS {:.1} MiB; steady {:.1}..{:.1} MiB, median {:.1} MiB ({:+.1} % / {:+.1} %)",
            peak as f64 / 1024.0,
            min as f64 / 1024.0,
            max as f64 / 1024.0,
            median as f64 / 1024.0,
            lo * 100.0,
            hi * 100.0
        );
        flat.push((what, lo, hi));
    }

    assert!(
        last.published - last.finished as i64 >= 2,
        "the sink kept up ({} published, {} finished): nothing backed up, raise SOAK_SINK_DELAY_S",
        last.published,
        last.finished
    );
    assert!(
        in_flight <= IN_FLIGHT_BOUND,
        "{in_flight} records in flight in the dataflow (bound {IN_FLIGHT_BOUND})"
    );
    for (what, lo, hi) in flat.into_iter().filter(|_| judge_rss) {
        assert!(
            lo >= -0.10 && hi <= 0.10,
            "{what}'s RSS is not flat within ±10 %: {:+.1} % / {:+.1} % of its median (see {out_path})",
            lo * 100.0,
            hi * 100.0
        );
    }
}
