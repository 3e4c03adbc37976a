//! The vertical slice on the real services: the sample video through Kafka, the timely
//! dataflow with two workers, ONNX Runtime, and TimescaleDB; plus the bad-input cases.

mod common;

use std::time::{Duration, Instant};

use common::*;
use horsestream_ingest::{Fps, expected_chunks};
use horsestream_proto::{Event, EventKind};
use horsestream_sinks::Store;
use horsestream_sinks::kafka::{KafkaConfig, TopicProducer, ensure_topics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

fn kafka(prefix: &str) -> KafkaConfig {
    let mut k = KafkaConfig::new(required_env("HORSESTREAM_KAFKA_BROKERS"));
    k.chunks_topic = format!("{prefix}.chunks");
    k.events_topic = format!("{prefix}.events");
    k
}

fn run_dataflow(k: &KafkaConfig, db: &str, group: &str) {
    let mut args: Vec<String> = vec![
        "dataflow".into(),
        "--workers".into(),
        "2".into(),
        "--until-end".into(),
        "--database-url".into(),
        db.into(),
        "--group-id".into(),
        group.into(),
    ];
    args.extend(topic_args(k));
    let out = horsestream(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "dataflow failed: {}",
        error_line(&out)
    );
}

/// Every message on `topic`, read from the beginning until `want` arrived or 60 s passed.
/// Every message of `topic`: reads until it has `want` and then nothing new for 3 s.
fn read_topic(k: &KafkaConfig, topic: &str, want: usize) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = k
        .client_config()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline && (out.len() < want || last.elapsed() < Duration::from_secs(3))
    {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.unwrap().payload().unwrap_or_default().to_vec());
            last = Instant::now();
        }
    }
    out
}

#[test]
fn sample_video_through_kafka_timely_onnx_and_timescaledb() {
    let db = required_env("HORSESTREAM_DATABASE_URL");
    let name = unique("spine");
    let k = kafka(&name);
    let stream = name.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ensure_topics(&k)).unwrap();

    // A message that is not a chunk, on the stream's own partition, ahead of the real ones:
    // the dataflow must record it and go on to the valid chunks behind it.
    let producer = TopicProducer::new(&k, &k.chunks_topic).unwrap();
    let (bad_partition, bad_offset) = rt
        .block_on(producer.send(&stream, b"\x08\x96\x01 this is not a FrameChunk"))
        .unwrap();

    let (video, info) = sample();
    let mut args = vec![
        "ingest".to_owned(),
        "--input".into(),
        video.display().to_string(),
        "--stream-id".into(),
        stream.clone(),
    ];
    args.extend(topic_args(&k));
    let out = horsestream(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "ingest failed: {}", error_line(&out));

    register(&db, &stream);
    run_dataflow(&k, &db, &format!("{name}-group"));

    let (spans, total_frames) = expected_chunks(
        info.duration_us,
        Fps::new(10, 1),
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(
        (spans.len(), total_frames),
        (3, 220),
        "20 s at 10 fps, 10 s chunks, 1 s overlap"
    );

    let store = rt.block_on(Store::connect(&db)).unwrap();
    let frames = rt.block_on(store.frames(&stream)).unwrap();
    let chunk_ids: std::collections::BTreeSet<&str> =
        frames.iter().map(|f| f.chunk_id.as_str()).collect();
    assert_eq!(
        chunk_ids.len(),
        spans.len(),
        "one video_chunks row per chunk"
    );
    assert_eq!(frames.len() as u64, total_frames, "frames stored");
    let stored_boxes: usize = frames.iter().map(|f| f.boxes.len()).sum();

    // Every frame of the sample shows horses, so every frame must have detection rows.
    let empty: Vec<_> = frames.iter().filter(|f| f.boxes.is_empty()).collect();
    assert!(empty.is_empty(), "frames without detections: {empty:?}");

    // Frames that show the whole photo: at least 3 distinct horse boxes.
    let whole: Vec<_> = frames
        .iter()
        .filter(|f| {
            let pts = f.pts_us.unwrap();
            info.whole_photo_us.iter().any(|r| r.contains(&pts))
        })
        .collect();
    assert!(!whole.is_empty(), "the sample has whole-photo frames");
    for f in &whole {
        let mut centres: Vec<(i64, i64)> = f
            .boxes
            .iter()
            .map(|b| {
                let x = b["x"].as_f64().unwrap() + b["w"].as_f64().unwrap() / 2.0;
                let y = b["y"].as_f64().unwrap() + b["h"].as_f64().unwrap() / 2.0;
                ((x / 20.0) as i64, (y / 20.0) as i64)
            })
            .collect();
        centres.sort();
        centres.dedup();
        assert!(
            centres.len() >= 3,
            "frame {}:{} has {:?}",
            f.chunk_id,
            f.frame_index,
            f.boxes
        );
    }

    // DeepSORT with re-ID assigned tracks: several horses, and ids carried across the chunks.
    let mut tracks: Vec<i64> = frames
        .iter()
        .flat_map(|f| f.track_ids.iter().flatten().copied())
        .collect();
    tracks.sort();
    tracks.dedup();
    assert!(tracks.len() >= 3, "tracks {tracks:?}");
    let last_chunk = &frames.last().unwrap().chunk_id;
    let first_chunk = &frames[0].chunk_id;
    let in_chunk = |c: &String| -> std::collections::BTreeSet<i64> {
        frames
            .iter()
            .filter(|f| &f.chunk_id == c)
            .flat_map(|f| f.track_ids.iter().flatten().copied())
            .collect()
    };
    assert!(
        in_chunk(first_chunk)
            .intersection(&in_chunk(last_chunk))
            .count()
            >= 1,
        "no track survives from the first chunk to the last"
    );

    // The bad message is recorded with its position, and nothing else was refused.
    let errors: Vec<_> = rt
        .block_on(store.chunk_errors())
        .unwrap()
        .into_iter()
        .filter(|e| e.source == k.chunks_topic)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].partition, errors[0].offset),
        (bad_partition, bad_offset)
    );
    assert_eq!(errors[0].stage, "decode");

    // Per chunk, after its rows were committed: its summary, then its boxes; then one
    // update per horse seen and one per gait window that ended in it.
    let events: Vec<Event> = read_topic(&k, &k.events_topic, 2 * spans.len())
        .iter()
        .map(|b| Event::decode(b).unwrap())
        .collect();
    assert!(events.iter().all(|e| e.stream_id() == stream));
    let mut seqs = Vec::new();
    let mut boxes = 0;
    let mut metrics = 0;
    let mut horse_names = std::collections::BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::ChunkProcessed(c) => {
                seqs.push(c.sequence);
                let next = events.get(i + 1).map(|n| &n.kind);
                assert!(
                    matches!(next, Some(EventKind::DetectionUpdate(d)) if d.sequence == c.sequence),
                    "chunk {} is followed by its boxes, not {next:?}",
                    c.sequence
                );
            }
            EventKind::DetectionUpdate(d) => {
                for f in &d.frames {
                    for b in &f.boxes {
                        boxes += 1;
                        assert_eq!(b.horse.is_some(), b.track_id.is_some(), "{b:?}");
                    }
                }
            }
            EventKind::HorseUpdate(h) => {
                horse_names.insert(h.display_name.clone());
            }
            EventKind::MetricsUpdate(_) => metrics += 1,
            other => panic!("unexpected event {other:?}"),
        }
    }
    seqs.sort();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert_eq!(
        boxes, stored_boxes,
        "every stored box is in a detection:update"
    );
    let horses = rt.block_on(store.list_horses(&stream)).unwrap();
    assert!(!horses.is_empty());
    assert_eq!(
        horse_names,
        horses.iter().map(|h| h.display_name.clone()).collect(),
        "a horse:update for every stored horse"
    );
    let gait = rt.block_on(store.gait(&stream)).unwrap();
    assert!(!gait.is_empty());
    assert_eq!(
        metrics,
        gait.len(),
        "a metrics:update per stored gait window"
    );

    // Replaying the topic under a fresh group adds no rows.
    let before = rt.block_on(store.frames(&stream)).unwrap();
    run_dataflow(&k, &db, &format!("{name}-replay"));
    let after = rt.block_on(store.frames(&stream)).unwrap();
    assert_eq!(before, after, "a replay must not duplicate or change rows");
}

#[test]
fn ingest_refuses_bad_files_with_one_line_and_publishes_nothing() {
    let k = kafka(&unique("badfile"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ensure_topics(&k)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (file, reason) in bad_files(dir.path()) {
        let path = file.display().to_string();
        let mut args = vec!["ingest", "--input", &path, "--stream-id", "bad"];
        let topics = topic_args(&k);
        args.extend(topics.iter().map(String::as_str));
        let out = horsestream(&args);
        assert!(!out.status.success(), "{path} was accepted");
        let line = error_line(&out);
        assert!(
            line.contains(&path) && line.contains(reason),
            "{path}: {line:?}"
        );
    }
    let consumer: BaseConsumer = k.client_config().set("group.id", "w").create().unwrap();
    for p in 0..k.partitions {
        let (_, high) = consumer
            .fetch_watermarks(&k.chunks_topic, p, Duration::from_secs(10))
            .unwrap();
        assert_eq!(high, 0, "partition {p} received a chunk");
    }
}

#[test]
fn a_model_that_does_not_match_the_manifest_is_refused_at_start_up() {
    // The manifest's detector entry pointed at the re-ID model (with that file's true
    // digest), so the file check passes and the signature check must refuse it.
    let manifest = horsestream_models::DEFAULT_MANIFEST
        .replacen(
            "file = \"yolox_nano.onnx\"",
            "file = \"reid_mobilenetv2.onnx\"",
            1,
        )
        .replacen(
            "1c0f404d267fc5e0c173f160a61f599b80dade2be362aa45856b244e5f00c38e",
            "b0dfa69a6fd2749fb2cfe66e14dd3d554bec3a84f5ea3a60e7bcb8c8f7f6fdb5",
            1,
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.toml");
    std::fs::write(&path, manifest).unwrap();
    let out = horsestream(&[
        "dataflow",
        "--database-url",
        "postgres://unused.invalid/none",
        "--manifest",
        path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let line = error_line(&out);
    assert!(
        line.contains("[N,3,224,224]") && line.contains("[N,3,416,416]"),
        "the error names both signatures: {line}"
    );
}
