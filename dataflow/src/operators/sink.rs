//! `StoreAndPublish`: writes each outcome to the store, then publishes its live event. The
//! operator's output frontier passes an epoch only once every write of that epoch is
//! committed, which is what lets the worker commit source positions.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use horsestream_proto::{EVENT_SCHEMA_VERSION, Event, EventKind, ProcessedChunk};
use horsestream_sinks::{ChunkErrorRecord, EventPublisher, SinkError, Store};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;
use tracing::{error, warn};

use super::Outcome;
use crate::Metrics;

/// The sink's logic: a store, an event publisher and a small runtime to drive them.
#[derive(Debug)]
pub struct SinkWriter {
    runtime: tokio::runtime::Runtime,
    store: Store,
    events: EventPublisher,
    metrics: Arc<Metrics>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl SinkWriter {
    pub fn new(
        runtime: tokio::runtime::Runtime,
        store: Store,
        events: EventPublisher,
        metrics: Arc<Metrics>,
    ) -> Self {
        SinkWriter {
            runtime,
            store,
            events,
            metrics,
        }
    }

    /// Runs `op` until it succeeds, backing off while the failure is retriable, so the
    /// dataflow's progress is held (and nothing acknowledged) while a server is down.
    fn with_retry<F, Fut>(&self, what: &str, mut op: F) -> Result<(), SinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), SinkError>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.runtime.block_on(op()) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retriable() => {
                    self.metrics.sink_retries.fetch_add(1, Relaxed);
                    warn!(error = %e, what, ?backoff, "sink write failed, retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn write(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Processed(chunk) => self.write_processed(chunk),
            Outcome::Failed(e) => self.write_failed(e),
        }
    }

    fn write_processed(&self, chunk: &ProcessedChunk) {
        if let Err(e) = self.with_retry("chunk", || self.store.write_chunk(chunk)) {
            error!(chunk = %chunk.chunk_id(), error = %e, "chunk could not be stored");
            self.write_failed(&ChunkErrorRecord {
                source: "sink".into(),
                partition: -1,
                offset: chunk.sequence as i64,
                stage: "store".into(),
                reason: format!("chunk {}: {e}", chunk.chunk_id()),
            });
            return;
        }
        let summary = chunk.summary();
        let m = &self.metrics;
        m.chunks_processed.fetch_add(1, Relaxed);
        m.frames.fetch_add(u64::from(summary.frames), Relaxed);
        m.detections
            .fetch_add(u64::from(summary.detections), Relaxed);
        m.max_detections_per_frame
            .fetch_max(u64::from(summary.max_horses_per_frame), Relaxed);
        let event = Event {
            version: EVENT_SCHEMA_VERSION,
            emitted_at_us: now_us(),
            kind: EventKind::ChunkProcessed(summary),
        };
        match self.with_retry("event", || self.events.publish(&chunk.stream_id, &event)) {
            Ok(()) => {
                m.events_published.fetch_add(1, Relaxed);
            }
            Err(e) => error!(chunk = %chunk.chunk_id(), error = %e, "live event lost"),
        }
    }

    fn write_failed(&self, e: &ChunkErrorRecord) {
        self.metrics.chunk_errors.fetch_add(1, Relaxed);
        warn!(source = %e.source, partition = e.partition, offset = e.offset,
              stage = %e.stage, reason = %e.reason, "input refused");
        if let Err(err) = self.with_retry("chunk error", || self.store.record_error(e)) {
            error!(error = %err, "chunk error could not be recorded");
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub trait StoreAndPublish<'scope, T: Timestamp> {
    fn store_and_publish(self, writer: SinkWriter) -> StreamVec<'scope, T, ()>;
}

impl<'scope, T: Timestamp> StoreAndPublish<'scope, T> for StreamVec<'scope, T, Outcome> {
    fn store_and_publish(self, writer: SinkWriter) -> StreamVec<'scope, T, ()> {
        self.unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "StoreAndPublish",
            move |_cap, _info| {
                move |input, _output| {
                    input.for_each(|_cap, data| {
                        for outcome in data.iter() {
                            writer.write(outcome);
                        }
                    });
                }
            },
        )
    }
}
