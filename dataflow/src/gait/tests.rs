//! Gait metrics on synthetic tracks: a box moving at a known ground speed whose top edge
//! oscillates at a known stride frequency, with pixel noise and timestamp jitter from a
//! fixed-seed LCG.

use std::f64::consts::TAU;

use horsestream_proto::BoundingBox;

use super::classify::STANDSTILL_MAX_M_S;
use super::*;

/// Knuth's MMIX LCG; deterministic noise without a dependency.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately normal (Irwin–Hall of 4) with standard deviation `sigma`.
    fn noise(&mut self, sigma: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0;
        s * sigma * 3f64.sqrt()
    }
}

#[derive(Debug, Clone, Copy)]
struct Synth {
    class: GaitClass,
    speed_m_s: f64,
    stride_hz: f64,
    /// Box oscillation cycles per stride (2 for the biphasic walk/trot trunk).
    cycles_per_stride: f64,
    /// Oscillation amplitude of the top edge, metres.
    amplitude_m: f64,
    px_per_m: f64,
    secs: f64,
    fps: f64,
    noise_px: f64,
    seed: u64,
}

impl Synth {
    fn new(class: GaitClass, speed_m_s: f64, stride_hz: f64, seed: u64) -> Self {
        let amplitude_m = match class {
            GaitClass::Standstill => 0.0,
            GaitClass::Walk => 0.06,
            GaitClass::Trot => 0.08,
            _ => 0.12,
        };
        Self {
            class,
            speed_m_s,
            stride_hz,
            cycles_per_stride: 1.0,
            amplitude_m,
            px_per_m: if seed.is_multiple_of(2) { 40.0 } else { 60.0 },
            secs: 12.0,
            fps: 10.0,
            noise_px: 1.0,
            seed,
        }
    }

    /// Horse 2.4 m long and 1.6 m tall, moving right along a ground line at y = 600 px.
    fn track(&self) -> Vec<TrackSample> {
        let mut rng = Lcg(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        let ppm = self.px_per_m;
        let phase = TAU * rng.uniform();
        let n = (self.secs * self.fps) as usize + 1;
        (0..n)
            .map(|i| {
                let nominal = i as f64 / self.fps;
                // ±3 ms of capture jitter, which the timestamps report.
                let t = nominal + 0.003 * (2.0 * rng.uniform() - 1.0);
                let centre = 100.0 + self.speed_m_s * ppm * t;
                let osc = self.amplitude_m
                    * ppm
                    * (TAU * self.stride_hz * self.cycles_per_stride * t + phase).sin();
                let bottom = 600.0 + rng.noise(self.noise_px);
                let top = 600.0 - 1.6 * ppm - osc + rng.noise(self.noise_px);
                let left = centre - 1.2 * ppm + rng.noise(self.noise_px);
                let right = centre + 1.2 * ppm + rng.noise(self.noise_px);
                TrackSample {
                    t_us: (t * 1e6).round() as i64,
                    bbox: BoundingBox {
                        x: left as f32,
                        y: top as f32,
                        w: (right - left) as f32,
                        h: (bottom - top) as f32,
                    },
                    pose: None,
                }
            })
            .collect()
    }
}

/// Several speeds × stride frequencies inside each class's typical range, plus standstills.
fn generated_set() -> Vec<Synth> {
    use GaitClass::*;
    let grid: [(GaitClass, [f64; 4], [f64; 3]); 4] = [
        (Walk, [1.3, 1.6, 1.9, 2.2], [0.8, 0.9, 1.0]),
        (Trot, [3.0, 3.7, 4.4, 5.0], [1.2, 1.35, 1.5]),
        (Canter, [4.6, 5.4, 6.2, 7.0], [1.7, 1.85, 2.0]),
        (Gallop, [8.5, 10.5, 12.5, 14.5], [2.05, 2.25, 2.45]),
    ];
    let mut set = Vec::new();
    let mut seed = 1;
    for (class, speeds, freqs) in grid {
        for v in speeds {
            for f in freqs {
                set.push(Synth::new(class, v, f, seed));
                seed += 1;
            }
        }
    }
    for v in [0.0, 0.05, 0.1, 0.15] {
        set.push(Synth::new(Standstill, v, 1.0, seed));
        seed += 1;
    }
    set
}

fn class_index(c: GaitClass) -> usize {
    GaitClass::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

fn confusion_text(confusion: &[[usize; 6]; 6]) -> String {
    let mut s = String::from("true \\ predicted: standstill walk trot canter gallop unknown\n");
    for (c, row) in GaitClass::ALL.iter().zip(confusion) {
        s += &format!("{c:?}: {row:?}\n");
    }
    s
}

fn ppm(s: &Synth) -> Option<Calibration> {
    Some(Calibration::PixelsPerMetre(s.px_per_m))
}

#[test]
fn classification_speed_and_stride_on_the_generated_set() {
    let mut confusion = [[0usize; 6]; 6];
    let (mut windows, mut correct) = (0, 0);
    let mut speed_errors = Vec::new();
    let mut stride_errors = Vec::new();
    let (mut moving_windows, mut with_stride) = (0, 0);
    for s in generated_set() {
        let metrics = analyze(&s.track(), ppm(&s), GaitConfig::default()).expect("valid");
        assert!(
            (9..=10).contains(&metrics.len()),
            "12 s in 4 s windows every 1 s: {s:?}"
        );
        for m in metrics {
            assert_eq!(m.unit, SpeedUnit::MetresPerSecond);
            windows += 1;
            confusion[class_index(s.class)][class_index(m.class)] += 1;
            correct += usize::from(m.class == s.class);
            if s.class == GaitClass::Standstill {
                assert!(m.speed < STANDSTILL_MAX_M_S, "{s:?} {m:?}");
                continue;
            }
            moving_windows += 1;
            let rel = (m.speed - s.speed_m_s).abs() / s.speed_m_s;
            assert!(
                rel <= 0.05,
                "speed error {:.1} % for {s:?}: {m:?}",
                rel * 100.0
            );
            speed_errors.push(rel);
            if let Some(hz) = m.stride_hz {
                with_stride += 1;
                let err = (hz - s.stride_hz).abs();
                assert!(err <= 0.1, "stride error {err:.3} Hz for {s:?}: {m:?}");
                stride_errors.push(err);
            }
        }
    }
    let rate = correct as f64 / windows as f64;
    let table = confusion_text(&confusion);
    println!("{windows} windows, {:.1} % correct\n{table}", rate * 100.0);
    assert!(
        rate >= 0.95,
        "{:.1} % of {windows} windows correct\n{table}",
        rate * 100.0
    );
    let stride_rate = with_stride as f64 / moving_windows as f64;
    assert!(
        stride_rate >= 0.95,
        "stride found in only {:.1} % of moving windows",
        stride_rate * 100.0
    );
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "max speed error {:.2} %, max stride error {:.3} Hz, stride found in {:.1} %",
        max(&speed_errors) * 100.0,
        max(&stride_errors),
        stride_rate * 100.0
    );
}

#[test]
fn uncalibrated_gait_uses_body_lengths() {
    let mut confusion = [[0usize; 6]; 6];
    let (mut windows, mut correct) = (0, 0);
    for s in generated_set() {
        for m in analyze(&s.track(), None, GaitConfig::default()).expect("valid") {
            assert_eq!(m.unit, SpeedUnit::BodyLengthsPerSecond);
            windows += 1;
            confusion[class_index(s.class)][class_index(m.class)] += 1;
            correct += usize::from(m.class == s.class);
            if s.speed_m_s > 1.0 {
                // The box is 2.4 m wide, so body-lengths/s = m/s / 2.4.
                let expected = s.speed_m_s / 2.4;
                let rel = (m.speed - expected).abs() / expected;
                assert!(
                    rel <= 0.05,
                    "speed error {:.1} % for {s:?}: {m:?}",
                    rel * 100.0
                );
            }
        }
    }
    let rate = correct as f64 / windows as f64;
    let table = confusion_text(&confusion);
    println!(
        "uncalibrated: {windows} windows, {:.1} % correct\n{table}",
        rate * 100.0
    );
    assert!(
        rate >= 0.95,
        "{:.1} % of {windows} windows correct\n{table}",
        rate * 100.0
    );
}

#[test]
fn scale_and_translation_homography_equals_pixels_per_metre() {
    let s = Synth::new(GaitClass::Canter, 6.0, 1.8, 77);
    let k = 1.0 / s.px_per_m;
    let h = Calibration::Homography([[k, 0.0, -3.5], [0.0, k, 12.0], [0.0, 0.0, 1.0]]);
    let track = s.track();
    let a = analyze(&track, ppm(&s), GaitConfig::default()).expect("valid");
    let b = analyze(&track, Some(h), GaitConfig::default()).expect("valid");
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert!((a.speed - b.speed).abs() < 1e-9 * a.speed, "{a:?} vs {b:?}");
        assert!(
            (a.distance - b.distance).abs() < 1e-9 * a.distance,
            "{a:?} vs {b:?}"
        );
        assert!(
            (a.acceleration - b.acceleration).abs() < 1e-9,
            "{a:?} vs {b:?}"
        );
        assert_eq!(
            (a.class, a.stride_hz, a.unit),
            (b.class, b.stride_hz, b.unit)
        );
    }
}

#[test]
fn perspective_homography_divides_by_w() {
    let h = Calibration::Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.001, 1.0]]);
    let g = h.to_ground([100.0, 1000.0]).expect("maps");
    assert!(
        (g[0] - 50.0).abs() < 1e-12 && (g[1] - 500.0).abs() < 1e-12,
        "{g:?}"
    );
    let singular = Calibration::Homography([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]);
    assert!(GaitAnalyzer::new(Some(singular), GaitConfig::default()).is_err());
    assert!(
        GaitAnalyzer::new(
            Some(Calibration::PixelsPerMetre(0.0)),
            GaitConfig::default()
        )
        .is_err()
    );
}

#[test]
fn too_short_track_has_no_stride() {
    let s = Synth {
        secs: 1.2,
        ..Synth::new(GaitClass::Trot, 4.0, 1.4, 5)
    };
    let metrics = analyze(&s.track(), ppm(&s), GaitConfig::default()).expect("valid");
    assert_eq!(metrics.len(), 1, "one window shorter than window_s");
    let m = metrics[0];
    assert_eq!(m.stride_hz, None, "1.7 periods: {m:?}");
    assert_eq!(
        m.class,
        GaitClass::Trot,
        "speed alone still classifies: {m:?}"
    );
    assert!((m.speed - 4.0).abs() / 4.0 <= 0.05, "{m:?}");
    let tiny = Synth { secs: 0.5, ..s };
    assert!(
        analyze(&tiny.track(), ppm(&s), GaitConfig::default())
            .expect("valid")
            .is_empty()
    );
}

#[test]
fn gap_in_samples_uses_timestamps_not_indices() {
    let s = Synth::new(GaitClass::Trot, 4.0, 1.4, 11);
    let mut track = s.track();
    // 1.5 s missing: by index the horse would seem to jump, by time it moved at 4 m/s.
    track.retain(|t| !(5_000_000..6_500_000).contains(&t.t_us));
    let metrics = analyze(&track, ppm(&s), GaitConfig::default()).expect("valid");
    assert!(!metrics.is_empty());
    for m in &metrics {
        assert!((m.speed - 4.0).abs() / 4.0 <= 0.05, "{m:?}");
        assert_eq!(m.class, GaitClass::Trot, "{m:?}");
        if let Some(hz) = m.stride_hz {
            assert!((hz - 1.4).abs() <= 0.1, "{m:?}");
        }
    }
    assert!(metrics.iter().filter(|m| m.stride_hz.is_some()).count() >= metrics.len() - 1);
    let total: f64 = metrics.iter().map(|m| m.new_distance).sum();
    assert!(
        (total - 48.0).abs() / 48.0 <= 0.05,
        "12 s at 4 m/s, got {total} m"
    );
}

#[test]
fn unsorted_and_duplicate_samples_give_the_same_metrics() {
    let s = Synth::new(GaitClass::Walk, 1.6, 0.9, 21);
    let track = s.track();
    let mut shuffled = track.clone();
    shuffled.reverse();
    shuffled.extend_from_slice(&track[10..20]);
    let a = analyze(&track, ppm(&s), GaitConfig::default()).expect("valid");
    let b = analyze(&shuffled, ppm(&s), GaitConfig::default()).expect("valid");
    assert_eq!(a, b);
}

#[test]
fn biphasic_trot_reports_the_stride_not_the_trunk_oscillation() {
    let s = Synth {
        cycles_per_stride: 2.0,
        ..Synth::new(GaitClass::Trot, 3.8, 1.4, 31)
    };
    for m in analyze(&s.track(), ppm(&s), GaitConfig::default()).expect("valid") {
        assert_eq!(m.class, GaitClass::Trot, "{m:?}");
        let osc = m.oscillation_hz.expect("2.8 Hz is below Nyquist");
        assert!((osc - 2.8).abs() <= 0.1, "{m:?}");
        assert!((m.stride_hz.expect("stride") - 1.4).abs() <= 0.1, "{m:?}");
    }
}

#[test]
fn noise_only_has_no_stride() {
    let mut found = 0;
    let mut windows = 0;
    for seed in 100..110 {
        let s = Synth::new(GaitClass::Standstill, 0.0, 1.0, seed);
        for m in analyze(&s.track(), ppm(&s), GaitConfig::default()).expect("valid") {
            windows += 1;
            found += usize::from(m.stride_hz.is_some());
            assert_eq!(m.class, GaitClass::Standstill);
        }
    }
    assert!(
        found * 10 <= windows,
        "a stride in {found} of {windows} noise windows"
    );
}

#[test]
fn box_jitter_does_not_make_a_standing_horse_walk() {
    for (seed, v) in [0.0, 0.05, 0.1, 0.15].into_iter().enumerate() {
        let s = Synth {
            noise_px: 3.0,
            px_per_m: 40.0,
            ..Synth::new(GaitClass::Standstill, v, 1.0, 200 + seed as u64)
        };
        for m in analyze(&s.track(), ppm(&s), GaitConfig::default()).expect("valid") {
            assert_eq!(m.class, GaitClass::Standstill, "{s:?} {m:?}");
        }
    }
}

#[test]
fn acceleration_from_trot_to_canter() {
    // 3 → 7 m/s over 12 s: 1/3 m/s².
    let ppm_v = 40.0;
    let mut rng = Lcg(9);
    let track: Vec<_> = (0..=120)
        .map(|i| {
            let t = i as f64 / 10.0;
            let x = 100.0 + ppm_v * (3.0 * t + t * t / 6.0) + rng.noise(1.0);
            TrackSample {
                t_us: (t * 1e6) as i64,
                bbox: BoundingBox {
                    x: x as f32,
                    y: 500.0,
                    w: 96.0,
                    h: 64.0 + rng.noise(1.0) as f32,
                },
                pose: None,
            }
        })
        .collect();
    let metrics = analyze(
        &track,
        Some(Calibration::PixelsPerMetre(ppm_v)),
        GaitConfig::default(),
    )
    .expect("valid");
    for m in &metrics {
        assert!((m.acceleration - 1.0 / 3.0).abs() < 0.05, "{m:?}");
        let mid = (m.start_us + m.end_us) as f64 * 0.5e-6;
        let expected = 3.0 + mid / 3.0;
        assert!((m.speed - expected).abs() / expected <= 0.05, "{m:?}");
    }
}

#[test]
fn invalid_config_is_rejected() {
    let bad = [
        GaitConfig {
            window_s: 0.0,
            ..GaitConfig::default()
        },
        GaitConfig {
            stride_band_hz: [2.0, 1.0],
            ..GaitConfig::default()
        },
        GaitConfig {
            min_stride_confidence: 1.5,
            ..GaitConfig::default()
        },
        GaitConfig {
            class_hold_windows: 0,
            ..GaitConfig::default()
        },
    ];
    for c in bad {
        assert!(GaitAnalyzer::new(None, c.clone()).is_err(), "{c:?}");
    }
}

#[test]
fn stored_names_are_serde_names() {
    for c in GaitClass::ALL {
        assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
    }
    for u in [
        SpeedUnit::MetresPerSecond,
        SpeedUnit::BodyLengthsPerSecond,
        SpeedUnit::PixelsPerSecond,
    ] {
        assert_eq!(serde_json::to_value(u).unwrap(), u.as_str());
    }
}
