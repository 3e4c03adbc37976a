//! The `horsestream` binary: one CLI whose subcommands run each process of the platform
//! (`ingest`, `dataflow`, `api`) or all of it in one process on embedded defaults (`demo`).

mod commands;
mod metrics_server;
mod options;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "horsestream",
    version,
    about = "Horse video analytics on a timely dataflow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ingest → dataflow → store in one process: in-process bus, embedded SQLite store.
    Demo(commands::demo::Args),
    /// Decode a video source (or every enabled stream of the streams table) into chunks on
    /// the chunks topic.
    Ingest(commands::ingest::Args),
    /// Run the timely dataflow over the chunks topic into TimescaleDB and the events topic.
    Dataflow(commands::dataflow::Args),
    /// Run a stream's chunks between two times through the dataflow again.
    Replay(commands::replay::Args),
    /// Serve the HTTP API.
    Api(commands::api::Args),
    /// Register streams in the store (results of unregistered streams are refused).
    Stream(commands::stream::Args),
    /// Show the horse gallery's embedding size, or migrate it to the re-ID model's.
    Gallery(commands::gallery::Args),
    /// Write the sample video (a pan and zoom over a photo of horses).
    SampleVideo(commands::sample::Args),
}

fn main() -> std::process::ExitCode {
    // HORSESTREAM_LOG_SPANS=1 also writes a line when a span closes, with its fields (a
    // chunk's trace id among them) and its busy time: a chunk's trace across processes, read
    // from the logs (`HORSESTREAM_LOG=horsestream::trace=info` selects the per-chunk spans).
    let spans = std::env::var("HORSESTREAM_LOG_SPANS").is_ok_and(|v| !v.is_empty() && v != "0");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HORSESTREAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_span_events(if spans {
            tracing_subscriber::fmt::format::FmtSpan::CLOSE
        } else {
            tracing_subscriber::fmt::format::FmtSpan::NONE
        })
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    horsestream_ingest::set_ffmpeg_log_level(
        if std::env::var_os("HORSESTREAM_FFMPEG_LOG").is_some() {
            horsestream_ingest::FfmpegLogLevel::Info
        } else {
            horsestream_ingest::FfmpegLogLevel::Error
        },
    );
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(a),
        Command::Ingest(a) => commands::ingest::run(a),
        Command::Dataflow(a) => commands::dataflow::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Api(a) => commands::api::run(a),
        Command::SampleVideo(a) => commands::sample::run(a),
        Command::Stream(a) => commands::stream::run(a),
        Command::Gallery(a) => commands::gallery::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined.
            eprintln!("horsestream: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
