//! Ingests one video file as N concurrent streams (one thread each) inside one process with the
//! default [`IngestConfig`] (10 fps by PTS, JPEG q90 via FFmpeg mjpeg, 10 s chunks with 1 s
//! overlap), drops every chunk, and prints the process's peak RSS (`VmHWM` from
//! `/proc/self/status`). Used by the `vs_ffmpeg` bench for the "peak RSS with 20 file streams"
//! number of issue 3.
//!
//! Run: `cargo run --release -p horsestream-ingest --example many_streams -- FILE [N=20]`
//! Prints one line: `streams=N frames=… elapsed_s=… peak_rss_mib=…`.

use std::path::PathBuf;
use std::time::Instant;

use horsestream_ingest::{FfmpegLogLevel, IngestConfig, ingest_file, set_ffmpeg_log_level};
use horsestream_proto::FrameChunk;

/// Peak resident set size of this process in KiB (`VmHWM`), if `/proc` is available.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(file) = args.next().map(PathBuf::from) else {
        eprintln!("usage: many_streams FILE [N=20]");
        std::process::exit(2);
    };
    let n: usize = match args.next().map(|a| a.to_string_lossy().parse()) {
        None => 20,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("N must be a positive integer");
            std::process::exit(2);
        }
    };
    set_ffmpeg_log_level(FfmpegLogLevel::Error);
    let cfg = IngestConfig::default();
    let start = Instant::now();
    let frames: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (file, cfg) = (&file, &cfg);
                s.spawn(move || {
                    let id = format!("stream-{i}");
                    ingest_file(file, &id, cfg, &mut |c: FrameChunk| {
                        drop(c);
                        Ok::<(), std::io::Error>(())
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join().expect("ingest thread panicked") {
                Ok(stats) => stats.frames_emitted,
                Err(e) => {
                    eprintln!("ingest failed: {e}");
                    std::process::exit(1);
                }
            })
            .sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let rss = peak_rss_kib().map_or_else(
        || "unknown".to_string(),
        |k| format!("{:.1}", k as f64 / 1024.0),
    );
    println!("streams={n} frames={frames} elapsed_s={elapsed:.2} peak_rss_mib={rss}");
}
