//! Exact timing on real files: a 29.97 fps file and a variable-frame-rate file (both made by
//! the ffmpeg CLI from its test source) give frames exactly 100 ms apart in every chunk, and
//! consecutive chunks overlap by exactly 1 s.

use std::path::Path;
use std::process::Command;

use horsestream_ingest::{IngestConfig, ingest_file};
use horsestream_proto::FrameChunk;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg CLI (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chunks(path: &Path) -> Vec<FrameChunk> {
    let mut out = Vec::new();
    ingest_file(path, "timing", &IngestConfig::default(), &mut |c| {
        out.push(c);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    out
}

/// Checks the spacing and overlaps, and that the last frame sits at `last_s` of stream time
/// (resampling by frame count instead of timestamps would end elsewhere on a VFR file).
fn assert_exact(chunks: &[FrameChunk], last_s: f64) {
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    let last = chunks.last().unwrap().frames.last().unwrap().pts_us as f64 / 1e6;
    assert!(
        (last - last_s).abs() <= 0.15,
        "last frame at {last} s, expected {last_s} s"
    );
    for c in chunks {
        for pair in c.frames.windows(2) {
            let step = pair[1].pts_us - pair[0].pts_us;
            assert!(
                (step - 100_000).abs() <= 1_000,
                "chunk {}: step {step} µs",
                c.sequence
            );
        }
    }
    for pair in chunks.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(
            b.start_pts_us - a.start_pts_us,
            9_000_000,
            "chunk starts 9 s apart"
        );
        assert_eq!(a.end_pts_us - b.start_pts_us, 1_000_000, "1 s overlap");
        let overlap_a: Vec<i64> = a
            .frames
            .iter()
            .map(|f| f.pts_us)
            .filter(|p| *p >= b.start_pts_us)
            .collect();
        let overlap_b: Vec<i64> = b
            .frames
            .iter()
            .map(|f| f.pts_us)
            .filter(|p| *p < a.end_pts_us)
            .collect();
        assert_eq!(
            overlap_a, overlap_b,
            "the overlap holds the same frames in both chunks"
        );
        assert_eq!(overlap_a.len(), 10, "1 s at 10 fps");
    }
}

#[test]
fn a_29_97_fps_file_gives_frames_100_ms_apart_and_1_s_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ntsc.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30000/1001:duration=25",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path.to_str().unwrap(),
    ]);
    let chunks = chunks(&path);
    assert_exact(&chunks, 24.9);
}

#[test]
fn a_variable_frame_rate_file_gives_frames_100_ms_apart_and_1_s_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vfr.mkv");
    // Frame intervals cycle through 20 ms, 50 ms and 90 ms (18.75 fps on average): the 2000
    // frames span 106.58 s, where a frame-counting resampler would assume 40 s.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=50:duration=40",
        "-vf",
        "setpts='(floor(N/3)*0.16 + if(eq(mod(N,3),0),0,if(eq(mod(N,3),1),0.02,0.07)))/TB'",
        "-fps_mode",
        "vfr",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        path.to_str().unwrap(),
    ]);
    let chunks = chunks(&path);
    assert_exact(&chunks, 106.5);
}
