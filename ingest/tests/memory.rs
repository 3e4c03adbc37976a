//! Ingest's memory stays flat over a long file: the resident set after the last chunk is
//! within a few MiB of what it was after the first ones. Before the fix, every demuxed packet
//! leaked (`av_read_frame` fills a packet without releasing the one it held): ~12 KB a
//! 10 fps frame, 30 MiB over these 4 minutes. The only test in this binary, so no other test
//! thread moves the process's RSS.

use std::time::Duration;

use horsestream_ingest::{IngestConfig, SampleSpec, ingest_file, make_sample_video};
use horsestream_proto::FrameChunk;

/// This process's resident set in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[test]
fn rss_stays_flat_over_a_four_minute_file() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("long.mp4");
    let photo =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/media/horses.jpg");
    make_sample_video(
        &photo,
        &video,
        &SampleSpec {
            duration: Duration::from_secs(240),
            ..SampleSpec::default()
        },
    )
    .expect("writing a 4-minute video");

    let mut samples = Vec::new();
    let stats = ingest_file(
        &video,
        "memory",
        &IngestConfig::default(),
        &mut |c: FrameChunk| {
            samples.push((c.sequence, rss_kib()));
            Ok::<(), std::io::Error>(())
        },
    )
    .expect("ingest");
    assert!(stats.chunks >= 26, "{stats:?}");
    // From the third chunk on (buffers and the encoder are allocated by then) to the last.
    let (_, settled) = samples[2];
    let (_, last) = *samples.last().unwrap();
    let peak = samples.iter().map(|(_, r)| *r).max().unwrap();
    eprintln!("RSS KiB by chunk: {samples:?}");
    assert!(
        last <= settled + 8 * 1024 && peak <= settled + 8 * 1024,
        "RSS grew from {settled} KiB (chunk 2) to {last} KiB (peak {peak}) over {} chunks",
        samples.len()
    );
}
