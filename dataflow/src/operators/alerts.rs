//! `Alerts`: the alert rules as differential dataflow. The collection of conditions the
//! horses operator maintains (each rule episode and its extent so far) is filtered to the
//! episodes that have lasted their rule's threshold ([`raised`]), and `distinct_total` keeps
//! the set of alerts raised: an episode enters it once, at the epoch its threshold was
//! reached (or at the first epoch it was seen past it), whatever its later growth. Each
//! entry is sent to the worker that owns the alert's stream, as an outcome for its sink; a
//! retraction (the episode released, or its rule's threshold changed) leaves the stored alert
//! as it is.

use differential_dataflow::AsCollection;
use differential_dataflow::operators::ThresholdTotal;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;

use super::Outcome;
use super::horses::ConditionUpdate;
use crate::alerts::{AlertFired, Raised, raised};
use crate::shard::route;

pub trait Alerts<'scope> {
    /// The alerts raised at each epoch, on the workers that own their streams.
    fn alerts(self) -> StreamVec<'scope, u64, Outcome>;
}

impl<'scope> Alerts<'scope> for StreamVec<'scope, u64, ConditionUpdate<u64>> {
    fn alerts(self) -> StreamVec<'scope, u64, Outcome> {
        self.as_collection()
            .flat_map(|condition| raised(&condition))
            .distinct_total()
            .inner
            .flat_map(|(alert, _time, diff): (Raised, u64, isize)| (diff > 0).then_some(alert))
            .exchange(|(key, _): &Raised| route(key.0.as_bytes()))
            // One outcome per message.
            .unary::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
                Pipeline,
                "AlertsBatch",
                |_cap, _info| {
                    |input, output| {
                        input.for_each(|cap, data| {
                            output.session(&cap).give(Outcome::Alerts(
                                data.drain(..).map(AlertFired::new).collect(),
                            ));
                        });
                    }
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Condition, Extent, Rule};
    use crate::operators::testing::two_workers;

    const EPOCHS: u64 = 4;

    fn condition(
        stream: &str,
        horse: u32,
        rule: Rule,
        since: i64,
        until: i64,
        thr: i64,
    ) -> Condition {
        (
            (stream.to_owned(), horse, rule, since),
            Extent {
                until_us: until,
                threshold_us: thr,
            },
        )
    }

    /// What each worker changes at each epoch, as a horses operator would.
    fn changes(worker: usize, epoch: u64) -> Vec<(Condition, isize)> {
        let lying = |until| condition("paddock", 1, Rule::LyingDown, 0, until, 2_000_000);
        let exit = |since| condition("arena", 2, Rule::ZoneExit, since, since, 0);
        let still = condition("stable", 1, Rule::NoMovement, 0, 1_000_000, 300_000_000);
        match (worker, epoch) {
            // Grows past its threshold in epoch 1, grows on, is released in epoch 3.
            (0, 0) => vec![(lying(1_000_000), 1)],
            (0, 1) => vec![(lying(1_000_000), -1), (lying(3_000_000), 1)],
            (0, 2) => vec![(lying(3_000_000), -1), (lying(5_000_000), 1)],
            (0, 3) => vec![(lying(5_000_000), -1)],
            // Two exits, each at once; an episode short of its threshold.
            (1, 0) => vec![(exit(500), 1)],
            (1, 1) => vec![(still, 1)],
            (1, 2) => vec![(exit(9_000), 1)],
            _ => vec![],
        }
    }

    #[test]
    fn each_episode_raises_once_when_it_reaches_its_threshold_on_the_stream_s_worker() {
        let input = |worker, epoch| {
            changes(worker, epoch)
                .into_iter()
                .map(|(c, diff)| (c, epoch, diff))
                .collect()
        };
        let mut got = Vec::new();
        for (worker, time, o) in two_workers(EPOCHS, input, |s| s.alerts()) {
            let Outcome::Alerts(alerts) = o else {
                panic!("not alerts: {o:?}")
            };
            got.extend(alerts.into_iter().map(|a| (worker, time, a.dedup_key)));
        }

        let owner = |stream: &str| (route(stream.as_bytes()) % 2) as usize;
        let mut expected = vec![
            (owner("arena"), 0, "arena/Horse_2/zone_exit/500".to_owned()),
            (
                owner("paddock"),
                1,
                "paddock/Horse_1/lying_down/0".to_owned(),
            ),
            (owner("arena"), 2, "arena/Horse_2/zone_exit/9000".to_owned()),
        ];
        got.sort_by_key(|(w, t, k)| (*t, k.clone(), *w));
        expected.sort_by_key(|(w, t, k)| (*t, k.clone(), *w));
        assert_eq!(got, expected);
    }
}
