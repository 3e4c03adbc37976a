//! `horsestream dataflow`: the timely dataflow over the chunks topic, writing TimescaleDB and
//! publishing live events.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use horsestream_dataflow::source::kafka::{
    DEFAULT_PREFETCH_BYTES, KafkaSource, KafkaSourceConfig, Replay,
};
use horsestream_dataflow::tracking::TrackerConfig;
use horsestream_dataflow::{
    Analyzer, ChunkAnalyzer, Cluster, DataflowConfig, DataflowError, Embed, HorseConfig, Metrics,
    Models, RetryPolicy, SinkWriter, StreamHorses, StreamProfile, StreamTracks, WorkerParts,
};
use horsestream_dataflow::{EstimatePose, LoadPose, PoseStage, SelectPose};
use horsestream_models::{ModelRegistry, Task};
use horsestream_sinks::kafka::{TopicProducer, ensure_topics};
use horsestream_sinks::{EventPublisher, Store};

use crate::options::{KafkaOptions, ModelOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Worker threads of this process (timely's -w).
    #[arg(long, short = 'w', env = "HORSESTREAM_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Processes in the timely cluster (timely's -n); more than 1 needs --hostfile.
    #[arg(long, short = 'n', env = "HORSESTREAM_PROCESSES", default_value_t = 1)]
    pub processes: usize,
    /// Index of this process in the cluster (timely's -p).
    #[arg(long, short = 'p', env = "HORSESTREAM_PROCESS", default_value_t = 0)]
    pub process: usize,
    /// File with one `host:port` per process, in process order (timely's -h).
    #[arg(long, short = 'H', env = "HORSESTREAM_HOSTFILE")]
    pub hostfile: Option<std::path::PathBuf>,
    /// The store: TimescaleDB (`postgres://…`), or an embedded SQLite file (`sqlite://…`).
    #[arg(long, env = "HORSESTREAM_DATABASE_URL")]
    pub database_url: String,
    /// Consumer group whose committed offsets say where to resume.
    #[arg(
        long,
        env = "HORSESTREAM_GROUP_ID",
        default_value = "horsestream-dataflow"
    )]
    pub group_id: String,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "HORSESTREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Stop once the chunks present at start-up are processed (replays, tests).
    #[arg(long)]
    pub until_end: bool,
    /// Records a worker takes from the topic per epoch: offsets are committed per epoch, so
    /// this is also how many chunks a restart may read again.
    #[arg(long, env = "HORSESTREAM_RECORDS_PER_EPOCH", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub records_per_epoch: u64,
    /// After a model fails at run time, its chunks are degraded (recorded, not analysed) and
    /// its sessions rebuilt after 1 s, then twice as long each time up to this (ms; 0 tries
    /// again at every chunk).
    #[arg(long, env = "HORSESTREAM_MODEL_RETRY_MAX_MS", default_value_t = 30_000)]
    pub model_retry_max_ms: u64,
    /// MiB of chunks each worker may fetch from Kafka ahead of processing; a backlog beyond
    /// it waits in Kafka, not in this process's memory.
    #[arg(long, env = "HORSESTREAM_PREFETCH_MIB", default_value_t = (DEFAULT_PREFETCH_BYTES >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub prefetch_mib: u64,
    #[command(flatten)]
    pub kafka: KafkaOptions,
    #[command(flatten)]
    pub models: ModelOptions,
}

/// The cluster described by --processes/--process/--hostfile.
fn cluster(args: &Args) -> anyhow::Result<Option<Cluster>> {
    if args.processes <= 1 {
        return Ok(None);
    }
    let path = args
        .hostfile
        .as_ref()
        .context("--processes > 1 needs --hostfile")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading hostfile {}", path.display()))?;
    let addresses: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        addresses.len() >= args.processes,
        "hostfile {} names {} processes, --processes is {}",
        path.display(),
        addresses.len(),
        args.processes
    );
    anyhow::ensure!(
        args.process < args.processes,
        "--process {} is not below --processes {}",
        args.process,
        args.processes
    );
    Ok(Some(Cluster {
        process: args.process,
        addresses: addresses[..args.processes].to_vec(),
    }))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    run_with(args, None)
}

/// Runs the dataflow live, or over a historical range of the topic when `replay` is given.
pub fn run_with(args: Args, replay: Option<Replay>) -> anyhow::Result<()> {
    // A worker that panics must end the process (for its supervisor to restart it), not
    // leave the other workers waiting for it.
    horsestream_dataflow::panics::exit_on_uncaught_panic();
    let cluster = cluster(&args)?;
    let registry = Arc::new(args.models.registry(args.workers)?);
    let kafka = args.kafka.config();
    let rt = runtime()?;
    rt.block_on(ensure_topics(&kafka))
        .with_context(|| format!("creating topics on {}", kafka.brokers))?;
    // Apply migrations once, before workers connect.
    let store = rt
        .block_on(Store::connect(&args.database_url))
        .context("connecting to the database")?;
    args.models.check_gallery(&store)?;
    drop(rt);

    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.metrics_listen {
        let metrics = metrics.clone();
        crate::metrics_server::spawn(addr, move || metrics.to_prometheus(now_us()))
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    let source_cfg = KafkaSourceConfig {
        kafka: kafka.clone(),
        group_id: args.group_id.clone(),
        stop_at_end: args.until_end,
        replay: replay.clone(),
        prefetch_bytes: (args.prefetch_mib as usize) << 20,
    };
    let models = args.models.clone();
    let retry = RetryPolicy::up_to(Duration::from_millis(args.model_retry_max_ms));
    let batch_size = args.models.batch_size;
    let url = args.database_url.clone();
    let m = metrics.clone();
    let cfg = DataflowConfig {
        workers: args.workers,
        batch_size,
        cluster,
        window_us: replay.as_ref().map(|r| (r.from_ms * 1000, r.to_ms * 1000)),
        records_per_epoch: args.records_per_epoch as usize,
        ..DataflowConfig::default()
    };
    horsestream_dataflow::run(&cfg, metrics.clone(), move |index, peers| {
        let source = KafkaSource::new(&source_cfg, index, peers)?;
        let events = EventPublisher::Kafka(TopicProducer::new(&kafka, &kafka.events_topic)?);
        let (tracks, horses, sink) = store_stages(&url, events, m.clone(), true)?;
        Ok(WorkerParts {
            source,
            analyzer: resilient_analyzer(&registry, &models, retry)?
                .with_pose(pose_stage(&registry, &models, &url)?),
            tracks,
            horses,
            sink,
        })
    })?;
    let s = metrics.snapshot();
    println!(
        "dataflow done: {} records, {} chunks processed, {} frames, {} detections, {} refused",
        s.records_in, s.chunks_processed, s.frames, s.detections, s.chunk_errors
    );
    Ok(())
}

/// One worker's detection (and re-ID) stage.
pub fn analyzer(
    registry: &ModelRegistry,
    models: &ModelOptions,
) -> Result<ChunkAnalyzer, DataflowError> {
    let (detector, embedder) = load_models(registry, models)?;
    // A worker decodes a batch's frames on as many threads as its sessions run on.
    let threads = models
        .intra_threads
        .unwrap_or_else(horsestream_models::cores);
    let analyzer = ChunkAnalyzer::new(detector, models.batch_size)
        .with_overlap_reuse(!models.no_overlap_reuse)
        .with_decode_threads(threads);
    Ok(match embedder {
        Some(e) => analyzer.with_embedder(e),
        None => analyzer,
    })
}

/// [`analyzer`] that outlives a model failure at run time: the failed chunks are degraded and
/// the sessions rebuilt from the model files (checked again) as `retry` says, until they work.
pub fn resilient_analyzer(
    registry: &Arc<ModelRegistry>,
    models: &ModelOptions,
    retry: RetryPolicy,
) -> Result<ChunkAnalyzer, DataflowError> {
    let analyzer = analyzer(registry, models)?;
    let (registry, options) = (registry.clone(), models.clone());
    let reload = move || load_models(&registry, &options).map_err(|e| e.to_string());
    Ok(analyzer.with_reload(Box::new(reload), retry))
}

/// One worker's pose stage. With `--pose-model` every stream runs that model; otherwise each
/// stream runs the pose model activated for it in `stream_models` (a model of task `pose`),
/// read through this worker's own connection to `url` at the stream's first chunk and again
/// every 30 s. Sessions are built on first use, one per model per worker; a model that cannot
/// be loaded (its optional file missing) turns pose off for its streams, logged once.
pub fn pose_stage(
    registry: &Arc<ModelRegistry>,
    models: &ModelOptions,
    url: &str,
) -> Result<PoseStage, DataflowError> {
    let select: SelectPose = match &models.pose_model {
        Some(name) => {
            let name = name.clone();
            Box::new(move |_| Some(name.clone()))
        }
        None => {
            let rt = runtime().map_err(|e| DataflowError::Setup(e.to_string()))?;
            let store = rt.block_on(Store::connect(url))?;
            let manifest = registry.manifest().clone();
            Box::new(move |stream| match rt.block_on(store.stream_models()) {
                Ok(chosen) => chosen
                    .into_iter()
                    .filter(|(s, _)| s == stream)
                    .map(|(_, model)| model)
                    .find(|m| manifest.get(m).is_ok_and(|e| e.task == Task::Pose)),
                Err(e) => {
                    tracing::warn!(stream, error = %e, "stream models unreadable, no pose for now");
                    None
                }
            })
        }
    };
    let registry = registry.clone();
    // A model whose keypoints are not AP-10K's, in order, would be misread by the gait
    // analysis: it is refused like a missing one (logged, its streams run without pose).
    let load: LoadPose = Box::new(move |name| {
        let estimator = registry.pose_estimator(name).map_err(|e| e.to_string())?;
        horsestream_dataflow::gait::check_keypoint_layout(estimator.keypoint_names())?;
        Ok(Box::new(estimator) as Box<dyn EstimatePose>)
    });
    Ok(PoseStage::new(select, load))
}

/// The detector (and re-ID embedder) sessions of `models`.
fn load_models(registry: &ModelRegistry, models: &ModelOptions) -> Result<Models, DataflowError> {
    let setup = |e: horsestream_models::ModelError| DataflowError::Setup(e.to_string());
    // With the manifest's low-score candidates, for the tracker's second association.
    let detector: Box<dyn Analyzer> = Box::new(
        registry
            .detector(&models.detector)
            .map_err(setup)?
            .with_candidates(),
    );
    if models.no_reid {
        return Ok((detector, None));
    }
    let embedder: Box<dyn Embed> = Box::new(registry.embedder(&models.reid_model).map_err(setup)?);
    Ok((detector, Some(embedder)))
}

/// One worker's stages that talk to the store, sharing its runtime and connection pool: the
/// tracking stage, which with `checkpoints` resumes a stream from its stored checkpoint at its
/// first chunk (and hands each chunk's state to the sink); the horses stage, which reads each
/// stream's calibration and zones from its `streams` row at its first chunk (a stream that
/// cannot be read gets none; the sink then refuses the chunks of an unregistered one); and the
/// sink.
pub fn store_stages(
    url: &str,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    checkpoints: bool,
) -> Result<(StreamTracks, StreamHorses, SinkWriter), DataflowError> {
    let rt = Rc::new(runtime().map_err(|e| DataflowError::Setup(e.to_string()))?);
    let store = rt.block_on(Store::connect(url))?;
    let mut tracks = StreamTracks::new(TrackerConfig::default());
    if checkpoints {
        let (restore_rt, states) = (rt.clone(), store.clone());
        tracks = tracks.with_checkpoints(move |stream, sequence| {
            restore_checkpoint(&restore_rt, &states, stream, sequence)
        });
    }
    let (lookup_rt, rows) = (rt.clone(), store.clone());
    let horses = StreamHorses::new(HorseConfig::default(), move |id| {
        match lookup_rt.block_on(rows.get_stream(id)) {
            Ok(s) => Some(StreamProfile {
                calibration: s.calibration,
                zones: s.zones,
                rules: s.alert_rules,
            }),
            Err(e) => {
                tracing::warn!(stream = id, error = %e, "stream profile unavailable");
                None
            }
        }
    })
    .map_err(|e| DataflowError::Setup(e.to_string()))?;
    let horses = if checkpoints {
        horses.with_checkpoints()
    } else {
        horses
    };
    // The sink writes from a thread of its own, with a runtime and store of its own.
    let sink_rt = runtime().map_err(|e| DataflowError::Setup(e.to_string()))?;
    let sink_store = sink_rt.block_on(Store::connect(url))?;
    Ok((
        tracks,
        horses,
        SinkWriter::new(sink_rt, sink_store, events, metrics),
    ))
}

/// The checkpoint a stream first seen at chunk `sequence` resumes from. A store that does not
/// answer is waited for (as the sink waits to write), never taken for "no checkpoint": that
/// would restart the stream's track ids.
fn restore_checkpoint(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    stream: &str,
    sequence: u64,
) -> Option<(u64, horsestream_sinks::store::StreamCheckpoint)> {
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        match rt.block_on(store.checkpoint_before(stream, sequence)) {
            Ok(found) => return found,
            Err(e) if e.is_retriable() => {
                tracing::warn!(stream, error = %e, ?backoff, "reading checkpoint failed, retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => {
                tracing::error!(stream, error = %e,
                    "checkpoint unreadable, the stream's tracks and horses start afresh");
                return None;
            }
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
