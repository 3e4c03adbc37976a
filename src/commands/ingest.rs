//! `horsestream ingest`: a file or a live URL → chunks on the chunks topic, keyed by stream id,
//! each acknowledged by the broker before the next is produced. Live sources reconnect by
//! themselves and report `stream:status` events on the events topic.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use horsestream_ingest::{
    IngestConfig, LiveConfig, RtspTransport, StopSignal, StreamState, VideoSource, ingest_file,
    ingest_live, redact_url,
};
use horsestream_proto::{EVENT_SCHEMA_VERSION, Event, EventKind, StreamStatus};
use horsestream_sinks::kafka::{TopicProducer, ensure_topics};

use crate::options::{KafkaOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A video file, or a live URL (rtsp://, rtmp://, http(s)://).
    #[arg(long)]
    pub input: String,
    /// The stream the chunks belong to (the Kafka key).
    #[arg(long)]
    pub stream_id: String,
    /// RTSP transport of a live source: tcp or udp.
    #[arg(long, env = "HORSESTREAM_RTSP_TRANSPORT", default_value = "tcp")]
    pub rtsp_transport: String,
    #[command(flatten)]
    pub kafka: KafkaOptions,
}

fn is_live(input: &str) -> bool {
    ["rtsp://", "rtsps://", "rtmp://", "http://", "https://"]
        .iter()
        .any(|p| input.starts_with(p))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let live = is_live(&args.input);
    if !live {
        // Refuse a file that is not a video before touching the broker.
        VideoSource::open(std::path::Path::new(&args.input), 1)?;
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
    if !live {
        let path = std::path::Path::new(&args.input);
        let stats = ingest_file(
            path,
            &args.stream_id,
            &IngestConfig::default(),
            &mut publish,
        )?;
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
        transport: match args.rtsp_transport.as_str() {
            "tcp" => RtspTransport::Tcp,
            "udp" => RtspTransport::Udp,
            other => anyhow::bail!("unknown RTSP transport {other:?} (tcp, udp)"),
        },
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
    let stats = ingest_live(
        &args.input,
        &args.stream_id,
        &cfg,
        &stop,
        &mut publish,
        &mut on_status,
    )?;
    producer.flush()?;
    println!("{}: stopped; {:?}", redact_url(&args.input), stats);
    Ok(())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
