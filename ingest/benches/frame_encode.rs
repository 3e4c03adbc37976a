//! JPEG encoding of one 768×512 frame, from the decoder's YUV 4:2:0 to JPEG bytes (swscale
//! included), with FFmpeg's mjpeg and with the `image` crate, both at quality 90. Prints the
//! bytes per frame of each. Run: `cargo bench -p horsestream-ingest --bench frame_encode`.

use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ffmpeg_next::{format::Pixel, frame, software::scaling};
use horsestream_ingest::{EncodeOptions, FrameEncoder, JpegBackend};

fn photo() -> PathBuf {
    std::env::var_os("HORSESTREAM_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"))
        .join("horses.jpg")
}

/// `horses.jpg` as a 768×512 YUV420P frame, as the H.264 decoder would hand it over.
fn decoded_frame() -> frame::Video {
    ffmpeg_next::init().unwrap();
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    let img = image::open(photo()).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let mut rgb = frame::Video::new(Pixel::RGB24, w, h);
    let stride = rgb.stride(0);
    for (y, row) in img.as_raw().chunks(w as usize * 3).enumerate() {
        rgb.data_mut(0)[y * stride..y * stride + row.len()].copy_from_slice(row);
    }
    let mut yuv = frame::Video::new(Pixel::YUV420P, 768, 512);
    scaling::Context::get(
        Pixel::RGB24,
        w,
        h,
        Pixel::YUV420P,
        768,
        512,
        scaling::Flags::BICUBIC,
    )
    .unwrap()
    .run(&rgb, &mut yuv)
    .unwrap();
    yuv
}

fn bench(c: &mut Criterion) {
    let src = decoded_frame();
    let mut group = c.benchmark_group("jpeg_768x512_q90");
    group.throughput(Throughput::Elements(1));
    for (name, backend) in [
        ("ffmpeg_mjpeg", JpegBackend::Ffmpeg),
        ("image_crate", JpegBackend::Image),
    ] {
        let opts = EncodeOptions {
            jpeg_backend: backend,
            ..EncodeOptions::default()
        };
        let mut enc = FrameEncoder::new(Path::new("bench"), opts).unwrap();
        let bytes = enc.encode(&src).unwrap();
        eprintln!("{name}: {} bytes per frame", bytes.len());
        group.bench_function(name, |b| b.iter(|| enc.encode(&src).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
