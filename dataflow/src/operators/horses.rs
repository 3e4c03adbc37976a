//! `Horses`: each tracked chunk's tracks mapped to the stream's horses, with the gait windows
//! and alert rules that ended in it ([`StreamHorses`]), on the worker that owns the stream.

use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;

use super::Outcome;
use crate::horses::StreamHorses;

pub trait Horses<'scope, T: Timestamp> {
    fn horses(self, horses: StreamHorses) -> StreamVec<'scope, T, Outcome>;
}

impl<'scope, T: Timestamp> Horses<'scope, T> for StreamVec<'scope, T, Outcome> {
    fn horses(self, mut horses: StreamHorses) -> StreamVec<'scope, T, Outcome> {
        self.unary::<CapacityContainerBuilder<Vec<Outcome>>, _, _, _>(
            Pipeline,
            "Horses",
            move |_cap, _info| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        let mut session = output.session(&cap);
                        for mut outcome in data.drain(..) {
                            if let Outcome::Processed(p) = &mut outcome {
                                p.stage("horses", |p| horses.process_record(p));
                            }
                            session.give(outcome);
                        }
                    });
                }
            },
        )
    }
}
