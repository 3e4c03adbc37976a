//! Per-horse gait totals as a differential dataflow collection.
//!
//! Each gait window a horse completes adds a [`GaitSum`] to the collection keyed by
//! `(stream, horse, speed unit)`: the sum is the difference type, so differential's
//! `count_total` keeps, per key, the sum of everything added so far and reports at each epoch
//! the keys whose totals changed, retracting the old value. The operator in
//! `operators::totals` hands the new values to the sink.
//!
//! Arrangements live in memory. The horses' checkpointed state keeps each horse's sum as of
//! its chunk, so a worker that restores a stream (after a restart, or a replay starting
//! mid-stream) adds those sums once as the seed: the collection then holds exactly what an
//! uninterrupted run would, and what the sink writes is the same.
//!
//! Sums are integers (µs, millionths of the unit), so adding them in any order — whatever
//! the number of workers or the batching of a run — gives the same bits.

use std::collections::BTreeMap;

use differential_dataflow::difference::{IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

/// The collection's key: stream id, horse number, speed unit (`metres_per_second`, …). A
/// calibration set or removed midway starts another unit instead of mixing them.
pub type TotalsKey = (String, u32, String);

/// What gait windows add to a horse's totals in one speed unit; a commutative monoid
/// (sums, and the newest window end as a maximum), so any grouping of additions agrees.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GaitSum {
    pub windows: i64,
    /// Path length in millionths of `unit` × s, each stretch counted once although windows
    /// overlap.
    pub distance_micro: i64,
    /// Microseconds in each gait class (`walk`, `trot`, …): a window adds the time since the
    /// end of the horse's previous window (all of itself for the first).
    pub class_us: BTreeMap<String, i64>,
    /// End of the newest window counted, capture time µs.
    pub through_us: Option<i64>,
}

impl GaitSum {
    /// One window: `new_us` of gait `class` and `distance` (`unit` × s) not counted before,
    /// ending at `end_us`.
    pub fn window(class: &str, new_us: i64, distance: f64, end_us: i64) -> Self {
        GaitSum {
            windows: 1,
            // A non-finite distance (no speed) adds nothing; `as` saturates the rest.
            distance_micro: if distance.is_finite() {
                (distance * 1e6).round() as i64
            } else {
                0
            },
            class_us: BTreeMap::from([(class.to_owned(), new_us)]),
            through_us: Some(end_us),
        }
    }

    /// Distance in `unit` × s.
    pub fn distance(&self) -> f64 {
        self.distance_micro as f64 * 1e-6
    }

    /// Seconds in each gait class.
    pub fn seconds(&self) -> BTreeMap<String, f64> {
        self.class_us
            .iter()
            .map(|(class, us)| (class.clone(), *us as f64 * 1e-6))
            .collect()
    }
}

impl IsZero for GaitSum {
    fn is_zero(&self) -> bool {
        self.windows == 0
            && self.distance_micro == 0
            && self.class_us.values().all(|us| *us == 0)
            && self.through_us.is_none()
    }
}

impl Semigroup for GaitSum {
    fn plus_equals(&mut self, rhs: &Self) {
        self.windows += rhs.windows;
        self.distance_micro += rhs.distance_micro;
        for (class, us) in &rhs.class_us {
            *self.class_us.entry(class.clone()).or_default() += us;
        }
        self.through_us = self.through_us.max(rhs.through_us);
    }
}

impl Monoid for GaitSum {
    fn zero() -> Self {
        GaitSum::default()
    }
}

/// A horse's totals in one unit after an epoch, as the collection holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsUpdate {
    pub stream_id: String,
    pub number: u32,
    pub unit: String,
    pub totals: GaitSum,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(class: &str, new_s: f64, distance: f64, end_s: i64) -> GaitSum {
        GaitSum::window(class, (new_s * 1e6) as i64, distance, end_s * 1_000_000)
    }

    #[test]
    fn sums_add_up_in_any_grouping_and_keep_the_newest_end() {
        let parts = [
            w("walk", 4.0, 6.1, 4),
            w("walk", 1.0, 1.7, 5),
            w("trot", 1.0, 3.3, 6),
            w("trot", 1.0, 3.4, 7),
        ];
        let mut forward = GaitSum::zero();
        parts.iter().for_each(|p| forward.plus_equals(p));
        let mut backward = GaitSum::zero();
        parts.iter().rev().for_each(|p| backward.plus_equals(p));
        let (mut left, mut right) = (parts[0].clone(), parts[2].clone());
        left.plus_equals(&parts[1]);
        right.plus_equals(&parts[3]);
        left.plus_equals(&right);
        assert_eq!(forward, backward);
        assert_eq!(forward, left);
        assert_eq!(forward.windows, 4);
        assert_eq!(forward.distance_micro, 14_500_000);
        assert_eq!(forward.through_us, Some(7_000_000));
        assert_eq!(
            forward.seconds(),
            BTreeMap::from([("trot".to_owned(), 2.0), ("walk".to_owned(), 5.0)])
        );
        assert!(!forward.is_zero());
        assert!(GaitSum::zero().is_zero());
    }

    #[test]
    fn a_window_without_a_finite_distance_adds_its_time_only() {
        let s = GaitSum::window("walk", 1_000_000, f64::NAN, 9);
        assert_eq!(s.distance_micro, 0);
        assert_eq!(s.windows, 1);
        assert_eq!(s.class_us["walk"], 1_000_000);
    }
}
