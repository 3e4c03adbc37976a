//! Stream checkpoints: a stream's dataflow state (its DeepSORT tracker, its horses with their
//! gait and alert state) after one of its chunks, written in the transaction that stores the
//! chunk's detections, so the two are durable together or not at all. A restarted dataflow
//! resumes a stream from the newest checkpoint before the first chunk it reads
//! ([`Store::checkpoint_before`]); see `docs/crash-recovery.md`.
//!
//! The bytes are the dataflow's own (versioned) encoding; the store does not look inside.

use sqlx::{PgConnection, SqliteConnection};

use super::Store;
use crate::SinkError;

/// Checkpoints kept per stream, newest first: each chunk's write deletes those more than this
/// many sequences older. A restart resumes from the chunk after the newest committed Kafka
/// offset, and at most a few epochs of chunks (`records_per_epoch` × epochs in flight, 6 with
/// the defaults) are stored but not yet committed, so the checkpoint it needs is always among
/// the kept ones.
pub const CHECKPOINTS_KEPT: i64 = 16;

/// A stream's state after a chunk, as the dataflow encoded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCheckpoint {
    /// The tracking stage's state.
    pub tracks: Vec<u8>,
    /// The horses stage's state.
    pub horses: Vec<u8>,
}

impl StreamCheckpoint {
    /// Bytes stored.
    pub fn len(&self) -> usize {
        self.tracks.len() + self.horses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stores `checkpoint` as the state of `stream` after chunk `sequence` within the chunk's
/// transaction `tx` (a replayed chunk keeps the first one), and prunes old ones.
pub(super) async fn put_pg(
    tx: &mut PgConnection,
    stream: &str,
    sequence: u64,
    checkpoint: &StreamCheckpoint,
) -> Result<(), SinkError> {
    sqlx::query(
        "INSERT INTO stream_checkpoints (stream_id, sequence, tracks, horses) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(stream)
    .bind(sequence as i64)
    .bind(&checkpoint.tracks)
    .bind(&checkpoint.horses)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM stream_checkpoints WHERE stream_id = $1 AND sequence < $2")
        .bind(stream)
        .bind(sequence as i64 - CHECKPOINTS_KEPT)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// [`put_pg`] for the embedded store.
pub(super) async fn put_sqlite(
    tx: &mut SqliteConnection,
    stream: &str,
    sequence: u64,
    checkpoint: &StreamCheckpoint,
) -> Result<(), SinkError> {
    sqlx::query(
        "INSERT OR IGNORE INTO stream_checkpoints (stream_id, sequence, tracks, horses, stored_us) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(stream)
    .bind(sequence as i64)
    .bind(&checkpoint.tracks)
    .bind(&checkpoint.horses)
    .bind(chrono::Utc::now().timestamp_micros())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM stream_checkpoints WHERE stream_id = ? AND sequence < ?")
        .bind(stream)
        .bind(sequence as i64 - CHECKPOINTS_KEPT)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Store {
    /// [`Store::write_chunk`], with the stream's state after the chunk stored in the same
    /// transaction when `checkpoint` is given.
    pub async fn write_chunk_checkpointed(
        &self,
        chunk: &horsestream_proto::ProcessedChunk,
        checkpoint: Option<&StreamCheckpoint>,
    ) -> Result<(), SinkError> {
        match self {
            Store::Postgres(s) => s.write_chunk_checkpointed(chunk, checkpoint).await,
            Store::Sqlite(s) => s.write_chunk_checkpointed(chunk, checkpoint).await,
        }
    }

    /// The newest checkpoint of `stream` stored with a chunk before `sequence`, with that
    /// chunk's sequence: the state to resume from when `sequence` is the first chunk read.
    pub async fn checkpoint_before(
        &self,
        stream: &str,
        sequence: u64,
    ) -> Result<Option<(u64, StreamCheckpoint)>, SinkError> {
        let row: Option<(i64, Vec<u8>, Vec<u8>)> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(
                    "SELECT sequence, tracks, horses FROM stream_checkpoints \
                     WHERE stream_id = $1 AND sequence < $2 ORDER BY sequence DESC LIMIT 1",
                )
                .bind(stream)
                .bind(sequence as i64)
                .fetch_optional(s.pool())
                .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(
                    "SELECT sequence, tracks, horses FROM stream_checkpoints \
                     WHERE stream_id = ? AND sequence < ? ORDER BY sequence DESC LIMIT 1",
                )
                .bind(stream)
                .bind(sequence as i64)
                .fetch_optional(&s.pool)
                .await?
            }
        };
        Ok(row.map(|(seq, tracks, horses)| (seq as u64, StreamCheckpoint { tracks, horses })))
    }

    /// Sequences of the checkpoints kept for `stream`, oldest first.
    pub async fn checkpoint_sequences(&self, stream: &str) -> Result<Vec<u64>, SinkError> {
        let rows: Vec<(i64,)> = match self {
            Store::Postgres(s) => {
                sqlx::query_as(
                    "SELECT sequence FROM stream_checkpoints WHERE stream_id = $1 ORDER BY 1",
                )
                .bind(stream)
                .fetch_all(s.pool())
                .await?
            }
            Store::Sqlite(s) => {
                sqlx::query_as(
                    "SELECT sequence FROM stream_checkpoints WHERE stream_id = ? ORDER BY 1",
                )
                .bind(stream)
                .fetch_all(&s.pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(|(s,)| s as u64).collect())
    }
}
