//! `horsestream replay`: historical chunks of one stream, chosen by time, through the same
//! dataflow, give the same rows as the live run; a narrower range gives exactly its chunks.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use horsestream_proto::FrameChunk;
use horsestream_sinks::FrameRow;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap()
        .to_rfc3339()
}

#[test]
fn replay_by_time_matches_the_live_run() {
    let (name, k) = ingested_sample("replay");
    // Another stream on the same topic, which a replay of `name` must leave out.
    let other = format!("{name}-other");
    let video = sample().0.clone();
    run_ok(
        &[
            "ingest",
            "--input",
            video.to_str().unwrap(),
            "--stream-id",
            &other,
        ],
        &k,
    );

    // The stream's wall-clock start, from its first chunk on the topic.
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("peek"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[k.chunks_topic.as_str()]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let start_us = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no chunk of {name} on the topic"
        );
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let c = FrameChunk::decode(m.unwrap().payload().unwrap()).unwrap();
        if c.stream_id == name {
            break c.stream_start_time_us;
        }
    };
    drop(consumer);

    let dir = tempfile::tempdir().unwrap();
    let store = |n: &str| {
        let url = format!("sqlite://{}", dir.path().join(n).display());
        register(&url, &name);
        url
    };

    let live = store("live.db");
    run_ok(
        &[
            "dataflow",
            "--until-end",
            "--database-url",
            &live,
            "--group-id",
            &name,
        ],
        &k,
    );
    let live_rows = stored(&live, &name);
    assert_eq!(live_rows.len(), 220);
    // The detector's own threshold: boxes below it are candidates (`low_score_threshold`).
    let threshold = f64::from(
        horsestream_models::Manifest::embedded()
            .get("yolox_nano")
            .unwrap()
            .detection
            .as_ref()
            .unwrap()
            .score_threshold,
    );

    let replay = |db: &str, from_s: i64, to_s: i64| {
        let (from, to) = (
            rfc3339(start_us + from_s * 1_000_000),
            rfc3339(start_us + to_s * 1_000_000),
        );
        run_ok(
            &[
                "replay",
                "--stream",
                &name,
                "--from",
                &from,
                "--to",
                &to,
                "--database-url",
                db,
            ],
            &k,
        );
    };

    // The whole stream: the same rows, and nothing of the other stream.
    let all = store("all.db");
    replay(&all, 0, 20);
    assert_eq!(stored(&all, &name), live_rows);
    assert_eq!(
        analysis(&all, &name),
        analysis(&live, &name),
        "the replay derives the live run's horses and gait"
    );
    assert!(
        stored(&all, &other).is_empty(),
        "the other stream was replayed"
    );

    // 12–15 s lies in chunk 1 ([9, 19) s) only.
    let chunk1: Vec<FrameRow> = live_rows
        .iter()
        .filter(|f| f.chunk_id == format!("{name}:1"))
        .cloned()
        .collect();
    assert_eq!(chunk1.len(), 100);
    let rows = |rows: &[FrameRow], all: bool| -> Vec<(String, i32, Vec<serde_json::Value>)> {
        rows.iter()
            .map(|f| {
                let boxes = f
                    .boxes
                    .iter()
                    .filter(|b| all || b["confidence"].as_f64().unwrap() >= threshold)
                    .cloned()
                    .collect();
                (f.chunk_id.clone(), f.frame_index, boxes)
            })
            .collect()
    };
    // Into a store that has chunk 0's checkpoint (a copy of the live one), the replay picks
    // up the tracks chunk 0 left and stores exactly the live run's rows for chunk 1.
    let resumed = dir.path().join("resumed.db");
    for suffix in ["", "-wal", "-shm"] {
        let from = dir.path().join(format!("live.db{suffix}"));
        if from.exists() {
            std::fs::copy(from, dir.path().join(format!("resumed.db{suffix}"))).unwrap();
        }
    }
    let resumed = format!("sqlite://{}", resumed.display());
    replay(&resumed, 12, 15);
    assert_eq!(stored(&resumed, &name), live_rows);
    // Into an empty store it starts without tracks: every detection is the live run's, but a
    // low-score candidate is kept only as the continuation of a track, so those that
    // continued a track from chunk 0 in the live run may be missing.
    let part = store("part.db");
    replay(&part, 12, 15);
    let part_rows = stored(&part, &name);
    assert_eq!(
        rows(&part_rows, false),
        rows(&chunk1, false),
        "a replay of 12–15 s stores chunk 1's detections"
    );
    let kept = |rows: &[FrameRow]| rows.iter().map(|f| f.boxes.len()).sum::<usize>();
    assert!(kept(&part_rows) <= kept(&chunk1));
}
