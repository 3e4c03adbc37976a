//! Bad files: each gives one `IngestError` naming the file, and no chunk with missing frames.

use std::path::{Path, PathBuf};
use std::time::Duration;

use horsestream_ingest::{IngestConfig, IngestError, SampleSpec, ingest_file, make_sample_video};
use horsestream_proto::FrameChunk;

fn photo() -> PathBuf {
    std::env::var_os("HORSESTREAM_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"))
        .join("horses.jpg")
}

type Outcome = (
    Result<horsestream_ingest::IngestStats, IngestError>,
    Vec<FrameChunk>,
);

fn ingest(path: &Path) -> Outcome {
    ingest_with(path, &IngestConfig::default())
}

fn ingest_with(path: &Path, cfg: &IngestConfig) -> Outcome {
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Fatal);
    let mut chunks = Vec::new();
    let r = ingest_file(path, "bad", cfg, &mut |c: FrameChunk| {
        chunks.push(c);
        Ok::<(), std::io::Error>(())
    });
    (r, chunks)
}

fn assert_one_line_naming(err: &IngestError, path: &Path) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

/// A 12 s sample (chunks [0,10) and [9,12)), `faststart` or not, cut to half its bytes.
fn half_sample(dir: &Path, faststart: bool) -> PathBuf {
    let full = dir.join(format!("full-{faststart}.mp4"));
    let spec = SampleSpec {
        duration: Duration::from_secs(12),
        faststart,
        ..SampleSpec::default()
    };
    make_sample_video(&photo(), &full, &spec).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.join(format!("half-{faststart}.mp4"));
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    cut
}

#[test]
fn text_file_is_not_media() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.mp4");
    std::fs::write(
        &path,
        "these are not the horses you are looking for\n".repeat(50),
    )
    .unwrap();
    let (r, chunks) = ingest(&path);
    let err = r.unwrap_err();
    assert!(matches!(err, IngestError::NotMedia { .. }), "{err:?}");
    assert_one_line_naming(&err, &path);
    assert!(chunks.is_empty());
}

#[test]
fn zero_byte_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.mp4");
    std::fs::write(&path, b"").unwrap();
    let (r, chunks) = ingest(&path);
    let err = r.unwrap_err();
    assert!(matches!(err, IngestError::Empty { .. }), "{err:?}");
    assert_one_line_naming(&err, &path);
    assert!(chunks.is_empty());
}

#[test]
fn missing_file_is_io() {
    let path = PathBuf::from("/nonexistent/horse.mp4");
    let (r, _) = ingest(&path);
    let err = r.unwrap_err();
    assert!(matches!(err, IngestError::Io { .. }), "{err:?}");
    assert_one_line_naming(&err, &path);
}

#[test]
fn truncated_mp4_without_index_is_not_media() {
    let dir = tempfile::tempdir().unwrap();
    let path = half_sample(dir.path(), false);
    let (r, chunks) = ingest(&path);
    let err = r.unwrap_err();
    assert!(matches!(err, IngestError::NotMedia { .. }), "{err:?}");
    assert_one_line_naming(&err, &path);
    assert!(chunks.is_empty());
}

#[test]
fn truncated_faststart_mp4_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = half_sample(dir.path(), true);
    let (r, chunks) = ingest(&path);
    let err = r.unwrap_err();
    let IngestError::Truncated {
        decoded_us,
        expected_us,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(expected_us, 12_000_000);
    assert!(decoded_us > 1_000_000 && decoded_us < 11_000_000, "{err}");
    assert_one_line_naming(&err, &path);
    assert!(err.to_string().contains("truncated"), "{err}");
    // Half the bytes do not reach 10 s, so no complete chunk, and no partial one either.
    assert!(chunks.is_empty(), "{}", chunks.len());

    // With 2 s chunks the chunks completed before the cut are published, all complete.
    let cfg = IngestConfig {
        chunk_len: Duration::from_secs(2),
        ..IngestConfig::default()
    };
    let (r, chunks) = ingest_with(&path, &cfg);
    assert!(matches!(r, Err(IngestError::Truncated { .. })));
    assert!(!chunks.is_empty());
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.sequence, i as u64);
        assert_eq!(c.frames.len(), 20, "{}", c.chunk_id());
        assert_eq!(c.end_pts_us - c.start_pts_us, 2_000_000);
        assert!(c.end_pts_us <= decoded_us + 100_000);
    }
}

#[test]
fn file_without_video_is_refused() {
    // A PNG is readable by FFmpeg as a single-image video; a WAV has audio only.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let rate = 8000u32;
    let samples: Vec<u8> = (0..rate)
        .flat_map(|i| ((i % 40) as i16 * 400).to_le_bytes())
        .collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    std::fs::write(&path, wav).unwrap();
    let (r, chunks) = ingest(&path);
    let err = r.unwrap_err();
    assert!(matches!(err, IngestError::NoVideoStream { .. }), "{err:?}");
    assert_one_line_naming(&err, &path);
    assert!(chunks.is_empty());
}
