//! `horsestream demo`: ingest → dataflow → store in one process with no servers — an
//! in-process bus instead of Kafka, an embedded SQLite store instead of TimescaleDB.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use horsestream_dataflow::source::memory::memory_bus;
use horsestream_dataflow::{DataflowConfig, Metrics, WorkerParts};
use horsestream_ingest::{IngestConfig, SampleSpec, VideoSource, ingest_file};
use horsestream_sinks::{EventPublisher, Store};
use indicatif::{ProgressBar, ProgressStyle};

use super::dataflow::{analyzer, pose_stage, store_stages};
use super::sample::PhotoOption;
use crate::options::{ModelOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Any video FFmpeg reads; without one, the generated sample (made on first use).
    pub video: Option<PathBuf>,
    /// Worker threads of the dataflow.
    #[arg(long, env = "HORSESTREAM_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// The embedded store; the default file is recreated on every run.
    #[arg(long, env = "HORSESTREAM_DEMO_STORE")]
    pub store: Option<String>,
    #[arg(long, default_value = "demo")]
    pub stream_id: String,
    #[command(flatten)]
    pub photo: PhotoOption,
    #[command(flatten)]
    pub models: ModelOptions,
}

const WORK_DIR: &str = ".horsestream";

pub fn run(args: Args) -> anyhow::Result<()> {
    horsestream_dataflow::panics::exit_on_uncaught_panic();
    let video = match &args.video {
        Some(v) => v.clone(),
        None => sample_video(&args.photo.path)?,
    };
    // Refuse bad input before anything starts.
    VideoSource::open(&video, 1)?;
    let registry = Arc::new(args.models.registry(args.workers)?);
    let url = match &args.store {
        Some(url) => url.clone(),
        None => {
            let path = Path::new(WORK_DIR).join("demo.db");
            std::fs::create_dir_all(WORK_DIR)?;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    let rt = runtime()?;
    let store = rt
        .block_on(Store::connect(&url))
        .context("opening the store")?;
    args.models.check_gallery(&store)?;
    rt.block_on(super::stream::register(
        &store,
        &args.stream_id,
        &video.display().to_string(),
        None,
    ))?;

    let metrics = Arc::new(Metrics::default());
    let (publisher, bus) = memory_bus(4);
    let (events_tx, events_rx) = crossbeam_channel::unbounded::<horsestream_proto::Event>();
    let events_seen = std::thread::spawn(move || {
        let mut by_name = std::collections::BTreeMap::<&'static str, u64>::new();
        for e in events_rx.iter() {
            *by_name.entry(e.name()).or_default() += 1;
        }
        by_name
    });

    let started = Instant::now();
    let stream_id = args.stream_id.clone();
    let ingest_video = video.clone();
    let ingest = std::thread::spawn(move || {
        ingest_file(
            &ingest_video,
            &stream_id,
            &IngestConfig::default(),
            &mut |chunk| {
                publisher
                    .publish(&chunk.stream_id, chunk.encode_to_vec())
                    .map(|_| ())
                    .ok_or("the dataflow stopped reading")
            },
        )
    });

    let bar = progress_bar();
    let watch = {
        let metrics = metrics.clone();
        let bar = bar.clone();
        std::thread::spawn(move || {
            while !bar.is_finished() {
                let s = metrics.snapshot();
                bar.set_position(s.chunks_processed + s.chunk_errors);
                bar.set_message(format!("{} frames, {} detections", s.frames, s.detections));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let cfg = DataflowConfig {
        workers: args.workers,
        batch_size: args.models.batch_size,
        ..DataflowConfig::default()
    };
    let models = args.models.clone();
    let m = metrics.clone();
    let sink_url = url.clone();
    let result = horsestream_dataflow::run(&cfg, metrics.clone(), move |index, _peers| {
        // The demo's store is new on every run: nothing to resume, no checkpoints.
        let (tracks, horses, sink) = store_stages(
            &sink_url,
            EventPublisher::Channel(events_tx.clone()),
            m.clone(),
            false,
        )?;
        Ok(WorkerParts {
            source: bus.for_worker(index),
            analyzer: analyzer(&registry, &models)?
                .with_pose(pose_stage(&registry, &models, &sink_url)?),
            tracks,
            horses,
            sink,
        })
    });
    bar.finish_and_clear();
    let _ = watch.join();
    let elapsed = started.elapsed();
    let ingest_stats = ingest
        .join()
        .map_err(|_| anyhow::anyhow!("the ingest thread panicked"))??;
    result?;
    let events = events_seen.join().unwrap_or_default();

    let s = metrics.snapshot();
    let stored = rt.block_on(store.stats())?;
    println!("horsestream demo — {}", video.display());
    println!(
        "  chunks      {} ({} refused)",
        s.chunks_processed, s.chunk_errors
    );
    println!(
        "  frames      {} (from {} decoded source frames)",
        s.frames, ingest_stats.frames_decoded
    );
    println!(
        "  detections  {} on {} frames",
        stored.detections, stored.frames_with_detections
    );
    println!(
        "  horses      {} tracks (at most {} on one frame)",
        stored.tracks, s.max_detections_per_frame
    );
    let horses = rt.block_on(store.list_horses(&args.stream_id))?;
    let gait = rt.block_on(store.gait(&args.stream_id))?;
    println!(
        "  identities  {} horses ({})",
        horses.len(),
        horses
            .iter()
            .map(|h| h.display_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  gait        {} windows", gait.len());
    println!(
        "  events      {} ({})",
        events.values().sum::<u64>(),
        events
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  throughput  {:.1} frames/s end to end ({:.1} s)",
        s.frames as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!("  store       {url}");
    Ok(())
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} chunks {pos} · {msg}")
            .expect("static template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The sample video, written on first use.
fn sample_video(photo: &Path) -> anyhow::Result<PathBuf> {
    let path = Path::new(WORK_DIR).join("sample.mp4");
    if !path.exists() {
        eprintln!(
            "writing the sample video {} from {}",
            path.display(),
            photo.display()
        );
        super::sample::write(photo, &path, &SampleSpec::default())?;
    }
    Ok(path)
}
