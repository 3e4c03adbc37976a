//! Rotation metadata: a sample video (ours, from `horses.jpg`) tagged by the ffmpeg CLI with
//! a display rotation comes out of ingest upright: width and height swap, and the pixels are
//! those of the untagged file turned the way the ffmpeg CLI's autorotate turns them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use horsestream_ingest::{
    EncodeOptions, Fps, HlsConfig, IngestConfig, SampleSpec, VideoSource, ingest_file,
    make_sample_video,
};
use horsestream_proto::{FrameChunk, FrameEncoding};

const W: u32 = 320;
const H: u32 = 240;

#[path = "support/media.rs"]
mod media;
use media::{ffmpeg, photo};

fn sample(dir: &Path) -> PathBuf {
    let path = dir.join("upright.mp4");
    let spec = SampleSpec {
        width: W,
        height: H,
        fps: Fps::new(10, 1),
        duration: Duration::from_secs(2),
        hold: Duration::ZERO,
        ..SampleSpec::default()
    };
    make_sample_video(&photo(), &path, &spec).unwrap();
    path
}

fn tagged(dir: &Path, src: &Path, degrees: u32) -> PathBuf {
    let out = dir.join(format!("rotate{degrees}.mp4"));
    ffmpeg(&[
        "-i",
        src.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        &format!("rotate={degrees}"),
        out.to_str().unwrap(),
    ]);
    out
}

fn rgb_config() -> IngestConfig {
    IngestConfig {
        encode: EncodeOptions {
            encoding: FrameEncoding::Rgb24,
            ..EncodeOptions::default()
        },
        stream_start_time_us: Some(0),
        ..IngestConfig::default()
    }
}

fn first_chunk(path: &Path, cfg: &IngestConfig) -> FrameChunk {
    let mut chunks = Vec::new();
    ingest_file(path, "rot", cfg, &mut |c| {
        chunks.push(c);
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();
    chunks.into_iter().next().expect("a chunk")
}

/// `img` (w×h RGB24) turned clockwise by `cw` degrees.
fn turn(img: &[u8], (w, h): (usize, usize), cw: u32) -> Vec<u8> {
    let (ow, oh) = if cw % 180 == 90 { (h, w) } else { (w, h) };
    let mut out = vec![0; img.len()];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match cw {
                90 => (y, h - 1 - x),
                180 => (w - 1 - x, h - 1 - y),
                270 => (w - 1 - y, x),
                _ => (x, y),
            };
            let (d, s) = ((y * ow + x) * 3, (sy * w + sx) * 3);
            out[d..d + 3].copy_from_slice(&img[s..s + 3]);
        }
    }
    out
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
        .sum::<u64>() as f64
        / a.len() as f64
}

#[test]
fn rotated_files_come_out_upright_like_ffmpeg_autorotate() {
    let dir = tempfile::tempdir().unwrap();
    let src = sample(dir.path());
    let cfg = rgb_config();
    let upright = first_chunk(&src, &cfg);
    assert_eq!((upright.width, upright.height), (W, H));
    let base = &upright.frames[0].data;

    for degrees in [90, 180, 270] {
        let path = tagged(dir.path(), &src, degrees);
        let rotation = VideoSource::open(&path, 1).unwrap().rotation();
        let chunk = first_chunk(&path, &cfg);
        let swaps = degrees != 180;
        let expected_size = if swaps { (H, W) } else { (W, H) };
        assert_eq!(
            (chunk.width, chunk.height),
            expected_size,
            "rotate={degrees} ({rotation:?})"
        );
        assert!(chunk.source.contains("rotated"), "{}", chunk.source);
        let ours = &chunk.frames[0].data;

        // The ffmpeg CLI's autorotated first frame, as RGB24.
        let cli = ffmpeg(&[
            "-i",
            path.to_str().unwrap(),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ]);
        assert_eq!(cli.len(), ours.len());
        assert!(
            mean_abs_diff(ours, &cli) < 4.0,
            "rotate={degrees}: ingest differs from ffmpeg's autorotate by {}",
            mean_abs_diff(ours, &cli)
        );
        // Exactly our upright frame turned one way, and clearly not the other way.
        let cw = rotation.degrees();
        assert_eq!(ours, &turn(base, (W as usize, H as usize), cw));
        if swaps {
            let wrong = turn(base, (W as usize, H as usize), 360 - cw);
            assert!(mean_abs_diff(ours, &wrong) > 10.0, "rotate={degrees}");
        }
    }
}

#[test]
fn hls_segments_of_a_rotated_file_are_upright_too() {
    let dir = tempfile::tempdir().unwrap();
    let src = sample(dir.path());
    let path = tagged(dir.path(), &src, 90);
    let cfg = IngestConfig {
        hls: Some(HlsConfig::new(dir.path().join("hls"))),
        ..rgb_config()
    };
    first_chunk(&path, &cfg);
    let seg = dir.path().join("hls/rot/seg_000000.ts");
    let source = VideoSource::open(&seg, 1).unwrap();
    assert_eq!((source.width(), source.height()), (H, W));
}
