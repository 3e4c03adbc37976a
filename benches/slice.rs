//! End-to-end frames/s of the spine's slice, and in the same run the frames/s of bare ONNX
//! Runtime inference on the same frames, so the pipeline's overhead is visible.
//!
//! Run: `eval "$(bash scripts/services.sh env)" && cargo bench --bench slice`
//! (release build; needs ORT_DYLIB_PATH and HORSESTREAM_MODEL_DIR; with
//! HORSESTREAM_KAFKA_BROKERS and HORSESTREAM_DATABASE_URL set — `scripts/services.sh start` —
//! it also measures the slice through Kafka and TimescaleDB). A documented harness rather
//! than criterion: one end-to-end run takes seconds and is itself the sample.
//!
//! Measured:
//! - `demo`: `horsestream demo` (ingest → in-process bus → 2 timely workers → SQLite), frames
//!   processed / wall time as the demo reports it;
//! - `kafka`: `horsestream ingest` then `horsestream dataflow --workers 2 --until-end` on
//!   fresh topics into TimescaleDB, frames / (ingest + dataflow wall time), process start-up
//!   included;
//! - `dataflow alone`: the same dataflow run's frames / its own wall time (the chunks already
//!   on Kafka, as a dataflow pod finds them; process start-up and model loading included);
//! - `replay`: `horsestream replay` of the same chunks from the topic through the same
//!   dataflow into a fresh SQLite store, as a multiple of real time (video seconds / wall
//!   seconds, process start-up included);
//! - `ort`: `Detector::detect_tensor` alone on the letterboxed frames of the same chunks, batch
//!   1 and batch 8, one session with default threads;
//! - `ort (bare detector + re-ID)`: both models the slice runs, on the same frames and on the
//!   crops of their detections, batched as the dataflow batches them, sessions' runs only —
//!   the baseline of issue 4's "end to end vs bare inference of the same models".

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use horsestream_dataflow::operators::detect::frame_image;
use horsestream_ingest::{IngestConfig, SampleSpec, ingest_file, make_sample_video};
use horsestream_models::{ModelRegistry, ModelsConfig};
use horsestream_proto::FrameChunk;

const BIN: &str = env!("CARGO_BIN_EXE_horsestream");

fn main() {
    horsestream_ingest::set_ffmpeg_log_level(horsestream_ingest::FfmpegLogLevel::Error);
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("sample.mp4");
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/media/horses.jpg");
    let photo = std::env::var("HORSESTREAM_SAMPLE_PHOTO").map_or(photo, Into::into);
    make_sample_video(&photo, &video, &SampleSpec::default()).expect("sample video");

    let mut chunks: Vec<FrameChunk> = Vec::new();
    ingest_file(&video, "bench", &IngestConfig::default(), &mut |c| {
        chunks.push(c);
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("ingest");
    let frames: usize = chunks.iter().map(|c| c.frames.len()).sum();
    // Frames of the video itself (the overlap seconds counted once).
    let mut pts: Vec<i64> = chunks
        .iter()
        .flat_map(|c| c.frames.iter().map(|f| f.pts_us))
        .collect();
    pts.sort_unstable();
    pts.dedup();
    let frames_unique = pts.len();
    println!(
        "sample: {} chunks, {frames} frames at 10 fps, 768x512",
        chunks.len()
    );

    // The slice, in-process.
    let store = format!("sqlite://{}", dir.path().join("bench.db").display());
    let out = run(&["demo", video.to_str().unwrap(), "--store", &store]);
    let demo_fps = out
        .lines()
        .find(|l| l.trim_start().starts_with("throughput"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("demo prints its throughput");
    println!("demo (in-process bus, SQLite, 2 workers):     {demo_fps:7.1} frames/s");

    // The slice through Kafka and TimescaleDB, when the services are up.
    let mut dataflow_fps = None;
    if let (Ok(brokers), Ok(db)) = (
        std::env::var("HORSESTREAM_KAFKA_BROKERS"),
        std::env::var("HORSESTREAM_DATABASE_URL"),
    ) {
        let name = format!("bench-{}", std::process::id());
        let topics = [
            "--brokers".to_owned(),
            brokers,
            "--chunks-topic".into(),
            format!("{name}.chunks"),
            "--events-topic".into(),
            format!("{name}.events"),
        ];
        // Results are stored only for registered streams.
        register(&db, &name, &video);
        let t = Instant::now();
        let mut a = vec![
            "ingest",
            "--input",
            video.to_str().unwrap(),
            "--stream-id",
            &name,
        ];
        a.extend(topics.iter().map(String::as_str));
        run(&a);
        let ingest_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut a = vec![
            "dataflow",
            "--workers",
            "2",
            "--until-end",
            "--database-url",
            &db,
            "--group-id",
            &name,
        ];
        a.extend(topics.iter().map(String::as_str));
        run(&a);
        let dataflow_s = t.elapsed().as_secs_f64();
        println!(
            "kafka (ingest {ingest_s:.1} s + dataflow {dataflow_s:.1} s, TimescaleDB): {:7.1} frames/s",
            frames as f64 / (ingest_s + dataflow_s)
        );
        println!(
            "dataflow alone (chunks already on Kafka, start-up included): {:7.1} frames/s",
            frames as f64 / dataflow_s
        );
        dataflow_fps = Some(frames as f64 / dataflow_s);

        // The same chunks replayed from the topic through the same dataflow into a fresh
        // store (so every result is written again), as a multiple of real time.
        let replayed = format!("sqlite://{}", dir.path().join("replay.db").display());
        register(&replayed, &name, &video);
        let t = Instant::now();
        let mut a = vec![
            "replay",
            "--stream",
            &name,
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
            "--workers",
            "2",
            "--database-url",
            &replayed,
        ];
        a.extend(topics.iter().map(String::as_str));
        run(&a);
        let replay_s = t.elapsed().as_secs_f64();
        let video_s = frames_unique as f64 / 10.0;
        println!(
            "replay ({video_s:.0} s of video in {replay_s:.1} s, process start-up included): {:5.2}x real time",
            video_s / replay_s
        );
    } else {
        println!("kafka: skipped (HORSESTREAM_KAFKA_BROKERS / HORSESTREAM_DATABASE_URL not set)");
    }

    // Bare inference on the same frames.
    let registry = ModelRegistry::from_config(&ModelsConfig::default()).expect("model registry");
    let mut detector = registry.detector("yolox_nano").expect("detector");
    let images: Vec<_> = chunks
        .iter()
        .flat_map(|c| {
            c.frames
                .iter()
                .map(move |f| frame_image(c, &f.data).expect("frame"))
        })
        .collect();
    for batch in [1usize, 8] {
        let tensors: Vec<_> = images
            .chunks(batch)
            .map(|b| detector.preprocess(b).0)
            .collect();
        detector.detect_tensor(tensors[0].view()).expect("warm-up");
        let t = Instant::now();
        for x in &tensors {
            detector.detect_tensor(x.view()).expect("inference");
        }
        let fps = images.len() as f64 / t.elapsed().as_secs_f64();
        println!("ort (bare detect_tensor, batch {batch}):           {fps:7.1} frames/s");
    }

    // Bare inference of both models the slice runs: the detector on batches of 8 frames and
    // the re-ID model on the crops of each batch's detections, batched as the dataflow does
    // (`pieces`). Only the sessions' runs are timed; preprocessing is done beforehand.
    let mut embedder = registry.embedder("reid_mobilenetv2").expect("re-ID model");
    let mut det_tensors = Vec::new();
    let mut reid_tensors = Vec::new();
    let mut crops_total = 0;
    for b in images.chunks(8) {
        let found = detector.detect(b).expect("detection");
        let crops: Vec<_> = b
            .iter()
            .zip(&found)
            .flat_map(|(image, ds)| ds.iter().map(|d| horsestream_models::crop(image, &d.bbox)))
            .collect();
        crops_total += crops.len();
        det_tensors.push(detector.preprocess(b).0);
        for piece in horsestream_models::pieces(crops.len()) {
            reid_tensors.push(embedder.preprocess(&crops[piece]));
        }
    }
    embedder
        .embed_tensor(reid_tensors[0].view())
        .expect("warm-up");
    let t = Instant::now();
    for x in &det_tensors {
        detector.detect_tensor(x.view()).expect("inference");
    }
    for x in &reid_tensors {
        embedder.embed_tensor(x.view()).expect("inference");
    }
    let bare_fps = images.len() as f64 / t.elapsed().as_secs_f64();
    println!(
        "ort (bare detector + re-ID of {crops_total} crops, batch 8): {bare_fps:7.1} frames/s"
    );
    println!(
        "end to end / bare inference of the same models: demo {:.2}x",
        demo_fps / bare_fps
    );
    if let Some(fps) = dataflow_fps {
        println!(
            "dataflow alone / bare inference of the same models: {:.2}x",
            fps / bare_fps
        );
    }
}

/// Registers stream `name` (source `video`) in the store at `db`.
fn register(db: &str, name: &str, video: &Path) {
    run(&[
        "stream",
        "add",
        "--database-url",
        db,
        "--id",
        name,
        "--url",
        video.to_str().unwrap(),
    ]);
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
