//! `Horses`: each tracked chunk's tracks mapped to the stream's horses, with the gait windows
//! and rule episodes that ended in it ([`StreamHorses`]), on the worker that owns the stream.
//! Two more outputs carry the chunk's changes of differential collections: what it adds to
//! its horses' totals (maintained by `GaitTotals`) and how it changes the conditions the
//! alerts derive from (`Alerts`).

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{ProbeHandle, StreamVec};
use timely::progress::operate::FrontierInterest;

use super::Outcome;
use crate::alerts::Condition;
use crate::horses::StreamHorses;
use crate::totals::{GaitSum, TotalsKey};

/// An update of the totals collection: key, time, and what is added.
pub type SumUpdate<T> = (TotalsKey, T, GaitSum);

/// An update of the conditions collection.
pub type ConditionUpdate<T> = (Condition, T, isize);

pub trait Horses<'scope> {
    /// The outcomes, with their analysis, and the updates of the totals and conditions
    /// collections. `written` probes the sinks' output: an ended episode is retracted from
    /// the conditions once the epoch that ended it is written there.
    #[allow(clippy::type_complexity)]
    fn horses(
        self,
        horses: StreamHorses,
        written: ProbeHandle<u64>,
    ) -> (
        StreamVec<'scope, u64, Outcome>,
        StreamVec<'scope, u64, SumUpdate<u64>>,
        StreamVec<'scope, u64, ConditionUpdate<u64>>,
    );
}

impl<'scope> Horses<'scope> for StreamVec<'scope, u64, Outcome> {
    fn horses(
        self,
        mut horses: StreamHorses,
        written: ProbeHandle<u64>,
    ) -> (
        StreamVec<'scope, u64, Outcome>,
        StreamVec<'scope, u64, SumUpdate<u64>>,
        StreamVec<'scope, u64, ConditionUpdate<u64>>,
    ) {
        let mut builder = OperatorBuilder::new("Horses".to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        builder.set_notify_for(0, FrontierInterest::Never);
        let (outcomes, outcome_stream) = builder.new_output();
        let (sums, sum_stream) = builder.new_output();
        let (conditions, condition_stream) = builder.new_output();
        let mut outcomes = OutputBuilder::from(outcomes);
        let mut sums = OutputBuilder::from(sums);
        let mut conditions = OutputBuilder::from(conditions);
        builder.build(move |_caps| {
            move |_frontiers| {
                let mut outcomes = outcomes.activate();
                let mut sums = sums.activate();
                let mut conditions = conditions.activate();
                input.for_each_stamp(|cap, data| {
                    // Timestamps are totally ordered: a message's stamp is its one time.
                    let Some(&time) = cap.least() else { return };
                    let written_before =
                        written.with_frontier(|f| f.first().copied().unwrap_or(u64::MAX));
                    let mut outcome_session = outcomes.session(&cap);
                    let mut sum_session = sums.session(&cap);
                    let mut condition_session = conditions.session(&cap);
                    for mut outcome in data.flat_map(|d| d.drain(..)) {
                        if let Outcome::Processed(p) = &mut outcome {
                            p.stage("horses", |p| horses.process_record(p, time, written_before));
                            let stream = &p.chunk.stream_id;
                            for s in p.analysis.sums.drain(..) {
                                let key = (stream.clone(), s.number, s.unit);
                                sum_session.give((key, time, s.sum));
                            }
                            for c in p.analysis.conditions.drain(..) {
                                let key = (stream.clone(), c.number, c.rule, c.since);
                                condition_session.give(((key, c.extent), time, c.diff));
                            }
                        }
                        outcome_session.give(outcome);
                    }
                });
            }
        });
        (outcome_stream, sum_stream, condition_stream)
    }
}
