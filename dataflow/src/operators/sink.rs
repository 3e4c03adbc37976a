//! `StoreAndPublish`: writes each outcome to the store, then publishes its live event. The
//! operator's output frontier passes an epoch only once every write of that epoch is
//! committed, which is what lets the worker commit source positions.
//!
//! The writes run on a thread of their own, one per worker, in the order the outcomes
//! arrive: while the store commits one chunk, the worker analyses the next. Before, the worker
//! waited for each commit with a core idle when one stream (all of it on one worker) was in:
//! a 120 s video took the dataflow 29–33 s, and 26 s with the sink's own thread.

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use horsestream_proto::{
    AlertRaised, DetectionUpdate, EVENT_SCHEMA_VERSION, Event, EventKind, FrameBoxes, HorseUpdate,
    MetricsUpdate, StreamStatus, TrackedBox,
};
use horsestream_sinks::{
    ChunkErrorRecord, EventPublisher, GaitRow, Horse, HorseObservation, HorseTotalsRow, NewAlert,
    SinkError, Store,
};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::CapabilitySet;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Timestamp;
use tracing::{error, warn};

use super::{Degraded, Outcome, Processed, chunk_span};
use crate::Metrics;
use crate::alerts::AlertFired;
use crate::totals::TotalsUpdate;

/// The sink's logic: a store, an event publisher and a small runtime to drive them. It runs
/// on the sink's own thread ([`StoreAndPublish`]), so it owns its runtime and store.
#[derive(Debug)]
pub struct SinkWriter {
    runtime: tokio::runtime::Runtime,
    store: Store,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    /// Streams of this worker whose last chunk was degraded: their next processed chunk
    /// announces that analysis resumed.
    degraded: RefCell<BTreeSet<String>>,
    /// Row ids of the horses this sink stored, by stream and number, for their totals.
    horse_ids: RefCell<BTreeMap<(String, u32), i64>>,
}

/// Horses whose ids the sink remembers; past that it forgets them all and looks up again.
const MAX_HORSE_IDS: usize = 65_536;

const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl SinkWriter {
    /// `runtime` drives `store`'s connections (a store's connections belong to the runtime
    /// that opened them), and both move to the sink's thread: the worker's stages that read
    /// the store keep a runtime and store of their own.
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
            degraded: RefCell::default(),
            horse_ids: RefCell::default(),
        }
    }

    /// Runs `op` until it succeeds, backing off while the failure is retriable, so the
    /// dataflow's progress is held (and nothing acknowledged) while a server is down.
    fn with_retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, SinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SinkError>>,
    {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.runtime.block_on(op()) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() => {
                    self.metrics.sink_retry(what);
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
            Outcome::Processed(p) => {
                let span = chunk_span("sink", &p.trace_id, &p.chunk.chunk_id());
                let _entered = span.enter();
                let start = Instant::now();
                self.write_processed(p);
                for (stage, secs) in &p.latency {
                    self.metrics.operator_latency(stage, *secs);
                }
                self.metrics
                    .operator_latency("sink", start.elapsed().as_secs_f64());
            }
            Outcome::Failed(e) => self.write_failed(e),
            Outcome::Totals(t) => self.write_totals(t),
            Outcome::Alerts(a) => self.write_alerts(a),
            Outcome::Degraded(d) => {
                let span = chunk_span("sink", &d.trace_id, &d.chunk.chunk_id());
                let _entered = span.enter();
                self.write_degraded(d);
            }
        }
    }

    /// Records a chunk that was not analysed (`video_chunks.status = 'degraded'`, kept for a
    /// replay) and, when its stream was not degraded yet, a `stream:status` event `degraded`.
    fn write_degraded(&self, d: &Degraded) {
        let chunk = &d.chunk;
        let m = &self.metrics;
        m.chunks_degraded.fetch_add(1, Relaxed);
        m.dropped("degraded");
        match self.with_retry("degraded chunk", || self.store.record_degraded(chunk)) {
            Ok(()) => m.sink_rows("video_chunks", 1),
            Err(e) => {
                error!(chunk = %chunk.chunk_id(), error = %e, "degraded chunk not recorded")
            }
        }
        warn!(chunk = %chunk.chunk_id(), reason = %d.reason, "chunk degraded: not analysed");
        if self.degraded.borrow_mut().insert(chunk.stream_id.clone()) {
            self.publish_status(&chunk.stream_id, "degraded", &d.reason);
        }
    }

    /// A `stream:status` event from the dataflow: `degraded` (chunks are not analysed) or
    /// `recovered` (analysis resumed).
    fn publish_status(&self, stream_id: &str, state: &str, reason: &str) {
        let event = Event {
            version: EVENT_SCHEMA_VERSION,
            emitted_at_us: now_us(),
            kind: EventKind::StreamStatus(StreamStatus {
                stream_id: stream_id.to_owned(),
                state: state.to_owned(),
                reason: reason.to_owned(),
                at_us: now_us(),
                attempt: 0,
                gap: None,
            }),
        };
        match self.with_retry("event", || self.events.publish(stream_id, &event)) {
            Ok(()) => {
                self.metrics.events_published.fetch_add(1, Relaxed);
            }
            Err(e) => error!(stream = stream_id, state, error = %e, "stream:status event lost"),
        }
    }

    /// Stores a chunk and everything derived from it, then publishes the live events. Every
    /// write is keyed, so the whole unit is retried (or replayed) without duplicates.
    async fn store(&self, p: &Processed) -> Result<Stored, SinkError> {
        let (chunk, a) = (&p.chunk, &p.analysis);
        // The stream's state after the chunk goes into the chunk's own transaction.
        self.store
            .write_chunk_checkpointed(chunk, p.checkpoint.as_ref())
            .await?;
        let mut horses = BTreeMap::new();
        for h in &a.horses {
            let horse = self
                .store
                .observe_horse(&HorseObservation {
                    stream_id: chunk.stream_id.clone(),
                    number: h.number,
                    first_seen: time(h.first_us),
                    last_seen: time(h.last_us),
                    track_ids: h.track_ids.iter().map(|&t| t as i64).collect(),
                })
                .await?;
            if let Some(f) = h
                .feature
                .as_ref()
                .filter(|f| f.len() == self.store.embedding_dim())
            {
                self.store
                    .add_horse_feature(horse.id, time(h.last_us), f)
                    .await?;
            }
            horses.insert(h.number, horse);
        }
        let gait: Vec<GaitRow> = a
            .gait
            .iter()
            .map(|g| GaitRow {
                time: time(g.end_us),
                stream_id: chunk.stream_id.clone(),
                track_id: g.track_id as i64,
                horse_id: horses.get(&g.number).map(|h| h.id),
                speed: g.metrics.speed,
                acceleration: g.metrics.acceleration,
                unit: g.metrics.unit.as_str().into(),
                stride_hz: g.metrics.stride_hz,
                gait_class: g.metrics.class.as_str().into(),
                distance: g.metrics.new_distance,
                pose: g.metrics.pose.as_ref().map(Into::into),
            })
            .collect();
        self.store.write_gait(&gait).await?;
        let mut ids = self.horse_ids.borrow_mut();
        if ids.len() >= MAX_HORSE_IDS {
            ids.clear();
        }
        for (&number, h) in &horses {
            ids.insert((chunk.stream_id.clone(), number), h.id);
        }
        Ok(Stored { horses, gait })
    }

    fn write_processed(&self, p: &Processed) {
        let chunk = &p.chunk;
        let stored = match self.with_retry("chunk", || self.store(p)) {
            Ok(stored) => stored,
            Err(e) => {
                error!(chunk = %chunk.chunk_id(), error = %e, "chunk could not be stored");
                self.write_failed(&ChunkErrorRecord {
                    source: p.source.clone(),
                    partition: p.partition,
                    offset: p.offset,
                    stage: "store".into(),
                    reason: format!("chunk {}: {e}", chunk.chunk_id()),
                });
                return;
            }
        };
        let summary = chunk.summary();
        let m = &self.metrics;
        m.sink_rows("video_chunks", 1);
        m.sink_rows("detections", chunk.detection_count() as u64);
        m.sink_rows("horses", stored.horses.len() as u64);
        m.sink_rows(
            "horse_features",
            p.analysis
                .horses
                .iter()
                .filter(|h| {
                    h.feature
                        .as_ref()
                        .is_some_and(|f| f.len() == self.store.embedding_dim())
                })
                .count() as u64,
        );
        m.sink_rows("gait_metrics", stored.gait.len() as u64);
        m.frames_out(
            &chunk.stream_id,
            chunk.frames.len() as u64,
            chunk.stream_start_time_us + chunk.end_pts_us,
        );
        if self.degraded.borrow_mut().remove(&chunk.stream_id) {
            self.publish_status(&chunk.stream_id, "recovered", "analysis resumed");
        }
        m.chunks_processed.fetch_add(1, Relaxed);
        m.frames.fetch_add(u64::from(summary.frames), Relaxed);
        m.detections
            .fetch_add(u64::from(summary.detections), Relaxed);
        m.max_detections_per_frame
            .fetch_max(u64::from(summary.max_horses_per_frame), Relaxed);
        for kind in events(p, summary, &stored) {
            let event = Event {
                version: EVENT_SCHEMA_VERSION,
                emitted_at_us: now_us(),
                kind,
            };
            match self.with_retry("event", || self.events.publish(&chunk.stream_id, &event)) {
                Ok(()) => {
                    m.events_published.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    error!(chunk = %chunk.chunk_id(), event = event.name(), error = %e, "live event lost")
                }
            }
        }
    }

    /// Writes horses' totals as the differential collection holds them after an epoch, in
    /// one transaction. A horse's row was stored with the chunk that made the change, before
    /// (the sink writes in arrival order); a horse not in [`Self::horse_ids`] (a restored
    /// stream's seed) is looked up.
    fn write_totals(&self, totals: &[TotalsUpdate]) {
        let mut rows = Vec::with_capacity(totals.len());
        for t in totals {
            // Not a chunk dropped: the horse's next change writes its totals whole.
            let Some(id) = self.horse_id(&t.stream_id, t.number) else {
                error!(stream = %t.stream_id, horse = t.number, "totals of an unknown horse not stored");
                continue;
            };
            let row = HorseTotalsRow {
                unit: t.unit.clone(),
                windows: t.totals.windows,
                distance: t.totals.distance(),
                seconds: t.totals.seconds(),
                through: time(t.totals.through_us.unwrap_or_default()),
            };
            rows.push((id, row));
        }
        match self.with_retry("totals", || self.store.put_totals(&rows)) {
            Ok(()) => self.metrics.sink_rows("horse_totals", rows.len() as u64),
            Err(e) => error!(horses = rows.len(), error = %e, "totals not stored"),
        }
    }

    /// Stores alerts raised by an epoch (the store keeps one per `dedup_key`: one raised again
    /// after a restart is not stored twice), then publishes each. The horse's row was stored
    /// with the chunk that raised it, before.
    fn write_alerts(&self, alerts: &[AlertFired]) {
        for a in alerts {
            let alert = NewAlert {
                time: time(a.at_us),
                stream_id: a.stream_id.clone(),
                horse_id: self.horse_id(&a.stream_id, a.number),
                kind: a.kind.into(),
                severity: a.severity,
                message: a.message.clone(),
                dedup_key: Some(a.dedup_key.clone()),
            };
            let stored = match self.with_retry("alert", || self.store.insert_alert(&alert)) {
                Ok(stored) => stored,
                Err(e) => {
                    error!(alert = %a.dedup_key, error = %e, "alert not stored");
                    continue;
                }
            };
            self.metrics.sink_rows("alerts", 1);
            let event = Event {
                version: EVENT_SCHEMA_VERSION,
                emitted_at_us: now_us(),
                kind: EventKind::AlertRaised(AlertRaised {
                    stream_id: a.stream_id.clone(),
                    alert_id: stored.id,
                    horse_id: stored.horse_id,
                    kind: stored.kind.clone(),
                    severity: stored.severity.as_str().into(),
                    message: stored.message.clone(),
                    at_us: stored.time.timestamp_micros(),
                }),
            };
            match self.with_retry("event", || self.events.publish(&a.stream_id, &event)) {
                Ok(()) => {
                    self.metrics.events_published.fetch_add(1, Relaxed);
                }
                Err(e) => error!(alert = %a.dedup_key, error = %e, "live event lost"),
            }
        }
    }

    /// The row id of horse `number` of `stream_id`, remembered or read.
    fn horse_id(&self, stream_id: &str, number: u32) -> Option<i64> {
        let key = (stream_id.to_owned(), number);
        if let Some(&id) = self.horse_ids.borrow().get(&key) {
            return Some(id);
        }
        match self.with_retry("horses", || self.store.horse_id(stream_id, number)) {
            Ok(id) => {
                if let Some(id) = id {
                    self.horse_ids.borrow_mut().insert(key, id);
                }
                id
            }
            Err(e) => {
                error!(stream = stream_id, error = %e, "horse could not be read");
                None
            }
        }
    }

    fn write_failed(&self, e: &ChunkErrorRecord) {
        self.metrics.chunk_errors.fetch_add(1, Relaxed);
        self.metrics.dropped(&e.stage);
        warn!(source = %e.source, partition = e.partition, offset = e.offset,
              stage = %e.stage, reason = %e.reason, "input refused");
        match self.with_retry("chunk error", || self.store.record_error(e)) {
            Ok(()) => self.metrics.sink_rows("chunk_errors", 1),
            Err(err) => error!(error = %err, "chunk error could not be recorded"),
        }
    }
}

/// What [`SinkWriter::store`] committed, for the events.
#[derive(Debug)]
struct Stored {
    horses: BTreeMap<u32, Horse>,
    gait: Vec<GaitRow>,
}

/// The live events of a stored chunk, in the order a client wants them: the chunk, its boxes,
/// the horses seen, and their gait windows (alerts follow from their own collection).
fn events(
    p: &Processed,
    summary: horsestream_proto::ChunkProcessed,
    stored: &Stored,
) -> Vec<EventKind> {
    let (chunk, a) = (&p.chunk, &p.analysis);
    let stream_id = &chunk.stream_id;
    let mut out = vec![EventKind::ChunkProcessed(summary)];
    out.push(EventKind::DetectionUpdate(DetectionUpdate {
        stream_id: stream_id.clone(),
        chunk_id: chunk.chunk_id(),
        sequence: chunk.sequence,
        frames: chunk
            .frames
            .iter()
            .map(|f| FrameBoxes {
                index: f.index,
                pts_us: f.pts_us,
                capture_time_us: f.capture_time_us,
                boxes: f
                    .detections
                    .iter()
                    .map(|d| TrackedBox {
                        bbox: d.bbox,
                        confidence: d.confidence,
                        track_id: d.track_id,
                        horse: d.track_id.and_then(|t| a.horse_of_track.get(&t).copied()),
                        keypoints: d.keypoints.clone(),
                        interpolated: d.interpolated,
                    })
                    .collect(),
            })
            .collect(),
    }));
    for (&number, h) in &stored.horses {
        out.push(EventKind::HorseUpdate(HorseUpdate {
            stream_id: stream_id.clone(),
            horse_id: h.id,
            number,
            display_name: h.display_name.clone(),
            first_seen_us: h.first_seen.timestamp_micros(),
            last_seen_us: h.last_seen.timestamp_micros(),
            track_ids: h.track_ids.iter().map(|&t| t as u64).collect(),
        }));
    }
    for (g, row) in a.gait.iter().zip(&stored.gait) {
        out.push(EventKind::MetricsUpdate(MetricsUpdate {
            stream_id: stream_id.clone(),
            horse_id: row.horse_id.unwrap_or(0),
            number: g.number,
            track_id: g.track_id,
            start_us: g.start_us,
            end_us: g.end_us,
            speed: row.speed,
            acceleration: row.acceleration,
            unit: row.unit.clone(),
            stride_hz: row.stride_hz,
            gait_class: row.gait_class.clone(),
            distance: row.distance,
        }));
    }
    out
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub trait StoreAndPublish<'scope, T: Timestamp> {
    /// Writes every outcome with `writer`, on a thread of its own, in arrival order; the
    /// output (no data) keeps each epoch open until its writes are done.
    fn store_and_publish(self, writer: SinkWriter) -> StreamVec<'scope, T, ()>;
}

impl<'scope, T: Timestamp> StoreAndPublish<'scope, T> for StreamVec<'scope, T, Outcome> {
    fn store_and_publish(self, writer: SinkWriter) -> StreamVec<'scope, T, ()> {
        let scope = self.scope();
        self.unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Pipeline,
            "StoreAndPublish",
            move |_cap, info| {
                let activator = scope.worker().sync_activator_for(info.address.to_vec());
                let thread = WriterThread::start(writer, scope.index(), move || {
                    // The dataflow is gone once the operator is: nothing to wake.
                    let _ = activator.activate();
                });
                // Capabilities of batches with writes outstanding, each with the number of
                // outcomes sent once its last one was.
                let mut open: VecDeque<(CapabilitySet<T>, u64)> = VecDeque::new();
                let mut sent = 0u64;
                move |input, _output| {
                    input.for_each(|cap, data| {
                        for outcome in data.drain(..) {
                            thread.send(outcome);
                            sent += 1;
                        }
                        open.push_back((cap.retain_stamp(0), sent));
                    });
                    let done = thread.done();
                    while open.front().is_some_and(|&(_, upto)| upto <= done) {
                        open.pop_front();
                    }
                    if !open.is_empty() {
                        thread.check_alive();
                    }
                }
            },
        )
    }
}

/// The sink's thread: takes outcomes in order, writes each, counts the ones done and wakes
/// the operator. Dropping it lets the thread finish what it was sent and joins it.
struct WriterThread {
    outcomes: Option<mpsc::Sender<Outcome>>,
    done: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl WriterThread {
    fn start(writer: SinkWriter, worker: usize, wake: impl Fn() + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Outcome>();
        let done = Arc::new(AtomicU64::new(0));
        let counted = done.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sink-{worker}"))
            .spawn(move || {
                for outcome in rx {
                    writer.write(&outcome);
                    counted.fetch_add(1, Release);
                    wake();
                }
            })
            .expect("spawning the sink thread");
        WriterThread {
            outcomes: Some(tx),
            done,
            handle: Some(handle),
        }
    }

    fn send(&self, outcome: Outcome) {
        let sent = self
            .outcomes
            .as_ref()
            .is_some_and(|tx| tx.send(outcome).is_ok());
        if !sent {
            panic!("the sink thread stopped: outcomes can no longer be stored");
        }
    }

    /// Outcomes written so far.
    fn done(&self) -> u64 {
        self.done.load(Acquire)
    }

    /// Panics when the thread ended with writes outstanding (it panicked): the epochs it held
    /// would never complete.
    fn check_alive(&self) {
        if self.handle.as_ref().is_none_or(JoinHandle::is_finished) {
            panic!("the sink thread stopped: outcomes can no longer be stored");
        }
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        drop(self.outcomes.take());
        if let Some(handle) = self.handle.take() {
            // A panic there was reported by the panic hook already.
            let _ = handle.join();
        }
    }
}
