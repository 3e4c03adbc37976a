//! `horsestream ingest`: a file or a live source (RTSP, RTMP listen, HTTP/HLS, YouTube via
//! yt-dlp) → chunks on the chunks topic, keyed by stream id, each acknowledged by the broker
//! before the next is produced. Live sources reconnect by themselves and report
//! `stream:status` events on the events topic. `--hls-dir` also writes 2 s HLS playback
//! segments per stream. Without `--input`, the process runs every enabled stream of the
//! `streams` table of `--database-url` and follows the table's changes ([`catalogue`]).

mod catalogue;
mod metrics;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use horsestream_ingest::{
    HlsConfig, IngestConfig, LiveConfig, RebroadcastConfig, RtspTransport, SourceSpec, StopSignal,
    StreamState, TRACE_TARGET, VideoSource, YoutubeOptions, ingest_file, ingest_source,
};
use horsestream_proto::{EVENT_SCHEMA_VERSION, Event, EventKind, StreamStatus};
use horsestream_sinks::Store;
use horsestream_sinks::kafka::{TopicProducer, ensure_topics};

use crate::options::{KafkaOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A video file; rtsp://host/path (`?transport=tcp|udp` allowed); rtmp://ADDR:PORT/app/key
    /// to listen for a pushing encoder; http(s):// (HLS playlist or file); youtube:ID,
    /// youtube:URL or a youtube.com URL (resolved by yt-dlp).
    /// Without it, the streams come from the `streams` table of `--database-url`.
    #[arg(long, requires = "stream_id")]
    pub input: Option<String>,
    /// The stream the chunks belong to (the Kafka key).
    #[arg(long, requires = "input")]
    pub stream_id: Option<String>,
    /// Run the enabled streams of this store's `streams` table (without `--input`; with it,
    /// this is not used): started and stopped as the table changes, each chunk recorded in
    /// `video_chunks`.
    #[arg(long, env = "HORSESTREAM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How often the streams table is read, in milliseconds.
    #[arg(long, env = "HORSESTREAM_INGEST_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// This process's name in the streams table's leases (default: host name and pid);
    /// unique among the ingest processes sharing a table.
    #[arg(long, env = "HORSESTREAM_INGEST_ID")]
    pub ingest_id: Option<String>,
    /// Most streams this process runs (0: no limit); the rest wait for another process.
    #[arg(long, env = "HORSESTREAM_INGEST_MAX_STREAMS", default_value_t = 0)]
    pub max_streams: usize,
    /// How long a stream stays this process's without a renewal (renewed every poll), s.
    #[arg(long, env = "HORSESTREAM_INGEST_LEASE_SECS", default_value_t = 15)]
    pub lease_secs: u64,
    /// Without `--input`: serve Prometheus `GET /metrics` on this address.
    #[arg(long, env = "HORSESTREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// RTSP transport of a live source: tcp or udp (default tcp). The URL's `?transport=`
    /// must agree if both are given.
    #[arg(long, env = "HORSESTREAM_RTSP_TRANSPORT")]
    pub rtsp_transport: Option<RtspTransport>,
    /// Also write 2 s HLS playback segments to DIR/<stream>/index.m3u8.
    #[arg(long, env = "HORSESTREAM_HLS_DIR")]
    pub hls_dir: Option<PathBuf>,
    /// YouTube: a Netscape cookies file for yt-dlp.
    #[arg(long, env = "HORSESTREAM_YT_COOKIES")]
    pub yt_cookies: Option<PathBuf>,
    /// YouTube: proxies (comma-separated, http://[user:pass@]host:port) used in turn by
    /// yt-dlp and FFmpeg; the next is taken after a failure.
    #[arg(long, env = "HORSESTREAM_YT_PROXIES", value_delimiter = ',')]
    pub yt_proxies: Vec<String>,
    /// YouTube: also move to the next proxy after this many seconds (at the next connection).
    #[arg(long, env = "HORSESTREAM_YT_PROXY_INTERVAL")]
    pub yt_proxy_interval: Option<u64>,
    /// YouTube: the yt-dlp program (name on PATH or a path).
    #[arg(long, env = "HORSESTREAM_YT_DLP", default_value = "yt-dlp")]
    pub yt_dlp: PathBuf,
    /// Live sources: replay the last SECS of frames into an outage while reconnecting
    /// (chunks holding replayed frames say so in their source); 0 = off.
    #[arg(long, env = "HORSESTREAM_REBROADCAST_CACHE", default_value_t = 0)]
    pub rebroadcast_cache: u64,
    /// Live sources: replay at most this many seconds per outage.
    #[arg(long, env = "HORSESTREAM_REBROADCAST_MAX", default_value_t = 60)]
    pub rebroadcast_max: u64,
    #[command(flatten)]
    pub kafka: KafkaOptions,
}

/// The source and the transport to use, the URL's `?transport=` and the flag reconciled.
fn source(args: &Args, input: &str) -> anyhow::Result<(SourceSpec, RtspTransport)> {
    let spec = SourceSpec::parse(input)?;
    let flag = args.rtsp_transport;
    let transport = match (&spec, flag) {
        (
            SourceSpec::Rtsp {
                transport: Some(t), ..
            },
            Some(f),
        ) if *t != f => {
            anyhow::bail!("--rtsp-transport {f:?} contradicts the URL's transport {t:?}")
        }
        (
            SourceSpec::Rtsp {
                transport: Some(t), ..
            },
            _,
        ) => *t,
        (_, f) => f.unwrap_or_default(),
    };
    Ok((spec, transport))
}

/// How live sources are read, from the flags.
fn live_config(args: &Args, transport: RtspTransport) -> LiveConfig {
    LiveConfig {
        ingest: IngestConfig {
            hls: args.hls_dir.clone().map(HlsConfig::new),
            ..IngestConfig::default()
        },
        transport,
        youtube: YoutubeOptions {
            yt_dlp: args.yt_dlp.clone(),
            cookies: args.yt_cookies.clone(),
            proxies: args.yt_proxies.clone(),
            proxy_interval: args.yt_proxy_interval.map(Duration::from_secs),
            ..YoutubeOptions::default()
        },
        rebroadcast: (args.rebroadcast_cache > 0).then(|| RebroadcastConfig {
            cache: Duration::from_secs(args.rebroadcast_cache),
            max_fill: Duration::from_secs(args.rebroadcast_max),
        }),
        ..LiveConfig::default()
    }
}

/// A stop signal raised by SIGINT or SIGTERM.
fn stop_on_signal() -> StopSignal {
    let stop = StopSignal::new();
    let raised = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = runtime() {
            rt.block_on(async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            });
        }
        raised.stop();
    });
    stop
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (Some(input), Some(stream_id)) = (args.input.clone(), args.stream_id.clone()) else {
        return run_catalogue(&args);
    };
    let (spec, transport) = source(&args, &input)?;
    let cfg = live_config(&args, transport);
    let ingest_cfg = cfg.ingest.clone();
    if let SourceSpec::File(path) = &spec {
        // Refuse a file that is not a video before touching the broker.
        VideoSource::open(path, 1)?;
    }
    let rt = runtime()?;
    let kafka = args.kafka.config();
    rt.block_on(ensure_topics(&kafka))
        .with_context(|| format!("creating topics on {}", kafka.brokers))?;
    let producer = TopicProducer::new(&kafka, &kafka.chunks_topic)?;
    // Runs inside the chunk's `ingest` span (horsestream_ingest::ingest_span).
    let mut publish = |chunk: horsestream_proto::FrameChunk| {
        let bytes =
            tracing::info_span!(target: TRACE_TARGET, "encode").in_scope(|| chunk.encode_to_vec());
        let end_ms = (chunk.stream_start_time_us + chunk.end_pts_us) / 1000;
        tracing::info_span!(target: TRACE_TARGET, "publish", bytes = bytes.len()).in_scope(|| {
            rt.block_on(producer.send_at(&chunk.stream_id, &bytes, end_ms))
                .map(|_| ())
        })
    };
    if let SourceSpec::File(path) = &spec {
        let stats = ingest_file(path, &stream_id, &ingest_cfg, &mut publish)?;
        producer.flush()?;
        println!(
            "{}: {} chunks ({} frames) published to {}",
            path.display(),
            stats.chunks,
            stats.frames_published,
            kafka.chunks_topic
        );
        return Ok(());
    }

    let events = TopicProducer::new(&kafka, &kafka.events_topic)?;
    let stop = stop_on_signal();
    let status_rt = runtime()?;
    let mut on_status = |s: horsestream_ingest::StreamStatus| {
        let (reason, attempt, gap) = status_details(&s.state);
        tracing::info!(stream = %s.stream_id, state = s.state.name(), %reason, "stream status");
        let event = status_event(&s.stream_id, s.state.name(), reason, s.at_us, attempt, gap);
        if let Err(e) = status_rt.block_on(events.send(&s.stream_id, &event.encode_to_vec())) {
            tracing::warn!(error = %e, "stream:status event not delivered");
        }
    };
    let stats = ingest_source(&spec, &stream_id, &cfg, &stop, &mut publish, &mut on_status)?;
    producer.flush()?;
    println!("{}: stopped; {:?}", spec.redacted(), stats);
    Ok(())
}

/// Follows the `streams` table until SIGINT or SIGTERM (see [`catalogue`]).
fn run_catalogue(args: &Args) -> anyhow::Result<()> {
    let url = args.database_url.clone().context(
        "give --input and --stream-id, or --database-url (HORSESTREAM_DATABASE_URL) to run \
         the streams registered there",
    )?;
    let lease = Duration::from_secs(args.lease_secs);
    let poll = Duration::from_millis(args.poll_ms.max(50));
    if lease < poll * 3 {
        anyhow::bail!(
            "--lease-secs {} must cover at least three polls of --poll-ms {}",
            args.lease_secs,
            args.poll_ms
        );
    }
    let claims = catalogue::Claims {
        owner: args.ingest_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "ingest".into());
            format!("{host}:{}", std::process::id())
        }),
        max_streams: if args.max_streams == 0 {
            usize::MAX
        } else {
            args.max_streams
        },
        lease,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let kafka = args.kafka.config();
    rt.block_on(ensure_topics(&kafka))
        .with_context(|| format!("creating topics on {}", kafka.brokers))?;
    let store = rt
        .block_on(Store::connect(&url))
        .context("connecting to the database")?;
    let shared = Arc::new(catalogue::Shared {
        rt: rt.handle().clone(),
        store,
        chunks: TopicProducer::new(&kafka, &kafka.chunks_topic)?,
        events: TopicProducer::new(&kafka, &kafka.events_topic)?,
        live: live_config(args, args.rtsp_transport.unwrap_or_default()),
        metrics: metrics::IngestMetrics::default(),
    });
    if let Some(addr) = args.metrics_listen {
        let shared = Arc::clone(&shared);
        crate::metrics_server::spawn(addr, move || shared.metrics.render(now_us()))
            .with_context(|| format!("serving metrics on {addr}"))?;
    }
    let stop = stop_on_signal();
    println!(
        "ingest {}: running the enabled streams of the streams table (at most {})",
        claims.owner,
        if args.max_streams == 0 {
            "all".to_owned()
        } else {
            args.max_streams.to_string()
        }
    );
    let mut supervisor = catalogue::Supervisor::new(Arc::clone(&shared), claims);
    while !stop.is_stopped() {
        if let Err(e) = supervisor.poll() {
            let table_errors = shared.metrics.table_errors.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(error = %e, table_errors, running = supervisor.running(),
                           "streams table not read; running streams carry on while their leases last");
        }
        let next = std::time::Instant::now() + poll;
        while !stop.is_stopped() && std::time::Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    supervisor.shutdown();
    shared.chunks.flush()?;
    shared.events.flush()?;
    println!(
        "ingest: stopped ({} chunks published but not recorded, {} failed reads of the streams table)",
        shared.metrics.unrecorded_chunks.load(Ordering::Relaxed),
        shared.metrics.table_errors.load(Ordering::Relaxed)
    );
    Ok(())
}

/// The `reason`, `attempt` and `gap` fields of a state's `stream:status` event.
fn status_details(state: &StreamState) -> (String, u64, Option<(i64, i64)>) {
    match state {
        StreamState::Connecting { attempt } => (String::new(), *attempt, None),
        StreamState::Active { attempt, gap } => {
            (String::new(), *attempt, gap.map(|g| (g.from_us, g.to_us)))
        }
        StreamState::Stalled { silent_for, .. } => {
            (format!("no frame for {silent_for:?}"), 0, None)
        }
        StreamState::Error { reason, .. } => (reason.clone(), 0, None),
        StreamState::Stopped => (String::new(), 0, None),
    }
}

/// A `stream:status` event.
fn status_event(
    stream_id: &str,
    state: &str,
    reason: String,
    at_us: i64,
    attempt: u64,
    gap: Option<(i64, i64)>,
) -> Event {
    Event {
        version: EVENT_SCHEMA_VERSION,
        emitted_at_us: now_us(),
        kind: EventKind::StreamStatus(StreamStatus {
            stream_id: stream_id.to_owned(),
            state: state.to_owned(),
            reason,
            at_us,
            attempt,
            gap,
        }),
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
