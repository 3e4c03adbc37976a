//! DeepSORT association time per frame: one `Tracker::update` (predict, Mahalanobis gating,
//! appearance cascade over full 100-feature galleries, IoU stage, Kalman updates, gallery
//! pushes) at steady state with 5, 20 and 50 confirmed tracks, one detection per track,
//! in two scenes: `association` (horses apart, the common case) and `association_crowded`
//! (every motion gate holds several detections: the worst case for the appearance costs).
//!
//! Embeddings are 128-d random unit vectors rather than the model's 1280-d so that the
//! number isolates association (the re-ID network's cost is measured elsewhere); the
//! horses move on separate circles, so the scene stays steady however long criterion runs.
//! Building the frame (cloning embeddings) happens in untimed setup.
//!
//! Run: `cargo bench -p horsestream-dataflow --bench association`
//! (throughput is reported in tracks/s; time per iteration is time per frame).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use horsestream_dataflow::tracking::{DetectionIn, Tracker, TrackerConfig};
use horsestream_proto::BoundingBox;

const DIM: usize = 128;

/// splitmix64.
struct Rng(u64);
impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

struct Scene {
    embeddings: Vec<Vec<f32>>,
    /// Grid spacing in px.
    spacing: f32,
}

impl Scene {
    fn new(n: usize, spacing: f32) -> Self {
        let mut rng = Rng(42);
        let embeddings = (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..DIM).map(|_| rng.next_f32()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        Self {
            embeddings,
            spacing,
        }
    }

    /// Horse `i` on a 10-wide grid, circling with radius 30 px and a 200-frame period
    /// (≈ 1 px per frame); all circles move in phase, so spacing stays constant.
    fn frame(&self, t: u64) -> Vec<DetectionIn> {
        let phase = (t % 200) as f32 / 200.0 * std::f32::consts::TAU;
        (0..self.embeddings.len())
            .map(|i| {
                let (gx, gy) = ((i % 10) as f32, (i / 10) as f32);
                let (cx, cy) = (gx * self.spacing + 100.0, gy * self.spacing + 100.0);
                BoundingBox {
                    x: cx + 30.0 * phase.cos() - 40.0,
                    y: cy + 30.0 * phase.sin() - 30.0,
                    w: 80.0,
                    h: 60.0,
                }
            })
            .zip(&self.embeddings)
            .map(|(bbox, e)| DetectionIn {
                bbox,
                score: 0.9,
                embedding: Some(e.clone()),
                candidate: false,
            })
            .collect()
    }
}

/// `spacing` 200 px: every track's motion gate holds only its own detection (the usual
/// case). `spacing` 4 px: the gate (about 16 px wide at steady state for 60 px tall boxes)
/// holds about a dozen neighbours, so every cascade cost needs a full min over the
/// 100-feature gallery and the Hungarian solver has real work.
fn association(c: &mut Criterion) {
    for (name, spacing) in [("association", 200.0), ("association_crowded", 4.0)] {
        let mut group = c.benchmark_group(name);
        for n in [5usize, 20, 50] {
            let scene = Scene::new(n, spacing);
            let mut tracker = Tracker::new(TrackerConfig::default());
            // Warm up past n_init and until every gallery holds nn_budget (100) features.
            let mut t = 0u64;
            while t < 150 {
                tracker.update(&scene.frame(t));
                t += 1;
            }
            let confirmed = tracker.update(&scene.frame(t)).len();
            t += 1;
            assert_eq!(confirmed, n, "every horse is tracked at steady state");
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new("tracks", n), &n, |b, _| {
                b.iter_batched(
                    || {
                        t += 1;
                        scene.frame(t)
                    },
                    |frame| tracker.update(&frame),
                    BatchSize::SmallInput,
                )
            });
            let ids: Vec<u64> = tracker.tracks().iter().map(|t| t.id()).collect();
            assert_eq!(
                ids,
                (1..=n as u64).collect::<Vec<_>>(),
                "no id lost or switched"
            );
        }
        group.finish();
    }
}

criterion_group!(benches, association);
criterion_main!(benches);
