//! The embedded store: one SQLite file, same rows and keys as TimescaleDB.

use std::str::FromStr;

use horsestream_proto::ProcessedChunk;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{ChunkErrorRecord, FrameRow, StoreStats, bbox_json, layout_frames};
use crate::SinkError;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    pub async fn write_chunk(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        let chunk_id = chunk.chunk_id();
        let mut tx = self.pool.begin().await?;
        for f in &chunk.frames {
            for (i, d) in f.detections.iter().enumerate() {
                sqlx::query(
                    "INSERT OR IGNORE INTO detections (time_us, stream_id, chunk_id, frame_index, \
                     det_index, pts_us, class_id, confidence, bbox, track_id) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(f.capture_time_us)
                .bind(&chunk.stream_id)
                .bind(&chunk_id)
                .bind(f.index as i64)
                .bind(i as i64)
                .bind(f.pts_us)
                .bind(d.class_id as i64)
                .bind(d.confidence)
                .bind(bbox_json(d).to_string())
                .bind(d.track_id.map(|t| t as i64))
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO video_chunks (chunk_id, stream_id, sequence, start_time_us, end_time_us, \
             frames, detections, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'processed') \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'processed'",
        )
        .bind(&chunk_id)
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(chunk.stream_start_time_us + chunk.start_pts_us)
        .bind(chunk.stream_start_time_us + chunk.end_pts_us)
        .bind(chunk.frames.len() as i64)
        .bind(chunk.detection_count() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_error(&self, e: &ChunkErrorRecord) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT OR IGNORE INTO chunk_errors (recorded_us, source, partition, \"offset\", stage, reason) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(chrono::Utc::now().timestamp_micros())
        .bind(&e.source)
        .bind(e.partition)
        .bind(e.offset)
        .bind(&e.stage)
        .bind(&e.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn stats(&self) -> Result<StoreStats, SinkError> {
        let (chunks, frames): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), sum(frames) FROM video_chunks")
                .fetch_one(&self.pool)
                .await?;
        let (detections, frames_with, max_per): (Option<i64>, i64, Option<i64>) = sqlx::query_as(
            "SELECT sum(n), count(*), max(n) FROM \
               (SELECT count(*) AS n FROM detections GROUP BY chunk_id, frame_index)",
        )
        .fetch_one(&self.pool)
        .await?;
        let (errors,): (i64,) = sqlx::query_as("SELECT count(*) FROM chunk_errors")
            .fetch_one(&self.pool)
            .await?;
        let (tracks,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM (SELECT DISTINCT stream_id, track_id FROM detections \
             WHERE track_id IS NOT NULL) t",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreStats {
            chunks,
            frames: frames.unwrap_or(0),
            detections: detections.unwrap_or(0),
            frames_with_detections: frames_with,
            max_detections_per_frame: max_per.unwrap_or(0),
            tracks,
            chunk_errors: errors,
        })
    }

    pub async fn frames(&self, stream_id: &str) -> Result<Vec<FrameRow>, SinkError> {
        let chunks: Vec<(String, i32)> = sqlx::query_as(
            "SELECT chunk_id, frames FROM video_chunks WHERE stream_id = ? ORDER BY sequence",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let dets: Vec<(String, i32, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT chunk_id, frame_index, pts_us, bbox, track_id FROM detections WHERE stream_id = ? \
             ORDER BY chunk_id, frame_index, det_index",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let dets = dets
            .into_iter()
            .map(|(c, f, p, b, t)| {
                let v = serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b));
                (c, f, p, v, t)
            })
            .collect();
        Ok(layout_frames(chunks, dets))
    }

    pub async fn chunk_errors(&self) -> Result<Vec<ChunkErrorRecord>, SinkError> {
        let rows: Vec<(String, i32, i64, String, String)> = sqlx::query_as(
            "SELECT source, partition, \"offset\", stage, reason FROM chunk_errors ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(source, partition, offset, stage, reason)| ChunkErrorRecord {
                    source,
                    partition,
                    offset,
                    stage,
                    reason,
                },
            )
            .collect())
    }

    pub async fn health(&self) -> Result<(), SinkError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
