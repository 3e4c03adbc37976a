//! `horsestream ingest --database-url URL` (no `--input`): the `streams` table decides what
//! this process ingests. Every poll it reads the table; an enabled stream this process owns
//! runs on its own thread, a stream that was disabled (`POST …/stop`), deleted or whose
//! source changed is stopped (and restarted with the new source). Start and stop take
//! effect within one poll plus the stream's stop latency (about a second), without a
//! restart of the process.
//!
//! - **Ownership:** each process holds a lease on the streams it runs (renewed every poll,
//!   `--lease-secs`, default 15 s) and takes free ones up to `--max-streams`, so several
//!   ingest processes (a Deployment scaled by the streams waiting) split one table and never
//!   run a stream twice. A process that dies loses its streams when its leases run out; one
//!   that cannot renew stops its streams before then. Stopping releases the leases at once.
//! - **Status:** every state change is written to the stream's `status` (`connecting`,
//!   `active`, `stalled`, `error`, `ended` for a file read to its end, `stopped`) and sent as
//!   a `stream:status` event. A report never overrides a stop request (see
//!   [`Store::report_stream_status`]).
//! - **Chunks:** published to the chunks topic keyed by stream id and, once the broker has
//!   acknowledged them, recorded as `video_chunks` rows with status `ingested`; the
//!   dataflow's sink turns them `processed`.
//! - **Timeline:** a live stream's pts count from the stream's creation time, and a
//!   restarted live stream continues after the last chunk recorded for it, so chunk ids are
//!   never reused across runs. A file stream is read once; it runs again after a new start
//!   request (its chunk ids repeat, which the sink treats as a replay).
//! - **Failures:** a source that cannot be read is reported (`error`) and retried by the live
//!   loop; a file that cannot be read is `error` until started again. A database outage
//!   keeps the running streams running (the table is read again at the next poll).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use horsestream_api::camera::CameraCredentials;
use horsestream_ingest::{
    IngestConfig, IngestError, LiveConfig, SourceSpec, StopSignal, StreamStatus, TRACE_TARGET,
    ingest_file_until, ingest_source,
};
use horsestream_proto::FrameChunk;
use horsestream_sinks::kafka::TopicProducer;
use horsestream_sinks::{SinkError, Store, Stream};
use tokio::runtime::Handle;

use super::metrics::IngestMetrics;
use super::{now_us, status_event};

/// How this process takes its share of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// This process's name in `streams.ingest_owner`; unique among the ingest processes.
    pub owner: String,
    /// Most streams this process runs.
    pub max_streams: usize,
    pub lease: Duration,
}

/// Everything the stream threads share.
pub struct Shared {
    pub rt: Handle,
    pub store: Store,
    pub chunks: TopicProducer,
    pub events: TopicProducer,
    /// Configuration every stream starts from (its timeline fields are set per stream).
    pub live: LiveConfig,
    pub metrics: IngestMetrics,
}

/// What a stream thread runs: the source with its credentials (never logged) and where its
/// timeline starts.
struct Job {
    id: String,
    url: String,
    anchor_us: i64,
    first_sequence: u64,
}

struct Running {
    /// The stored source and credentials the thread was started with; a change restarts it.
    source: (String, Option<String>),
    stop: StopSignal,
    thread: JoinHandle<()>,
}

pub struct Supervisor {
    shared: Arc<Shared>,
    claims: Claims,
    /// When the leases were last renewed.
    renewed: Option<Instant>,
    running: HashMap<String, Running>,
    /// Threads told to stop, joined once they have.
    stopping: Vec<JoinHandle<()>>,
    /// File streams read to their end (or refused) with this source: not run again until the
    /// stream is started again (status `starting`) or its source changes.
    done: HashMap<String, (String, Option<String>)>,
}

impl Supervisor {
    pub fn new(shared: Arc<Shared>, claims: Claims) -> Self {
        Supervisor {
            shared,
            claims,
            renewed: None,
            running: HashMap::new(),
            stopping: Vec::new(),
            done: HashMap::new(),
        }
    }

    /// Reads the table once and starts and stops streams to match it. A table that cannot be
    /// read changes nothing (the error is returned for the caller to report).
    pub fn poll(&mut self) -> Result<(), SinkError> {
        self.reap();
        let shared = Arc::clone(&self.shared);
        let c = &self.claims;
        let claims =
            match shared
                .rt
                .block_on(shared.store.claim_streams(&c.owner, c.max_streams, c.lease))
            {
                Ok(claims) => claims,
                Err(e) => {
                    // Another process takes these streams once the leases run out: stop them
                    // first, so that no stream ever runs twice.
                    if self.renewed.is_none_or(|t| t.elapsed() >= c.lease * 2 / 3) {
                        self.stop_all();
                    }
                    return Err(e);
                }
            };
        self.renewed = Some(Instant::now());
        shared
            .metrics
            .pending_streams
            .store(claims.pending, Ordering::Relaxed);
        let streams = shared.rt.block_on(shared.store.list_streams())?;
        let mut wanted: HashMap<&str, (&Stream, Option<String>)> = HashMap::new();
        for s in &streams {
            if !s.enabled || !claims.owned.contains(&s.id) {
                continue;
            }
            let secret = if s.has_credentials {
                shared.rt.block_on(shared.store.stream_credentials(&s.id))?
            } else {
                None
            };
            wanted.insert(&s.id, (s, secret));
        }

        // Stop what is no longer wanted, or wanted with another source.
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            let keep = wanted.get(id.as_str()).is_some_and(|(s, secret)| {
                self.running[&id].source == (s.source_url.clone(), secret.clone())
            });
            if !keep {
                let r = self.running.remove(&id).expect("listed");
                tracing::info!(stream = %id, "stopping stream");
                r.stop.stop();
                self.stopping.push(r.thread);
            }
        }
        self.done.retain(|id, source| {
            wanted.get(id.as_str()).is_some_and(|(s, secret)| {
                s.status != "starting" && *source == (s.source_url.clone(), secret.clone())
            })
        });

        // Start what is wanted and not running.
        for (id, (s, secret)) in wanted {
            if self.running.contains_key(id) || self.done.contains_key(id) {
                continue;
            }
            let source = (s.source_url.clone(), secret.clone());
            let first_sequence = match shared.rt.block_on(shared.store.last_chunk_sequence(id))? {
                Some(last) => last + 1,
                None => 0,
            };
            let job = Job {
                id: id.to_owned(),
                url: with_credentials(&s.source_url, secret.as_deref()),
                anchor_us: s.created_at.timestamp_micros(),
                first_sequence,
            };
            let stop = StopSignal::new();
            let thread = {
                let shared = Arc::clone(&shared);
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("ingest-{id}"))
                    .spawn(move || run_stream(&shared, job, &stop))
                    .map_err(|e| SinkError::Config(format!("starting a stream thread: {e}")))?
            };
            tracing::info!(stream = %id, kind = %s.source_kind, first_sequence, "starting stream");
            self.running.insert(
                id.to_owned(),
                Running {
                    source,
                    stop,
                    thread,
                },
            );
        }
        self.shared
            .metrics
            .running
            .store(self.running.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Streams running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Joins finished threads; a file stream that ended stays done.
    fn reap(&mut self) {
        let finished: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| r.thread.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            let r = self.running.remove(&id).expect("listed");
            if r.thread.join().is_err() {
                tracing::error!(stream = %id, "stream thread panicked");
            }
            self.done.insert(id, r.source);
        }
        let (done, pending): (Vec<_>, Vec<_>) =
            self.stopping.drain(..).partition(|t| t.is_finished());
        self.stopping = pending;
        for t in done {
            let _ = t.join();
        }
    }

    /// Tells every stream to stop (they are joined by later polls).
    fn stop_all(&mut self) {
        if !self.running.is_empty() {
            tracing::error!(
                streams = self.running.len(),
                "stream leases not renewed: stopping the streams before another process takes them"
            );
        }
        for (_, r) in self.running.drain() {
            r.stop.stop();
            self.stopping.push(r.thread);
        }
        self.shared.metrics.running.store(0, Ordering::Relaxed);
    }

    /// Stops every stream, waits for their last chunks and statuses, and releases their
    /// leases so that another process may take them at once.
    pub fn shutdown(mut self) {
        let ids: Vec<String> = self.running.keys().cloned().collect();
        self.stop_all();
        for t in self.stopping.drain(..) {
            let _ = t.join();
        }
        let shared = &self.shared;
        if let Err(e) = shared
            .rt
            .block_on(shared.store.release_streams(&self.claims.owner, &ids))
        {
            tracing::warn!(error = %e, "stream leases not released; they run out by themselves");
        }
    }
}

/// The stored source URL with the stored credentials (the API's [`CameraCredentials`]) as
/// its user info, for schemes that carry one. The result is never logged.
fn with_credentials(url: &str, secret: Option<&str>) -> String {
    let Some(login) = secret.and_then(|s| CameraCredentials::from_secret(s).ok()) else {
        return url.to_owned();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if !matches!(scheme, "rtsp" | "rtsps" | "rtmp" | "http" | "https") || authority.contains('@') {
        return url.to_owned();
    }
    format!("{scheme}://{}{rest}", login.user_info())
}

/// Publishes a chunk, then records it; a failed record is counted, never stops the stream
/// (the chunk is on the bus and the sink will record it when it is processed).
fn publish(shared: &Shared, chunk: &FrameChunk) -> Result<(), SinkError> {
    let bytes =
        tracing::info_span!(target: TRACE_TARGET, "encode").in_scope(|| chunk.encode_to_vec());
    let end_us = chunk.stream_start_time_us + chunk.end_pts_us;
    let sent = Instant::now();
    tracing::info_span!(target: TRACE_TARGET, "publish", bytes = bytes.len()).in_scope(|| {
        shared.rt.block_on(
            shared
                .chunks
                .send_at(&chunk.stream_id, &bytes, end_us / 1000),
        )
    })?;
    shared.metrics.chunk(
        &chunk.stream_id,
        chunk.frames.len() as u64,
        bytes.len() as u64,
        end_us,
        sent.elapsed().as_secs_f64(),
    );
    if let Err(e) = shared.rt.block_on(shared.store.record_ingested(chunk)) {
        shared
            .metrics
            .unrecorded_chunks
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(chunk = %chunk.chunk_id(), error = %e, "chunk published but not recorded");
    }
    Ok(())
}

/// Writes the stream's status and sends its `stream:status` event; failures are logged.
fn report(
    shared: &Shared,
    id: &str,
    state: &str,
    reason: String,
    attempt: u64,
    gap: Option<(i64, i64)>,
) {
    shared.metrics.state(id, state);
    if let Err(e) = shared
        .rt
        .block_on(shared.store.report_stream_status(id, state))
    {
        tracing::warn!(stream = %id, state, error = %e, "stream status not stored");
    }
    let event = status_event(id, state, reason, now_us(), attempt, gap);
    if let Err(e) = shared
        .rt
        .block_on(shared.events.send(id, &event.encode_to_vec()))
    {
        tracing::warn!(stream = %id, error = %e, "stream:status event not delivered");
    }
}

fn run_stream(shared: &Shared, job: Job, stop: &StopSignal) {
    let id = job.id.as_str();
    let spec = match SourceSpec::parse(&job.url) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(stream = %id, error = %e, "stream source refused");
            report(shared, id, "error", e.to_string(), 0, None);
            return;
        }
    };
    let mut publish = |chunk: FrameChunk| publish(shared, &chunk);
    match &spec {
        SourceSpec::File(path) => {
            let cfg = IngestConfig {
                stream_start_time_us: None,
                first_sequence: 0,
                ..shared.live.ingest.clone()
            };
            report(shared, id, "active", String::new(), 1, None);
            match ingest_file_until(path, id, &cfg, stop, &mut publish) {
                Ok(stats) if stats.stopped => {
                    report(shared, id, "stopped", String::new(), 1, None);
                }
                Ok(stats) => {
                    tracing::info!(stream = %id, chunks = stats.chunks, "file stream ended");
                    report(shared, id, "ended", String::new(), 1, None);
                }
                Err(e) => {
                    tracing::warn!(stream = %id, error = %e, "file stream failed");
                    report(shared, id, "error", e.to_string(), 1, None);
                }
            }
        }
        _ => {
            let mut cfg = shared.live.clone();
            cfg.ingest.stream_start_time_us = Some(job.anchor_us);
            cfg.ingest.first_sequence = job.first_sequence;
            let mut on_status = |s: StreamStatus| {
                let (reason, attempt, gap) = super::status_details(&s.state);
                report(shared, id, s.state.name(), reason, attempt, gap);
            };
            if let Err(e) = ingest_source(&spec, id, &cfg, stop, &mut publish, &mut on_status) {
                // A configuration the live loop refused, or publishing failed for good; the
                // loop reported `error` already.
                tracing::warn!(stream = %id, error = %e, "live stream ended");
                if !matches!(e, IngestError::Publish { .. }) {
                    report(shared, id, "error", e.to_string(), 0, None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_user_info_of_camera_urls_only() {
        let login = r#"{"username":"admin","password":"p@ss:w/rd"}"#;
        assert_eq!(
            with_credentials("rtsp://cam.local:554/stream1", Some(login)),
            "rtsp://admin:p%40ss%3Aw%2Frd@cam.local:554/stream1"
        );
        // A URL with its own user info, a file and a missing secret stay as they are.
        assert_eq!(
            with_credentials("rtsp://u:p@cam.local/s", Some(login)),
            "rtsp://u:p@cam.local/s"
        );
        assert_eq!(
            with_credentials("/videos/a.mp4", Some(login)),
            "/videos/a.mp4"
        );
        assert_eq!(with_credentials("rtsp://cam/s", None), "rtsp://cam/s");
        // A secret not in the API's form is not guessed at.
        assert_eq!(
            with_credentials("rtsp://cam/s", Some("user:pw")),
            "rtsp://cam/s"
        );
    }
}
