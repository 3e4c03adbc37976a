//! Detection rows/s into TimescaleDB through the sink (`Store::write_chunk`: validation,
//! one UNNEST insert with `ON CONFLICT DO NOTHING` and the `video_chunks` row, one
//! transaction per chunk) beside `psql \copy` of the same rows in the same run — the
//! fastest a client can load them. Each iteration writes fresh keys (a new stream id), so
//! neither side measures the conflict path; the rows are deleted at the end.
//!
//! One iteration is 40 chunks of 100 frames (10 s at 10 fps) × 5 horses = 20 000 rows.
//!
//! Needs the services (`scripts/services.sh start`) and `psql` on PATH:
//!
//! ```sh
//! eval "$(scripts/services.sh env)"
//! CARGO_TARGET_DIR=/root/.cache/horsestream/target cargo bench -p horsestream-sinks --bench sink_rows
//! ```
//!
//! The last line printed is the ratio sink / psql (issue 5's goal: ≥ 0.8).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use horsestream_proto::{BoundingBox, Detection, FrameResult, ProcessedChunk};
use horsestream_sinks::{NewStream, Store};

const CHUNKS: u64 = 40;
const FRAMES: usize = 100;
const HORSES: usize = 5;
const ROWS: u64 = CHUNKS * (FRAMES * HORSES) as u64;

static NEXT: AtomicU64 = AtomicU64::new(0);
/// (rows, seconds) measured per side, for the closing ratio.
static TOTALS: Mutex<[(u64, f64); 2]> = Mutex::new([(0, 0.0); 2]);

fn prefix() -> String {
    format!("bench-sink-rows-{}-", std::process::id())
}

fn fresh_stream() -> String {
    format!("{}{}", prefix(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn chunks(stream_id: &str) -> Vec<ProcessedChunk> {
    let start_us = chrono::Utc::now().timestamp_micros();
    (0..CHUNKS)
        .map(|sequence| ProcessedChunk {
            stream_id: stream_id.into(),
            sequence,
            start_pts_us: sequence as i64 * 10_000_000,
            end_pts_us: (sequence as i64 + 1) * 10_000_000,
            stream_start_time_us: start_us,
            frame_width: 0,
            frame_height: 0,
            frames: (0..FRAMES)
                .map(|i| {
                    let pts_us = sequence as i64 * 10_000_000 + i as i64 * 100_000;
                    FrameResult {
                        index: i as u32,
                        pts_us,
                        capture_time_us: start_us + pts_us,
                        detections: (0..HORSES)
                            .map(|k| Detection {
                                frame_index: i as u32,
                                pts_us,
                                class_id: 17,
                                confidence: 0.5 + k as f32 * 0.1,
                                bbox: BoundingBox {
                                    x: 100.0 * k as f32 + i as f32,
                                    y: 240.5,
                                    w: 180.25,
                                    h: 120.75,
                                },
                                track_id: Some(k as u64),
                                keypoints: Vec::new(),
                                interpolated: false,
                                candidate: false,
                            })
                            .collect(),
                        embeddings: Vec::new(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The same rows as `write_chunk` stores, in COPY text format.
fn copy_text(chunks: &[ProcessedChunk]) -> String {
    let mut out = String::new();
    for c in chunks {
        let chunk_id = c.chunk_id();
        for f in &c.frames {
            let t = chrono::DateTime::from_timestamp_micros(f.capture_time_us)
                .unwrap()
                .to_rfc3339();
            for (i, d) in f.detections.iter().enumerate() {
                let bbox = serde_json::json!({
                    "x": d.bbox.x, "y": d.bbox.y, "w": d.bbox.w, "h": d.bbox.h,
                    "confidence": d.confidence,
                });
                let track = d.track_id.map_or("\\N".to_string(), |t| t.to_string());
                out.push_str(&format!(
                    "{t}\t{}\t{chunk_id}\t{}\t{i}\t{}\t{}\t{}\t{bbox}\t{track}\n",
                    c.stream_id, f.index, f.pts_us, d.class_id, d.confidence
                ));
            }
        }
    }
    out
}

fn add(side: usize, rows: u64, took: Duration) {
    let mut t = TOTALS.lock().unwrap();
    t[side].0 += rows;
    t[side].1 += took.as_secs_f64();
}

fn bench(c: &mut Criterion) {
    let url = std::env::var("HORSESTREAM_DATABASE_URL")
        .expect("HORSESTREAM_DATABASE_URL is not set: eval \"$(scripts/services.sh env)\"");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::connect(&url)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut group = c.benchmark_group("sink_rows");
    group
        .throughput(Throughput::Elements(ROWS))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));

    group.bench_function("write_chunk", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let stream = fresh_stream();
                // Results are stored only for registered streams (not timed).
                rt.block_on(store.create_stream(&NewStream {
                    id: stream.clone(),
                    name: stream.clone(),
                    source_url: "bench".into(),
                    source_kind: "file".into(),
                    credentials_secret: None,
                    calibration: None,
                    zones: Vec::new(),
                    enabled: true,
                }))
                .unwrap();
                let batch = chunks(&stream);
                let start = Instant::now();
                rt.block_on(async {
                    for c in &batch {
                        store.write_chunk(c).await.unwrap();
                    }
                });
                took += start.elapsed();
            }
            add(0, ROWS * iters, took);
            took
        })
    });

    group.bench_function("psql_copy", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let path = dir.path().join("rows.tsv");
                let mut file = std::fs::File::create(&path).unwrap();
                file.write_all(copy_text(&chunks(&fresh_stream())).as_bytes())
                    .unwrap();
                drop(file);
                let copy = format!(
                    "\\copy detections (time, stream_id, chunk_id, frame_index, det_index, \
                     pts_us, class_id, confidence, bbox, track_id) FROM '{}'",
                    path.display()
                );
                let start = Instant::now();
                let status = std::process::Command::new("psql")
                    .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", &copy])
                    .status()
                    .expect("psql is on PATH");
                took += start.elapsed();
                assert!(status.success(), "psql \\copy failed");
            }
            add(1, ROWS * iters, took);
            took
        })
    });
    group.finish();

    let pool = match &store {
        Store::Postgres(pg) => pg.pool().clone(),
        Store::Sqlite(_) => unreachable!("the bench needs PostgreSQL"),
    };
    rt.block_on(async {
        for table in ["detections", "video_chunks", "streams"] {
            let column = if table == "streams" {
                "id"
            } else {
                "stream_id"
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {column} LIKE $1"
            )))
            .bind(format!("{}%", prefix()))
            .execute(&pool)
            .await
            .unwrap();
        }
    });

    let t = TOTALS.lock().unwrap();
    let rate = |(rows, secs): (u64, f64)| rows as f64 / secs;
    let (sink, psql) = (rate(t[0]), rate(t[1]));
    println!(
        "sink_rows: write_chunk {sink:.0} rows/s, psql \\copy {psql:.0} rows/s, ratio {:.2}",
        sink / psql
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
