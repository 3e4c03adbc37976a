//! The detection store: TimescaleDB in production, SQLite embedded for the demo. Both keep
//! the same rows under the same keys, so a retried or replayed chunk never duplicates a row.

mod postgres;
mod sqlite;

use horsestream_proto::ProcessedChunk;

use crate::SinkError;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
    /// Returns once the transaction is committed.
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

/// The JSON kept in the `bbox` column.
pub(crate) fn bbox_json(d: &horsestream_proto::Detection) -> serde_json::Value {
    serde_json::json!({
        "x": d.bbox.x, "y": d.bbox.y, "w": d.bbox.w, "h": d.bbox.h, "confidence": d.confidence,
    })
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
