//! `horsestream ingest`: one file → chunks on the chunks topic, keyed by stream id, each
//! acknowledged by the broker before the next is produced.

use std::path::PathBuf;

use anyhow::Context;
use horsestream_ingest::{IngestConfig, VideoSource, ingest_file};
use horsestream_sinks::kafka::{TopicProducer, ensure_topics};

use crate::options::{KafkaOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The video file.
    #[arg(long)]
    pub input: PathBuf,
    /// The stream the chunks belong to (the Kafka key).
    #[arg(long)]
    pub stream_id: String,
    #[command(flatten)]
    pub kafka: KafkaOptions,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Refuse a file that is not a video before touching the broker.
    VideoSource::open(&args.input, 1)?;
    let rt = runtime()?;
    let kafka = args.kafka.config();
    rt.block_on(ensure_topics(&kafka))
        .with_context(|| format!("creating topics on {}", kafka.brokers))?;
    let producer = TopicProducer::new(&kafka, &kafka.chunks_topic)?;
    let stats = ingest_file(
        &args.input,
        &args.stream_id,
        &IngestConfig::default(),
        &mut |chunk| {
            let bytes = chunk.encode_to_vec();
            rt.block_on(producer.send(&chunk.stream_id, &bytes))
                .map(|_| ())
        },
    )?;
    producer.flush()?;
    println!(
        "{}: {} chunks ({} frames) published to {}",
        args.input.display(),
        stats.chunks,
        stats.frames_published,
        kafka.chunks_topic
    );
    Ok(())
}
