//! Memory of the ONNX Runtime sessions under the dataflow's real load: the re-ID model sees a
//! different batch size on almost every call (the number of horses in a batch of frames), the
//! detector a different one at the end of each chunk. A session must not keep memory for every
//! shape it has seen: over a long run that shows as RSS growing in steps.
//!
//! Needs the real ONNX Runtime library and the model files, as `real_models.rs`.

use std::path::PathBuf;

use horsestream_models::{MODEL_DIR_ENV, Manifest, ModelRegistry, init_runtime};

/// This process's resident set in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn registry() -> ModelRegistry {
    let dir = std::env::var_os(MODEL_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/models"));
    if let Err(e) = init_runtime(None) {
        panic!("{e}");
    }
    ModelRegistry::new(dir, Manifest::embedded()).with_intra_threads(1)
}

/// A deterministic sequence of batch sizes in `1..=max` (xorshift).
fn sizes(seed: u64, n: usize, max: usize) -> Vec<usize> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % max as u64) as usize + 1
        })
        .collect()
}

#[test]
fn reid_rss_stays_flat_over_changing_batch_sizes() {
    let mut embedder = registry().embedder("reid_mobilenetv2").unwrap();
    let crop = image::RgbImage::from_fn(64, 128, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let max = 24;
    let mut run = |sizes: &[usize]| {
        for &n in sizes {
            let crops = vec![crop.clone(); n];
            assert_eq!(embedder.embed(&crops).unwrap().len(), n);
        }
    };
    // Warm-up: every size once.
    run(&(1..=max).collect::<Vec<_>>());
    let settled = rss_kib();
    let mut samples = vec![settled];
    for round in 0..6 {
        run(&sizes(round + 1, 40, max));
        samples.push(rss_kib());
    }
    eprintln!("RSS KiB after the warm-up and after each round of 40 calls: {samples:?}");
    let peak = *samples.iter().max().unwrap();
    assert!(
        peak <= settled + settled / 10,
        "RSS grew from {settled} KiB after every batch size was seen once to {peak} KiB: {samples:?}"
    );
}
