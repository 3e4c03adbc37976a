//! The bad-input corpus (issue 8), through the real pieces: hostile messages on a real Kafka
//! chunks topic read by `horsestream dataflow` (2 workers, ONNX Runtime, TimescaleDB), broken
//! video files given to `horsestream ingest`, broken model files given to the dataflow at
//! start-up. Every case is generated here (no committed binaries); each must be refused with
//! its own clear reason, counted, and must not stop the good input around it. The table of
//! every case, with the ones other tests already cover, is in `docs/bad-input.md`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use horsestream_ingest::{IngestConfig, ingest_file};
use horsestream_proto::wire;
use horsestream_proto::{ChunkProcessed, Event, EventKind, FrameChunk};
use horsestream_sinks::Store;
use horsestream_sinks::kafka::{KafkaConfig, TopicProducer};
use prost::Message;

/// The sample video cut into chunks in-process (what `horsestream ingest` publishes).
fn sample_chunks(stream: &str) -> Vec<FrameChunk> {
    let mut chunks = Vec::new();
    ingest_file(
        &sample().0,
        stream,
        &IngestConfig::default(),
        &mut |c: FrameChunk| {
            chunks.push(c);
            Ok::<(), std::io::Error>(())
        },
    )
    .expect("ingesting the sample");
    assert_eq!(chunks.len(), 3, "the 20 s sample is 3 chunks");
    chunks
}

/// A small valid chunk of `stream` on the wire: 2 real JPEG frames of the sample.
fn small(stream: &str, sequence: u64, good: &FrameChunk) -> wire::FrameChunk {
    let mut c = good.clone();
    c.stream_id = stream.to_owned();
    c.sequence = sequence;
    c.frames.truncate(2);
    c.end_pts_us = c.start_pts_us + 200_000;
    wire::FrameChunk::from(c)
}

/// Deterministic noise.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `jpeg` with the size in its start-of-frame header replaced by `w`×`h`.
fn with_sof_size(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let at = out
        .windows(2)
        .position(|m| m[0] == 0xFF && (0xC0..=0xC2).contains(&m[1]))
        .expect("a JPEG has a start-of-frame marker");
    // marker (2), length (2), precision (1), height (2), width (2)
    out[at + 5..at + 7].copy_from_slice(&h.to_be_bytes());
    out[at + 7..at + 9].copy_from_slice(&w.to_be_bytes());
    out
}

/// One message of the corpus: its name, its bytes, and what must become of it: the stage that
/// refuses it and a piece of the reason, or `None` for a message that must be accepted.
struct Case {
    name: &'static str,
    payload: Vec<u8>,
    refused: Option<(&'static str, &'static str)>,
}

fn case(name: &'static str, w: wire::FrameChunk, stage: &'static str, why: &'static str) -> Case {
    Case {
        name,
        payload: w.encode_to_vec(),
        refused: Some((stage, why)),
    }
}

/// The hostile messages. `hostile` is a registered stream (so refusals come from the stage
/// under test, not from the registry); `good` is a real chunk to take frames from.
fn chunk_corpus(hostile: &str, good: &FrameChunk) -> Vec<Case> {
    let ok = |seq| small(hostile, seq, good);
    let frame = good.frames[0].data.clone();
    let mut cases = vec![
        Case {
            name: "zero-length message",
            payload: Vec::new(),
            refused: Some(("decode", "invalid stream_id: empty")),
        },
        Case {
            name: "random bytes",
            payload: noise(7, 4096),
            refused: Some(("decode", "not a valid protobuf message")),
        },
        Case {
            name: "truncated chunk (first half of a real one)",
            payload: {
                let b = ok(1).encode_to_vec();
                b[..b.len() / 2].to_vec()
            },
            refused: Some(("decode", "not a valid protobuf message")),
        },
        Case {
            name: "message of another schema (a live Event)",
            payload: Event {
                version: horsestream_proto::EVENT_SCHEMA_VERSION,
                emitted_at_us: 1,
                kind: EventKind::ChunkProcessed(ChunkProcessed {
                    stream_id: hostile.into(),
                    chunk_id: format!("{hostile}:0"),
                    sequence: 0,
                    frames: 2,
                    detections: 0,
                    max_horses_per_frame: 0,
                    start_pts_us: 0,
                    end_pts_us: 1,
                }),
            }
            .encode_to_vec(),
            refused: Some(("decode", "not a valid protobuf message")),
        },
    ];
    let mut w = ok(2);
    w.chunk_id = format!("{hostile}:999");
    cases.push(case(
        "chunk_id not matching stream and sequence",
        w,
        "decode",
        "invalid chunk_id",
    ));
    let mut w = ok(3);
    w.fps_num = 0;
    w.fps_den = 0;
    cases.push(case("frame rate 0/0", w, "decode", "invalid fps"));
    let mut w = ok(4);
    w.width = 100_000;
    w.height = 100_000;
    cases.push(case(
        "absurd resolution header (100000x100000)",
        w,
        "decode",
        "invalid frame size",
    ));
    let mut w = ok(5);
    w.height = 0;
    cases.push(case("zero height", w, "decode", "invalid frame size"));
    let mut w = ok(6);
    w.end_pts_us = w.start_pts_us - 1;
    cases.push(case("end before start", w, "decode", "invalid time range"));
    let mut w = ok(7);
    w.encoding = 7;
    cases.push(case(
        "unknown frame codec (enum value 7)",
        w,
        "decode",
        "invalid encoding",
    ));
    let mut w = ok(8);
    w.encoding = wire::FrameEncoding::Unspecified as i32;
    cases.push(case(
        "unspecified frame codec",
        w,
        "decode",
        "invalid encoding",
    ));
    let mut w = ok(9);
    w.frames.swap(0, 1);
    cases.push(case(
        "frames out of order",
        w,
        "decode",
        "invalid frame index",
    ));
    let mut w = ok(10);
    w.frames[1].data.clear();
    cases.push(case("empty frame", w, "decode", "invalid frame data"));
    let mut w = ok(11);
    w.encoding = wire::FrameEncoding::Rgb24 as i32;
    cases.push(case(
        "RGB24 frame of the wrong size",
        w,
        "decode",
        "invalid frame data",
    ));
    let mut w = ok(12);
    w.stream_id = "s".repeat(300_000);
    w.chunk_id = format!("{}:12", w.stream_id);
    cases.push(case(
        "oversized stream_id (300 kB)",
        w,
        "decode",
        "invalid stream_id",
    ));
    let mut w = ok(13);
    w.stream_id = format!("{hostile}\0x");
    w.chunk_id = format!("{}:13", w.stream_id);
    cases.push(case(
        "stream_id with a NUL byte",
        w,
        "decode",
        "invalid stream_id",
    ));
    let mut w = ok(14);
    w.stream_start_time_us = i64::MAX;
    cases.push(case(
        "capture clock at i64::MAX (overflows start + pts)",
        w,
        "decode",
        "invalid stream_start_time_us",
    ));
    let mut w = ok(15);
    w.frames[1].pts_us = i64::MIN;
    cases.push(case(
        "frame pts at i64::MIN",
        w,
        "decode",
        "invalid frame pts",
    ));
    let mut w = ok(16);
    w.frames[0].capture_time_us = i64::MAX;
    cases.push(case(
        "frame capture time at i64::MAX",
        w,
        "decode",
        "invalid frame capture time",
    ));
    let mut w = ok(17);
    w.frames[0].data = noise(17, 5000);
    cases.push(case("frame that is not a JPEG", w, "inference", "bad JPEG"));
    let mut w = ok(18);
    w.frames[1].data = frame[..frame.len() / 3].to_vec();
    cases.push(case(
        "truncated JPEG frame (a third of it)",
        w,
        "inference",
        "bad JPEG: truncated",
    ));
    let mut w = ok(19);
    w.width = 640;
    w.height = 480;
    cases.push(case(
        "JPEG size not the chunk's (768x512 in a 640x480 chunk)",
        w,
        "inference",
        "JPEG is 768x512, chunk says 640x480",
    ));
    let mut w = ok(20);
    w.frames[0].data = with_sof_size(&frame, 60_000, 60_000);
    cases.push(case(
        "JPEG header claiming 60000x60000",
        w,
        "inference",
        "JPEG is 60000x60000, chunk says 768x512",
    ));
    let mut w = ok(21);
    w.frames[1].data = with_sof_size(&frame, 12_000, 12_000);
    cases.push(case(
        "JPEG header claiming 12000x12000 (under the decoder's memory limit)",
        w,
        "inference",
        "JPEG is 12000x12000, chunk says 768x512",
    ));
    cases.push(case(
        "chunk of an unregistered stream",
        small(&format!("{hostile}-unregistered"), 0, good),
        "store",
        "unknown stream",
    ));
    cases.push(case(
        "SQL injection in stream_id",
        small(&format!("{hostile}');DROP TABLE detections;--"), 0, good),
        "store",
        "unknown stream",
    ));
    cases
}

fn run_dataflow(k: &KafkaConfig, db: &str, group: &str) -> String {
    let mut args: Vec<String> = [
        "dataflow",
        "--workers",
        "2",
        "--until-end",
        "--database-url",
        db,
        "--group-id",
        group,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(topic_args(k));
    let out = horsestream(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "the dataflow must survive the corpus: {}",
        error_line(&out)
    );
    stdout(&out)
}

/// `dataflow done: R records, C chunks processed, F frames, D detections, E refused`.
fn summary_numbers(s: &str) -> Vec<u64> {
    let line = s
        .lines()
        .find(|l| l.starts_with("dataflow done:"))
        .unwrap_or_else(|| panic!("no summary in {s:?}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect()
}

#[test]
fn hostile_chunk_messages_are_refused_counted_and_good_chunks_still_processed() {
    let db = required_env("HORSESTREAM_DATABASE_URL");
    let name = unique("badin");
    let k = fresh_topics(&name);
    let good_stream = name.clone();
    let hostile = format!("{name}-h");
    register(&db, &good_stream);
    register(&db, &hostile);
    let good = sample_chunks(&good_stream);
    let corpus = chunk_corpus(&hostile, &good[0]);
    assert!(corpus.len() >= 24, "{}", corpus.len());

    // Everything on the good stream's key (one partition, one order): half the corpus, the
    // good chunks with a duplicate of chunk 1, the other half.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = TopicProducer::new(&k, &k.chunks_topic).unwrap();
    let send = |bytes: &[u8]| rt.block_on(producer.send(&good_stream, bytes)).unwrap();
    let mut at: BTreeMap<(i32, i64), &Case> = BTreeMap::new();
    let (first, second) = corpus.split_at(corpus.len() / 2);
    for c in first {
        at.insert(send(&c.payload), c);
    }
    for (i, g) in good.iter().enumerate() {
        send(&g.encode_to_vec());
        if i == 1 {
            send(&g.encode_to_vec()); // duplicated message: stored once
        }
    }
    for c in second {
        at.insert(send(&c.payload), c);
    }
    drop(producer);

    let summary = summary_numbers(&run_dataflow(&k, &db, &format!("{name}-group")));
    let refused: Vec<&&Case> = at.values().filter(|c| c.refused.is_some()).collect();
    // records, chunks processed, frames, detections, refused
    assert_eq!(
        summary[0],
        (corpus.len() + good.len() + 1) as u64,
        "records read"
    );
    assert_eq!(summary[4], refused.len() as u64, "refused, as counted");

    // The good stream is complete: 3 chunks, 220 frames, each with its horses.
    let frames = stored(&db, &good_stream);
    assert_eq!(frames.len(), 220, "every good frame stored once");
    assert!(frames.iter().all(|f| !f.boxes.is_empty()));
    assert!(stored(&db, &hostile).is_empty(), "no hostile chunk stored");

    // One error row per refused message, at its position, from the expected stage with the
    // expected reason.
    let store = rt.block_on(Store::connect(&db)).unwrap();
    let errors = rt.block_on(store.chunk_errors()).unwrap();
    let mut failures = Vec::new();
    for ((partition, offset), c) in &at {
        let Some((stage, why)) = c.refused else {
            continue;
        };
        let found: Vec<_> = errors
            .iter()
            .filter(|e| {
                e.source == k.chunks_topic && (e.partition, e.offset) == (*partition, *offset)
            })
            .collect();
        match found.as_slice() {
            [e] if e.stage == stage && e.reason.contains(why) && !e.reason.contains('\n') => {}
            other => failures.push(format!(
                "{}: want one {stage} error with {why:?}, got {other:?}",
                c.name
            )),
        }
    }
    let ours = errors.iter().filter(|e| e.source == k.chunks_topic).count();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ours, refused.len(), "one error row per refused message");
}

/// Video files the ingest must refuse with one line naming the file and the reason (the
/// text, empty and half files are `tests/spine.rs`'s; missing, WAV and truncated faststart
/// files are `ingest/tests/bad_input.rs`'s).
fn bad_videos(dir: &Path) -> Vec<(&'static str, PathBuf, &'static str)> {
    let sample = std::fs::read(&sample().0).unwrap();
    let mut out = Vec::new();

    // The H.264 sample entry renamed to a codec nobody has.
    let mut unknown = sample.clone();
    let stsd = unknown
        .windows(4)
        .position(|w| w == b"stsd")
        .expect("an mp4 has sample descriptions");
    let at = stsd
        + unknown[stsd..]
            .windows(4)
            .position(|w| w == b"avc1")
            .expect("the sample is H.264");
    unknown[at..at + 4].copy_from_slice(b"hrs9");
    let p = dir.join("unknown-codec.mp4");
    std::fs::write(&p, unknown).unwrap();
    out.push(("unknown codec (sample entry `hrs9`)", p, "no decoder"));

    // A raw YUV4MPEG stream whose header claims 100000x100000 frames.
    let p = dir.join("giant.y4m");
    let mut y4m = b"YUV4MPEG2 W100000 H100000 F10:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(noise(3, 64 * 1024));
    std::fs::write(&p, y4m).unwrap();
    out.push((
        "absurd resolution header (Y4M 100000x100000)",
        p,
        "not a media file",
    ));

    // A Y4M header and no frame.
    let p = dir.join("header-only.y4m");
    std::fs::write(&p, b"YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg\n").unwrap();
    // The reason reads "truncated: video data ends at 0.000 s but the container says 0.000 s".
    out.push(("header without frames (Y4M)", p, "holds no frame"));

    // The sample's media data overwritten with noise from 10 % on: the index is intact, the
    // H.264 inside is garbage.
    let mut corrupt = sample.clone();
    let mdat = corrupt
        .windows(4)
        .position(|w| w == b"mdat")
        .expect("an mp4 has media data");
    let from = mdat + 8 + (corrupt.len() - mdat) / 10;
    let to = corrupt.len().min(from + (corrupt.len() - mdat) * 8 / 10);
    let garbage = noise(11, to - from);
    corrupt[from..to].copy_from_slice(&garbage);
    let p = dir.join("corrupt-mdat.mp4");
    std::fs::write(&p, corrupt).unwrap();
    out.push((
        "corrupt H.264 in an intact container",
        p,
        "corrupt video data",
    ));

    // A directory named like a video.
    let p = dir.join("folder.mp4");
    std::fs::create_dir(&p).unwrap();
    out.push(("a directory", p, "folder.mp4"));
    out
}

#[test]
fn ingest_refuses_broken_videos_with_one_line_and_publishes_nothing() {
    let k = fresh_topics(&unique("badvideo"));
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (what, file, reason) in bad_videos(dir.path()) {
        let path = file.display().to_string();
        let mut args: Vec<String> = ["ingest", "--input", &path, "--stream-id", "badvideo"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(topic_args(&k));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_horsestream"))
            .args(&args)
            .env("HORSESTREAM_LOG", "error")
            .env_remove("HORSESTREAM_DATABASE_URL")
            .output()
            .unwrap();
        let line = error_line(&out);
        eprintln!("{what}: {:?} {line}", out.status.code());
        if out.status.success() || !line.contains(&path) || !line.contains(reason) {
            failures.push(format!("{what}: {:?} {line:?}", out.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let consumer: rdkafka::consumer::BaseConsumer =
        k.client_config().set("group.id", "w").create().unwrap();
    use rdkafka::consumer::Consumer;
    for p in 0..k.partitions {
        let (_, high) = consumer
            .fetch_watermarks(&k.chunks_topic, p, std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(high, 0, "partition {p} received a chunk");
    }
}

/// Model files the dataflow must refuse at start-up, naming the file (the wrong-signature and
/// wrong-digest cases are `tests/spine.rs`'s and `models/tests/real_models.rs`'s).
#[test]
fn dataflow_refuses_broken_model_files_at_start_up() {
    let models = PathBuf::from(required_env("HORSESTREAM_MODEL_DIR"));
    let yolox = std::fs::read(models.join("yolox_nano.onnx")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated ONNX file",
            yolox[..yolox.len() / 2].to_vec(),
            "yolox_nano.onnx",
        ),
        (
            "text file named .onnx",
            b"ir_version: 7\nthis is not a protobuf model\n".repeat(20),
            "yolox_nano.onnx",
        ),
        ("zero-byte model file", Vec::new(), "yolox_nano.onnx"),
        ("random bytes", noise(5, 100_000), "yolox_nano.onnx"),
    ];
    let mut failures = Vec::new();
    for (what, bytes, names) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("yolox_nano.onnx"), &bytes).unwrap();
        std::os::unix::fs::symlink(
            models.join("reid_mobilenetv2.onnx"),
            dir.path().join("reid_mobilenetv2.onnx"),
        )
        .unwrap();
        // The manifest vouches for the broken file's digest, so the load itself must refuse it.
        let digest = sha256_hex(&bytes);
        let manifest = horsestream_models::DEFAULT_MANIFEST.replacen(
            "1c0f404d267fc5e0c173f160a61f599b80dade2be362aa45856b244e5f00c38e",
            &digest,
            1,
        );
        let path = dir.path().join("manifest.toml");
        std::fs::write(&path, manifest).unwrap();
        let out = horsestream(&[
            "dataflow",
            "--database-url",
            "postgres://unused.invalid/none",
            "--model-dir",
            dir.path().to_str().unwrap(),
            "--manifest",
            path.to_str().unwrap(),
        ]);
        let line = error_line(&out);
        if out.status.success() || !line.contains(names) || line.contains("panicked") {
            failures.push(format!("{what}: {line:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
