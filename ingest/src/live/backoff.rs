//! Reconnect delays: exponential backoff with jitter from a small seedable PRNG.

use std::time::Duration;

/// How long to wait between connection attempts.
///
/// Attempt `n` (1-based, counting failures since the last stable connection) waits
/// `min(initial · multiplier^(n−1), max)`, then shortened by a random fraction of at most
/// `jitter` (so many cameras that dropped together do not reconnect in lockstep, and the
/// delay never exceeds `max`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// First delay (default 0.5 s).
    pub initial: Duration,
    /// Cap (default 30 s).
    pub max: Duration,
    /// Growth per failed attempt (default 1.5: retries at about 0.5, 1.25, 2.4, 4.1, 6.6 s
    /// after a drop, so a camera back after a few seconds is found within about 2 s).
    pub multiplier: f64,
    /// Largest fraction taken off a delay at random, 0–1 (default 0.2). With the default
    /// multiplier, delays still grow strictly from one attempt to the next until the cap.
    pub jitter: f64,
    /// PRNG seed for the jitter; `None` seeds from the clock and the stream id.
    pub seed: Option<u64>,
    /// A connection that delivered frames for at least this long resets the delay to
    /// `initial` when it ends (default 5 s); a camera that drops right after connecting keeps
    /// backing off.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 1.5,
            jitter: 0.2,
            seed: None,
            stable_after: Duration::from_secs(5),
        }
    }
}

/// SplitMix64: tiny, fast, fully determined by its seed. Not for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The delay sequence of [`BackoffConfig`].
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    rng: SplitMix64,
    failures: u32,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig, seed: u64) -> Self {
        Backoff {
            rng: SplitMix64::new(cfg.seed.unwrap_or(seed)),
            cfg,
            failures: 0,
        }
    }

    /// Failures since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(64) as i32;
        self.failures = self.failures.saturating_add(1);
        let max = self.cfg.max.as_secs_f64();
        let base =
            (self.cfg.initial.as_secs_f64() * self.cfg.multiplier.max(1.0).powi(exp)).min(max);
        let jitter = self.cfg.jitter.clamp(0.0, 1.0);
        let secs = base * (1.0 - jitter * self.rng.next_f64());
        Duration::from_secs_f64(secs.clamp(0.0, max))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(cfg: BackoffConfig, n: usize) -> Vec<Duration> {
        let mut b = Backoff::new(cfg, 7);
        (0..n).map(|_| b.next_delay()).collect()
    }

    #[test]
    fn grows_exponentially_to_the_cap_without_jitter() {
        let cfg = BackoffConfig {
            jitter: 0.0,
            ..Default::default()
        };
        let secs: Vec<f64> = delays(cfg, 12).iter().map(|d| d.as_secs_f64()).collect();
        let expected: Vec<f64> = (0..12).map(|i| (0.5 * 1.5f64.powi(i)).min(30.0)).collect();
        for (s, e) in secs.iter().zip(&expected) {
            assert!((s - e).abs() < 1e-6, "{secs:?}");
        }
        assert_eq!(secs[1], 0.75);
        assert_eq!(secs[11], 30.0);
    }

    #[test]
    fn jitter_stays_in_bounds_and_delays_still_grow() {
        for seed in 0..200 {
            let cfg = BackoffConfig {
                seed: Some(seed),
                ..Default::default()
            };
            let d = delays(cfg, 12);
            for (i, delay) in d.iter().enumerate() {
                let base = (0.5 * 1.5f64.powi(i as i32)).min(30.0);
                let s = delay.as_secs_f64();
                assert!(
                    s <= base && s >= base * 0.8 - 1e-9,
                    "seed {seed} attempt {i}: {s}"
                );
            }
            for w in d[..11].windows(2) {
                assert!(w[1] > w[0], "seed {seed}: {d:?}");
            }
        }
    }

    #[test]
    fn same_seed_same_delays_and_reset_starts_over() {
        let cfg = BackoffConfig {
            seed: Some(42),
            ..Default::default()
        };
        assert_eq!(delays(cfg.clone(), 6), delays(cfg.clone(), 6));
        let other = BackoffConfig {
            seed: Some(43),
            ..Default::default()
        };
        assert_ne!(delays(cfg.clone(), 6), delays(other, 6));
        let mut b = Backoff::new(cfg, 0);
        let first = b.next_delay();
        b.next_delay();
        assert_eq!(b.failures(), 2);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
        assert!(first <= Duration::from_millis(500));
    }

    #[test]
    fn splitmix_is_uniformish() {
        let mut r = SplitMix64::new(1);
        let xs: Vec<f64> = (0..10_000).map(|_| r.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
