//! End-to-end ingest of the 20 s 768×512 25 fps sample video (generated once into a tempdir):
//! decode (threaded) + resample to 10 fps + JPEG q90 + chunking, counted in output frames.
//! Run: `cargo bench -p horsestream-ingest --bench ingest_sample`.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use horsestream_ingest::{IngestConfig, JpegBackend, SampleSpec, ingest_file, make_sample_video};
use horsestream_proto::FrameChunk;

fn photo() -> PathBuf {
    std::env::var_os("HORSESTREAM_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"))
        .join("horses.jpg")
}

fn bench(c: &mut Criterion) {
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("sample.mp4");
    make_sample_video(&photo(), &video, &SampleSpec::default()).unwrap();
    let mut group = c.benchmark_group("ingest_sample_20s");
    group.sample_size(10);
    group.throughput(Throughput::Elements(200));
    for (name, backend) in [
        ("ffmpeg_mjpeg", JpegBackend::Ffmpeg),
        ("image_crate", JpegBackend::Image),
    ] {
        let mut cfg = IngestConfig::default();
        cfg.encode.jpeg_backend = backend;
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                let stats = ingest_file(&video, "bench", &cfg, &mut |c: FrameChunk| {
                    n += c.frames.len();
                    Ok::<(), std::io::Error>(())
                })
                .unwrap();
                assert_eq!(stats.frames_emitted, 200);
                n
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
