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
//! The 1 × 1 run also serves `/metrics`, scraped every 250 ms; its last scrape gives the
//! per-stage CPU cost per frame (operator latency and inference time sums over the frames
//! processed) that the capacity model in docs/capacity.md is built from.
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
use horsestream_proto::testing::free_port;

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
    let topics = [
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
        let metrics_port = (processes == 1 && workers == 1).then(free_port);
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
                if let Some(port) = metrics_port {
                    a.extend(["--metrics-listen".into(), format!("127.0.0.1:{port}")]);
                }
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
        // The last scrape before the process ends holds (nearly) all its work.
        let mut last_scrape = String::new();
        if let Some(port) = metrics_port {
            while t.elapsed() < std::time::Duration::from_secs(1200) {
                match scrape(port) {
                    Some(body) => last_scrape = body,
                    None if !last_scrape.is_empty() => break,
                    None => {}
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
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
        if !last_scrape.is_empty() {
            stage_costs(&last_scrape);
        }
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

/// `GET /metrics` of a local dataflow; `None` once it is gone (or before it listens).
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains("horsestream_").then_some(body)
}

/// Prints each operator's and each model's time per frame from a scrape's histogram sums.
fn stage_costs(scrape: &str) {
    let sum_of = |metric: &str| -> Vec<(String, f64)> {
        scrape
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(metric)?.strip_prefix("_sum{")?;
                let (labels, value) = rest.split_once("} ")?;
                let label = labels.split_once('=')?.1.trim_matches('"').to_owned();
                Some((label, value.trim().parse().ok()?))
            })
            .collect()
    };
    let frames: f64 = scrape
        .lines()
        .filter_map(|l| {
            l.strip_prefix("horsestream_stream_frames_in_total{")?
                .split_once("} ")?
                .1
                .trim()
                .parse::<f64>()
                .ok()
        })
        .sum();
    if frames == 0.0 {
        println!("  (no frames counted in the last scrape)");
        return;
    }
    println!("  per frame, from /metrics ({frames} frames counted at the last scrape):");
    for (op, secs) in sum_of("horsestream_operator_latency_seconds") {
        println!("    operator {op:10} {:7.2} ms", secs * 1e3 / frames);
    }
    for (model, secs) in sum_of("horsestream_inference_seconds") {
        println!("    inference {model:9} {:7.2} ms", secs * 1e3 / frames);
    }
}
