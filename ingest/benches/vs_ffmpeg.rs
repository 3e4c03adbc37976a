//! Issue 3 benchmark: our file ingest side by side with the ffmpeg CLI doing the same transform
//! in the same run, plus the peak RSS of one ingest process running 20 file streams.
//!
//! What it measures:
//! 1. Generates a 20 s 1280×720 30 fps H.264 (libx264, yuv420p) file from `testsrc2` with the
//!    ffmpeg CLI into a tempdir (600 source frames → 200 output frames at 10 fps).
//! 2. `ingest_file` with the default `IngestConfig` (10 fps by PTS, JPEG q90 via FFmpeg mjpeg =
//!    qscale 2, 10 s chunks with 1 s overlap; the publish callback drops chunks): best of 3
//!    (after one warm-up), reported as output frames/s.
//! 3. `ffmpeg -threads 0 -i in.mp4 -vf fps=10 -c:v mjpeg -q:v 2 -f image2pipe -y /dev/null`:
//!    decode + resample + scale (yuv420p → yuvj420p) + JPEG encode, best of 3 (after one
//!    warm-up; process start-up included), as output frames/s. Prints ours/ffmpeg and whether
//!    the ≥ 0.9× goal is met.
//! 4. Builds the `many_streams` example and runs it as
//!    `/usr/bin/time -v many_streams in.mp4 20` (20 concurrent `ingest_file` streams on threads
//!    in one process, chunks dropped); prints its own `VmHWM` and, when `/usr/bin/time` exists,
//!    its "Maximum resident set size", in MiB.
//!
//! Run: `cargo bench -p horsestream-ingest --bench vs_ffmpeg`
//! Needs the `ffmpeg` CLI with libx264 on PATH; `/usr/bin/time` (Debian package `time`) is
//! optional. `HORSESTREAM_BENCH_STREAMS` overrides the stream count (default 20).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use horsestream_ingest::{FfmpegLogLevel, IngestConfig, ingest_file, set_ffmpeg_log_level};
use horsestream_proto::FrameChunk;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const SRC_FPS: u32 = 30;
const SECONDS: u32 = 20;
/// Output frames at 10 fps over 20 s.
const OUT_FRAMES: u64 = 200;
const RUNS: usize = 3;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn make_input(path: &Path) {
    let src = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={SRC_FPS}:duration={SECONDS}");
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &src,
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "60", "-movflags", "+faststart"])
        .arg(path));
}

/// Best (shortest) of one warm-up plus `RUNS` timed runs of `f`.
fn best_of(mut f: impl FnMut()) -> Duration {
    f();
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("RUNS > 0")
}

fn ours(input: &Path) -> Duration {
    let cfg = IngestConfig::default();
    best_of(|| {
        let stats = ingest_file(input, "bench", &cfg, &mut |c: FrameChunk| {
            drop(c);
            Ok::<(), std::io::Error>(())
        })
        .expect("ingest_file");
        assert_eq!(stats.frames_emitted, OUT_FRAMES);
    })
}

fn ffmpeg_cli(input: &Path) -> Duration {
    best_of(|| {
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-threads", "0", "-i"])
            .arg(input)
            .args(["-vf", "fps=10", "-c:v", "mjpeg", "-q:v", "2"])
            .args(["-f", "image2pipe", "-y", "/dev/null"]));
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn peak_rss(input: &Path, streams: usize) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--release", "-p", "horsestream-ingest"])
        .args(["--example", "many_streams"]));
    let exe = target_dir().join("release/examples/many_streams");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-v").arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = run(cmd.arg(input).arg(streams.to_string()));
    let line = out
        .lines()
        .find(|l| l.starts_with("streams="))
        .unwrap_or("(no summary line)");
    println!("many_streams: {line}");
    if let Some(kib) = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        println!(
            "peak RSS, {streams} streams, one process (/usr/bin/time -v): {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
}

fn main() {
    set_ffmpeg_log_level(FfmpegLogLevel::Error);
    let streams: usize = std::env::var("HORSESTREAM_BENCH_STREAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.mp4");
    make_input(&input);
    println!(
        "input: {WIDTH}x{HEIGHT} H.264 yuv420p {SRC_FPS} fps {SECONDS} s (testsrc2) → {OUT_FRAMES} frames at 10 fps, JPEG q90/qscale 2; best of {RUNS}"
    );

    let t_ours = ours(&input);
    let t_ffmpeg = ffmpeg_cli(&input);
    let fps = |t: Duration| OUT_FRAMES as f64 / t.as_secs_f64();
    let (ours_fps, ffmpeg_fps) = (fps(t_ours), fps(t_ffmpeg));
    let ratio = ours_fps / ffmpeg_fps;
    println!(
        "ingest_file:  {:7.1} frames/s ({:.3} s)",
        ours_fps,
        t_ours.as_secs_f64()
    );
    println!(
        "ffmpeg CLI:   {:7.1} frames/s ({:.3} s)",
        ffmpeg_fps,
        t_ffmpeg.as_secs_f64()
    );
    println!(
        "ratio ours/ffmpeg: {ratio:.2}× — goal ≥ 0.90×: {}",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );

    peak_rss(&input, streams);
}
