//! Generates the sample video from `horses.jpg` into a tempdir and ingests it end to end.

use std::path::PathBuf;
use std::time::Duration;

use horsestream_ingest::{
    Fps, IngestConfig, SampleSpec, expected_chunks, ingest_file, make_sample_video,
};
use horsestream_proto::{FrameChunk, FrameEncoding};

/// `horses.jpg` from the shared media folder (`HORSESTREAM_MEDIA_DIR` overrides).
fn photo() -> PathBuf {
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    std::env::var_os("HORSESTREAM_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"))
        .join("horses.jpg")
}

fn ingest_all(path: &std::path::Path, cfg: &IngestConfig) -> Vec<FrameChunk> {
    let mut chunks = Vec::new();
    let stats = ingest_file(path, "paddock-1", cfg, &mut |c: FrameChunk| {
        chunks.push(c);
        Ok::<(), std::io::Error>(())
    })
    .unwrap();
    assert_eq!(stats.chunks as usize, chunks.len());
    chunks
}

#[test]
fn sample_video_ingests_into_three_overlapping_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("sample.mp4");
    let info = make_sample_video(&photo(), &video, &SampleSpec::default()).unwrap();
    assert_eq!(info.frame_count, 500);
    assert_eq!(info.duration_us, 20_000_000);
    assert_eq!(info.fps, Fps::new(25, 1));
    assert_eq!(
        info.whole_photo_us,
        vec![0..3_000_000, 17_000_000..20_000_000]
    );

    let cfg = IngestConfig {
        stream_start_time_us: Some(1_700_000_000_000_000),
        ..IngestConfig::default()
    };
    let chunks = ingest_all(&video, &cfg);
    let (expected, total) = expected_chunks(
        info.duration_us,
        cfg.fps,
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(total, 220);
    assert_eq!(chunks.len(), 3);
    let sizes: Vec<usize> = chunks.iter().map(|c| c.frames.len()).collect();
    assert_eq!(sizes, vec![100, 100, 20]);
    for (c, e) in chunks.iter().zip(&expected) {
        assert_eq!(
            (c.sequence, c.start_pts_us, c.end_pts_us, c.frames.len()),
            (e.sequence, e.start_pts_us, e.end_pts_us, e.frames)
        );
        assert_eq!(c.chunk_id(), format!("paddock-1:{}", c.sequence));
        assert_eq!((c.width, c.height), (768, 512));
        assert_eq!((c.fps_num, c.fps_den), (10, 1));
        assert_eq!(c.encoding, FrameEncoding::Jpeg);
        assert!(c.source.starts_with("file://") && c.source.contains("sample.mp4"));
        for (i, f) in c.frames.iter().enumerate() {
            assert_eq!(f.index as usize, i);
            assert_eq!(f.capture_time_us, 1_700_000_000_000_000 + f.pts_us);
            assert!(f.data.starts_with(&[0xff, 0xd8]), "JPEG SOI");
        }
        for w in c.frames.windows(2) {
            assert_eq!(w[1].pts_us - w[0].pts_us, 100_000);
        }
        // Every chunk survives the wire.
        assert_eq!(&FrameChunk::decode(&c.encode_to_vec()).unwrap(), c);
    }
    // Overlap: the last second of a chunk is the first second of the next, same pts and
    // same pictures.
    for pair in chunks.windows(2) {
        let tail: Vec<_> = pair[0].frames[90..]
            .iter()
            .map(|f| (f.pts_us, &f.data))
            .collect();
        let head: Vec<_> = pair[1].frames[..10]
            .iter()
            .map(|f| (f.pts_us, &f.data))
            .collect();
        assert_eq!(tail, head);
    }
    let first = image::load_from_memory(&chunks[0].frames[0].data).unwrap();
    assert_eq!((first.width(), first.height()), (768, 512));
}

#[test]
fn sample_video_is_deterministic_and_max_width_scales() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec {
        duration: Duration::from_secs(4),
        hold: Duration::from_secs(1),
        faststart: true,
        ..SampleSpec::default()
    };
    let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
    make_sample_video(&photo(), &a, &spec).unwrap();
    make_sample_video(&photo(), &b, &spec).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    let mut cfg = IngestConfig::default();
    cfg.encode.max_width = Some(384);
    let chunks = ingest_all(&a, &cfg);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].frames.len(), 40);
    assert_eq!((chunks[0].width, chunks[0].height), (384, 256));
    assert_eq!(chunks[0].end_pts_us, 4_000_000);
}
