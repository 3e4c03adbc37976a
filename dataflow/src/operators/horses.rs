//! `Horses`: each tracked chunk's tracks mapped to the stream's horses, with the gait windows
//! and alert rules that ended in it ([`StreamHorses`]), on the worker that owns the stream.
//! A second output carries what each chunk adds to its horses' totals, as updates of the
//! differential collection that `GaitTotals` maintains.

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::order::TotalOrder;
use timely::progress::Timestamp;
use timely::progress::operate::FrontierInterest;

use super::Outcome;
use crate::horses::StreamHorses;
use crate::totals::{GaitSum, TotalsKey};

/// An update of the totals collection: key, time, and what is added.
pub type SumUpdate<T> = (TotalsKey, T, GaitSum);

pub trait Horses<'scope, T: Timestamp + TotalOrder> {
    /// The outcomes, with their analysis, and the updates of the totals collection.
    #[allow(clippy::type_complexity)]
    fn horses(
        self,
        horses: StreamHorses,
    ) -> (
        StreamVec<'scope, T, Outcome>,
        StreamVec<'scope, T, SumUpdate<T>>,
    );
}

impl<'scope, T: Timestamp + TotalOrder> Horses<'scope, T> for StreamVec<'scope, T, Outcome> {
    fn horses(
        self,
        mut horses: StreamHorses,
    ) -> (
        StreamVec<'scope, T, Outcome>,
        StreamVec<'scope, T, SumUpdate<T>>,
    ) {
        let mut builder = OperatorBuilder::new("Horses".to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        builder.set_notify_for(0, FrontierInterest::Never);
        let (outcomes, outcome_stream) = builder.new_output();
        let (sums, sum_stream) = builder.new_output();
        let mut outcomes = OutputBuilder::from(outcomes);
        let mut sums = OutputBuilder::from(sums);
        builder.build(move |_caps| {
            move |_frontiers| {
                let mut outcomes = outcomes.activate();
                let mut sums = sums.activate();
                input.for_each_stamp(|cap, data| {
                    // Timestamps are totally ordered: a message's stamp is its one time.
                    let time = cap.least().cloned();
                    let mut outcome_session = outcomes.session(&cap);
                    let mut sum_session = sums.session(&cap);
                    for mut outcome in data.flat_map(|d| d.drain(..)) {
                        if let Outcome::Processed(p) = &mut outcome {
                            p.stage("horses", |p| horses.process_record(p));
                            for s in p.analysis.sums.drain(..) {
                                let Some(time) = time.clone() else { break };
                                let key = (p.chunk.stream_id.clone(), s.number, s.unit);
                                sum_session.give((key, time, s.sum));
                            }
                        }
                        outcome_session.give(outcome);
                    }
                });
            }
        });
        (outcome_stream, sum_stream)
    }
}
