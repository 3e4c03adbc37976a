//! Detects horses in one image and prints a rough timing of each step.
//!
//! `cargo run --release -p horsestream-models --example detect -- IMAGE [ITERATIONS]`
//! Needs `HORSESTREAM_MODEL_DIR` (and `ORT_DYLIB_PATH` unless the library is at the install
//! script's default path). Proper benchmarks live in `benches/`.

use std::time::Instant;

use horsestream_models::{ModelRegistry, ModelsConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image_path = args.next().ok_or("usage: detect IMAGE [ITERATIONS]")?;
    let iterations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let threads: Option<usize> = std::env::var("INTRA_THREADS")
        .ok()
        .map(|s| s.parse())
        .transpose()?;

    let config = ModelsConfig {
        intra_threads: threads,
        ..ModelsConfig::default()
    };
    let mut det = ModelRegistry::from_config(&config)?.detector("yolox_nano")?;
    let img = image::open(&image_path)?.to_rgb8();

    for d in &det.detect(std::slice::from_ref(&img))?[0] {
        println!(
            "class {} score {:.3} bbox {:?}",
            d.class_id, d.score, d.bbox
        );
    }

    for batch in [1usize, 4, 8] {
        let frames = vec![img.clone(); batch];
        let (input, letterboxes) = det.preprocess(&frames);
        det.detect_tensor(input.view())?; // warm-up
        let (mut pre, mut infer, mut post) = (0.0, 0.0, 0.0);
        for _ in 0..iterations {
            let t0 = Instant::now();
            let (input, _) = det.preprocess(&frames);
            let t1 = Instant::now();
            let raw = det.detect_tensor(input.view())?;
            let t2 = Instant::now();
            let out = det.postprocess(raw.view(), &letterboxes);
            let t3 = Instant::now();
            assert_eq!(out.len(), batch);
            pre += (t1 - t0).as_secs_f64();
            infer += (t2 - t1).as_secs_f64();
            post += (t3 - t2).as_secs_f64();
        }
        let per_frame = |s: f64| s * 1e3 / (iterations * batch) as f64;
        println!(
            "batch {batch}: per frame preprocess {:.2} ms, inference {:.2} ms, postprocess {:.3} ms",
            per_frame(pre),
            per_frame(infer),
            per_frame(post)
        );
    }
    Ok(())
}
