//! The repository: TimescaleDB in production, SQLite embedded for the demo. Both keep the
//! same rows under the same keys, so a retried or replayed chunk never duplicates a row, and
//! both answer the same methods (one test suite, `tests/repository.rs`, runs against each).

mod checkpoint;
mod postgres;
mod query;
mod records;
mod sqlite;
mod totals;
mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use horsestream_proto::{FrameChunk, ProcessedChunk};

use crate::SinkError;

pub use checkpoint::{CHECKPOINTS_KEPT, StreamCheckpoint};
pub use postgres::PgStore;
pub use query::{DetectionKey, DetectionQuery, ModelRow, StoredDetection};
pub use records::{
    Alert, AlertQuery, AlertRules, Calibration, EMBEDDING_DIM, GALLERY_LIMIT, GaitJoint, GaitPose,
    GaitRow, Horse, HorseMatch, HorseObservation, HorseSighting, MAX_EMBEDDING_DIM, NewAlert,
    NewStream, NewUser, RetentionReport, Role, Severity, Stream, StreamClaims, StreamPatch, User,
    Zone,
};
pub use sqlite::SqliteStore;
pub use totals::HorseTotalsRow;
pub use validate::{
    DetectionProblem, MAX_COORDINATE, cosine_distance, validate_chunk, validate_embedding,
};

/// Counts kept by a store across its clones (both backends share the shape).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    rejected_chunks: AtomicU64,
}

/// Validates a chunk before any write; a bad one is counted and refused as a whole.
pub(crate) fn check_chunk(chunk: &ProcessedChunk, counters: &Counters) -> Result<(), SinkError> {
    validate_chunk(chunk).map_err(|problem| {
        counters.rejected_chunks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(chunk = %chunk.chunk_id(), %problem, "chunk rejected, nothing written");
        SinkError::InvalidChunk {
            chunk_id: chunk.chunk_id(),
            problem,
        }
    })
}

/// A query text assembled from this crate's own constants (column lists, table names), never
/// from input: values always travel as bind parameters.
macro_rules! sql {
    ($($t:tt)*) => {
        sqlx::AssertSqlSafe(format!($($t)*))
    };
}
use sql;

/// Calls the same method on whichever backend the store is.
macro_rules! dispatch {
    ($self:ident . $m:ident ( $($a:expr),* )) => {
        match $self {
            Store::Postgres(s) => s.$m($($a),*).await,
            Store::Sqlite(s) => s.$m($($a),*).await,
        }
    };
}
use dispatch;

/// A stored time in µs since the epoch (SQLite's columns, event times) as a timestamp.
fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn not_found(what: &'static str, id: impl ToString) -> SinkError {
    SinkError::NotFound {
        what,
        id: id.to_string(),
    }
}

/// A chunk or message that could not be processed, kept where an operator can see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkErrorRecord {
    /// Where the input came from: the topic, or `memory` for the in-process bus.
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    /// The stage that refused it: `decode`, `inference`, …
    pub stage: String,
    pub reason: String,
}

/// Counts over everything stored, for summaries and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub chunks: i64,
    pub frames: i64,
    pub detections: i64,
    pub frames_with_detections: i64,
    pub max_detections_per_frame: i64,
    /// Distinct (stream, track) pairs among stored detections.
    pub tracks: i64,
    pub chunk_errors: i64,
}

/// Detections stored for one frame of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRow {
    pub chunk_id: String,
    pub frame_index: i32,
    /// Known when the frame has at least one detection.
    pub pts_us: Option<i64>,
    pub boxes: Vec<serde_json::Value>,
    /// The track of each box, same order, when the tracker assigned one.
    pub track_ids: Vec<Option<i64>>,
}

/// A connection to whichever store the configuration names.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://PATH` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::connect(url).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url).await?))
        } else {
            Err(SinkError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Writes a chunk's detections and its `video_chunks` row in one transaction.
    /// Returns once the transaction is committed. A chunk with a detection no model should
    /// produce (NaN/inf or absurd coordinates, negative size) is refused whole with the
    /// non-retriable [`SinkError::InvalidChunk`] and counted in [`Store::rejected_chunks`].
    /// A chunk of a stream that is not registered in `streams` is refused with the
    /// non-retriable [`SinkError::NotFound`] (what: `stream`): results are never stored for a
    /// stream nobody created.
    pub async fn write_chunk(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        match self {
            Store::Postgres(s) => s.write_chunk(chunk).await,
            Store::Sqlite(s) => s.write_chunk(chunk).await,
        }
    }

    /// Records an input that could not be processed; recording the same one twice keeps one row.
    pub async fn record_error(&self, error: &ChunkErrorRecord) -> Result<(), SinkError> {
        match self {
            Store::Postgres(s) => s.record_error(error).await,
            Store::Sqlite(s) => s.record_error(error).await,
        }
    }

    pub async fn stats(&self) -> Result<StoreStats, SinkError> {
        match self {
            Store::Postgres(s) => s.stats().await,
            Store::Sqlite(s) => s.stats().await,
        }
    }

    /// Every frame of a stream with its stored boxes, in chunk and frame order
    /// (frames without a detection appear with no boxes).
    pub async fn frames(&self, stream_id: &str) -> Result<Vec<FrameRow>, SinkError> {
        match self {
            Store::Postgres(s) => s.frames(stream_id).await,
            Store::Sqlite(s) => s.frames(stream_id).await,
        }
    }

    pub async fn chunk_errors(&self) -> Result<Vec<ChunkErrorRecord>, SinkError> {
        match self {
            Store::Postgres(s) => s.chunk_errors().await,
            Store::Sqlite(s) => s.chunk_errors().await,
        }
    }

    /// A cheap round trip that fails when the store cannot take writes.
    pub async fn health(&self) -> Result<(), SinkError> {
        match self {
            Store::Postgres(s) => s.health().await,
            Store::Sqlite(s) => s.health().await,
        }
    }
}

impl Store {
    /// Chunks refused by validation since this store was connected.
    pub fn rejected_chunks(&self) -> u64 {
        let counters = match self {
            Store::Postgres(s) => s.counters(),
            Store::Sqlite(s) => s.counters(),
        };
        counters.rejected_chunks.load(Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- streams

    /// Registers a stream; an id already taken is a [`SinkError::Conflict`].
    pub async fn create_stream(&self, new: &NewStream) -> Result<Stream, SinkError> {
        validate::validate_geometry(new.calibration.as_ref(), &new.zones)?;
        dispatch!(self.create_stream(new))
    }

    /// A stream by id; an unknown id is [`SinkError::NotFound`].
    pub async fn get_stream(&self, id: &str) -> Result<Stream, SinkError> {
        dispatch!(self.get_stream(id))
    }

    /// Every stream, by id.
    pub async fn list_streams(&self) -> Result<Vec<Stream>, SinkError> {
        dispatch!(self.list_streams())
    }

    /// Applies a partial update and returns the stream as stored.
    pub async fn update_stream(&self, id: &str, patch: &StreamPatch) -> Result<Stream, SinkError> {
        if let Some(zones) = &patch.zones {
            validate::validate_geometry(None, zones)?;
        }
        if let Some(Some(c)) = &patch.calibration {
            validate::validate_geometry(Some(c), &[])?;
        }
        if let Some(rules) = &patch.alert_rules {
            rules.validate().map_err(|reason| SinkError::Invalid {
                what: "alert rules",
                reason,
            })?;
        }
        dispatch!(self.update_stream(id, patch))
    }

    /// Deletes a stream with its horses, gallery, alerts, gait metrics and model choices.
    /// Its detections and chunks stay (history) until retention removes them.
    pub async fn delete_stream(&self, id: &str) -> Result<(), SinkError> {
        dispatch!(self.delete_stream(id))
    }

    /// Ingest's report of a stream's state (`connecting`, `active`, `stalled`, `error`,
    /// `ended`, `stopped`). Written only while the stream is enabled, so a report racing a
    /// stop request never marks a stopped stream running; `stopped` is always written.
    /// True when the row changed.
    pub async fn report_stream_status(&self, id: &str, status: &str) -> Result<bool, SinkError> {
        dispatch!(self.report_stream_status(id, status))
    }

    /// Ingest process `owner`'s turn at the streams table: its leases on enabled streams are
    /// renewed for `lease`, those on disabled streams and on files read to their end (status
    /// `ended`) released, and free streams (no owner, or a lease that ran out because its
    /// process died) are taken until it holds `max`.
    /// Returns the enabled streams it holds and how many enabled streams nobody holds a live
    /// lease on (waiting for capacity). Concurrent callers never take the same stream.
    pub async fn claim_streams(
        &self,
        owner: &str,
        max: usize,
        lease: Duration,
    ) -> Result<StreamClaims, SinkError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        dispatch!(self.claim_streams(owner, max, lease))
    }

    /// Gives up `owner`'s leases on `ids` (a stream it stopped, or all at shutdown), so
    /// another process may take them at once.
    pub async fn release_streams(&self, owner: &str, ids: &[String]) -> Result<(), SinkError> {
        dispatch!(self.release_streams(owner, ids))
    }

    /// The dataflow's record of a chunk it could not analyse because a model was unavailable:
    /// its `video_chunks` row turns `degraded` (nothing for an unregistered stream; a chunk
    /// already `processed` keeps its status). A later replay of the chunk stores its analysis
    /// and turns the row `processed`.
    pub async fn record_degraded(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        dispatch!(self.record_degraded(chunk))
    }

    /// Ingest's record of a chunk it published: a `video_chunks` row with status `ingested`
    /// (nothing for an unregistered stream). The sink's commit turns it `processed`; a chunk
    /// processed first keeps its status.
    pub async fn record_ingested(&self, chunk: &FrameChunk) -> Result<(), SinkError> {
        dispatch!(self.record_ingested(chunk))
    }

    /// The highest chunk sequence recorded for a stream (ingested or processed), if any: a
    /// restarted live stream continues after it.
    pub async fn last_chunk_sequence(&self, stream_id: &str) -> Result<Option<u64>, SinkError> {
        dispatch!(self.last_chunk_sequence(stream_id))
    }

    /// `(sequence, status)` of every `video_chunks` row of a stream, by sequence.
    pub async fn chunk_statuses(&self, stream_id: &str) -> Result<Vec<(u64, String)>, SinkError> {
        dispatch!(self.chunk_statuses(stream_id))
    }

    /// The stream's source credentials, for the ingest process only: never part of [`Stream`].
    pub async fn stream_credentials(&self, id: &str) -> Result<Option<String>, SinkError> {
        dispatch!(self.stream_credentials(id))
    }

    // ---------------------------------------------------------------- gait

    /// Writes gait windows in one transaction, keyed by `(stream_id, track_id, time)`: a
    /// replayed window overwrites itself. An unknown stream refuses the whole batch.
    pub async fn write_gait(&self, rows: &[GaitRow]) -> Result<(), SinkError> {
        for r in rows {
            validate::validate_gait(r)?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        // One row per key (the last wins), so an upsert never meets its own key twice.
        let mut by_key = std::collections::HashMap::new();
        for r in rows {
            by_key.insert((r.stream_id.as_str(), r.track_id, r.time), r);
        }
        let mut rows: Vec<&GaitRow> = by_key.into_values().collect();
        rows.sort_by(|a, b| {
            (&a.stream_id, a.track_id, a.time).cmp(&(&b.stream_id, b.track_id, b.time))
        });
        dispatch!(self.write_gait(&rows))
    }

    /// A stream's gait windows by track and time.
    pub async fn gait(&self, stream_id: &str) -> Result<Vec<GaitRow>, SinkError> {
        dispatch!(self.gait(stream_id))
    }

    // ---------------------------------------------------------------- horses

    /// Records a sighting: a new horse (named `Horse_N` in its stream) when `horse_id` is
    /// `None`, else widens the known horse's first/last seen and remembers the track id.
    pub async fn upsert_horse(&self, sighting: &HorseSighting) -> Result<Horse, SinkError> {
        dispatch!(self.upsert_horse(sighting))
    }

    /// Records a horse numbered by the dataflow: created as `Horse_{number}` at first, later
    /// observations widen first/last seen and add track ids (idempotent).
    pub async fn observe_horse(&self, seen: &HorseObservation) -> Result<Horse, SinkError> {
        if seen.first_seen > seen.last_seen || seen.number == 0 {
            return Err(SinkError::Invalid {
                what: "horse observation",
                reason: format!(
                    "number {} seen from {} to {}",
                    seen.number, seen.first_seen, seen.last_seen
                ),
            });
        }
        dispatch!(self.observe_horse(seen))
    }

    pub async fn get_horse(&self, id: i64) -> Result<Horse, SinkError> {
        dispatch!(self.get_horse(id))
    }

    /// A stream's horses, most recently seen first.
    pub async fn list_horses(&self, stream_id: &str) -> Result<Vec<Horse>, SinkError> {
        dispatch!(self.list_horses(stream_id))
    }

    /// The size of the embeddings the horse gallery holds: `horse_features.embedding`'s
    /// dimension, read when the store connected (or set by [`Store::migrate_gallery`]). A
    /// process whose re-ID model gives another size must not start (see
    /// `horsestream gallery`).
    pub fn embedding_dim(&self) -> usize {
        match self {
            Store::Postgres(s) => s.embedding_dim(),
            Store::Sqlite(s) => s.embedding_dim(),
        }
    }

    /// Makes the gallery hold `dim`-value embeddings, for a re-ID model of that size: in one
    /// transaction, every stored embedding is deleted (another model's embeddings are not
    /// comparable with the new one's) and, on PostgreSQL, the column becomes `vector(dim)`
    /// with its hnsw index rebuilt. Horses, their names, tracks and history stay. Returns how
    /// many embeddings were deleted; the same `dim` again deletes nothing. Run it with the
    /// dataflow stopped: a running process keeps the size it read at start.
    pub async fn migrate_gallery(&self, dim: usize) -> Result<u64, SinkError> {
        if !(1..=MAX_EMBEDDING_DIM).contains(&dim) {
            return Err(SinkError::Invalid {
                what: "embedding dimension",
                reason: format!("{dim} is outside 1..={MAX_EMBEDDING_DIM}"),
            });
        }
        if dim == self.embedding_dim() {
            return Ok(0);
        }
        dispatch!(self.migrate_gallery(dim))
    }

    /// Adds an appearance embedding ([`Store::embedding_dim`] values) to a horse's gallery; the
    /// same horse and time again keeps the first. The gallery keeps the newest [`GALLERY_LIMIT`].
    pub async fn add_horse_feature(
        &self,
        horse_id: i64,
        time: DateTime<Utc>,
        embedding: &[f32],
    ) -> Result<(), SinkError> {
        validate_embedding(embedding, self.embedding_dim())?;
        dispatch!(self.add_horse_feature(horse_id, time, embedding))
    }

    /// The `k` horses of a stream whose gallery holds the embeddings closest (cosine) to
    /// `embedding`, closest first: pgvector's hnsw index on PostgreSQL, a scan on SQLite.
    pub async fn nearest_horse(
        &self,
        stream_id: &str,
        embedding: &[f32],
        k: usize,
    ) -> Result<Vec<HorseMatch>, SinkError> {
        validate_embedding(embedding, self.embedding_dim())?;
        if k == 0 {
            return Ok(Vec::new());
        }
        dispatch!(self.nearest_horse(stream_id, embedding, k))
    }

    // ---------------------------------------------------------------- alerts

    /// Stores an alert; one whose `dedup_key` is already stored returns the stored alert.
    pub async fn insert_alert(&self, alert: &NewAlert) -> Result<Alert, SinkError> {
        dispatch!(self.insert_alert(alert))
    }

    pub async fn list_alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, SinkError> {
        dispatch!(self.list_alerts(query))
    }

    /// Marks an alert acknowledged by `by`; acknowledging again keeps the first time and name.
    pub async fn acknowledge_alert(&self, id: i64, by: &str) -> Result<Alert, SinkError> {
        dispatch!(self.acknowledge_alert(id, by))
    }

    // ---------------------------------------------------------------- users

    /// Creates a user; a taken username is a [`SinkError::Conflict`].
    pub async fn create_user(&self, user: &NewUser) -> Result<User, SinkError> {
        dispatch!(self.create_user(user))
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, SinkError> {
        dispatch!(self.find_user_by_username(username))
    }

    // ---------------------------------------------------------------- retention

    /// Removes what is older than `age`: see [`Store::drop_before`].
    pub async fn drop_older_than(&self, age: Duration) -> Result<RetentionReport, SinkError> {
        let age = chrono::Duration::from_std(age).map_err(|e| SinkError::Invalid {
            what: "retention age",
            reason: e.to_string(),
        })?;
        self.drop_before(Utc::now() - age).await
    }

    /// Removes detections and gait metrics older than `cutoff` (whole TimescaleDB chunks via
    /// `drop_chunks` — a chunk goes once all of it is older — or a DELETE on SQLite), and the
    /// `video_chunks` and `chunk_errors` rows older than it. Streams, horses, their gallery,
    /// alerts and users are kept.
    pub async fn drop_before(&self, cutoff: DateTime<Utc>) -> Result<RetentionReport, SinkError> {
        dispatch!(self.drop_before(cutoff))
    }
}

/// Every `every`, removes what is older than `max_age` (the application-side stand-in for
/// TimescaleDB's retention policy, which the Apache build lacks). Failures are logged and
/// retried at the next tick: retention loses nothing by running late.
#[derive(Debug, Clone)]
pub struct RetentionJob {
    store: Store,
    max_age: Duration,
    every: Duration,
}

impl RetentionJob {
    /// Ninety days, as the seed keeps detections.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);
    pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);

    pub fn new(store: Store) -> Self {
        RetentionJob {
            store,
            max_age: Self::DEFAULT_MAX_AGE,
            every: Self::DEFAULT_EVERY,
        }
    }

    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// One pass now.
    pub async fn run_once(&self) -> Result<RetentionReport, SinkError> {
        let report = self.store.drop_older_than(self.max_age).await?;
        tracing::info!(
            dropped_chunks = report.dropped_chunks,
            deleted_rows = report.deleted_rows,
            max_age_s = self.max_age.as_secs(),
            "retention pass"
        );
        Ok(report)
    }

    /// Runs a pass at once and then every `every` until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {
                    if let Err(e) = self.run_once().await {
                        tracing::warn!(error = %e, "retention pass failed, next tick retries");
                    }
                }
            }
        }
    }

    /// [`RetentionJob::run`] on the current tokio runtime until the handle is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(std::future::pending()))
    }
}

/// Appends the JSON kept in the `bbox` column, `{"x":…,"y":…,"w":…,"h":…,"confidence":…}`,
/// each number in its shortest `f32` form. Written by hand on the sink's hot path (a
/// `serde_json::Value` per row cost a map, five keys and a string); the text holds no
/// character that COPY or SQL would need escaped. Every write path of both stores uses it, so
/// a row reads back the same whichever path stored it.
pub(crate) fn push_bbox_json(out: &mut String, d: &horsestream_proto::Detection) {
    let mut num = ryu::Buffer::new();
    let b = &d.bbox;
    for (i, (key, v)) in [
        ("x", b.x),
        ("y", b.y),
        ("w", b.w),
        ("h", b.h),
        ("confidence", d.confidence),
    ]
    .into_iter()
    .enumerate()
    {
        out.push_str(if i == 0 { "{\"" } else { ",\"" });
        out.push_str(key);
        out.push_str("\":");
        // Validated finite before any write; a non-finite value would be JSON null.
        out.push_str(if v.is_finite() {
            num.format_finite(v)
        } else {
            "null"
        });
    }
    out.push('}');
}

/// Appends the JSON kept in the `keypoints` column, `[[x,y,score],…]`, each number in its
/// shortest `f32` form (validated finite before any write, as [`push_bbox_json`]'s).
pub(crate) fn push_keypoints_json(out: &mut String, d: &horsestream_proto::Detection) {
    let mut num = ryu::Buffer::new();
    out.push('[');
    for (i, k) in d.keypoints.iter().enumerate() {
        out.push_str(if i == 0 { "[" } else { ",[" });
        for (j, v) in [k.x, k.y, k.score].into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(if v.is_finite() {
                num.format_finite(v)
            } else {
                "null"
            });
        }
        out.push(']');
    }
    out.push(']');
}

/// The `keypoints` column of a detection: `None` (SQL NULL) without pose.
pub(crate) fn keypoints_json(d: &horsestream_proto::Detection) -> Option<String> {
    if d.keypoints.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(24 * d.keypoints.len() + 2);
    push_keypoints_json(&mut s, d);
    Some(s)
}

/// A stored `keypoints` value back as `[x, y, score]` triples (none for NULL).
pub(crate) fn keypoints_from_json(
    v: Option<serde_json::Value>,
) -> Result<Vec<[f32; 3]>, SinkError> {
    v.map_or(Ok(Vec::new()), |v| {
        serde_json::from_value(v).map_err(|e| SinkError::Invalid {
            what: "stored keypoints",
            reason: e.to_string(),
        })
    })
}

/// [`push_bbox_json`] into a string of its own.
pub(crate) fn bbox_json(d: &horsestream_proto::Detection) -> String {
    let mut s = String::with_capacity(96);
    push_bbox_json(&mut s, d);
    s
}

/// `(chunk_id, frame_index, pts_us, bbox, track_id)` as read back from a store.
pub(crate) type DetectionRow = (String, i32, i64, serde_json::Value, Option<i64>);

/// Lays out every frame of the given chunks (in order) with the boxes stored for it.
pub(crate) fn layout_frames(
    chunks: Vec<(String, i32)>,
    detections: Vec<DetectionRow>,
) -> Vec<FrameRow> {
    type Boxes = (i64, Vec<serde_json::Value>, Vec<Option<i64>>);
    let mut by_frame: std::collections::HashMap<(String, i32), Boxes> =
        std::collections::HashMap::new();
    for (chunk_id, frame_index, pts_us, bbox, track_id) in detections {
        let entry = by_frame
            .entry((chunk_id, frame_index))
            .or_insert_with(|| (pts_us, Vec::new(), Vec::new()));
        entry.1.push(bbox);
        entry.2.push(track_id);
    }
    let mut out = Vec::new();
    for (chunk_id, frames) in chunks {
        for frame_index in 0..frames {
            let (pts_us, boxes, track_ids) = by_frame
                .remove(&(chunk_id.clone(), frame_index))
                .map_or((None, Vec::new(), Vec::new()), |(p, b, t)| (Some(p), b, t));
            out.push(FrameRow {
                chunk_id: chunk_id.clone(),
                frame_index,
                pts_us,
                boxes,
                track_ids,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use horsestream_proto::{BoundingBox, Detection, Keypoint};

    use super::{bbox_json, keypoints_from_json, keypoints_json};

    #[test]
    fn keypoints_json_round_trips_each_f32_exactly_and_is_null_without_pose() {
        let mut d = Detection {
            frame_index: 0,
            pts_us: 0,
            class_id: 17,
            confidence: 0.6,
            bbox: BoundingBox {
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
            },
            track_id: None,
            keypoints: Vec::new(),
            interpolated: false,
            candidate: false,
        };
        assert_eq!(keypoints_json(&d), None);
        d.keypoints = vec![
            Keypoint {
                x: 70.1,
                y: -1.25e-7,
                score: 0.93,
            },
            Keypoint {
                x: 1234.567,
                y: 3.0e5,
                score: -0.5,
            },
        ];
        let text = keypoints_json(&d).unwrap();
        let back = keypoints_from_json(Some(serde_json::from_str(&text).unwrap())).unwrap();
        assert_eq!(
            back,
            vec![[70.1, -1.25e-7, 0.93], [1234.567, 3.0e5, -0.5]],
            "{text}"
        );
        assert!(keypoints_from_json(None).unwrap().is_empty());
    }

    #[test]
    fn bbox_json_is_json_with_each_f32_exactly() {
        let d = Detection {
            frame_index: 0,
            pts_us: 0,
            class_id: 17,
            confidence: 0.6,
            bbox: BoundingBox {
                x: 70.0,
                y: -1.25e-7,
                w: 1234.567,
                h: 3.0e5,
            },
            track_id: None,
            keypoints: Vec::new(),
            interpolated: false,
            candidate: false,
        };
        let text = bbox_json(&d);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 5, "{text}");
        for (key, want) in [
            ("x", d.bbox.x),
            ("y", d.bbox.y),
            ("w", d.bbox.w),
            ("h", d.bbox.h),
            ("confidence", d.confidence),
        ] {
            // The shortest f32 form reads back as the same f32.
            assert_eq!(obj[key].as_f64().unwrap() as f32, want, "{key} in {text}");
        }
        assert!(!text.contains(['\t', '\n', '\\']), "{text}");
    }
}
