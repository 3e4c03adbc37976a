//! Stride frequency from the periodic vertical motion of a horse's box.
//!
//! The signal is the box height: its bottom edge stays on the hooves while its top edge
//! follows the withers and head, which rise and fall with every stride. (The height is used
//! rather than the top edge's y so that a tilting or panning camera does not add motion.)
//!
//! 1. Remove a linear trend (the horse approaching the camera grows its box).
//! 2. Resample onto a uniform grid at the median sample spacing; grid points inside a gap
//!    longer than 2.5 spacings stay empty and are left out of every product.
//! 3. Normalised autocorrelation over lags whose overlap still spans one period (so at least
//!    two periods of signal). Every local maximum, parabolically interpolated, proposes a
//!    period, and so does half of it (a period of 2–3 samples peaks more clearly at two
//!    periods when lags are whole samples).
//! 4. Each proposal is refined by a least-squares sinusoid fit on the original timestamps
//!    within ±15 % (sub-bin resolution, no resampling error); the frequency whose sinusoid
//!    explains most of the detrended signal wins. A subharmonic proposed by the peak at two
//!    periods explains little and loses.
//!
//! The confidence is the share of the detrended variance that sinusoid explains (≈ 1 for a
//! clean oscillation, ≈ 0.1 for noise over a 4 s window).
//!
//! # Limits at ~10 fps
//! The Nyquist frequency at 10 fps is 5 Hz. Stride frequencies up to ~2.5 Hz (gallop ~2–2.5 Hz)
//! are sampled at least four times per cycle and are measurable from the box oscillation, and
//! so is the biphasic trunk oscillation of walk and trot (two cycles per stride, up to ~3.2 Hz,
//! still ~3 samples per cycle). Hoof-contact timing is not: a stance at canter or gallop lasts
//! about one frame interval, so duty factor, footfall sequence, lead and suspension phase are
//! out of reach of any 10 fps signal, and of the box in particular, which does not see the
//! individual hooves.
//!
//! Returns `None` when the signal is too short (fewer than two periods of the candidate
//! frequency, or fewer than 8 samples), or when no clear peak exists within the band (the
//! fitted sinusoid explains less than the confidence threshold, e.g. because the rhythm lies
//! above the band).

/// A measured oscillation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrideEstimate {
    /// Frequency, Hz.
    pub hz: f64,
    /// Share of the detrended signal's variance explained by the oscillation, 0..=1.
    pub confidence: f64,
    /// Periods covered by the signal.
    pub periods: f64,
}

/// Autocorrelation peaks this far outside the band (as a factor) still propose a candidate,
/// whose refinement is then confined to the band.
const BAND_TOLERANCE: f64 = 1.1;
/// A grid point further than this many median spacings from a sample on either side is a gap.
const MAX_GAP_SPACINGS: f64 = 2.5;
const MIN_SAMPLES: usize = 8;

/// Dominant oscillation of `signal` (`(t_us, value)`, strictly increasing times) within
/// `band_hz`, or `None` (see the module docs).
pub fn estimate_stride(
    signal: &[(i64, f64)],
    band_hz: (f64, f64),
    min_confidence: f64,
) -> Option<StrideEstimate> {
    let pts: Vec<(f64, f64)> = signal
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|&(t, v)| (t as f64 * 1e-6, v))
        .collect();
    if pts.len() < MIN_SAMPLES || pts.windows(2).any(|w| w[1].0 <= w[0].0) {
        return None;
    }
    let (band_lo, band_hi) = band_hz;
    let span = pts[pts.len() - 1].0 - pts[0].0;
    if span * band_lo < 2.0 && span * band_hi < 2.0 {
        return None;
    }
    let x = detrend(&pts);
    let variance = x.iter().map(|v| v * v).sum::<f64>();
    let scale = pts.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
    if variance.sqrt() <= 1e-9 * scale.max(1.0) * (pts.len() as f64).sqrt() {
        return None; // constant or a straight line: nothing oscillates
    }
    let mut gaps: Vec<f64> = pts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let dt = gaps[gaps.len() / 2];
    let fs = 1.0 / dt;
    let grid = resample(&pts, &x, dt);

    // r[k] for k = 0..=k_max + 1; None where the overlap is shorter than one period.
    let k_max = (fs / band_lo).ceil() as usize;
    let r: Vec<Option<f64>> = (0..=k_max + 1).map(|k| autocorrelation(&grid, k)).collect();
    // Candidate frequencies: every autocorrelation peak (parabolically interpolated), and twice
    // it, because integer lags barely see a period of 2–3 samples (its autocorrelation peaks
    // more clearly at two periods).
    let mut candidates = Vec::new();
    for k in 2..=k_max {
        if let (Some(a), Some(b), Some(c)) = (r[k - 1], r[k], r[k + 1])
            && b > a
            && b >= c
            && b > 0.0
        {
            let denom = a - 2.0 * b + c;
            let shift = if denom.abs() > 1e-12 {
                (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
            } else {
                0.0
            };
            let f = fs / (k as f64 + shift);
            candidates.extend([f, 2.0 * f]);
        }
    }
    // Each candidate refined by the sinusoid fit; the one explaining most variance wins.
    let (hz, power) = candidates
        .into_iter()
        .filter(|&f| {
            f >= band_lo / BAND_TOLERANCE && f <= band_hi * BAND_TOLERANCE && span * f >= 2.0
        })
        .filter_map(|f| refine(&pts, &x, (f / 1.15).max(band_lo), (f * 1.15).min(band_hi)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let periods = span * hz;
    let confidence = (power / variance).clamp(0.0, 1.0);
    if periods < 2.0 || confidence < min_confidence {
        return None;
    }
    Some(StrideEstimate {
        hz,
        confidence,
        periods,
    })
}

/// Residuals of a least-squares line through `pts`.
fn detrend(pts: &[(f64, f64)]) -> Vec<f64> {
    let n = pts.len() as f64;
    let (mt, mv) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.1 / n));
    let (sxy, sxx) = pts.iter().fold((0.0, 0.0), |(sxy, sxx), p| {
        (sxy + (p.0 - mt) * (p.1 - mv), sxx + (p.0 - mt) * (p.0 - mt))
    });
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    pts.iter().map(|p| p.1 - mv - slope * (p.0 - mt)).collect()
}

/// Linear interpolation of `x` (at the times of `pts`) onto a grid of spacing `dt`.
fn resample(pts: &[(f64, f64)], x: &[f64], dt: f64) -> Vec<Option<f64>> {
    let t0 = pts[0].0;
    let n = ((pts[pts.len() - 1].0 - t0) / dt + 1e-9).floor() as usize + 1;
    let mut j = 0;
    (0..n)
        .map(|g| {
            let t = t0 + g as f64 * dt;
            while j + 2 < pts.len() && pts[j + 1].0 <= t {
                j += 1;
            }
            let (ta, tb) = (pts[j].0, pts[j + 1].0);
            if tb - ta > MAX_GAP_SPACINGS * dt {
                // Only the grid points that coincide with a sample survive a gap.
                if (t - ta).abs() < 1e-9 {
                    return Some(x[j]);
                }
                if (t - tb).abs() < 1e-9 {
                    return Some(x[j + 1]);
                }
                return None;
            }
            let u = ((t - ta) / (tb - ta)).clamp(0.0, 1.0);
            Some(x[j] + u * (x[j + 1] - x[j]))
        })
        .collect()
}

/// Normalised autocorrelation at lag `k` over the pairs where both points exist; `None` when
/// fewer than `max(k, 6)` pairs exist (the overlap must span a full period).
fn autocorrelation(grid: &[Option<f64>], k: usize) -> Option<f64> {
    if k >= grid.len() {
        return None;
    }
    let (mut n, mut sab, mut saa, mut sbb) = (0usize, 0.0, 0.0, 0.0);
    for (a, b) in grid.iter().zip(&grid[k..]) {
        if let (Some(a), Some(b)) = (a, b) {
            n += 1;
            sab += a * b;
            saa += a * a;
            sbb += b * b;
        }
    }
    if n < k.max(6) || saa <= 0.0 || sbb <= 0.0 {
        return None;
    }
    Some(sab / (saa * sbb).sqrt())
}

/// Frequency in `lo..=hi` whose sinusoid explains most of `x` (scanned in 2 mHz steps), and
/// the variance it explains.
fn refine(pts: &[(f64, f64)], x: &[f64], lo: f64, hi: f64) -> Option<(f64, f64)> {
    if hi < lo {
        return None;
    }
    let steps = ((hi - lo) / 0.002).ceil() as usize;
    let t0 = pts[0].0;
    let mut best = (f64::NEG_INFINITY, lo);
    for i in 0..=steps {
        let f = (lo + i as f64 * 0.002).min(hi);
        let w = std::f64::consts::TAU * f;
        let (mut cc, mut cs, mut ss, mut xc, mut xs) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (p, &v) in pts.iter().zip(x) {
            let (s, c) = (w * (p.0 - t0)).sin_cos();
            cc += c * c;
            cs += c * s;
            ss += s * s;
            xc += v * c;
            xs += v * s;
        }
        let det = cc * ss - cs * cs;
        if det.abs() < 1e-12 {
            continue;
        }
        let a = (xc * ss - xs * cs) / det;
        let b = (xs * cc - xc * cs) / det;
        let power = a * xc + b * xs;
        if power > best.0 {
            best = (power, f);
        }
    }
    best.0.is_finite().then_some((best.1, best.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, secs: f64, fps: f64) -> Vec<(i64, f64)> {
        let n = (secs * fps) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / fps;
                (
                    (t * 1e6) as i64,
                    50.0 + 3.0 * (std::f64::consts::TAU * hz * t + 0.3).sin(),
                )
            })
            .collect()
    }

    #[test]
    fn clean_sinusoids_across_the_band_at_10_fps() {
        for hz in [0.6, 0.8, 1.0, 1.3, 1.7, 2.0, 2.25, 2.5, 2.8, 3.2] {
            let e = estimate_stride(&sine(hz, 4.0, 10.0), (0.5, 3.5), 0.4)
                .unwrap_or_else(|| panic!("{hz} Hz not found"));
            assert!((e.hz - hz).abs() < 0.02, "{hz} Hz estimated as {e:?}");
            assert!(e.confidence > 0.8, "{e:?}");
        }
    }

    #[test]
    fn fewer_than_two_periods_is_none() {
        // 1.2 s of a 1.4 Hz oscillation is 1.7 periods.
        assert_eq!(
            estimate_stride(&sine(1.4, 1.2, 10.0), (0.5, 3.5), 0.4),
            None
        );
        // 3 s of 0.6 Hz is 1.8 periods.
        assert_eq!(
            estimate_stride(&sine(0.6, 3.0, 10.0), (0.5, 3.5), 0.4),
            None
        );
    }

    #[test]
    fn rhythm_above_the_band_is_not_reported_as_a_subharmonic() {
        for hz in [3.4, 4.0] {
            let e = estimate_stride(&sine(hz, 4.0, 10.0), (0.5, 3.0), 0.4);
            assert_eq!(e, None, "{hz} Hz");
        }
    }

    #[test]
    fn gap_uses_timestamps() {
        let mut s = sine(1.5, 6.0, 10.0);
        s.retain(|&(t, _)| !(2_000_000..3_300_000).contains(&t));
        let e = estimate_stride(&s, (0.5, 3.5), 0.4).expect("found");
        assert!((e.hz - 1.5).abs() < 0.02, "{e:?}");
    }

    #[test]
    fn constant_and_linear_signals_have_no_stride() {
        let flat: Vec<_> = (0..40).map(|i| (i * 100_000, 7.0)).collect();
        assert_eq!(estimate_stride(&flat, (0.5, 3.5), 0.4), None);
        let ramp: Vec<_> = (0..40).map(|i| (i * 100_000, i as f64)).collect();
        assert_eq!(estimate_stride(&ramp, (0.5, 3.5), 0.4), None);
    }
}
