//! Builds the dataflow on every worker and drives it: poll the source, feed one epoch,
//! step, and commit source positions for each epoch once the sinks are done with it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::{Concat, Exchange, Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use tracing::info;

use crate::horses::StreamHorses;
use crate::operators::alerts::Alerts;
use crate::operators::decode::DecodeChunks;
use crate::operators::detect::{ChunkAnalyzer, Detect};
use crate::operators::horses::Horses;
use crate::operators::sink::{SinkWriter, StoreAndPublish};
use crate::operators::totals::GaitTotals;
use crate::operators::track::{StreamTracks, Track};
use crate::shard::route;
use crate::source::{ChunkSource, Poll, Positions, Record};
use crate::{DataflowError, Metrics};

#[derive(Debug, Clone)]
pub struct DataflowConfig {
    /// Worker threads in this process.
    pub workers: usize,
    /// Frames per inference call.
    pub batch_size: usize,
    /// Records a worker takes from its source per epoch.
    pub records_per_epoch: usize,
    /// Epochs a worker may have in flight before it waits for the sinks.
    pub max_epochs_in_flight: u64,
    /// How long a poll waits when the source is empty.
    pub poll_timeout: Duration,
    /// Several processes forming one timely cluster; `None` runs in this process only.
    pub cluster: Option<Cluster>,
    /// Keep only chunks whose capture time meets `[from, to]` (µs since the epoch): replays.
    pub window_us: Option<(i64, i64)>,
}

/// This process's place in a cluster of timely processes, each running `workers` threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Index of this process, from 0.
    pub process: usize,
    /// `host:port` of every process, in process order (timely's hostfile).
    pub addresses: Vec<String>,
}

impl DataflowConfig {
    /// The timely configuration this config describes.
    pub fn timely(&self) -> timely::Config {
        let threads = self.workers.max(1);
        match &self.cluster {
            Some(c) if c.addresses.len() > 1 => timely::Config {
                communication: timely::CommunicationConfig::Cluster {
                    threads,
                    process: c.process,
                    addresses: c.addresses.clone(),
                    report: false,
                    zerocopy: false,
                },
                worker: timely::WorkerConfig::default(),
            },
            _ => timely::Config::process(threads),
        }
    }
}

impl Default for DataflowConfig {
    fn default() -> Self {
        DataflowConfig {
            workers: 2,
            batch_size: 8,
            records_per_epoch: 2,
            max_epochs_in_flight: 2,
            poll_timeout: Duration::from_millis(50),
            cluster: None,
            window_us: None,
        }
    }
}

/// What each worker needs, made on that worker's thread.
#[derive(Debug)]
pub struct WorkerParts<S> {
    pub source: S,
    pub analyzer: ChunkAnalyzer,
    pub tracks: StreamTracks,
    pub horses: StreamHorses,
    pub sink: SinkWriter,
}

/// Runs the dataflow on `cfg.workers` threads until every source is exhausted.
/// `make_parts(index, peers)` builds one worker's source, analyzer and sink.
pub fn run<S, F>(
    cfg: &DataflowConfig,
    metrics: Arc<Metrics>,
    make_parts: F,
) -> Result<(), DataflowError>
where
    S: ChunkSource + 'static,
    F: Fn(usize, usize) -> Result<WorkerParts<S>, DataflowError> + Send + Sync + 'static,
{
    let cfg = cfg.clone();
    let guards = timely::execute(cfg.timely(), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        // A worker that cannot build its parts cannot join the dataflow; timely then stops
        // every worker, and the error is reported from the join below.
        let parts =
            make_parts(index, peers).unwrap_or_else(|e| panic!("worker {index} setup failed: {e}"));
        drive(worker, &cfg, metrics.clone(), parts)
    })
    .map_err(DataflowError::Timely)?;
    for result in guards.join() {
        result.map_err(DataflowError::Timely)??;
    }
    Ok(())
}

fn drive<S: ChunkSource>(
    worker: &mut timely::worker::Worker,
    cfg: &DataflowConfig,
    metrics: Arc<Metrics>,
    parts: WorkerParts<S>,
) -> Result<(), DataflowError> {
    let WorkerParts {
        mut source,
        analyzer,
        tracks,
        horses,
        sink,
    } = parts;
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    worker.dataflow::<u64, _, _>(|scope| {
        let (outcomes, sums, conditions) = scope
            .input_from(&mut input)
            .container::<Vec<Record>>()
            .exchange(|r: &Record| route(&r.key))
            .decode_chunks(cfg.window_us, metrics.clone())
            .detect(analyzer, metrics.clone())
            .track(tracks)
            .horses(horses, probe.clone());
        // The totals' changes and the alerts of an epoch reach the sink after the epoch's
        // chunks (they are computed once the epoch is complete), so the horses they name are
        // stored already.
        outcomes
            .concat(sums.gait_totals())
            .concat(conditions.alerts())
            .store_and_publish(sink)
            .probe_with(&probe);
    });

    let mut epoch: u64 = 0;
    let mut read = Positions::new();
    // Positions reached by the end of each epoch still in flight.
    let mut pending: VecDeque<(u64, Positions)> = VecDeque::new();
    let mut exhausted = false;
    let mut lag_read: Option<Instant> = None;
    while !exhausted {
        if lag_read.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
            lag_read = Some(Instant::now());
            for (topic, partition, lag) in source.lag() {
                metrics.consumer_lag(&topic, partition, lag);
            }
        }
        match source.poll(cfg.records_per_epoch, cfg.poll_timeout)? {
            Poll::Records(records) => {
                metrics
                    .records_in
                    .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
                for r in records {
                    let pos = read.entry((r.source.clone(), r.partition)).or_insert(0);
                    *pos = (*pos).max(r.offset + 1);
                    input.send(r);
                }
            }
            Poll::Idle => {}
            Poll::Exhausted => exhausted = true,
        }
        pending.push_back((epoch, read.clone()));
        epoch += 1;
        input.advance_to(epoch);
        // Let at most `max_epochs_in_flight` epochs be unfinished.
        while probe.less_than(&epoch.saturating_sub(cfg.max_epochs_in_flight)) {
            worker.step_or_park(Some(PARK));
        }
        worker.step();
        commit_done(&probe, &mut pending, &mut source)?;
    }
    drop(input);
    while !probe.done() {
        worker.step_or_park(Some(PARK));
    }
    commit_done(&probe, &mut pending, &mut source)?;
    info!(
        worker = worker.index(),
        epochs = epoch,
        "source exhausted, dataflow drained"
    );
    Ok(())
}

/// Longest a worker waiting on other workers sleeps between checks. Waiting by `step` alone
/// spun the thread: in the demo on 2 cores, a third of all CPU time went to workers polling
/// empty channels while the other worker ran inference. Parked, a worker wakes as soon as a
/// message or progress update reaches it; the bound only covers a missed wake-up.
const PARK: Duration = Duration::from_millis(20);

/// How often a worker reads its source's lag for the metrics.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Commits the positions of the newest epoch that the sinks have finished.
fn commit_done<S: ChunkSource>(
    probe: &ProbeHandle<u64>,
    pending: &mut VecDeque<(u64, Positions)>,
    source: &mut S,
) -> Result<(), DataflowError> {
    let mut done = None;
    while let Some((e, _)) = pending.front() {
        if probe.less_equal(e) && !probe.done() {
            break;
        }
        done = pending.pop_front().map(|(_, p)| p);
    }
    match done {
        Some(positions) if !positions.is_empty() => source.commit(&positions),
        _ => Ok(()),
    }
}
