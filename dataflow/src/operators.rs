//! The dataflow's operators, one per file, each an extension trait on timely streams whose
//! logic is a plain struct or function tested without timely.

pub mod alerts;
pub mod decode;
pub mod detect;
pub mod horses;
pub mod pose;
pub mod sink;
pub mod totals;
pub mod track;

use std::time::Instant;

use horsestream_proto::ProcessedChunk;
use horsestream_sinks::ChunkErrorRecord;
use horsestream_sinks::store::StreamCheckpoint;

use crate::horses::ChunkAnalysis;

/// What became of one input record: errors are data, carried to the sink like results.
// One outcome per chunk, moved a few times: the size difference between the variants costs
// nothing measurable, boxing would cost an allocation per chunk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Outcome {
    Processed(Processed),
    Failed(ChunkErrorRecord),
    /// Not analysed because a model was unavailable: recorded as degraded, kept for a replay.
    Degraded(Degraded),
    /// Horses' gait totals changed by an epoch, from the differential collection of totals.
    Totals(Vec<crate::totals::TotalsUpdate>),
    /// Alerts raised by an epoch, from the differential collection of alerts.
    Alerts(Vec<crate::alerts::AlertFired>),
}

/// A chunk the detector could not analyse because a model failed (session error, model file
/// unloadable, device gone), not because of the chunk: its frames without detections.
#[derive(Debug, Clone)]
pub struct Degraded {
    pub chunk: ProcessedChunk,
    pub reason: String,
    pub trace_id: String,
}

/// The tracing target of the per-chunk spans (as ingest's, `horsestream_ingest::TRACE_TARGET`).
pub const TRACE_TARGET: &str = "horsestream::trace";

/// The span of one stage of one chunk, carrying the chunk's trace id (made by ingest).
pub fn chunk_span(stage: &'static str, trace_id: &str, chunk_id: &str) -> tracing::Span {
    // Span names are static: one macro call per stage.
    match stage {
        "decode" => tracing::info_span!(target: TRACE_TARGET, "decode", trace_id, chunk_id),
        "detect" => tracing::info_span!(target: TRACE_TARGET, "detect", trace_id, chunk_id),
        "track" => tracing::info_span!(target: TRACE_TARGET, "track", trace_id, chunk_id),
        "horses" => tracing::info_span!(target: TRACE_TARGET, "horses", trace_id, chunk_id),
        "sink" => tracing::info_span!(target: TRACE_TARGET, "sink", trace_id, chunk_id),
        _ => tracing::info_span!(target: TRACE_TARGET, "stage", stage, trace_id, chunk_id),
    }
}

/// A chunk's detections and tracks, and what the horses operator made of them.
#[derive(Debug, Clone)]
pub struct Processed {
    pub chunk: ProcessedChunk,
    pub analysis: ChunkAnalysis,
    /// Where the chunk's record sits (topic, partition, offset): a refusal by the sink is
    /// recorded there, like the earlier stages' refusals.
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    /// The stream's state after this chunk, stored with it (when checkpoints are on): the
    /// tracker's part set by `Track`, the horses' part by `Horses`.
    pub checkpoint: Option<StreamCheckpoint>,
    /// The horses' part of the checkpoint `Track` restored the stream from, for `Horses`
    /// (set on a stream's first chunk after a restart only).
    pub restored_horses: Option<Vec<u8>>,
    /// The chunk's trace id, for the spans of the later stages.
    pub trace_id: String,
    /// Seconds each later stage (track, horses) spent on the chunk, observed by the sink.
    pub latency: Vec<(&'static str, f64)>,
}

impl Processed {
    /// `chunk`, made of the record `from` was decoded from.
    pub fn new(chunk: ProcessedChunk, from: &decode::Located) -> Self {
        Processed {
            chunk,
            analysis: ChunkAnalysis::default(),
            source: from.source.clone(),
            partition: from.partition,
            offset: from.offset,
            checkpoint: None,
            restored_horses: None,
            trace_id: from.trace_id.clone(),
            latency: Vec::new(),
        }
    }

    /// Runs stage `name` of this chunk inside its span, timing it for the sink's metrics.
    pub fn stage<R>(&mut self, name: &'static str, f: impl FnOnce(&mut Self) -> R) -> R {
        let span = chunk_span(name, &self.trace_id, &self.chunk.chunk_id());
        let _entered = span.enter();
        let start = Instant::now();
        let r = f(self);
        self.latency.push((name, start.elapsed().as_secs_f64()));
        r
    }
}

/// A harness for the operators' timely tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::{Input, Inspect, Probe};
    use timely::dataflow::{InputHandle, StreamVec};

    use super::Outcome;

    /// Runs `build` on 2 timely workers for `epochs` epochs, worker `w` sending
    /// `input(w, epoch)` at each (each record carries its own time), and finishing each epoch
    /// before the next; every outcome, with the worker and epoch it came out at.
    pub(crate) fn two_workers<U, B>(
        epochs: u64,
        input: fn(usize, u64) -> Vec<U>,
        build: B,
    ) -> Vec<(usize, u64, Outcome)>
    where
        U: timely::ExchangeData + Clone,
        B: for<'s> Fn(StreamVec<'s, u64, U>) -> StreamVec<'s, u64, Outcome> + Send + Sync + 'static,
    {
        let seen: Arc<Mutex<Vec<(usize, u64, Outcome)>>> = Arc::default();
        let out = seen.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            let index = worker.index();
            let out = out.clone();
            let mut handle = InputHandle::new();
            let probe = worker.dataflow::<u64, _, _>(|scope| {
                build(scope.input_from(&mut handle))
                    .inspect_core(move |event| {
                        if let Ok((stamp, data)) = event {
                            let time = *stamp.least().expect("a time");
                            let mut out = out.lock().unwrap();
                            out.extend(data.iter().map(|o| (index, time, o.clone())));
                        }
                    })
                    .probe()
                    .0
            });
            for epoch in 0..epochs {
                for record in input(index, epoch) {
                    handle.send(record);
                }
                handle.advance_to(epoch + 1);
                while probe.less_than(handle.time()) {
                    worker.step();
                }
            }
        })
        .expect("timely runs")
        .join()
        .into_iter()
        .for_each(|r| r.expect("worker ran"));
        Arc::try_unwrap(seen)
            .expect("the workers are done")
            .into_inner()
            .unwrap()
    }
}
