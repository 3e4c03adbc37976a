//! Scaling of the dataflow across timely processes: the same chunks (four streams of the
//! sample video, ingested once into fresh topics) processed by 1 process × 1 worker and by 2
//! processes × 1 worker forming one timely cluster over loopback, each into a fresh
//! TimescaleDB database, in one run. Every session has one intra-op thread, so one worker
//! uses about one core: on this 2-core machine the second process can at most double the
//! throughput (issue 7's goal: ≥ 1.8×). For reference, 1 process × 2 workers (the same two
//! cores inside one process) is measured too.
//!
//! Run: `eval "$(bash scripts/services.sh env)" && cargo bench --bench scaling`
//! (needs the services of `scripts/services.sh start`, ORT_DYLIB_PATH and
//! HORSESTREAM_MODEL_DIR). A documented harness rather than criterion: each configuration
//! is one run of tens of seconds. Measure on an otherwise idle machine.
//!
//! Throughput is frames / wall time from the processes' start to their end (`--until-end`),
//! model loading and cluster forming included (about 2 s of each run). The streams are named
//! so that the stream exchange gives each of two workers two of them
//! (`horsestream_dataflow::shard::route`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use horsestream_dataflow::shard::route;
use horsestream_ingest::{SampleSpec, make_sample_video};

const BIN: &str = env!("CARGO_BIN_EXE_horsestream");
const STREAMS: usize = 4;

fn main() {
    horsestream_ingest::set_ffmpeg_log_level(horsestream_ingest::FfmpegLogLevel::Error);
    let brokers = env("HORSESTREAM_KAFKA_BROKERS");
    let base_db = env("HORSESTREAM_DATABASE_URL");
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("sample.mp4");
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/media/horses.jpg");
    let photo = std::env::var("HORSESTREAM_SAMPLE_PHOTO").map_or(photo, Into::into);
    make_sample_video(&photo, &video, &SampleSpec::default()).expect("sample video");

    // Four streams, two routed to each of two workers.
    let tag = format!("scaling-{}", std::process::id());
    let mut streams = Vec::new();
    for (i, parity) in (0..).zip([0, 0, 1, 1]) {
        let mut n = 0;
        let id = loop {
            let id = format!("{tag}-{i}-{n}");
            if route(id.as_bytes()) % 2 == parity {
                break id;
            }
            n += 1;
        };
        streams.push(id);
    }
    let topics = vec![
        "--brokers".to_owned(),
        brokers,
        "--chunks-topic".into(),
        format!("{tag}.chunks"),
        "--events-topic".into(),
        format!("{tag}.events"),
        "--partitions".into(),
        "4".into(),
    ];
    for s in &streams {
        let mut a = vec![
            "ingest",
            "--input",
            video.to_str().unwrap(),
            "--stream-id",
            s,
        ];
        a.extend(topics.iter().map(String::as_str));
        run(&a);
    }
    println!("input: {STREAMS} streams of the 20 s sample (768x512, 10 fps, 3 chunks each)");

    let mut results = Vec::new();
    for (label, processes, workers) in [
        ("1 process x 1 worker", 1usize, 1usize),
        ("2 processes x 1 worker", 2, 1),
        ("1 process x 2 workers", 1, 2),
    ] {
        let db = fresh_database(&base_db, &format!("{tag}-{processes}-{workers}"));
        for s in &streams {
            run(&[
                "stream",
                "add",
                "--database-url",
                &db,
                "--id",
                s,
                "--url",
                video.to_str().unwrap(),
            ]);
        }
        let hostfile = dir.path().join(format!("hosts-{processes}-{workers}"));
        let ports: Vec<u16> = (0..processes).map(|_| free_port()).collect();
        std::fs::write(
            &hostfile,
            ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}\n"))
                .collect::<String>(),
        )
        .expect("hostfile");
        let group = format!("{tag}-{processes}-{workers}");
        let t = Instant::now();
        let children: Vec<Child> = (0..processes)
            .map(|p| {
                let mut a: Vec<String> = [
                    "dataflow",
                    "--until-end",
                    "--workers",
                    &workers.to_string(),
                    "--intra-threads",
                    "1",
                    "--database-url",
                    &db,
                    "--group-id",
                    &group,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                if processes > 1 {
                    a.extend([
                        "--processes".into(),
                        processes.to_string(),
                        "--process".into(),
                        p.to_string(),
                        "--hostfile".into(),
                        hostfile.display().to_string(),
                    ]);
                }
                a.extend(topics.iter().cloned());
                Command::new(BIN)
                    .args(&a)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("starting horsestream dataflow")
            })
            .collect();
        let mut processed = 0u64;
        for child in children {
            let out = child.wait_with_output().expect("dataflow");
            assert!(
                out.status.success(),
                "{label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // "dataflow done: N records, N chunks processed, N frames, …" per process.
            processed += String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| {
                    let l = l.strip_prefix("dataflow done:")?;
                    l.split(',')
                        .find_map(|f| f.trim().strip_suffix(" frames")?.parse().ok())
                })
                .unwrap_or(0);
        }
        let secs = t.elapsed().as_secs_f64();
        let fps = processed as f64 / secs;
        println!("{label:24} {processed} frames in {secs:5.1} s: {fps:6.1} frames/s");
        results.push((label, fps));
        drop_database(&base_db, &db);
    }
    println!(
        "2 processes / 1 process: {:.2}x (goal >= 1.8x); 1 process x 2 workers / 1 x 1: {:.2}x",
        results[1].1 / results[0].1,
        results[2].1 / results[0].1
    );
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: `eval \"$(bash scripts/services.sh env)\"` first")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A new database next to `base` (same server), for one configuration's rows.
fn fresh_database(base: &str, name: &str) -> String {
    let name = name.replace('-', "_");
    let (server, _) = base.rsplit_once('/').expect("a database URL with a path");
    psql(
        &format!("{server}/postgres"),
        &format!("CREATE DATABASE {name}"),
    );
    format!("{server}/{name}")
}

fn drop_database(base: &str, url: &str) {
    let (server, _) = base.rsplit_once('/').expect("a database URL with a path");
    let (_, name) = url.rsplit_once('/').expect("a database URL with a path");
    psql(
        &format!("{server}/postgres"),
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

fn psql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool = sqlx::PgPool::connect(url).await.expect("connecting");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("running horsestream");
    assert!(
        out.status.success(),
        "horsestream {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
