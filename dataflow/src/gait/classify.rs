//! Gait class from speed and stride frequency, with hysteresis.
//!
//! # Thresholds and where they come from
//! The ranges below are *typical* values for adult riding horses compiled from the general
//! equine-locomotion literature:
//! - H. M. Clayton, *The Dynamic Horse* (Sport Horse Publications, 2004), and W. Back &
//!   H. M. Clayton (eds.), *Equine Locomotion*, 2nd ed. (Saunders Elsevier, 2013): speeds and
//!   stride frequencies of walk, trot, canter and gallop;
//! - J. J. Robilliard, T. Pfau & A. M. Wilson, "Gait characterisation and classification in
//!   horses", *J. Exp. Biol.* 210 (2007) 187–197: gaits measured over a range of speeds, and
//!   the overlap of trot and canter speeds;
//! - T. Pfau, T. H. Witte & A. M. Wilson, "Centre of mass movement and mechanical energy
//!   fluctuation during gallop locomotion in the Thoroughbred racehorse", *J. Exp. Biol.* 209
//!   (2006) 3742–3757, and T. H. Witte, C. V. Hirst & A. M. Wilson, "Effect of speed on stride
//!   parameters in racehorses at gallop in field conditions", *J. Exp. Biol.* 209 (2006)
//!   4389–4397: gallop stride frequencies of ~2–2.5 Hz that rise only slowly with speed;
//! - D. F. Hoyt & C. R. Taylor, "Gait and the energetics of locomotion in horses", *Nature* 292
//!   (1981) 239–240, and N. C. Heglund & C. R. Taylor, *J. Exp. Biol.* 138 (1988) 301–318:
//!   preferred speeds within each gait and stride frequency against speed.
//!
//! | class      | speed, m/s            | stride frequency, Hz |
//! |------------|-----------------------|----------------------|
//! | standstill | < 0.3                 | –                    |
//! | walk       | ~1.2–2.2 (typ. 1.5–2) | ~0.8–1.0             |
//! | trot       | ~2.8–5 (typ. 3–5)     | ~1.2–1.6             |
//! | canter     | ~4.5–7.5              | ~1.6–2.0             |
//! | gallop     | ~8–15                 | ~2.0–2.5             |
//!
//! The values are approximate and depend on breed, size, training and surface (a pony trots
//! at a higher stride frequency and lower speed than a warmblood; a Standardbred paces and
//! trots far faster than 5 m/s). They were compiled from the works above as general ranges,
//! not copied from one table, and are defaults to tune per site, not physiology to enforce.
//!
//! # Rule
//! A speed below [`STANDSTILL_MAX_M_S`] is a standstill whatever the box does (grazing and
//! head tossing oscillate too). Otherwise every moving class gets a cost
//! `w_speed·d_speed² + w_freq·confidence·d_freq²`, where `d` is the distance from the class's
//! range in units of its half-width on a log scale (0 at the geometric centre, 1 at the edges),
//! and the cheapest class wins. Speed dominates where the ranges are apart; the stride
//! frequency decides where they overlap (trot/canter at ~4.5–5 m/s, canter/gallop near 7.5 m/s).
//! Walk and trot are symmetric gaits whose trunk rises twice per stride (Buchner et al.,
//! *Equine Vet. J.* 28 (1996) 71–76; Pfau, Witte & Wilson, *J. Exp. Biol.* 208 (2005)
//! 2503–2514, trunk displacement from an inertial sensor), so
//! for them the box oscillation may run at twice the stride frequency: their frequency cost
//! is the smaller of the fundamental's and the half's. Without calibration, speed in
//! body-lengths/s is converted with [`BODY_LENGTH_M`] and weighted half, since the box width is
//! a poor body length unless the horse is seen side-on.

use serde::{Deserialize, Serialize};

use super::{SpeedUnit, StrideEstimate};

/// What a horse is doing during a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GaitClass {
    Standstill,
    Walk,
    Trot,
    Canter,
    Gallop,
    /// Neither a usable speed nor a stride frequency.
    Unknown,
}

impl GaitClass {
    pub const ALL: [GaitClass; 6] = [
        GaitClass::Standstill,
        GaitClass::Walk,
        GaitClass::Trot,
        GaitClass::Canter,
        GaitClass::Gallop,
        GaitClass::Unknown,
    ];
    const MOVING: [GaitClass; 4] = [
        GaitClass::Walk,
        GaitClass::Trot,
        GaitClass::Canter,
        GaitClass::Gallop,
    ];

    /// The stored name, the same as serde's.
    pub fn as_str(self) -> &'static str {
        match self {
            GaitClass::Standstill => "standstill",
            GaitClass::Walk => "walk",
            GaitClass::Trot => "trot",
            GaitClass::Canter => "canter",
            GaitClass::Gallop => "gallop",
            GaitClass::Unknown => "unknown",
        }
    }
}

/// Below this ground speed a horse is standing (slower than the slowest walk; leaves room for
/// detector jitter of the box). m/s.
pub const STANDSTILL_MAX_M_S: f64 = 0.3;
/// Walk, ~1.5–2 m/s (~6–7 km/h) typical (Clayton 2004; Hoyt & Taylor 1981). m/s.
pub const WALK_SPEED_M_S: (f64, f64) = (1.2, 2.2);
/// Trot, ~3–5 m/s (~13–18 km/h) (Clayton 2004; Robilliard et al. 2007). m/s.
pub const TROT_SPEED_M_S: (f64, f64) = (2.8, 5.0);
/// Canter, ~4.5–7 m/s (~16–27 km/h), overlapping fast trot (Robilliard et al. 2007). m/s.
pub const CANTER_SPEED_M_S: (f64, f64) = (4.5, 7.5);
/// Gallop, above ~8 m/s, racehorses to ~15–18 m/s (Witte et al. 2006; Pfau et al. 2006). m/s.
pub const GALLOP_SPEED_M_S: (f64, f64) = (8.0, 15.0);
/// Walk stride frequency (Clayton 2004; Back & Clayton 2013). Hz.
pub const WALK_STRIDE_HZ: (f64, f64) = (0.8, 1.0);
/// Trot stride frequency (Back & Clayton 2013; Heglund & Taylor 1988). Hz.
pub const TROT_STRIDE_HZ: (f64, f64) = (1.2, 1.6);
/// Canter stride frequency (Back & Clayton 2013; Robilliard et al. 2007). Hz.
pub const CANTER_STRIDE_HZ: (f64, f64) = (1.6, 2.0);
/// Gallop stride frequency (Witte et al. 2006; Pfau et al. 2006). Hz.
pub const GALLOP_STRIDE_HZ: (f64, f64) = (2.0, 2.5);
/// Body length (nose to tail, the side-on box width) of an adult riding horse, ~2.2–2.6 m;
/// converts body-lengths/s to m/s when there is no calibration. Approximate; a pony is ~1.8 m.
pub const BODY_LENGTH_M: f64 = 2.4;
/// Cost weight of speed with a calibration, and without (body-lengths/s).
const SPEED_WEIGHT_CALIBRATED: f64 = 1.0;
const SPEED_WEIGHT_BODY_LENGTHS: f64 = 0.5;
/// Cost weight of the stride frequency, times its confidence.
const FREQ_WEIGHT: f64 = 1.0;

fn speed_range(c: GaitClass) -> (f64, f64) {
    match c {
        GaitClass::Walk => WALK_SPEED_M_S,
        GaitClass::Trot => TROT_SPEED_M_S,
        GaitClass::Canter => CANTER_SPEED_M_S,
        _ => GALLOP_SPEED_M_S,
    }
}

fn stride_range(c: GaitClass) -> (f64, f64) {
    match c {
        GaitClass::Walk => WALK_STRIDE_HZ,
        GaitClass::Trot => TROT_STRIDE_HZ,
        GaitClass::Canter => CANTER_STRIDE_HZ,
        _ => GALLOP_STRIDE_HZ,
    }
}

/// Distance of `x` from `range` on a log scale in half-widths: 0 at the geometric centre,
/// 1 at either edge.
fn range_distance(x: f64, (lo, hi): (f64, f64)) -> f64 {
    let centre = (lo * hi).sqrt();
    let half = 0.5 * (hi / lo).ln();
    (x.max(1e-6) / centre).ln().abs() / half
}

fn symmetric(c: GaitClass) -> bool {
    matches!(c, GaitClass::Walk | GaitClass::Trot)
}

/// Class of one window from its speed (in `unit`) and its box oscillation.
pub fn classify(speed: f64, unit: SpeedUnit, oscillation: Option<&StrideEstimate>) -> GaitClass {
    let speed_m_s = match unit {
        SpeedUnit::MetresPerSecond => Some((speed, SPEED_WEIGHT_CALIBRATED)),
        SpeedUnit::BodyLengthsPerSecond => Some((speed * BODY_LENGTH_M, SPEED_WEIGHT_BODY_LENGTHS)),
        SpeedUnit::PixelsPerSecond => None,
    }
    .filter(|(v, _)| v.is_finite());
    if let Some((v, _)) = speed_m_s
        && v < STANDSTILL_MAX_M_S
    {
        return GaitClass::Standstill;
    }
    if speed_m_s.is_none() && oscillation.is_none() {
        return GaitClass::Unknown;
    }
    let cost = |c: GaitClass| {
        let mut cost = 0.0;
        if let Some((v, w)) = speed_m_s {
            cost += w * range_distance(v, speed_range(c)).powi(2);
        }
        if let Some(o) = oscillation {
            let mut d = range_distance(o.hz, stride_range(c));
            // With a speed, a symmetric gait may oscillate twice per stride.
            if symmetric(c) && speed_m_s.is_some() {
                d = d.min(range_distance(o.hz / 2.0, stride_range(c)));
            }
            cost += FREQ_WEIGHT * o.confidence * d * d;
        }
        cost
    };
    GaitClass::MOVING
        .into_iter()
        .map(|c| (c, cost(c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(GaitClass::Unknown, |(c, _)| c)
}

/// The stride frequency an oscillation of `oscillation_hz` means for a horse in `class`: half
/// of it for walk and trot when the half lies closer to the class's stride range (biphasic
/// trunk motion), otherwise the oscillation itself.
pub fn stride_for_class(class: GaitClass, oscillation_hz: f64) -> f64 {
    if symmetric(class) {
        let range = stride_range(class);
        if range_distance(oscillation_hz / 2.0, range) < range_distance(oscillation_hz, range) {
            return oscillation_hz / 2.0;
        }
    }
    oscillation_hz
}

/// Hysteresis: the reported class changes only after a new class has been seen in `hold`
/// consecutive windows. The first known class is taken at once; `Unknown` windows keep the
/// current class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassSmoother {
    hold: usize,
    current: GaitClass,
    candidate: Option<(GaitClass, usize)>,
}

impl ClassSmoother {
    pub fn new(hold: usize) -> Self {
        Self {
            hold: hold.max(1),
            current: GaitClass::Unknown,
            candidate: None,
        }
    }

    pub fn current(&self) -> GaitClass {
        self.current
    }

    pub fn push(&mut self, raw: GaitClass) -> GaitClass {
        if raw == GaitClass::Unknown || raw == self.current {
            self.candidate = None;
            return self.current;
        }
        if self.current == GaitClass::Unknown {
            self.current = raw;
            return raw;
        }
        let seen = match self.candidate {
            Some((c, n)) if c == raw => n + 1,
            _ => 1,
        };
        if seen >= self.hold {
            self.current = raw;
            self.candidate = None;
        } else {
            self.candidate = Some((raw, seen));
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GaitClass::*;

    fn osc(hz: f64) -> StrideEstimate {
        StrideEstimate {
            hz,
            confidence: 0.9,
            periods: 5.0,
        }
    }

    #[test]
    fn typical_values_classify_by_speed_and_frequency() {
        let m = SpeedUnit::MetresPerSecond;
        assert_eq!(classify(0.1, m, Some(&osc(1.0))), Standstill);
        assert_eq!(classify(1.7, m, Some(&osc(0.9))), Walk);
        assert_eq!(classify(1.7, m, None), Walk);
        assert_eq!(classify(4.0, m, Some(&osc(1.4))), Trot);
        assert_eq!(classify(6.0, m, Some(&osc(1.8))), Canter);
        assert_eq!(classify(11.0, m, Some(&osc(2.3))), Gallop);
        // The overlap of trot and canter speeds is decided by the stride frequency.
        assert_eq!(classify(4.8, m, Some(&osc(1.3))), Trot);
        assert_eq!(classify(4.8, m, Some(&osc(1.85))), Canter);
        // A trot's biphasic trunk oscillation at 2.8 Hz is still a trot.
        assert_eq!(classify(4.0, m, Some(&osc(2.8))), Trot);
        assert_eq!(stride_for_class(Trot, 2.8), 1.4);
        assert_eq!(stride_for_class(Trot, 1.4), 1.4);
        assert_eq!(stride_for_class(Canter, 1.8), 1.8);
        // Body-lengths/s: 4 m/s is 1.67 BL/s.
        assert_eq!(
            classify(
                4.0 / BODY_LENGTH_M,
                SpeedUnit::BodyLengthsPerSecond,
                Some(&osc(1.4))
            ),
            Trot
        );
        // Without a usable speed only the frequency is left.
        assert_eq!(
            classify(123.0, SpeedUnit::PixelsPerSecond, Some(&osc(2.3))),
            Gallop
        );
        assert_eq!(classify(123.0, SpeedUnit::PixelsPerSecond, None), Unknown);
    }

    #[test]
    fn smoother_ignores_a_single_flicker_and_follows_a_lasting_change() {
        let mut s = ClassSmoother::new(2);
        let out: Vec<_> = [
            Trot, Trot, Canter, Trot, Unknown, Canter, Canter, Canter, Walk,
        ]
        .into_iter()
        .map(|c| s.push(c))
        .collect();
        assert_eq!(
            out,
            [Trot, Trot, Trot, Trot, Trot, Trot, Canter, Canter, Canter]
        );
        let mut s = ClassSmoother::new(1);
        assert_eq!(s.push(Walk), Walk);
        assert_eq!(s.push(Trot), Trot);
    }
}
