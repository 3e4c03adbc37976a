//! `GaitTotals`: the per-horse gait totals, maintained incrementally by differential
//! dataflow (`count_total` over the [`GaitSum`] updates the horses operator emits), each
//! change sent to the worker that owns the horse's stream, as an outcome for its sink.

use differential_dataflow::AsCollection;
use differential_dataflow::operators::CountTotal;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

use super::Outcome;
use super::horses::SumUpdate;
use crate::shard::route;
use crate::totals::{GaitSum, TotalsKey, TotalsUpdate};

pub trait GaitTotals<'scope> {
    /// The new totals of every horse and unit that changed, at the epoch it changed in.
    fn gait_totals(self) -> StreamVec<'scope, u64, Outcome>;
}

impl<'scope> GaitTotals<'scope> for StreamVec<'scope, u64, SumUpdate<u64>> {
    fn gait_totals(self) -> StreamVec<'scope, u64, Outcome> {
        self.as_collection()
            .count_total()
            .inner
            // A change retracts the old totals (−1) and asserts the new (+1): the sink
            // writes the new ones.
            .flat_map(
                |(((stream_id, number, unit), totals), _time, diff): (
                    (TotalsKey, GaitSum),
                    u64,
                    isize,
                )| {
                    (diff > 0).then_some(TotalsUpdate {
                        stream_id,
                        number,
                        unit,
                        totals,
                    })
                },
            )
            .exchange(|t: &TotalsUpdate| route(t.stream_id.as_bytes()))
            // One outcome per message, written by the sink in one transaction.
            .unary::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
                Pipeline,
                "TotalsBatch",
                |_cap, _info| {
                    |input, output| {
                        input.for_each(|cap, data| {
                            output
                                .session(&cap)
                                .give(Outcome::Totals(std::mem::take(data)));
                        });
                    }
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use differential_dataflow::difference::Semigroup;

    use super::*;
    use crate::operators::testing::two_workers;

    /// Epochs of the test, and what each worker adds at each: `(stream, horse, unit)` and a
    /// window.
    const EPOCHS: u64 = 5;

    fn updates(worker: usize, epoch: u64) -> Vec<(TotalsKey, GaitSum)> {
        let mut out = Vec::new();
        for (i, stream) in ["paddock", "arena", "stable"].iter().enumerate() {
            for number in 1..=2u32 {
                // Not every key changes in every epoch.
                let n = (worker as u64 * 7 + epoch * 3 + i as u64 + u64::from(number)) % 3;
                for k in 0..n {
                    let end = (epoch * 10 + k) as i64 * 1_000_000;
                    let class = if k % 2 == 0 { "walk" } else { "trot" };
                    let unit = if number == 1 {
                        "metres_per_second"
                    } else {
                        "pixels_per_second"
                    };
                    let sum = GaitSum::window(class, 1_000_000, 1.25 * (k + 1) as f64, end);
                    out.push(((stream.to_string(), number, unit.to_owned()), sum));
                }
            }
        }
        out
    }

    #[test]
    fn every_change_is_the_exact_running_sum_on_the_stream_s_worker() {
        let input = |worker, epoch| {
            updates(worker, epoch)
                .into_iter()
                .map(|(key, sum)| (key, epoch, sum))
                .collect()
        };
        let outcomes = two_workers(EPOCHS, input, |s| s.gait_totals());
        let mut got = Vec::new();
        for (worker, time, o) in outcomes {
            let Outcome::Totals(ts) = o else {
                panic!("not totals: {o:?}")
            };
            got.extend(ts.into_iter().map(|t| (worker, time, t)));
        }

        // What the collection must hold after each epoch, and where each change goes.
        let mut running: BTreeMap<TotalsKey, GaitSum> = BTreeMap::new();
        let mut expected = Vec::new();
        for epoch in 0..EPOCHS {
            let mut changed = BTreeMap::new();
            for worker in 0..2 {
                for (key, sum) in updates(worker, epoch) {
                    running.entry(key.clone()).or_default().plus_equals(&sum);
                    changed.insert(key.clone(), running[&key].clone());
                }
            }
            for ((stream_id, number, unit), totals) in changed {
                let owner = (route(stream_id.as_bytes()) % 2) as usize;
                let update = TotalsUpdate {
                    stream_id,
                    number,
                    unit,
                    totals,
                };
                expected.push((owner, epoch, update));
            }
        }
        let order = |(w, t, u): &(usize, u64, TotalsUpdate)| {
            (*t, u.stream_id.clone(), u.number, u.unit.clone(), *w)
        };
        got.sort_by_key(order);
        expected.sort_by_key(order);
        assert!(expected.len() > 10, "{expected:?}");
        assert_eq!(got, expected);
    }
}
