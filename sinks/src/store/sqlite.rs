//! The embedded store: one SQLite file, same rows and keys as TimescaleDB.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use horsestream_proto::{FrameChunk, ProcessedChunk};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};

use super::checkpoint::{self, StreamCheckpoint};
use super::records::{
    Alert, AlertQuery, GALLERY_LIMIT, GaitRow, Horse, HorseMatch, HorseObservation, HorseSighting,
    NewAlert, NewStream, NewUser, RetentionReport, Role, Severity, Stream, StreamClaims,
    StreamPatch, User, pose_json, read_pose,
};
use super::validate::cosine_distance;
use super::{
    ChunkErrorRecord, Counters, FrameRow, StoreStats, bbox_json, check_chunk, keypoints_json,
    layout_frames, not_found, sql, time,
};
use crate::SinkError;
use crate::error::classify;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    counters: Arc<Counters>,
    /// The gallery's embedding size (`settings.embedding_dim`), read at connect.
    embedding_dim: Arc<AtomicUsize>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let (dim,): (String,) =
            sqlx::query_as("SELECT value FROM settings WHERE key = 'embedding_dim'")
                .fetch_one(&pool)
                .await?;
        let dim = dim.parse().map_err(|_| SinkError::Invalid {
            what: "settings.embedding_dim",
            reason: format!("{dim:?} is not a size"),
        })?;
        Ok(SqliteStore {
            pool,
            counters: Arc::default(),
            embedding_dim: Arc::new(AtomicUsize::new(dim)),
        })
    }

    /// Begins a transaction that writes. `BEGIN IMMEDIATE` takes the write lock at once, so
    /// a writer waits (`busy_timeout`) for another process's; a deferred transaction that had
    /// read first would instead fail at its first write ("database is locked") whenever
    /// another connection wrote since its read, without waiting.
    pub(super) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim.load(Ordering::Relaxed)
    }

    /// Empties the gallery (embeddings are JSON arrays here, no column type to change) and
    /// records the new size, in one transaction.
    pub async fn migrate_gallery(&self, dim: usize) -> Result<u64, SinkError> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM horse_features")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE settings SET value = ? WHERE key = 'embedding_dim'")
            .bind(dim.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.embedding_dim.store(dim, Ordering::Relaxed);
        Ok(removed)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub async fn write_chunk(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        self.write_chunk_checkpointed(chunk, None).await
    }

    /// [`Self::write_chunk`], storing `checkpoint` in the chunk's transaction.
    pub async fn write_chunk_checkpointed(
        &self,
        chunk: &ProcessedChunk,
        checkpoint: Option<&StreamCheckpoint>,
    ) -> Result<(), SinkError> {
        check_chunk(chunk, &self.counters)?;
        let chunk_id = chunk.chunk_id();
        let mut tx = self.begin_write().await?;
        let known: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM streams WHERE id = ?")
            .bind(&chunk.stream_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(not_found("stream", &chunk.stream_id));
        }
        for f in &chunk.frames {
            for (i, d) in f.detections.iter().enumerate() {
                sqlx::query(
                    "INSERT OR IGNORE INTO detections (time_us, stream_id, chunk_id, frame_index, \
                     det_index, pts_us, class_id, confidence, bbox, track_id, keypoints, \
                     interpolated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(f.capture_time_us)
                .bind(&chunk.stream_id)
                .bind(&chunk_id)
                .bind(f.index as i64)
                .bind(i as i64)
                .bind(f.pts_us)
                .bind(d.class_id as i64)
                .bind(d.confidence)
                .bind(bbox_json(d))
                .bind(d.track_id.map(|t| t as i64))
                .bind(keypoints_json(d))
                .bind(d.interpolated)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO video_chunks (chunk_id, stream_id, sequence, start_time_us, end_time_us, \
             frames, detections, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'processed') \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'processed', \
               frames = excluded.frames, detections = excluded.detections",
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
        if let Some(c) = checkpoint {
            checkpoint::put_sqlite(&mut tx, &chunk.stream_id, chunk.sequence, c).await?;
        }
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
        let (chunks, frames): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), sum(frames) FROM video_chunks WHERE status = 'processed'",
        )
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
            "SELECT chunk_id, frames FROM video_chunks WHERE stream_id = ? AND status = 'processed' \
             ORDER BY sequence",
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

const STREAM_COLUMNS: &str = "id, name, source_url, source_kind, status, \
     credentials_secret IS NOT NULL AS has_credentials, calibration, zones, alert_rules, enabled, \
     created_us, updated_us";
const HORSE_COLUMNS: &str =
    "id, stream_id, display_name, colour, first_seen_us, last_seen_us, track_ids";
const ALERT_COLUMNS: &str = "id, time_us, stream_id, horse_id, kind, severity, message, \
     dedup_key, acknowledged_us, acknowledged_by";
const USER_COLUMNS: &str = "id, username, password_hash, role, created_us";

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_json<T: serde::de::DeserializeOwned>(what: &'static str, s: &str) -> Result<T, SinkError> {
    serde_json::from_str(s).map_err(|e| SinkError::Invalid {
        what,
        reason: e.to_string(),
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn stream_row(r: &SqliteRow) -> Result<Stream, SinkError> {
    let calibration: Option<String> = r.try_get("calibration")?;
    let zones: String = r.try_get("zones")?;
    let alert_rules: Option<String> = r.try_get("alert_rules")?;
    Ok(Stream {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        source_url: r.try_get("source_url")?,
        source_kind: r.try_get("source_kind")?,
        status: r.try_get("status")?,
        has_credentials: r.try_get("has_credentials")?,
        calibration: calibration
            .as_deref()
            .map(|c| from_json("stored calibration", c))
            .transpose()?,
        zones: from_json("stored zones", &zones)?,
        alert_rules: alert_rules
            .as_deref()
            .map(|a| from_json("stored alert rules", a))
            .transpose()?
            .unwrap_or_default(),
        enabled: r.try_get("enabled")?,
        created_at: time(r.try_get("created_us")?),
        updated_at: time(r.try_get("updated_us")?),
    })
}

fn horse_row(r: &SqliteRow) -> Result<Horse, SinkError> {
    let track_ids: String = r.try_get("track_ids")?;
    Ok(Horse {
        id: r.try_get("id")?,
        stream_id: r.try_get("stream_id")?,
        display_name: r.try_get("display_name")?,
        colour: r.try_get("colour")?,
        first_seen: time(r.try_get("first_seen_us")?),
        last_seen: time(r.try_get("last_seen_us")?),
        track_ids: from_json("stored track ids", &track_ids)?,
    })
}

fn alert_row(r: &SqliteRow) -> Result<Alert, SinkError> {
    let severity: String = r.try_get("severity")?;
    let acknowledged: Option<i64> = r.try_get("acknowledged_us")?;
    Ok(Alert {
        id: r.try_get("id")?,
        time: time(r.try_get("time_us")?),
        stream_id: r.try_get("stream_id")?,
        horse_id: r.try_get("horse_id")?,
        kind: r.try_get("kind")?,
        severity: Severity::parse(&severity)?,
        message: r.try_get("message")?,
        dedup_key: r.try_get("dedup_key")?,
        acknowledged_at: acknowledged.map(time),
        acknowledged_by: r.try_get("acknowledged_by")?,
    })
}

fn user_row(r: &SqliteRow) -> Result<User, SinkError> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: Role::parse(&role)?,
        created_at: time(r.try_get("created_us")?),
    })
}

impl SqliteStore {
    pub async fn create_stream(&self, new: &NewStream) -> Result<Stream, SinkError> {
        let now = us(Utc::now());
        let row = sqlx::query(sql!(
            "INSERT INTO streams (id, name, source_url, source_kind, credentials_secret, \
               calibration, zones, enabled, created_us, updated_us) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {STREAM_COLUMNS}"
        ))
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.source_url)
        .bind(&new.source_kind)
        .bind(&new.credentials_secret)
        .bind(new.calibration.as_ref().map(to_json))
        .bind(to_json(&new.zones))
        .bind(new.enabled)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "stream", &new.id, "stream", &new.id))?;
        stream_row(&row)
    }

    pub async fn get_stream(&self, id: &str) -> Result<Stream, SinkError> {
        let row = sqlx::query(sql!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("stream", id))?;
        stream_row(&row)
    }

    pub async fn list_streams(&self) -> Result<Vec<Stream>, SinkError> {
        sqlx::query(sql!("SELECT {STREAM_COLUMNS} FROM streams ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(stream_row)
            .collect()
    }

    pub async fn update_stream(&self, id: &str, patch: &StreamPatch) -> Result<Stream, SinkError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("stream", id))?;
        let mut s = stream_row(&row)?;
        patch.apply(&mut s);
        let row = sqlx::query(sql!(
            "UPDATE streams SET name = ?2, source_url = ?3, source_kind = ?4, status = ?5, \
               calibration = ?6, zones = ?7, enabled = ?8, \
               credentials_secret = CASE WHEN ?9 THEN ?10 ELSE credentials_secret END, \
               updated_us = max(?11, updated_us), alert_rules = ?12 \
             WHERE id = ?1 RETURNING {STREAM_COLUMNS}"
        ))
        .bind(id)
        .bind(&s.name)
        .bind(&s.source_url)
        .bind(&s.source_kind)
        .bind(&s.status)
        .bind(s.calibration.as_ref().map(to_json))
        .bind(to_json(&s.zones))
        .bind(s.enabled)
        .bind(patch.credentials_secret.is_some())
        .bind(patch.credentials_secret.clone().flatten())
        .bind(us(Utc::now()))
        .bind(to_json(&s.alert_rules))
        .fetch_one(&mut *tx)
        .await?;
        let s = stream_row(&row)?;
        tx.commit().await?;
        Ok(s)
    }

    pub async fn report_stream_status(&self, id: &str, status: &str) -> Result<bool, SinkError> {
        let done = sqlx::query(
            "UPDATE streams SET status = ?2, updated_us = max(?3, updated_us) \
             WHERE id = ?1 AND (enabled OR ?2 = 'stopped') AND status IS NOT ?2",
        )
        .bind(id)
        .bind(status)
        .bind(chrono::Utc::now().timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn claim_streams(
        &self,
        owner: &str,
        max: i64,
        lease: Duration,
    ) -> Result<StreamClaims, SinkError> {
        let now = chrono::Utc::now().timestamp_micros();
        let until = now + lease.as_micros() as i64;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE streams SET ingest_owner = NULL, ingest_lease_us = NULL \
             WHERE ingest_owner = ?1 AND (NOT enabled OR status = 'ended')",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query(
            "UPDATE streams SET ingest_lease_us = ?2 WHERE ingest_owner = ?1 AND enabled",
        )
        .bind(owner)
        .bind(until)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        sqlx::query(
            "UPDATE streams SET ingest_owner = ?1, ingest_lease_us = ?2 \
             WHERE id IN (SELECT id FROM streams \
               WHERE enabled AND status <> 'ended' \
                 AND (ingest_owner IS NULL OR ingest_lease_us < ?3) \
               ORDER BY id LIMIT ?4)",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind((max - held).max(0))
        .execute(&mut *tx)
        .await?;
        let owned: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM streams WHERE ingest_owner = ? AND enabled ORDER BY id")
                .bind(owner)
                .fetch_all(&mut *tx)
                .await?;
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM streams \
             WHERE enabled AND status <> 'ended' \
               AND (ingest_owner IS NULL OR ingest_lease_us < ?)",
        )
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StreamClaims {
            owned: owned.into_iter().map(|(id,)| id).collect(),
            pending: pending as u64,
        })
    }

    pub async fn release_streams(&self, owner: &str, ids: &[String]) -> Result<(), SinkError> {
        for id in ids {
            sqlx::query(
                "UPDATE streams SET ingest_owner = NULL, ingest_lease_us = NULL \
                 WHERE ingest_owner = ? AND id = ?",
            )
            .bind(owner)
            .bind(id)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn record_degraded(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO video_chunks (chunk_id, stream_id, sequence, start_time_us, end_time_us, \
               frames, detections, status) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, 'degraded' \
             WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?2) \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'degraded', frames = excluded.frames \
             WHERE video_chunks.status <> 'processed'",
        )
        .bind(chunk.chunk_id())
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(chunk.stream_start_time_us + chunk.start_pts_us)
        .bind(chunk.stream_start_time_us + chunk.end_pts_us)
        .bind(chunk.frames.len() as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_ingested(&self, chunk: &FrameChunk) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO video_chunks (chunk_id, stream_id, sequence, start_time_us, end_time_us, \
               frames, detections, status, ingested_us) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 0, 'ingested', ?7 \
             WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?2) \
             ON CONFLICT (chunk_id) DO UPDATE SET ingested_us = coalesce(ingested_us, ?7)",
        )
        .bind(chunk.chunk_id())
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(chunk.stream_start_time_us + chunk.start_pts_us)
        .bind(chunk.stream_start_time_us + chunk.end_pts_us)
        .bind(chunk.frames.len() as i64)
        .bind(chrono::Utc::now().timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn last_chunk_sequence(&self, stream_id: &str) -> Result<Option<u64>, SinkError> {
        let (last,): (Option<i64>,) =
            sqlx::query_as("SELECT max(sequence) FROM video_chunks WHERE stream_id = ?")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(last.map(|q| q as u64))
    }

    pub async fn chunk_statuses(&self, stream_id: &str) -> Result<Vec<(u64, String)>, SinkError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT sequence, status FROM video_chunks WHERE stream_id = ? ORDER BY sequence",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(q, s)| (q as u64, s)).collect())
    }

    pub async fn delete_stream(&self, id: &str) -> Result<(), SinkError> {
        let done = sqlx::query("DELETE FROM streams WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("stream", id));
        }
        Ok(())
    }

    pub async fn stream_credentials(&self, id: &str) -> Result<Option<String>, SinkError> {
        let (secret,): (Option<String>,) =
            sqlx::query_as("SELECT credentials_secret FROM streams WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("stream", id))?;
        Ok(secret)
    }

    pub(crate) async fn write_gait(&self, rows: &[&GaitRow]) -> Result<(), SinkError> {
        let mut tx = self.begin_write().await?;
        let mut checked: Option<&str> = None;
        for r in rows {
            if checked != Some(r.stream_id.as_str()) {
                let known: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM streams WHERE id = ?")
                        .bind(&r.stream_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if known.is_none() {
                    return Err(not_found("stream", &r.stream_id));
                }
                checked = Some(&r.stream_id);
            }
            sqlx::query(
                "INSERT INTO gait_metrics (time_us, stream_id, track_id, horse_id, speed, \
                   acceleration, unit, stride_hz, gait_class, distance, pose) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (stream_id, track_id, time_us) DO UPDATE SET \
                   horse_id = coalesce(excluded.horse_id, gait_metrics.horse_id), \
                   speed = excluded.speed, acceleration = excluded.acceleration, \
                   unit = excluded.unit, stride_hz = excluded.stride_hz, \
                   gait_class = excluded.gait_class, distance = excluded.distance, \
                   pose = excluded.pose",
            )
            .bind(us(r.time))
            .bind(&r.stream_id)
            .bind(r.track_id)
            .bind(r.horse_id)
            .bind(r.speed)
            .bind(r.acceleration)
            .bind(&r.unit)
            .bind(r.stride_hz)
            .bind(&r.gait_class)
            .bind(r.distance)
            .bind(r.pose.as_ref().map(pose_json))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn gait(&self, stream_id: &str) -> Result<Vec<GaitRow>, SinkError> {
        let rows = sqlx::query(
            "SELECT time_us, stream_id, track_id, horse_id, speed, acceleration, unit, \
               stride_hz, gait_class, distance, pose FROM gait_metrics WHERE stream_id = ? \
             ORDER BY track_id, time_us",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GaitRow {
                    time: time(r.try_get("time_us")?),
                    stream_id: r.try_get("stream_id")?,
                    track_id: r.try_get("track_id")?,
                    horse_id: r.try_get("horse_id")?,
                    speed: r.try_get("speed")?,
                    acceleration: r.try_get("acceleration")?,
                    unit: r.try_get("unit")?,
                    stride_hz: r.try_get("stride_hz")?,
                    gait_class: r.try_get("gait_class")?,
                    distance: r.try_get("distance")?,
                    pose: read_pose(r.try_get("pose")?)?,
                })
            })
            .collect()
    }

    pub async fn upsert_horse(&self, s: &HorseSighting) -> Result<Horse, SinkError> {
        let mut tx = self.begin_write().await?;
        let horse = match s.horse_id {
            Some(id) => {
                let row = sqlx::query(sql!(
                    "SELECT {HORSE_COLUMNS} FROM horses WHERE id = ? AND stream_id = ?"
                ))
                .bind(id)
                .bind(&s.stream_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| not_found("horse", id))?;
                let mut h = horse_row(&row)?;
                h.first_seen = h.first_seen.min(s.time);
                h.last_seen = h.last_seen.max(s.time);
                if s.colour.is_some() {
                    h.colour.clone_from(&s.colour);
                }
                if let Some(t) = s.track_id.filter(|t| !h.track_ids.contains(t)) {
                    h.track_ids.push(t);
                }
                sqlx::query(
                    "UPDATE horses SET first_seen_us = ?, last_seen_us = ?, colour = ?, \
                       track_ids = ? WHERE id = ?",
                )
                .bind(us(h.first_seen))
                .bind(us(h.last_seen))
                .bind(&h.colour)
                .bind(to_json(&h.track_ids))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                h
            }
            None => {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT coalesce(max(number), 0) + 1 FROM horses WHERE stream_id = ?",
                )
                .bind(&s.stream_id)
                .fetch_one(&mut *tx)
                .await?;
                let track_ids: Vec<i64> = s.track_id.into_iter().collect();
                let row = sqlx::query(sql!(
                    "INSERT INTO horses (stream_id, number, display_name, colour, first_seen_us, \
                       last_seen_us, track_ids) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     RETURNING {HORSE_COLUMNS}"
                ))
                .bind(&s.stream_id)
                .bind(n)
                .bind(format!("Horse_{n}"))
                .bind(&s.colour)
                .bind(us(s.time))
                .bind(us(s.time))
                .bind(to_json(&track_ids))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| classify(e, "horse", &s.stream_id, "stream", &s.stream_id))?;
                horse_row(&row)?
            }
        };
        tx.commit().await?;
        Ok(horse)
    }

    pub async fn observe_horse(&self, o: &HorseObservation) -> Result<Horse, SinkError> {
        let mut tx = self.begin_write().await?;
        let known = sqlx::query(sql!(
            "SELECT {HORSE_COLUMNS} FROM horses WHERE stream_id = ? AND number = ?"
        ))
        .bind(&o.stream_id)
        .bind(o.number)
        .fetch_optional(&mut *tx)
        .await?;
        let mut h = match known {
            Some(row) => horse_row(&row)?,
            None => Horse {
                id: 0,
                stream_id: o.stream_id.clone(),
                display_name: format!("Horse_{}", o.number),
                colour: None,
                first_seen: o.first_seen,
                last_seen: o.last_seen,
                track_ids: Vec::new(),
            },
        };
        h.first_seen = h.first_seen.min(o.first_seen);
        h.last_seen = h.last_seen.max(o.last_seen);
        h.track_ids.extend(&o.track_ids);
        h.track_ids.sort_unstable();
        h.track_ids.dedup();
        let row = sqlx::query(sql!(
            "INSERT INTO horses (stream_id, number, display_name, first_seen_us, last_seen_us, \
               track_ids) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (stream_id, number) DO UPDATE SET first_seen_us = excluded.first_seen_us, \
               last_seen_us = excluded.last_seen_us, track_ids = excluded.track_ids \
             RETURNING {HORSE_COLUMNS}"
        ))
        .bind(&o.stream_id)
        .bind(o.number)
        .bind(&h.display_name)
        .bind(us(h.first_seen))
        .bind(us(h.last_seen))
        .bind(to_json(&h.track_ids))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| classify(e, "horse", &h.display_name, "stream", &o.stream_id))?;
        tx.commit().await?;
        horse_row(&row)
    }

    pub async fn get_horse(&self, id: i64) -> Result<Horse, SinkError> {
        let row = sqlx::query(sql!("SELECT {HORSE_COLUMNS} FROM horses WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("horse", id))?;
        horse_row(&row)
    }

    pub async fn list_horses(&self, stream_id: &str) -> Result<Vec<Horse>, SinkError> {
        sqlx::query(sql!(
            "SELECT {HORSE_COLUMNS} FROM horses WHERE stream_id = ? ORDER BY last_seen_us DESC, id"
        ))
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(horse_row)
        .collect()
    }

    pub async fn add_horse_feature(
        &self,
        horse_id: i64,
        time: DateTime<Utc>,
        embedding: &[f32],
    ) -> Result<(), SinkError> {
        let (stream_id,): (String,) = sqlx::query_as("SELECT stream_id FROM horses WHERE id = ?")
            .bind(horse_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("horse", horse_id))?;
        sqlx::query(
            "INSERT OR IGNORE INTO horse_features (horse_id, stream_id, time_us, embedding) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(horse_id)
        .bind(&stream_id)
        .bind(us(time))
        .bind(to_json(&embedding))
        .execute(&self.pool)
        .await
        .map_err(|e| classify(e, "horse feature", "", "horse", &horse_id.to_string()))?;
        sqlx::query(
            "DELETE FROM horse_features WHERE horse_id = ? AND id NOT IN \
               (SELECT id FROM horse_features WHERE horse_id = ? ORDER BY time_us DESC LIMIT ?)",
        )
        .bind(horse_id)
        .bind(horse_id)
        .bind(GALLERY_LIMIT)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn nearest_horse(
        &self,
        stream_id: &str,
        embedding: &[f32],
        k: usize,
    ) -> Result<Vec<HorseMatch>, SinkError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT f.horse_id, h.display_name, f.embedding FROM horse_features f \
             JOIN horses h ON h.id = f.horse_id WHERE f.stream_id = ?",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let mut best: std::collections::HashMap<i64, HorseMatch> = std::collections::HashMap::new();
        for (horse_id, display_name, stored) in rows {
            let stored: Vec<f32> = from_json("stored embedding", &stored)?;
            let distance = cosine_distance(embedding, &stored);
            let entry = best.entry(horse_id).or_insert_with(|| HorseMatch {
                horse_id,
                display_name,
                distance,
            });
            if distance < entry.distance {
                entry.distance = distance;
            }
        }
        let mut matches: Vec<HorseMatch> = best.into_values().collect();
        matches.sort_by(|a, b| {
            a.distance
                .total_cmp(&b.distance)
                .then(a.horse_id.cmp(&b.horse_id))
        });
        matches.truncate(k);
        Ok(matches)
    }

    pub async fn insert_alert(&self, a: &NewAlert) -> Result<Alert, SinkError> {
        let inserted = sqlx::query(sql!(
            "INSERT INTO alerts (time_us, stream_id, horse_id, kind, severity, message, dedup_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING \
             RETURNING {ALERT_COLUMNS}"
        ))
        .bind(us(a.time))
        .bind(&a.stream_id)
        .bind(a.horse_id)
        .bind(&a.kind)
        .bind(a.severity.as_str())
        .bind(&a.message)
        .bind(&a.dedup_key)
        .fetch_optional(&self.pool)
        .await;
        let inserted = match inserted {
            Ok(row) => row,
            // SQLite does not name the violated foreign key: find which parent is missing.
            Err(sqlx::Error::Database(db))
                if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
            {
                self.get_stream(&a.stream_id).await?;
                return Err(not_found(
                    "horse",
                    a.horse_id.map_or_else(String::new, |h| h.to_string()),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let row = match inserted {
            Some(row) => row,
            None => {
                sqlx::query(sql!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE dedup_key = ?"
                ))
                .bind(&a.dedup_key)
                .fetch_one(&self.pool)
                .await?
            }
        };
        alert_row(&row)
    }

    pub async fn list_alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, SinkError> {
        sqlx::query(sql!(
            "SELECT {ALERT_COLUMNS} FROM alerts \
             WHERE (?1 IS NULL OR stream_id = ?1) AND (NOT ?2 OR acknowledged_us IS NULL) \
             ORDER BY time_us DESC, id DESC LIMIT ?3"
        ))
        .bind(&q.stream_id)
        .bind(q.unacknowledged_only)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(alert_row)
        .collect()
    }

    pub async fn acknowledge_alert(&self, id: i64, by: &str) -> Result<Alert, SinkError> {
        let row = sqlx::query(sql!(
            "UPDATE alerts SET acknowledged_us = coalesce(acknowledged_us, ?), \
               acknowledged_by = coalesce(acknowledged_by, ?) \
             WHERE id = ? RETURNING {ALERT_COLUMNS}"
        ))
        .bind(us(Utc::now()))
        .bind(by)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| not_found("alert", id))?;
        alert_row(&row)
    }

    pub async fn create_user(&self, u: &NewUser) -> Result<User, SinkError> {
        let row = sqlx::query(sql!(
            "INSERT INTO users (username, password_hash, role, created_us) VALUES (?, ?, ?, ?) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(us(Utc::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "user", &u.username, "user", &u.username))?;
        user_row(&row)
    }

    pub async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, SinkError> {
        sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, SinkError> {
        sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE username = ?"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    pub async fn drop_before(&self, cutoff: DateTime<Utc>) -> Result<RetentionReport, SinkError> {
        let mut report = RetentionReport::default();
        let mut tx = self.begin_write().await?;
        for delete in [
            "DELETE FROM detections WHERE time_us < ?",
            "DELETE FROM gait_metrics WHERE time_us < ?",
            "DELETE FROM video_chunks WHERE end_time_us < ?",
            "DELETE FROM chunk_errors WHERE recorded_us < ?",
        ] {
            let done = sqlx::query(delete)
                .bind(us(cutoff))
                .execute(&mut *tx)
                .await?;
            report.deleted_rows += done.rows_affected();
        }
        tx.commit().await?;
        Ok(report)
    }
}
