//! Gait metrics from pose keypoints: stride frequency from hoof motion, joint angles with their
//! range of motion, and left/right symmetry of that range, per analysis window of one tracked
//! horse seen side-on at ~10 fps. Pure logic over [`PoseSample`]s, called like
//! [`super::GaitAnalyzer`] once per window.
//!
//! # Method
//! Keypoints are AP-10K's 17 (Yu et al., "AP-10K: A Benchmark for Animal Pose Estimation in the
//! Wild", NeurIPS 2021 Datasets and Benchmarks; order as `horsestream_models::pose`). One with a
//! score below [`PoseGaitConfig::min_score`] or a non-finite value is treated as missing.
//! - **Joint angle**: the angle at the middle keypoint between the vectors to the proximal and
//!   distal ones, 0–180°: shoulder–elbow–front paw for a fore limb, hip–knee–back paw for a
//!   hind limb.
//! - **Stride frequency from the hooves**: per limb, the paw's horizontal position relative to
//!   the body centre (midpoint of the shoulders' and the hips' midpoints, whichever of them are
//!   seen), divided by the body length (neck → root of tail, else shoulders → hips), so the
//!   signal is scale-free and the horse's travel drops out. A stride is one full cycle of every
//!   limb, so each hoof protracts and retracts once per stride in every gait (Clayton, *The
//!   Dynamic Horse*, 2004): unlike the box's vertical oscillation, which is biphasic at walk
//!   and trot, this gives the stride frequency itself. Each limb's signal goes through
//!   [`super::stride::estimate_stride`]; the most confident limb sets the frequency, and the
//!   limbs agreeing with it within 10 % are averaged in, weighted by confidence (all
//!   four hooves share one stride frequency, so they are repeated measurements of it; a limb
//!   that locked onto a harmonic disagrees and is left out rather than dragging the mean).
//!   The reported confidence is the most confident limb's.
//! - **Range of motion (ROM)** of a joint: 95th − 5th percentile of its angle over the window,
//!   so that one mislocated keypoint does not set it.
//! - **Symmetry index** (Robinson, Herron & Robinson 1987, "Use of force platform variables to
//!   quantify the effects of chiropractic manipulation on gait symmetry", *J Manipulative
//!   Physiol Ther* 10(4):172–176): `SI = (X_L − X_R) / (0.5 (X_L + X_R)) × 100` over the fore
//!   pair's and the hind pair's ROM. Signed: positive means the left limb moves more.
//!
//! # What 10 fps keypoints cannot give
//! - Hoof contact timing: a stance at canter or gallop lasts ~0.08–0.15 s, about one frame, so
//!   duty factor, footfall sequence, lead and suspension stay out of reach (see [`super`]).
//!   Clinical lameness measures rest on vertical head and pelvis asymmetry timed to the
//!   stances; the asymmetry here is **range-of-motion asymmetry, not a lameness diagnosis**.
//! - A joint's extremes fall between frames: a stride of `f` Hz sampled at `fps` may miss a
//!   peak by `π f / fps` of phase, so when the stride is locked to the frame rate (every stride
//!   sampled at the same phases) the ROM reads low by up to a factor `cos(π f / fps)`, ≈ 0.81
//!   at 2 Hz and 10 fps. A drifting phase fills the cycle in over the window and the bias
//!   shrinks. Both sides are sampled in the same frames but at different phases of their
//!   cycles, so the bias need not cancel in the symmetry index.
//! - Angles are 2-D projections onto the image: valid for a roughly side-on view, and the more
//!   the limb's plane turns away from the image plane, the more they err. The far-side limbs
//!   are often occluded and then scored low.
//! - The joint names are the model's, from a skeleton shared by all AP-10K species: its hind
//!   "knee" lands in the stifle/hock region of a horse, so the "knee angle" is the angle at
//!   that keypoint, not an anatomically defined joint angle.

use horsestream_models::pose::AP10K_KEYPOINTS;
use serde::{Deserialize, Serialize};

use super::stride::{StrideEstimate, estimate_stride};

const NECK: usize = 3;
const ROOT_OF_TAIL: usize = 4;
const SHOULDERS: [usize; 2] = [5, 8];
const HIPS: [usize; 2] = [11, 14];
/// Limbs whose stride estimates differ from the most confident one by more than this share are
/// left out of the combined frequency (a harmonic is ≥ 50 % off; estimates agree within ~2 %).
const AGREEMENT: f64 = 0.1;

/// One pose of a tracked horse: AP-10K keypoints `[x, y, score]` in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseSample {
    /// Presentation time, microseconds.
    pub t_us: i64,
    pub keypoints: [[f32; 3]; 17],
}

/// Tuning of [`analyze_pose`]. Defaults suit ~10 fps poses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoseGaitConfig {
    /// Keypoints scored below this are missing. RTMPose scores are not probabilities; 0.3 is
    /// the threshold mmpose's demos commonly draw with, a default to tune per site.
    pub min_score: f32,
    /// Band searched for the hoof rhythm, Hz: strides are 0.5–2.5 Hz, and a hoof moves once per
    /// stride, so no room for a biphasic oscillation is needed.
    pub stride_band_hz: [f64; 2],
    /// Share of a hoof signal's variance the rhythm must explain to count.
    pub min_stride_confidence: f64,
    /// When both sides' ROM is below this, degrees, they are within keypoint jitter and their
    /// ratio means nothing, so no symmetry index is given.
    pub min_rom_deg: f64,
    /// Fewer usable poses than this give no metrics; a joint seen fewer times has no stats.
    pub min_samples: usize,
    /// A hoof whose fore–aft position (relative to the body, in body lengths) spans less than
    /// this over the window is standing still: keypoint jitter and rounding have no rhythm to
    /// find, however well a sinusoid fits them. A walking horse's hoof swings ~0.3–0.6.
    pub min_hoof_swing: f64,
}

impl Default for PoseGaitConfig {
    fn default() -> Self {
        Self {
            min_score: 0.3,
            stride_band_hz: [0.5, 3.0],
            min_stride_confidence: 0.4,
            min_rom_deg: 2.0,
            min_samples: 8,
            min_hoof_swing: 0.05,
        }
    }
}

impl PoseGaitConfig {
    /// Checks the values [`analyze_pose`] relies on; call once when the config is loaded.
    pub fn validate(&self) -> Result<(), String> {
        let [lo, hi] = self.stride_band_hz;
        if !(self.min_score.is_finite() && self.min_score >= 0.0) {
            return Err(format!("min_score must be >= 0, got {}", self.min_score));
        }
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo) {
            return Err(format!(
                "stride_band_hz must be increasing, > 0, got {lo}..{hi}"
            ));
        }
        let c = self.min_stride_confidence;
        if !(0.0..=1.0).contains(&c) {
            return Err(format!("min_stride_confidence must be in 0..=1, got {c}"));
        }
        if !(self.min_rom_deg.is_finite() && self.min_rom_deg >= 0.0) {
            return Err(format!(
                "min_rom_deg must be >= 0, got {}",
                self.min_rom_deg
            ));
        }
        if self.min_samples == 0 {
            return Err("min_samples must be >= 1".into());
        }
        if !(self.min_hoof_swing.is_finite() && self.min_hoof_swing >= 0.0) {
            return Err(format!(
                "min_hoof_swing must be >= 0, got {}",
                self.min_hoof_swing
            ));
        }
        Ok(())
    }
}

/// Limbs in a fixed order: left fore, right fore, left hind, right hind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limb {
    LeftFore,
    RightFore,
    LeftHind,
    RightHind,
}

impl Limb {
    pub const ALL: [Limb; 4] = [
        Limb::LeftFore,
        Limb::RightFore,
        Limb::LeftHind,
        Limb::RightHind,
    ];

    /// The stored name, the same as serde's.
    pub fn as_str(self) -> &'static str {
        match self {
            Limb::LeftFore => "left_fore",
            Limb::RightFore => "right_fore",
            Limb::LeftHind => "left_hind",
            Limb::RightHind => "right_hind",
        }
    }

    /// AP-10K indices of the proximal keypoint, the joint and the paw.
    fn keypoints(self) -> [usize; 3] {
        match self {
            Limb::LeftFore => [5, 6, 7],
            Limb::RightFore => [8, 9, 10],
            Limb::LeftHind => [11, 12, 13],
            Limb::RightHind => [14, 15, 16],
        }
    }
}

/// A joint's angle over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct JointStats {
    /// Mean angle, degrees.
    pub mean_deg: Option<f64>,
    /// Range of motion (robust: 95th − 5th percentile), degrees.
    pub rom_deg: Option<f64>,
    /// Poses in which the angle was measurable; below `min_samples` both values are `None`.
    pub samples: usize,
}

/// Pose gait metrics of one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseGait {
    /// Poses in the window with at least one measurable joint angle.
    pub samples: usize,
    /// Stride frequency from hoof motion, Hz.
    pub hoof_stride_hz: Option<f64>,
    /// Share of the best hoof signal's variance the rhythm explains, 0..=1 (0 when none).
    pub hoof_confidence: f64,
    /// In [`Limb::ALL`] order: elbow angle (shoulder–elbow–front paw) of the fore limbs, knee
    /// angle (hip–knee–back paw) of the hind limbs.
    pub joints: [JointStats; 4],
    /// Signed symmetry index of the fore limbs' ROM, percent; positive: left moves more.
    pub symmetry_fore: Option<f64>,
    /// The same for the hind limbs.
    pub symmetry_hind: Option<f64>,
}

/// Keypoint `i` as `(x, y)` when it is finite and scored at least `min_score`.
fn point(kps: &[[f32; 3]; 17], i: usize, min_score: f32) -> Option<(f64, f64)> {
    let [x, y, score] = *kps.get(i)?;
    let usable = x.is_finite() && y.is_finite() && score.is_finite() && score >= min_score;
    usable.then_some((f64::from(x), f64::from(y)))
}

fn midpoint(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)),
        (a, b) => a.or(b),
    }
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// Whether a pose model's keypoints (names in output order) are the layout this analysis
/// reads: AP-10K's 17, in AP-10K's order. The analysis takes keypoints by index, so a model of
/// another layout — even one with 17 keypoints, as COCO's human layout has — would have its
/// points misread as joints; the dataflow refuses to run such a model (its streams run
/// without pose, and the refusal is logged) rather than store angles between the wrong points.
pub fn check_keypoint_layout(keypoints: &[String]) -> Result<(), String> {
    if keypoints.len() != AP10K_KEYPOINTS.len() {
        return Err(format!(
            "the model has {} keypoints; gait reads AP-10K's {} ({})",
            keypoints.len(),
            AP10K_KEYPOINTS.len(),
            AP10K_KEYPOINTS.join(", ")
        ));
    }
    match keypoints
        .iter()
        .zip(AP10K_KEYPOINTS)
        .position(|(k, a)| k != a)
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "the model's keypoint {i} is {:?} where AP-10K's is {:?}; gait reads AP-10K's \
             17 keypoints in their order ({})",
            keypoints[i],
            AP10K_KEYPOINTS[i],
            AP10K_KEYPOINTS.join(", ")
        )),
    }
}

/// Angle of `limb`'s middle joint, degrees in `[0, 180]`; `None` if one of its three keypoints
/// is missing (score below `min_score`, non-finite) or a segment has zero length.
pub fn joint_angle(kps: &[[f32; 3]; 17], limb: Limb, min_score: f32) -> Option<f64> {
    let [p, j, d] = limb.keypoints().map(|i| point(kps, i, min_score));
    let (p, j, d) = (p?, j?, d?);
    let (a, b) = ((p.0 - j.0, p.1 - j.1), (d.0 - j.0, d.1 - j.1));
    if a.0.hypot(a.1) <= 0.0 || b.0.hypot(b.1) <= 0.0 {
        return None;
    }
    // atan2 of |cross| and dot stays accurate near 0° and 180°, where acos does not.
    let (cross, dot) = (a.0 * b.1 - a.1 * b.0, a.0 * b.0 + a.1 * b.1);
    Some(cross.abs().atan2(dot).to_degrees())
}

/// Horizontal body centre and body length of a pose, pixels.
fn body_frame(kps: &[[f32; 3]; 17], min_score: f32) -> Option<(f64, f64)> {
    let pt = |i| point(kps, i, min_score);
    let front = midpoint(pt(SHOULDERS[0]), pt(SHOULDERS[1]));
    let rear = midpoint(pt(HIPS[0]), pt(HIPS[1]));
    let centre = midpoint(front, rear)?;
    let trunk = front.zip(rear).map(|(f, r)| distance(f, r));
    let length = pt(NECK)
        .zip(pt(ROOT_OF_TAIL))
        .map(|(n, t)| distance(n, t))
        .filter(|&l| l > 0.0)
        .or(trunk)
        .filter(|l| l.is_finite() && *l > 0.0)?;
    Some((centre.0, length))
}

/// `(t_us, paw x − body centre x in body lengths)` of `limb`, for strictly increasing times.
fn hoof_signal(poses: &[PoseSample], limb: Limb, min_score: f32) -> Vec<(i64, f64)> {
    let paw = limb.keypoints()[2];
    poses
        .iter()
        .filter_map(|p| {
            let (x, _) = point(&p.keypoints, paw, min_score)?;
            let (centre, length) = body_frame(&p.keypoints, min_score)?;
            let v = (x - centre) / length;
            v.is_finite().then_some((p.t_us, v))
        })
        .collect()
}

/// Combined stride frequency and confidence of the per-limb estimates (see the module docs).
fn combine(estimates: &[StrideEstimate]) -> Option<(f64, f64)> {
    let best = estimates
        .iter()
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence))?;
    let (sum_w, sum_wf) = estimates
        .iter()
        .filter(|e| (e.hz / best.hz - 1.0).abs() <= AGREEMENT)
        .fold((0.0, 0.0), |(w, wf), e| {
            (w + e.confidence, wf + e.confidence * e.hz)
        });
    let hz = if sum_w > 0.0 { sum_wf / sum_w } else { best.hz };
    Some((hz, best.confidence))
}

/// Percentile `p` (0..=1) of ascending `sorted`, interpolating linearly between order
/// statistics (Hyndman & Fan's type 7, numpy's default).
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let h = p.clamp(0.0, 1.0) * sorted.len().checked_sub(1)? as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    let (a, b) = (sorted.get(lo)?, sorted.get(hi)?);
    Some(a + (h - lo as f64) * (b - a))
}

fn joint_stats(mut angles: Vec<f64>, min_samples: usize) -> JointStats {
    let samples = angles.len();
    if samples == 0 || samples < min_samples {
        return JointStats {
            samples,
            ..JointStats::default()
        };
    }
    angles.sort_by(f64::total_cmp);
    let rom = percentile(&angles, 0.95).zip(percentile(&angles, 0.05));
    JointStats {
        mean_deg: Some(angles.iter().sum::<f64>() / samples as f64),
        rom_deg: rom.map(|(hi, lo)| hi - lo),
        samples,
    }
}

/// Signed symmetry index of a left/right pair of ROMs, percent (see the module docs).
fn symmetry_index(left: Option<f64>, right: Option<f64>, min_rom_deg: f64) -> Option<f64> {
    let (l, r) = (left?, right?);
    if (l < min_rom_deg && r < min_rom_deg) || l + r <= 0.0 {
        return None;
    }
    Some((l - r) / (0.5 * (l + r)) * 100.0)
}

/// Pose gait metrics of one window of a horse's poses, or `None` when fewer than
/// `cfg.min_samples` poses have a measurable joint. Samples may come unsorted; of duplicate
/// timestamps the first is kept. `cfg` is expected to pass [`PoseGaitConfig::validate`].
pub fn analyze_pose(samples: &[PoseSample], cfg: &PoseGaitConfig) -> Option<PoseGait> {
    let mut poses = samples.to_vec();
    poses.sort_by_key(|p| p.t_us); // stable: the first of equal timestamps stays first
    poses.dedup_by_key(|p| p.t_us);
    let angles: Vec<[Option<f64>; 4]> = poses
        .iter()
        .map(|p| Limb::ALL.map(|l| joint_angle(&p.keypoints, l, cfg.min_score)))
        .collect();
    let usable = angles
        .iter()
        .filter(|a| a.iter().any(Option::is_some))
        .count();
    if usable < cfg.min_samples {
        return None;
    }
    let joints: [JointStats; 4] = std::array::from_fn(|i| {
        joint_stats(
            angles.iter().filter_map(|a| a[i]).collect(),
            cfg.min_samples,
        )
    });
    let [band_lo, band_hi] = cfg.stride_band_hz;
    let estimates: Vec<StrideEstimate> = Limb::ALL
        .iter()
        .filter_map(|&l| {
            let signal = hoof_signal(&poses, l, cfg.min_score);
            let (lo, hi) = signal
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, v)| {
                    (lo.min(v), hi.max(v))
                });
            if signal.is_empty() || hi - lo < cfg.min_hoof_swing {
                return None;
            }
            estimate_stride(&signal, (band_lo, band_hi), cfg.min_stride_confidence)
        })
        .collect();
    let hoof = combine(&estimates);
    let rom = |i: usize| joints[i].rom_deg;
    Some(PoseGait {
        samples: usable,
        hoof_stride_hz: hoof.map(|h| h.0),
        hoof_confidence: hoof.map_or(0.0, |h| h.1),
        joints,
        symmetry_fore: symmetry_index(rom(0), rom(1), cfg.min_rom_deg),
        symmetry_hind: symmetry_index(rom(2), rom(3), cfg.min_rom_deg),
    })
}

impl From<&PoseGait> for horsestream_sinks::GaitPose {
    fn from(p: &PoseGait) -> Self {
        horsestream_sinks::GaitPose {
            samples: p.samples as u32,
            hoof_stride_hz: p.hoof_stride_hz,
            hoof_confidence: p.hoof_confidence,
            joints: Limb::ALL
                .iter()
                .zip(&p.joints)
                .map(|(limb, j)| horsestream_sinks::GaitJoint {
                    limb: limb.as_str().to_owned(),
                    mean_deg: j.mean_deg,
                    rom_deg: j.rom_deg,
                    samples: j.samples as u32,
                })
                .collect(),
            symmetry_fore: p.symmetry_fore,
            symmetry_hind: p.symmetry_hind,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::{PI, TAU};

    use super::*;

    /// Approximately normal noise with standard deviation `sigma` (Irwin–Hall of 4 draws of
    /// Knuth's MMIX LCG, as in the gait tests): deterministic, without a dependency.
    fn noise(state: &mut u64, sigma: f64) -> f64 {
        let mut uniform = || {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*state >> 11) as f64 / (1u64 << 53) as f64
        };
        ((0..4).map(|_| uniform()).sum::<f64>() - 2.0) * sigma * 3f64.sqrt()
    }

    /// A horse seen from its left side at 10 fps for 4 s, moving right at 300 px/s. Each limb's
    /// upper segment swings about the vertical like a pendulum at the stride frequency, and its
    /// joint angle oscillates sinusoidally around a mean, a quarter cycle later.
    #[derive(Debug, Clone, Copy)]
    struct Horse {
        stride_hz: f64,
        /// Constructed 5th–95th percentile range of each joint angle, degrees.
        rom_deg: [f64; 4],
        mean_deg: [f64; 4],
        /// Pendulum amplitude of the upper segments, degrees (0: standing).
        swing_deg: f64,
        /// Standard deviation of the keypoint noise, pixels.
        noise_px: f64,
        seed: u64,
    }

    /// Diagonal pairs move together, a trot: left fore with right hind, right fore with left
    /// hind (with a slight dissociation), in cycles.
    const PHASE: [f64; 4] = [0.0, 0.5, 0.55, 0.05];

    impl Horse {
        fn new(stride_hz: f64) -> Self {
            Self {
                stride_hz,
                rom_deg: [40.0, 40.0, 30.0, 30.0],
                mean_deg: [140.0, 140.0, 130.0, 130.0],
                swing_deg: 25.0,
                noise_px: 0.0,
                seed: 7,
            }
        }

        /// The 5th–95th percentile range of `A sin` is `2 A sin(0.45 π)`.
        fn angle(&self, limb: usize, t: f64) -> f64 {
            let amplitude = self.rom_deg[limb] / (2.0 * (0.45 * PI).sin());
            let phase = TAU * (self.stride_hz * t + PHASE[limb]);
            self.mean_deg[limb] + amplitude * (phase + PI / 2.0).sin()
        }

        fn poses(&self) -> Vec<PoseSample> {
            let mut rng = self.seed ^ 0x9E37_79B9_7F4A_7C15;
            (0..=40)
                .map(|i| {
                    let t = f64::from(i) / 10.0;
                    let cx = 200.0 + 300.0 * t;
                    let mut k = [[cx + 450.0, 300.0]; 17]; // the head
                    k[NECK] = [cx + 320.0, 380.0];
                    k[ROOT_OF_TAIL] = [cx - 330.0, 400.0];
                    for (l, limb) in Limb::ALL.iter().enumerate() {
                        let [p, j, d] = limb.keypoints();
                        let fore = l < 2;
                        let (top, upper, lower) = if fore {
                            ([cx + 250.0 - 4.0 * l as f64, 450.0], 110.0, 330.0)
                        } else {
                            ([cx - 250.0 + 4.0 * (l - 2) as f64, 440.0], 150.0, 300.0)
                        };
                        let swing = self.swing_deg.to_radians()
                            * (TAU * (self.stride_hz * t + PHASE[l])).sin();
                        let bend = self.angle(l, t).to_radians();
                        let psi = swing + PI + if fore { bend } else { -bend };
                        let knee = [top[0] + upper * swing.sin(), top[1] + upper * swing.cos()];
                        k[p] = top;
                        k[j] = knee;
                        k[d] = [knee[0] + lower * psi.sin(), knee[1] + lower * psi.cos()];
                    }
                    let keypoints = k.map(|[x, y]| {
                        let (nx, ny) = (
                            noise(&mut rng, self.noise_px),
                            noise(&mut rng, self.noise_px),
                        );
                        [(x + nx) as f32, (y + ny) as f32, 0.9]
                    });
                    PoseSample {
                        t_us: i64::from(i) * 100_000,
                        keypoints,
                    }
                })
                .collect()
        }
    }

    #[test]
    fn the_gait_analyzer_reports_the_pose_and_takes_the_stride_from_the_hooves() {
        use horsestream_proto::BoundingBox;

        use crate::gait::{GaitAnalyzer, GaitConfig, TrackSample};
        let h = Horse::new(1.4);
        // The box around the keypoints, as a detector would draw it.
        let track: Vec<TrackSample> = h
            .poses()
            .iter()
            .map(|p| {
                let xs = p.keypoints.iter().map(|k| k[0]);
                let ys = p.keypoints.iter().map(|k| k[1]);
                let (x0, x1) = (xs.clone().fold(f32::MAX, f32::min), xs.fold(0.0, f32::max));
                let (y0, y1) = (ys.clone().fold(f32::MAX, f32::min), ys.fold(0.0, f32::max));
                TrackSample {
                    t_us: p.t_us,
                    bbox: BoundingBox {
                        x: x0,
                        y: y0,
                        w: x1 - x0,
                        h: y1 - y0,
                    },
                    pose: Some(p.keypoints),
                }
            })
            .collect();
        let analyzer = GaitAnalyzer::new(None, GaitConfig::default()).unwrap();
        let windows = analyzer.analyze(&track);
        assert_eq!(windows.len(), 1, "{windows:?}");
        let m = windows[0];
        let pose = m.pose.expect("the window's poses are analysed");
        assert_joints_match(&h, &pose, 1.5, 1.0);
        let hooves = pose.hoof_stride_hz.expect("a hoof stride");
        assert!((hooves - 1.4).abs() < 0.03 * 1.4, "{pose:?}");
        assert_eq!(m.stride_hz, Some(hooves));
        // The same boxes without poses: no pose metrics, the stride (if any) from the box.
        let boxes: Vec<TrackSample> = track
            .iter()
            .map(|s| TrackSample { pose: None, ..*s })
            .collect();
        let m = analyzer.analyze(&boxes)[0];
        assert!(m.pose.is_none());
        assert_ne!(m.stride_hz, Some(hooves));
    }

    fn analyze(poses: &[PoseSample]) -> PoseGait {
        analyze_pose(poses, &PoseGaitConfig::default()).expect("enough usable poses")
    }

    fn assert_joints_match(h: &Horse, g: &PoseGait, mean_tol: f64, rom_tol: f64) {
        for (l, j) in g.joints.iter().enumerate() {
            let (mean, rom) = (j.mean_deg.expect("mean"), j.rom_deg.expect("rom"));
            assert!(
                (mean - h.mean_deg[l]).abs() < mean_tol,
                "{l}: {j:?} of {h:?}"
            );
            assert!((rom - h.rom_deg[l]).abs() < rom_tol, "{l}: {j:?} of {h:?}");
            assert_eq!(j.samples, 41);
        }
    }

    #[test]
    fn keypoint_indices_name_the_ap10k_joints_and_limb_names_match_serde() {
        let names = |l: Limb| l.keypoints().map(|i| AP10K_KEYPOINTS[i]);
        assert_eq!(
            names(Limb::LeftFore),
            ["left_shoulder", "left_elbow", "left_front_paw"]
        );
        assert_eq!(
            names(Limb::RightHind),
            ["right_hip", "right_knee", "right_back_paw"]
        );
        assert_eq!(
            [NECK, ROOT_OF_TAIL, SHOULDERS[1], HIPS[0]].map(|i| AP10K_KEYPOINTS[i]),
            ["neck", "root_of_tail", "right_shoulder", "left_hip"]
        );
        for l in Limb::ALL {
            assert_eq!(serde_json::to_value(l).ok(), Some(l.as_str().into()));
        }
    }

    #[test]
    fn only_the_ap10k_layout_in_its_order_is_read() {
        let ap10k: Vec<String> = AP10K_KEYPOINTS.iter().map(|k| k.to_string()).collect();
        assert_eq!(check_keypoint_layout(&ap10k), Ok(()));
        // Left and right elbows swapped: 17 keypoints, the wrong joints.
        let mut swapped = ap10k.clone();
        swapped.swap(6, 9);
        let e = check_keypoint_layout(&swapped).unwrap_err();
        assert!(e.contains("keypoint 6 is \"right_elbow\""), "{e}");
        // COCO's human layout also has 17 keypoints.
        let coco: Vec<String> = [
            "nose",
            "left_eye",
            "right_eye",
            "left_ear",
            "right_ear",
            "left_shoulder",
            "right_shoulder",
            "left_elbow",
            "right_elbow",
            "left_wrist",
            "right_wrist",
            "left_hip",
            "right_hip",
            "left_knee",
            "right_knee",
            "left_ankle",
            "right_ankle",
        ]
        .map(String::from)
        .to_vec();
        let e = check_keypoint_layout(&coco).unwrap_err();
        assert!(e.contains("keypoint 0 is \"nose\""), "{e}");
        let e = check_keypoint_layout(&ap10k[..16]).unwrap_err();
        assert!(e.starts_with("the model has 16 keypoints"), "{e}");
    }

    #[test]
    fn config_defaults_validate_and_unknown_fields_or_bad_values_are_rejected() {
        assert_eq!(PoseGaitConfig::default().validate(), Ok(()));
        let parsed: PoseGaitConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(parsed, PoseGaitConfig::default());
        assert!(serde_json::from_str::<PoseGaitConfig>(r#"{"min_scor": 1}"#).is_err());
        let bad = PoseGaitConfig {
            stride_band_hz: [3.0, 0.5],
            ..PoseGaitConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn joint_angle_of_a_hand_worked_right_angle_is_90_degrees() {
        let mut k = [[0.0f32, 0.0, 0.9]; 17];
        k[5] = [100.0, 100.0, 0.9]; // shoulder above the elbow
        k[6] = [100.0, 200.0, 0.9];
        k[7] = [160.0, 200.0, 0.9]; // paw straight ahead of the elbow
        let angle = |k: &[[f32; 3]; 17]| joint_angle(k, Limb::LeftFore, 0.3);
        assert!(angle(&k).is_some_and(|a| (a - 90.0).abs() < 1e-9));
        k[7] = [100.0, 300.0, 0.9]; // straight leg
        assert!(angle(&k).is_some_and(|a| (a - 180.0).abs() < 1e-9));
    }

    #[test]
    fn joint_angle_is_none_for_a_low_score_non_finite_or_zero_length_limb() {
        let mut k = [[0.0f32, 0.0, 0.9]; 17];
        k[8] = [100.0, 100.0, 0.9];
        k[9] = [100.0, 200.0, 0.9];
        for paw in [
            [160.0, 200.0, 0.29],
            [f32::NAN, 200.0, 0.9],
            [100.0, 200.0, 0.9],
        ] {
            k[10] = paw; // low score, not a number, on the elbow
            assert_eq!(joint_angle(&k, Limb::RightFore, 0.3), None, "{paw:?}");
        }
    }

    #[test]
    fn hoof_stride_frequency_is_within_3_percent_at_walk_trot_and_canter_rhythms() {
        for hz in [0.9, 1.4, 2.0] {
            let h = Horse::new(hz);
            let g = analyze(&h.poses());
            let est = g.hoof_stride_hz.expect("stride found");
            assert!((est / hz - 1.0).abs() < 0.03, "{hz} Hz measured as {g:?}");
            assert!(g.hoof_confidence > 0.8, "{g:?}");
            assert_eq!(g.samples, 41);
        }
    }

    #[test]
    fn joint_mean_and_range_of_motion_match_the_constructed_angles() {
        // 2.1 Hz rather than 2.0: at 2.0 Hz every stride is sampled at the same five phases
        // (see the next test).
        for hz in [0.9, 1.4, 2.1] {
            let h = Horse::new(hz);
            assert_joints_match(&h, &analyze(&h.poses()), 1.5, 1.0);
        }
    }

    #[test]
    fn range_of_motion_at_a_stride_locked_to_the_frame_rate_stays_within_the_sampling_bound() {
        let h = Horse::new(2.0);
        let g = analyze(&h.poses());
        for (l, j) in g.joints.iter().enumerate() {
            // Five frames per stride: the frame nearest a peak is at most 36° of phase off.
            let lowest = h.rom_deg[l] * (PI / 5.0).cos() / (0.45 * PI).sin();
            assert!(
                j.rom_deg
                    .is_some_and(|r| r >= lowest - 0.1 && r < h.rom_deg[l] + 1.0)
            );
        }
    }

    #[test]
    fn keypoint_noise_of_2_px_keeps_stride_and_angles_within_tolerance() {
        for (seed, hz) in [(1, 0.9), (2, 1.4), (3, 2.0)] {
            let h = Horse {
                noise_px: 2.0,
                seed,
                ..Horse::new(hz)
            };
            let g = analyze(&h.poses());
            let est = g.hoof_stride_hz.expect("stride found");
            assert!((est / hz - 1.0).abs() < 0.03, "{hz} Hz measured as {g:?}");
            // Noise widens the percentile range a little.
            assert_joints_match(&h, &g, 1.5, 4.0);
        }
    }

    #[test]
    fn left_fore_moving_40_degrees_against_30_gives_symmetry_of_plus_28_6_percent() {
        let h = Horse {
            rom_deg: [40.0, 30.0, 30.0, 30.0],
            ..Horse::new(1.4)
        };
        let g = analyze(&h.poses());
        let si = g.symmetry_fore.expect("fore symmetry");
        assert!((si - 28.6).abs() < 1.0, "{g:?}");
        assert!(g.symmetry_hind.is_some_and(|s| s.abs() < 2.0), "{g:?}");
    }

    #[test]
    fn equal_sides_give_a_symmetry_index_near_zero() {
        for hz in [0.9, 2.0] {
            let g = analyze(&Horse::new(hz).poses());
            for si in [g.symmetry_fore, g.symmetry_hind] {
                assert!(si.is_some_and(|s| s.abs() < 2.0), "{g:?}");
            }
        }
    }

    #[test]
    fn a_limb_with_low_score_keypoints_has_no_stats_and_its_pair_no_symmetry() {
        let mut poses = Horse::new(1.4).poses();
        for p in &mut poses {
            p.keypoints[6][2] = 0.1; // left elbow
        }
        let g = analyze(&poses);
        assert_eq!(g.joints[0], JointStats::default());
        assert_eq!(g.symmetry_fore, None);
        assert!(g.symmetry_hind.is_some(), "{g:?}");
        assert!(g.joints[1].rom_deg.is_some(), "{g:?}");
        assert!(g.hoof_stride_hz.is_some(), "{g:?}");
    }

    #[test]
    fn fewer_usable_poses_than_min_samples_give_none() {
        let poses = Horse::new(1.4).poses();
        assert_eq!(analyze_pose(&poses[..7], &PoseGaitConfig::default()), None);
        assert!(analyze_pose(&poses[..8], &PoseGaitConfig::default()).is_some());
        let mut blind = poses.clone();
        for p in &mut blind {
            for limb in Limb::ALL {
                p.keypoints[limb.keypoints()[1]][2] = 0.0;
            }
        }
        assert_eq!(analyze_pose(&blind, &PoseGaitConfig::default()), None);
    }

    #[test]
    fn a_standing_horse_has_no_stride_no_range_of_motion_and_no_symmetry() {
        let h = Horse {
            rom_deg: [0.0; 4],
            swing_deg: 0.0,
            ..Horse::new(1.0)
        };
        let g = analyze(&h.poses());
        assert_eq!((g.hoof_stride_hz, g.hoof_confidence), (None, 0.0));
        for (l, j) in g.joints.iter().enumerate() {
            assert!(j.rom_deg.is_some_and(|r| r < 1e-3), "{j:?}");
            assert!(j.mean_deg.is_some_and(|m| (m - h.mean_deg[l]).abs() < 1e-3));
        }
        assert_eq!((g.symmetry_fore, g.symmetry_hind), (None, None));
    }

    #[test]
    fn a_hoof_swing_below_the_floor_is_no_stride() {
        // Legs swinging by 0.1°: the hooves move about a pixel, a clean rhythm nonetheless
        // (as keypoints rounded the same way in every frame can be).
        let h = Horse {
            rom_deg: [0.0; 4],
            swing_deg: 0.1,
            ..Horse::new(1.0)
        };
        assert_eq!(analyze(&h.poses()).hoof_stride_hz, None);
        let no_floor = PoseGaitConfig {
            min_hoof_swing: 0.0,
            ..PoseGaitConfig::default()
        };
        let g = analyze_pose(&h.poses(), &no_floor).unwrap();
        assert!(
            g.hoof_stride_hz.is_some_and(|f| (f - 1.0).abs() < 0.03),
            "{g:?}"
        );
        // Jitter of 2 px on a standing horse finds no rhythm either.
        for seed in 0..10 {
            let h = Horse {
                rom_deg: [0.0; 4],
                swing_deg: 0.0,
                noise_px: 2.0,
                seed,
                ..Horse::new(1.0)
            };
            assert_eq!(analyze(&h.poses()).hoof_stride_hz, None, "seed {seed}");
        }
    }

    #[test]
    fn unsorted_input_with_duplicate_timestamps_gives_the_sorted_result() {
        let h = Horse {
            noise_px: 2.0,
            ..Horse::new(1.4)
        };
        let sorted = h.poses();
        let mut shuffled: Vec<PoseSample> = sorted.iter().rev().copied().collect();
        // Later duplicates of a timestamp are dropped, however wrong they are.
        shuffled.extend(sorted.iter().step_by(5).map(|p| PoseSample {
            keypoints: p.keypoints.map(|[x, y, s]| [x, 1.3 * y, s]),
            ..*p
        }));
        shuffled.swap(3, 30);
        assert_eq!(analyze(&shuffled), analyze(&sorted));
    }
}
