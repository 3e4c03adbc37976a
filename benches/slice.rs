//! End-to-end frames/s of the spine's slice, and in the same run the frames/s of bare ONNX
//! Runtime inference on the same frames, so the pipeline's overhead is visible.
//!
//! Run: `eval "$(bash scripts/services.sh env)" && cargo bench --bench slice`
//! (release build; needs ORT_DYLIB_PATH and HORSESTREAM_MODEL_DIR; with
//! HORSESTREAM_KAFKA_BROKERS and HORSESTREAM_DATABASE_URL set — `scripts/services.sh start` —
//! it also measures the slice through Kafka and TimescaleDB). A documented harness rather
//! than criterion: one end-to-end run takes seconds and is itself the sample.
//!
//! Two sample videos go through the slice: 20 s, and `HORSESTREAM_BENCH_SECONDS` (default
//! 120). Each run pays process start-up, model loading and joining the consumer group once,
//! about a second; a stream that runs for hours does not. So besides each run's frames / wall
//! time, the bench reports the **steady rate**: the long run's extra frames over its extra
//! seconds, start-up cancelled out. Bare inference is measured on the long video's frames.
//!
//! Measured (each on both videos unless said):
//! - `demo`: `horsestream demo` (ingest → in-process bus → 2 timely workers → SQLite), frames
//!   processed / wall time of the process;
//! - `kafka`: `horsestream ingest` then `horsestream dataflow --workers 2 --until-end` on
//!   fresh topics into TimescaleDB, frames / (ingest + dataflow wall time), process start-up
//!   included;
//! - `dataflow alone`: the same dataflow run's frames / its own wall time (the chunks already
//!   on Kafka, as a dataflow pod finds them; process start-up and model loading included);
//! - `replay` (long video): `horsestream replay` of the same chunks from the topic through the same
//!   dataflow into a fresh SQLite store, as a multiple of real time (video seconds / wall
//!   seconds, process start-up included);
//! - `ort` (long video): `Detector::detect_tensor` alone on the letterboxed frames of the same chunks, batch
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
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/media/horses.jpg");
    let photo = std::env::var("HORSESTREAM_SAMPLE_PHOTO").map_or(photo, Into::into);
    let seconds: u64 = std::env::var("HORSESTREAM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let services = match (
        std::env::var("HORSESTREAM_KAFKA_BROKERS"),
        std::env::var("HORSESTREAM_DATABASE_URL"),
    ) {
        (Ok(brokers), Ok(db)) => Some((brokers, db)),
        _ => {
            println!(
                "kafka: skipped (HORSESTREAM_KAFKA_BROKERS / HORSESTREAM_DATABASE_URL not set)"
            );
            None
        }
    };

    // The short video first: with the long one it gives the steady rate (below).
    let short = Sample::make(dir.path(), &photo, SHORT_SECONDS.min(seconds));
    let short_runs = Runs::measure(dir.path(), &short, services.as_ref(), false);
    let sample = Sample::make(dir.path(), &photo, seconds);
    let runs = Runs::measure(dir.path(), &sample, services.as_ref(), true);
    let chunks = sample.chunks;
    let frames = sample.frames;

    // Start-up (process, models, consumer group) is paid once per run; a stream that runs
    // for hours sees the rate at which further frames go through: the difference of the
    // two runs, frames over seconds.
    let steady = |long: f64, short: f64| {
        (frames > short_runs.frames).then(|| (frames - short_runs.frames) as f64 / (long - short))
    };
    let demo_fps = frames as f64 / runs.demo_s;
    let demo_steady = steady(runs.demo_s, short_runs.demo_s);
    let dataflow_steady = runs
        .dataflow_s
        .zip(short_runs.dataflow_s)
        .and_then(|(l, s)| steady(l, s));
    let dataflow_fps = runs.dataflow_s.map(|s| frames as f64 / s);

    // Bare inference on the same frames (the long video's). The inputs of a group of
    // frames are prepared outside the clock, then the group's session runs are timed back to
    // back, as a session busy with nothing else runs them (groups bound the memory).
    let registry = ModelRegistry::from_config(&ModelsConfig::default()).expect("model registry");
    let mut detector = registry.detector("yolox_nano").expect("detector");
    let frames_all: Vec<_> = chunks
        .iter()
        .flat_map(|c| {
            c.frames
                .iter()
                .map(move |f| frame_image(c, &f.data).expect("frame"))
        })
        .collect();
    const GROUP: usize = 96;
    for batch in [1usize, 8] {
        let mut timed = std::time::Duration::ZERO;
        for (g, group) in frames_all.chunks(GROUP).enumerate() {
            let tensors: Vec<_> = group
                .chunks(batch)
                .map(|b| detector.preprocess(b).0)
                .collect();
            if g == 0 {
                detector.detect_tensor(tensors[0].view()).expect("warm-up");
            }
            let t = Instant::now();
            for x in &tensors {
                detector.detect_tensor(x.view()).expect("inference");
            }
            timed += t.elapsed();
        }
        let fps = frames_all.len() as f64 / timed.as_secs_f64();
        println!("ort (bare detect_tensor, batch {batch}):           {fps:7.1} frames/s");
    }

    // Bare inference of both models the slice runs: the detector on batches of 8 frames and
    // the re-ID model on the crops of each batch's detections, batched as the dataflow does
    // (`pieces`).
    let mut embedder = registry.embedder("reid_mobilenetv2").expect("re-ID model");
    let mut timed = std::time::Duration::ZERO;
    let mut crops_total = 0;
    for (g, group) in frames_all.chunks(GROUP).enumerate() {
        let mut det_tensors = Vec::new();
        let mut reid_tensors = Vec::new();
        for b in group.chunks(8) {
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
        if g == 0
            && let Some(r) = reid_tensors.first()
        {
            embedder.embed_tensor(r.view()).expect("warm-up");
        }
        let t = Instant::now();
        for x in &det_tensors {
            detector.detect_tensor(x.view()).expect("inference");
        }
        for x in &reid_tensors {
            embedder.embed_tensor(x.view()).expect("inference");
        }
        timed += t.elapsed();
    }
    let bare_fps = frames_all.len() as f64 / timed.as_secs_f64();
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
    if let Some(fps) = demo_steady {
        println!(
            "steady (frames beyond the {SHORT_SECONDS} s video's over the extra seconds): demo {fps:.1} frames/s, {:.2}x bare",
            fps / bare_fps
        );
    }
    if let Some(fps) = dataflow_steady {
        println!(
            "steady (same): dataflow alone {fps:.1} frames/s, {:.2}x bare",
            fps / bare_fps
        );
    }
}

/// The short video of the steady-rate difference, seconds.
const SHORT_SECONDS: u64 = 20;

/// A sample video and the chunks ingest makes of it.
struct Sample {
    video: std::path::PathBuf,
    seconds: u64,
    chunks: Vec<FrameChunk>,
    /// Frames of all chunks (overlap frames counted in each chunk, as the slice counts them).
    frames: usize,
    /// Frames of the video itself (the overlap seconds counted once).
    frames_unique: usize,
}

impl Sample {
    fn make(dir: &Path, photo: &Path, seconds: u64) -> Sample {
        let video = dir.join(format!("sample-{seconds}s.mp4"));
        let spec = SampleSpec {
            duration: std::time::Duration::from_secs(seconds),
            ..SampleSpec::default()
        };
        make_sample_video(photo, &video, &spec).expect("sample video");
        let mut chunks: Vec<FrameChunk> = Vec::new();
        ingest_file(&video, "bench", &IngestConfig::default(), &mut |c| {
            chunks.push(c);
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("ingest");
        let frames: usize = chunks.iter().map(|c| c.frames.len()).sum();
        let mut pts: Vec<i64> = chunks
            .iter()
            .flat_map(|c| c.frames.iter().map(|f| f.pts_us))
            .collect();
        pts.sort_unstable();
        pts.dedup();
        println!(
            "sample: {seconds} s, {} chunks, {frames} frames at 10 fps, 768x512",
            chunks.len()
        );
        Sample {
            video,
            seconds,
            frames_unique: pts.len(),
            chunks,
            frames,
        }
    }
}

/// Wall times of one video through the slice.
struct Runs {
    frames: usize,
    demo_s: f64,
    /// The dataflow's run over the chunks on Kafka, when the services are up.
    dataflow_s: Option<f64>,
}

impl Runs {
    /// The demo, then (with `services`) ingest to Kafka and the dataflow into TimescaleDB,
    /// and with `replay` a replay of the chunks from the topic.
    fn measure(
        dir: &Path,
        sample: &Sample,
        services: Option<&(String, String)>,
        replay: bool,
    ) -> Runs {
        let (video, frames, s) = (&sample.video, sample.frames, sample.seconds);
        let store = format!("sqlite://{}", dir.join(format!("bench-{s}s.db")).display());
        let t = Instant::now();
        run(&["demo", video.to_str().unwrap(), "--store", &store]);
        let demo_s = t.elapsed().as_secs_f64();
        println!(
            "  demo (in-process bus, SQLite, 2 workers), {s} s video: {:7.1} frames/s ({demo_s:.1} s, process start-up included)",
            frames as f64 / demo_s
        );
        let Some((brokers, db)) = services else {
            return Runs {
                frames,
                demo_s,
                dataflow_s: None,
            };
        };
        let name = format!("bench-{}-{s}s", std::process::id());
        let topics = [
            "--brokers".to_owned(),
            brokers.clone(),
            "--chunks-topic".into(),
            format!("{name}.chunks"),
            "--events-topic".into(),
            format!("{name}.events"),
        ];
        // Results are stored only for registered streams.
        register(db, &name, video);
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
            db,
            "--group-id",
            &name,
        ];
        a.extend(topics.iter().map(String::as_str));
        run(&a);
        let dataflow_s = t.elapsed().as_secs_f64();
        println!(
            "  kafka (ingest {ingest_s:.1} s + dataflow {dataflow_s:.1} s, TimescaleDB): {:7.1} frames/s",
            frames as f64 / (ingest_s + dataflow_s)
        );
        println!(
            "  dataflow alone (chunks already on Kafka, start-up included): {:7.1} frames/s",
            frames as f64 / dataflow_s
        );
        if replay {
            // The same chunks replayed from the topic through the same dataflow into a fresh
            // store (so every result is written again), as a multiple of real time.
            let replayed = format!("sqlite://{}", dir.join("replay.db").display());
            register(&replayed, &name, video);
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
            let video_s = sample.frames_unique as f64 / 10.0;
            println!(
                "  replay ({video_s:.0} s of video in {replay_s:.1} s, process start-up included): {:5.2}x real time",
                video_s / replay_s
            );
        }
        Runs {
            frames,
            demo_s,
            dataflow_s: Some(dataflow_s),
        }
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
