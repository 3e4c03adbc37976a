//! `horsestream ingest`: a file or a live source (RTSP, RTMP listen, HTTP/HLS, YouTube via
//! yt-dlp) → chunks on the chunks topic, keyed by stream id, each acknowledged by the broker
//! before the next is produced. Live sources reconnect by themselves and report
//! `stream:status` events on the events topic. `--hls-dir` also writes 2 s HLS playback
//! segments per stream.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use horsestream_ingest::{
    HlsConfig, IngestConfig, LiveConfig, RebroadcastConfig, RtspTransport, SourceSpec, StopSignal,
    StreamState, VideoSource, YoutubeOptions, ingest_file, ingest_source,
};
use horsestream_proto::{EVENT_SCHEMA_VERSION, Event, EventKind, StreamStatus};
use horsestream_sinks::kafka::{TopicProducer, ensure_topics};

use crate::options::{KafkaOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A video file; rtsp://host/path (`?transport=tcp|udp` allowed); rtmp://ADDR:PORT/app/key
    /// to listen for a pushing encoder; http(s):// (HLS playlist or file); youtube:ID,
    /// youtube:URL or a youtube.com URL (resolved by yt-dlp).
    #[arg(long)]
    pub input: String,
    /// The stream the chunks belong to (the Kafka key).
    #[arg(long)]
    pub stream_id: String,
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
fn source(args: &Args) -> anyhow::Result<(SourceSpec, RtspTransport)> {
    let spec = SourceSpec::parse(&args.input)?;
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let (spec, transport) = source(&args)?;
    let ingest_cfg = IngestConfig {
        hls: args.hls_dir.clone().map(HlsConfig::new),
        ..IngestConfig::default()
    };
    if let SourceSpec::File(path) = &spec {
        // Refuse a file that is not a video before touching the broker.
        VideoSource::open(path, 1)?;
    }
    let rt = runtime()?;
    let kafka = args.kafka.config();
    rt.block_on(ensure_topics(&kafka))
        .with_context(|| format!("creating topics on {}", kafka.brokers))?;
    let producer = TopicProducer::new(&kafka, &kafka.chunks_topic)?;
    let mut publish = |chunk: horsestream_proto::FrameChunk| {
        let bytes = chunk.encode_to_vec();
        let end_ms = (chunk.stream_start_time_us + chunk.end_pts_us) / 1000;
        rt.block_on(producer.send_at(&chunk.stream_id, &bytes, end_ms))
            .map(|_| ())
    };
    if let SourceSpec::File(path) = &spec {
        let stats = ingest_file(path, &args.stream_id, &ingest_cfg, &mut publish)?;
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
    let stop = StopSignal::new();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = runtime() {
                let _ = rt.block_on(tokio::signal::ctrl_c());
            }
            stop.stop();
        });
    }
    let cfg = LiveConfig {
        ingest: ingest_cfg,
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
    };
    let status_rt = runtime()?;
    let mut on_status = |s: horsestream_ingest::StreamStatus| {
        let (reason, attempt, gap) = match &s.state {
            StreamState::Connecting { attempt } => (String::new(), *attempt, None),
            StreamState::Active { attempt, gap } => {
                (String::new(), *attempt, gap.map(|g| (g.from_us, g.to_us)))
            }
            StreamState::Stalled { silent_for, .. } => {
                (format!("no frame for {silent_for:?}"), 0, None)
            }
            StreamState::Error { reason, .. } => (reason.clone(), 0, None),
            StreamState::Stopped => (String::new(), 0, None),
        };
        tracing::info!(stream = %s.stream_id, state = s.state.name(), %reason, "stream status");
        let event = Event {
            version: EVENT_SCHEMA_VERSION,
            emitted_at_us: now_us(),
            kind: EventKind::StreamStatus(StreamStatus {
                stream_id: s.stream_id.clone(),
                state: s.state.name().to_owned(),
                reason,
                at_us: s.at_us,
                attempt,
                gap,
            }),
        };
        if let Err(e) = status_rt.block_on(events.send(&s.stream_id, &event.encode_to_vec())) {
            tracing::warn!(error = %e, "stream:status event not delivered");
        }
    };
    let stats = ingest_source(
        &spec,
        &args.stream_id,
        &cfg,
        &stop,
        &mut publish,
        &mut on_status,
    )?;
    producer.flush()?;
    println!("{}: stopped; {:?}", spec.redacted(), stats);
    Ok(())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
