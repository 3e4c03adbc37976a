//! TimescaleDB: detections in a hypertable, written with UNNEST batches in one transaction
//! per chunk.

use chrono::{DateTime, Utc};
use horsestream_proto::ProcessedChunk;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{ChunkErrorRecord, DetectionRow, FrameRow, StoreStats, bbox_json, layout_frames};
use crate::SinkError;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn write_chunk(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        let chunk_id = chunk.chunk_id();
        let n = chunk.detection_count();
        let mut times = Vec::with_capacity(n);
        let mut frame_index = Vec::with_capacity(n);
        let mut det_index = Vec::with_capacity(n);
        let mut pts = Vec::with_capacity(n);
        let mut class = Vec::with_capacity(n);
        let mut conf = Vec::with_capacity(n);
        let mut bbox = Vec::with_capacity(n);
        let mut track = Vec::with_capacity(n);
        for f in &chunk.frames {
            for (i, d) in f.detections.iter().enumerate() {
                times.push(time(f.capture_time_us));
                frame_index.push(f.index as i32);
                det_index.push(i as i32);
                pts.push(f.pts_us);
                class.push(d.class_id as i32);
                conf.push(d.confidence);
                bbox.push(bbox_json(d));
                track.push(d.track_id.map(|t| t as i64));
            }
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO detections \
               (time, stream_id, chunk_id, frame_index, det_index, pts_us, class_id, confidence, bbox, \
                track_id) \
             SELECT t, $2, $3, f, d, p, c, s, b, k \
             FROM UNNEST($1::timestamptz[], $4::int[], $5::int[], $6::bigint[], $7::int[], \
                         $8::real[], $9::jsonb[], $10::bigint[]) AS u(t, f, d, p, c, s, b, k) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&times)
        .bind(&chunk.stream_id)
        .bind(&chunk_id)
        .bind(&frame_index)
        .bind(&det_index)
        .bind(&pts)
        .bind(&class)
        .bind(&conf)
        .bind(&bbox)
        .bind(&track)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO video_chunks \
               (chunk_id, stream_id, sequence, start_time, end_time, frames, detections, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'processed') \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'processed', processed_at = now()",
        )
        .bind(&chunk_id)
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(time(chunk.stream_start_time_us + chunk.start_pts_us))
        .bind(time(chunk.stream_start_time_us + chunk.end_pts_us))
        .bind(chunk.frames.len() as i32)
        .bind(n as i32)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_error(&self, e: &ChunkErrorRecord) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO chunk_errors (source, partition, \"offset\", stage, reason) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
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
            sqlx::query_as("SELECT count(*), sum(frames)::bigint FROM video_chunks")
                .fetch_one(&self.pool)
                .await?;
        let (detections, frames_with, max_per): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT coalesce(sum(n), 0)::bigint, count(*), max(n) FROM \
               (SELECT count(*) AS n FROM detections GROUP BY chunk_id, frame_index) f",
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
            detections,
            frames_with_detections: frames_with,
            max_detections_per_frame: max_per.unwrap_or(0),
            tracks,
            chunk_errors: errors,
        })
    }

    pub async fn frames(&self, stream_id: &str) -> Result<Vec<FrameRow>, SinkError> {
        let chunks: Vec<(String, i32)> = sqlx::query_as(
            "SELECT chunk_id, frames FROM video_chunks WHERE stream_id = $1 ORDER BY sequence",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let dets: Vec<DetectionRow> = sqlx::query_as(
            "SELECT chunk_id, frame_index, pts_us, bbox, track_id FROM detections \
             WHERE stream_id = $1 \
             ORDER BY chunk_id, frame_index, det_index",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
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
