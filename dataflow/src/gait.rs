//! Gait metrics from a horse's track: speed, acceleration, distance, stride frequency and gait
//! class per analysis window, and when the samples carry pose keypoints the hoof stride, joint
//! angles and left/right symmetry ([`pose`]). Pure logic over `(timestamp, box, pose)`
//! samples, no timely; the horses stage ([`crate::horses`]) calls [`GaitAnalyzer::analyze`]
//! on each horse's recent samples.
//!
//! # What is measured, and how
//! - **Position** is the bottom-centre of the box (the ground contact point), smoothed by a local
//!   quadratic fit over time (a Savitzky–Golay filter that uses the timestamps, so gaps and
//!   jitter in the sampling are handled). With a [`Calibration`] the point is first mapped to the
//!   ground plane in metres (pixels-per-metre, or a homography applied to the bottom-centre).
//! - **Speed** (path length of the smoothed position, in steps of ~0.5 s so that jitter does
//!   not add up, / elapsed time), **acceleration** (slope of
//!   the per-sample speed over the window) and **distance**, in m/s when calibrated, otherwise
//!   in body-lengths/s (the median box width in the window stands in for the body length, which
//!   only holds for a roughly side-on view), and px/s if even that is unusable. The unit always
//!   travels with the value ([`SpeedUnit`]).
//! - **Stride frequency** from the periodic vertical motion of the box (its height, whose top
//!   edge follows withers and head): autocorrelation peak in a plausible band, refined by a
//!   least-squares sinusoid fit; its confidence is the share of variance it explains (see
//!   [`stride`]).
//! - **Gait class** from speed and stride frequency against documented, sourced thresholds,
//!   with hysteresis over windows (see [`classify`]).
//! - **With pose** (a stream running an AP-10K pose model): the stride frequency from the
//!   hooves' fore–aft motion relative to the body, which needs no walk/trot reading since each
//!   hoof cycles once per stride, replaces the box's; joint angles at the elbow and knee
//!   keypoints with their range of motion, and the symmetry index of that range between left
//!   and right (see [`pose`]). The class still comes from the box oscillation and the speed,
//!   whose thresholds are the ones tested.
//!
//! # What cannot be measured from boxes at ~10 fps
//! - The Nyquist limit at 10 fps is 5 Hz. Stride frequencies up to ~2.5 Hz (gallop ~2–2.5 Hz)
//!   are sampled at least 4 times per cycle and are measurable from the box oscillation, and so
//!   is the biphasic trunk oscillation of walk and trot (two vertical cycles per stride, up to
//!   ~3.2 Hz). Frequency resolution within a 4 s window comes from the sinusoid fit, not from
//!   the frame rate, and needs at least two full periods in the window.
//! - Hoof-contact timing is not measurable: a stance phase at canter/gallop lasts ~0.08–0.15 s,
//!   about one frame interval, so **duty factor, footfall sequence, lead leg, suspension phase
//!   and stride length per limb** cannot be recovered, and the box does not see the hooves
//!   separately anyway (that needs pose keypoints and a higher frame rate).
//! - Which half of a biphasic oscillation belongs to which diagonal needs pose keypoints; the
//!   box only gives the dominant frequency, and whether it is one or two cycles per stride is
//!   decided from the speed ([`classify::stride_for_class`]). With pose, left/right symmetry
//!   is that of the joints' range of motion, not a lameness measure (see [`pose`]).
//! - Without a calibration there are no metres: body-lengths/s depends on the viewing angle (a
//!   horse walking towards the camera has a narrow box), so classification then leans more on
//!   the stride frequency.
//! - Speeds near the overlap of two gaits (trot/canter ~4.5–5 m/s) at a stride frequency on the
//!   boundary between them are genuinely ambiguous; the class is the cheaper of the two.

pub mod classify;
pub mod kinematics;
pub mod pose;
pub mod stride;
#[cfg(test)]
mod tests;

use horsestream_proto::BoundingBox;
use serde::{Deserialize, Serialize};

pub use classify::{ClassSmoother, GaitClass};
pub use kinematics::{KinematicSample, Space};
pub use pose::{JointStats, Limb, PoseGait, PoseGaitConfig, PoseSample, check_keypoint_layout};
pub use stride::StrideEstimate;

/// One observation of a tracked horse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackSample {
    /// Presentation time, microseconds.
    pub t_us: i64,
    /// Box in source-image pixels (top-left x, y, width, height).
    #[serde(with = "crate::checkpoint::BoxDef")]
    pub bbox: BoundingBox,
    /// AP-10K keypoints (x, y, score) when the stream runs a pose model of that layout.
    pub pose: Option<[[f32; 3]; 17]>,
}

/// How image pixels relate to the ground plane of a stream: the type the stream's row stores,
/// so a stream's calibration reaches the analyzer unchanged.
pub use horsestream_sinks::Calibration;

/// The unit of a speed (and, per second less, of the matching distance and acceleration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeedUnit {
    /// Calibrated: metres on the ground plane.
    MetresPerSecond,
    /// Uncalibrated: the median box width in the window is one body length.
    BodyLengthsPerSecond,
    /// Uncalibrated and no usable box width.
    PixelsPerSecond,
}

impl SpeedUnit {
    /// The stored name, the same as serde's.
    pub fn as_str(self) -> &'static str {
        match self {
            SpeedUnit::MetresPerSecond => "metres_per_second",
            SpeedUnit::BodyLengthsPerSecond => "body_lengths_per_second",
            SpeedUnit::PixelsPerSecond => "pixels_per_second",
        }
    }
}

/// Tuning of [`GaitAnalyzer`]. Defaults suit ~10 fps tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GaitConfig {
    /// Length of an analysis window, seconds. Must hold two periods of the slowest stride.
    pub window_s: f64,
    /// Step between window ends, seconds.
    pub hop_s: f64,
    /// A track shorter than this yields no metrics, seconds.
    pub min_window_s: f64,
    /// Width of the centred position-smoothing window (local quadratic fit), seconds.
    pub smoothing_s: f64,
    /// Distance is summed over straight segments at least this long, seconds: box jitter
    /// then adds little length, and a chord of 0.5 s on a 10 m circle at 6 m/s is only 0.4 %
    /// shorter than the arc.
    pub path_step_s: f64,
    /// Band searched for the box oscillation, Hz. Strides are 0.5–3 Hz; the upper edge leaves
    /// room for the biphasic trunk oscillation of a fast trot (~3.2 Hz).
    pub stride_band_hz: [f64; 2],
    /// Share of the box-height variance the stride oscillation must explain to be reported.
    pub min_stride_confidence: f64,
    /// Windows a new class must persist before the reported class switches to it.
    pub class_hold_windows: usize,
    /// Metrics from pose keypoints, for tracks that carry them.
    pub pose: PoseGaitConfig,
}

impl Default for GaitConfig {
    fn default() -> Self {
        Self {
            window_s: 4.0,
            hop_s: 1.0,
            min_window_s: 1.0,
            smoothing_s: 0.7,
            path_step_s: 0.5,
            stride_band_hz: [0.5, 3.5],
            min_stride_confidence: 0.4,
            class_hold_windows: 2,
            pose: PoseGaitConfig::default(),
        }
    }
}

impl GaitConfig {
    fn validate(&self) -> Result<(), GaitError> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(GaitError::Config(format!("{name} must be > 0, got {v}")))
            }
        };
        positive("window_s", self.window_s)?;
        positive("hop_s", self.hop_s)?;
        positive("min_window_s", self.min_window_s)?;
        positive("smoothing_s", self.smoothing_s)?;
        positive("path_step_s", self.path_step_s)?;
        let [lo, hi] = self.stride_band_hz;
        positive("stride_band_hz[0]", lo)?;
        if !(hi.is_finite() && hi > lo) {
            return Err(GaitError::Config(format!(
                "stride_band_hz must be increasing, got {lo}..{hi}"
            )));
        }
        if !(0.0..=1.0).contains(&self.min_stride_confidence) {
            return Err(GaitError::Config(format!(
                "min_stride_confidence must be in 0..=1, got {}",
                self.min_stride_confidence
            )));
        }
        if self.class_hold_windows == 0 {
            return Err(GaitError::Config("class_hold_windows must be >= 1".into()));
        }
        self.pose
            .validate()
            .map_err(|e| GaitError::Config(format!("pose: {e}")))
    }
}

/// Gait metrics of one analysis window of a track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaitMetrics {
    /// Window start and end, microseconds (end inclusive).
    pub start_us: i64,
    pub end_us: i64,
    /// Samples in the window.
    pub samples: usize,
    /// Mean speed over the window, in `unit`.
    pub speed: f64,
    /// Rate of change of speed over the window, in `unit` per second.
    pub acceleration: f64,
    pub unit: SpeedUnit,
    /// Path length covered inside the window (`unit` × s).
    pub distance: f64,
    /// Path length since the previous window's end: summing it over all windows of a track
    /// gives the track's distance without counting window overlaps twice.
    pub new_distance: f64,
    /// Stride frequency, Hz: from the hooves when the window's poses give one (see
    /// [`pose`]), otherwise the box oscillation interpreted for `class` (half of it for the
    /// biphasic walk and trot when that fits better). `None`: too short or no clear rhythm.
    pub stride_hz: Option<f64>,
    /// Dominant vertical oscillation of the box, Hz, as measured.
    pub oscillation_hz: Option<f64>,
    /// Share of the box-height variance the oscillation explains, 0..=1 (0 when none found).
    pub stride_confidence: f64,
    /// Class of this window alone.
    pub raw_class: GaitClass,
    /// Class after hysteresis: what to report.
    pub class: GaitClass,
    /// Hoof stride, joint angles and symmetry, when enough samples of the window had a pose.
    pub pose: Option<PoseGait>,
}

/// Invalid gait configuration or calibration.
#[derive(Debug, thiserror::Error)]
pub enum GaitError {
    #[error("gait config: {0}")]
    Config(String),
    #[error("calibration: {0}")]
    Calibration(String),
}

/// Computes [`GaitMetrics`] for tracks of one stream (one calibration).
#[derive(Debug, Clone)]
pub struct GaitAnalyzer {
    config: GaitConfig,
    calibration: Option<Calibration>,
}

impl GaitAnalyzer {
    pub fn new(calibration: Option<Calibration>, config: GaitConfig) -> Result<Self, GaitError> {
        config.validate()?;
        if let Some(c) = &calibration {
            c.check().map_err(GaitError::Calibration)?;
        }
        Ok(Self {
            config,
            calibration,
        })
    }

    pub fn config(&self) -> &GaitConfig {
        &self.config
    }

    /// Metrics per window of `track`, in time order. Samples may come unsorted; duplicate
    /// timestamps (first kept), non-finite or empty boxes and points a homography cannot map
    /// are dropped. Windows inside a gap (fewer than 3 samples) are skipped.
    pub fn analyze(&self, track: &[TrackSample]) -> Vec<GaitMetrics> {
        let cfg = &self.config;
        let mut clean: Vec<TrackSample> = track
            .iter()
            .copied()
            .filter(|s| {
                let b = s.bbox;
                [b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) && b.w > 0.0 && b.h > 0.0
            })
            .collect();
        clean.sort_by_key(|s| s.t_us);
        clean.dedup_by_key(|s| s.t_us);
        if clean.len() < track.len() {
            tracing::debug!(
                dropped = track.len() - clean.len(),
                "gait: dropped invalid or duplicate samples"
            );
        }
        let (space, kin) = kinematics::kinematics(
            &clean,
            self.calibration.as_ref(),
            secs_to_us(cfg.smoothing_s),
        );
        let Some((first, last)) = kin.first().zip(kin.last()) else {
            return Vec::new();
        };
        let (t0, tl) = (first.t_us, last.t_us);
        let (window, hop) = (secs_to_us(cfg.window_s), secs_to_us(cfg.hop_s));
        if tl - t0 < secs_to_us(cfg.min_window_s) {
            return Vec::new();
        }
        let mut windows = Vec::new();
        if tl - t0 < window {
            windows.push((t0, tl));
        } else {
            let mut end = t0 + window;
            while end <= tl {
                windows.push((end - window, end));
                end += hop;
            }
            if windows.last().is_some_and(|&(_, e)| e < tl) {
                windows.push((tl - window, tl));
            }
        }

        // Path length is measured between anchors at least `path_step_s` apart, so that box
        // jitter does not add up into distance (it would make a standing horse walk).
        let step = secs_to_us(cfg.path_step_s);
        let mut anchors = vec![0];
        for (i, k) in kin.iter().enumerate().skip(1) {
            if k.t_us - kin[anchors[anchors.len() - 1]].t_us >= step || i + 1 == kin.len() {
                anchors.push(i);
            }
        }

        let mut smoother = ClassSmoother::new(cfg.class_hold_windows);
        let mut out = Vec::with_capacity(windows.len());
        let mut prev_end = i64::MIN;
        for (start, end) in windows {
            let lo = kin.partition_point(|k| k.t_us < start);
            let hi = kin.partition_point(|k| k.t_us <= end);
            // Path since the previous window, whether or not this window is reported.
            let new_len: f64 = anchors
                .windows(2)
                .filter(|a| kin[a[1]].t_us > prev_end && kin[a[1]].t_us <= end)
                .map(|a| dist(kin[a[0]].position, kin[a[1]].position))
                .sum();
            prev_end = end;
            let w = &kin[lo..hi];
            if w.len() < 3 {
                continue;
            }
            let mut route = vec![lo];
            route.extend(anchors.iter().copied().filter(|&a| a > lo && a < hi - 1));
            route.push(hi - 1);
            let path: f64 = route
                .windows(2)
                .map(|a| dist(kin[a[0]].position, kin[a[1]].position))
                .sum();
            let duration = (w[w.len() - 1].t_us - w[0].t_us) as f64 * 1e-6;
            let speed = path / duration;
            let acceleration = slope(w.iter().map(|k| (k.t_us as f64 * 1e-6, k.speed)));
            let (unit, scale) = match space {
                Space::GroundMetres => (SpeedUnit::MetresPerSecond, 1.0),
                Space::ImagePixels => match median(w.iter().map(|k| k.width_px).collect()) {
                    Some(m) if m > 0.0 => (SpeedUnit::BodyLengthsPerSecond, 1.0 / m),
                    _ => (SpeedUnit::PixelsPerSecond, 1.0),
                },
            };
            let signal: Vec<(i64, f64)> = w.iter().map(|k| (k.t_us, k.height_px)).collect();
            let [band_lo, band_hi] = cfg.stride_band_hz;
            let est =
                stride::estimate_stride(&signal, (band_lo, band_hi), cfg.min_stride_confidence);
            let raw_class = classify::classify(speed * scale, unit, est.as_ref());
            let class = smoother.push(raw_class);
            let (from, to) = (
                clean.partition_point(|s| s.t_us < w[0].t_us),
                clean.partition_point(|s| s.t_us <= w[w.len() - 1].t_us),
            );
            let poses: Vec<PoseSample> = clean[from..to]
                .iter()
                .filter_map(|s| {
                    s.pose.map(|keypoints| PoseSample {
                        t_us: s.t_us,
                        keypoints,
                    })
                })
                .collect();
            let pose = pose::analyze_pose(&poses, &cfg.pose);
            let box_stride = est.map(|e| classify::stride_for_class(class, e.hz));
            out.push(GaitMetrics {
                start_us: w[0].t_us,
                end_us: w[w.len() - 1].t_us,
                samples: w.len(),
                speed: speed * scale,
                acceleration: acceleration * scale,
                unit,
                distance: path * scale,
                new_distance: new_len * scale,
                stride_hz: pose.and_then(|p| p.hoof_stride_hz).or(box_stride),
                oscillation_hz: est.map(|e| e.hz),
                stride_confidence: est.map_or(0.0, |e| e.confidence),
                raw_class,
                class,
                pose,
            });
        }
        out
    }
}

/// [`GaitAnalyzer::analyze`] in one call.
pub fn analyze(
    track: &[TrackSample],
    calibration: Option<Calibration>,
    config: GaitConfig,
) -> Result<Vec<GaitMetrics>, GaitError> {
    Ok(GaitAnalyzer::new(calibration, config)?.analyze(track))
}

/// Seconds as whole microseconds.
pub(crate) fn secs_to_us(s: f64) -> i64 {
    (s * 1e6).round() as i64
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// Least-squares slope of `y` over `x`; 0 when `x` does not vary.
fn slope(points: impl Iterator<Item = (f64, f64)> + Clone) -> f64 {
    let (n, sx, sy) = points.clone().fold((0.0, 0.0, 0.0), |(n, sx, sy), (x, y)| {
        (n + 1.0, sx + x, sy + y)
    });
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) = points.fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    if sxx > 0.0 { sxy / sxx } else { 0.0 }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}
