//! `horsestream replay`: a stream's historical chunks, between two times, read again from the
//! chunks topic through the very same dataflow. Rows are keyed as live rows are, so a replay
//! over already processed chunks adds nothing and one over lost results fills them in.

use anyhow::Context;
use chrono::DateTime;
use horsestream_dataflow::source::kafka::Replay;

use super::dataflow;

#[derive(Debug, clap::Args)]
#[group(id = "replay_args")]
pub struct Args {
    /// The stream to replay.
    #[arg(long)]
    pub stream: String,
    /// Start of the range, RFC 3339 (e.g. 2026-11-23T10:00:00Z).
    #[arg(long)]
    pub from: String,
    /// End of the range, RFC 3339.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub dataflow: dataflow::Args,
}

fn parse_ms(what: &str, text: &str) -> anyhow::Result<i64> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--{what} {text:?} is not an RFC 3339 time"))?
        .timestamp_millis())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let from_ms = parse_ms("from", &args.from)?;
    let to_ms = parse_ms("to", &args.to)?;
    anyhow::ensure!(
        from_ms <= to_ms,
        "--from {} is after --to {}",
        args.from,
        args.to
    );
    dataflow::run_with(
        args.dataflow,
        Some(Replay {
            from_ms,
            to_ms,
            stream: Some(args.stream),
        }),
    )
}
