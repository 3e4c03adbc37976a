//! TimescaleDB: detections in a hypertable, written with UNNEST batches in one transaction
//! per chunk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use horsestream_proto::{FrameChunk, ProcessedChunk};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use super::checkpoint::{self, StreamCheckpoint};
use super::records::{
    Alert, AlertQuery, GALLERY_LIMIT, GaitRow, Horse, HorseMatch, HorseObservation, HorseSighting,
    NewAlert, NewStream, NewUser, RetentionReport, Role, Severity, Stream, StreamClaims,
    StreamPatch, User, pose_json, read_pose,
};
use super::{
    ChunkErrorRecord, Counters, DetectionRow, FrameRow, StoreStats, bbox_json, check_chunk,
    keypoints_json, layout_frames, not_found, push_bbox_json, push_keypoints_json, sql, time,
};
use crate::SinkError;
use crate::error::classify;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    counters: Arc<Counters>,
    /// `horse_features.embedding`'s dimension, read at connect.
    embedding_dim: Arc<AtomicUsize>,
}

/// Appends `s` escaped for COPY's text format.
fn push_copy_field(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A chunk's detection rows in COPY text format, the same values the UNNEST path binds.
fn copy_text(chunk: &ProcessedChunk, chunk_id: &str) -> String {
    use std::fmt::Write;
    let mut stream_id = String::new();
    push_copy_field(&mut stream_id, &chunk.stream_id);
    let mut escaped_chunk = String::new();
    push_copy_field(&mut escaped_chunk, chunk_id);
    let mut out = String::with_capacity(chunk.detection_count() * 200);
    for f in &chunk.frames {
        let t = time(f.capture_time_us).format("%Y-%m-%d %H:%M:%S%.6f+00");
        for (i, d) in f.detections.iter().enumerate() {
            let _ = write!(
                out,
                "{t}\t{stream_id}\t{escaped_chunk}\t{}\t{i}\t{}\t{}\t{}\t",
                f.index, f.pts_us, d.class_id, d.confidence
            );
            push_bbox_json(&mut out, d);
            match d.track_id {
                Some(k) => {
                    let _ = write!(out, "\t{k}");
                }
                None => out.push_str("\t\\N"),
            }
            if d.keypoints.is_empty() {
                out.push_str("\t\\N");
            } else {
                out.push('\t');
                push_keypoints_json(&mut out, d);
            }
            out.push_str(if d.interpolated { "\tt\n" } else { "\tf\n" });
        }
    }
    out
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let embedding_dim = Arc::new(AtomicUsize::new(Self::column_dim(&pool).await?));
        Ok(PgStore {
            pool,
            counters: Arc::default(),
            embedding_dim,
        })
    }

    /// The dimension in `horse_features.embedding`'s type (pgvector keeps it as the typmod).
    async fn column_dim(pool: &PgPool) -> Result<usize, SinkError> {
        let (typmod,): (i32,) = sqlx::query_as(
            "SELECT atttypmod FROM pg_attribute \
             WHERE attrelid = 'horse_features'::regclass AND attname = 'embedding'",
        )
        .fetch_one(pool)
        .await?;
        usize::try_from(typmod).map_err(|_| SinkError::Invalid {
            what: "horse_features.embedding",
            reason: format!("the column has no dimension (typmod {typmod})"),
        })
    }

    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim.load(Ordering::Relaxed)
    }

    /// Empties the gallery and retypes its column, index included, in one transaction; the
    /// table lock keeps writers out until it commits.
    pub async fn migrate_gallery(&self, dim: usize) -> Result<u64, SinkError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE horse_features IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let (removed,): (i64,) = sqlx::query_as("SELECT count(*) FROM horse_features")
            .fetch_one(&mut *tx)
            .await?;
        for statement in [
            sql!("DROP INDEX IF EXISTS horse_features_embedding_hnsw"),
            sql!("TRUNCATE horse_features"),
            sql!("ALTER TABLE horse_features ALTER COLUMN embedding TYPE vector({dim})"),
            sql!(
                "CREATE INDEX horse_features_embedding_hnsw \
                 ON horse_features USING hnsw (embedding vector_cosine_ops)"
            ),
        ] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.embedding_dim.store(dim, Ordering::Relaxed);
        Ok(removed as u64)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Writes a chunk exactly once. Its `video_chunks` row goes first and is the gate: when
    /// the row is new (the usual case) the detections are streamed with `COPY`; when it exists
    /// the chunk was committed before (a retry, restart or replay) and only `processed_at`
    /// moves (`stored_at` keeps the first commit). Two writers of one chunk serialise on that row. Should detection keys exist
    /// without their chunk row (retention removed the row, not yet the hypertable chunk), the
    /// `COPY` meets a unique violation and the chunk is written again row by row with
    /// `ON CONFLICT DO NOTHING`.
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
        match self.write_chunk_copy(chunk, checkpoint).await {
            Err(SinkError::Database(sqlx::Error::Database(db)))
                if db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
            {
                tracing::warn!(chunk = %chunk.chunk_id(), error = %db,
                               "detections already stored without their chunk row, merging");
                self.write_chunk_merge(chunk, checkpoint).await
            }
            other => other,
        }
    }

    async fn write_chunk_copy(
        &self,
        chunk: &ProcessedChunk,
        checkpoint: Option<&StreamCheckpoint>,
    ) -> Result<(), SinkError> {
        let chunk_id = chunk.chunk_id();
        let mut tx = self.pool.begin().await?;
        // The chunk row goes in (or turns from 'ingested' to 'processed') only for a
        // registered stream; no row back means either that the stream is unknown or that the
        // chunk is stored already (told apart below, off the common path).
        let fresh: Option<(i32,)> = sqlx::query_as(
            "INSERT INTO video_chunks \
               (chunk_id, stream_id, sequence, start_time, end_time, frames, detections, status, \
                processed_at, stored_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, 'processed', now(), now() \
             WHERE EXISTS (SELECT 1 FROM streams WHERE id = $2) \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'processed', \
               frames = EXCLUDED.frames, detections = EXCLUDED.detections, \
               processed_at = now(), stored_at = now() \
             WHERE video_chunks.status <> 'processed' RETURNING 1",
        )
        .bind(&chunk_id)
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(time(chunk.stream_start_time_us + chunk.start_pts_us))
        .bind(time(chunk.stream_start_time_us + chunk.end_pts_us))
        .bind(chunk.frames.len() as i32)
        .bind(chunk.detection_count() as i32)
        .fetch_optional(&mut *tx)
        .await?;
        if fresh.is_none() {
            let (known,): (bool,) =
                sqlx::query_as("SELECT EXISTS (SELECT 1 FROM streams WHERE id = $1)")
                    .bind(&chunk.stream_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if !known {
                return Err(not_found("stream", &chunk.stream_id));
            }
            sqlx::query(
                "UPDATE video_chunks SET status = 'processed', processed_at = now() \
                 WHERE chunk_id = $1",
            )
            .bind(&chunk_id)
            .execute(&mut *tx)
            .await?;
        } else if chunk.detection_count() > 0 {
            let mut copy = tx
                .copy_in_raw(
                    "COPY detections (time, stream_id, chunk_id, frame_index, det_index, pts_us, \
                     class_id, confidence, bbox, track_id, keypoints, interpolated) FROM STDIN",
                )
                .await?;
            copy.send(copy_text(chunk, &chunk_id).into_bytes()).await?;
            copy.finish().await?;
        }
        if let Some(c) = checkpoint {
            checkpoint::put_pg(&mut tx, &chunk.stream_id, chunk.sequence, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_chunk_merge(
        &self,
        chunk: &ProcessedChunk,
        checkpoint: Option<&StreamCheckpoint>,
    ) -> Result<(), SinkError> {
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
        let mut keypoints = Vec::with_capacity(n);
        let mut interpolated = Vec::with_capacity(n);
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
                keypoints.push(keypoints_json(d));
                interpolated.push(d.interpolated);
            }
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO detections \
               (time, stream_id, chunk_id, frame_index, det_index, pts_us, class_id, confidence, bbox, \
                track_id, keypoints, interpolated) \
             SELECT t, $2, $3, f, d, p, c, s, b::jsonb, k, kp::jsonb, i \
             FROM UNNEST($1::timestamptz[], $4::int[], $5::int[], $6::bigint[], $7::int[], \
                         $8::real[], $9::text[], $10::bigint[], $11::text[], $12::boolean[]) \
                  AS u(t, f, d, p, c, s, b, k, kp, i) \
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
        .bind(&keypoints)
        .bind(&interpolated)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO video_chunks \
               (chunk_id, stream_id, sequence, start_time, end_time, frames, detections, status, \
              processed_at, stored_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'processed', now(), now()) \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'processed', processed_at = now(), \
               frames = EXCLUDED.frames, detections = EXCLUDED.detections, \
               stored_at = coalesce(video_chunks.stored_at, now())",
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
        if let Some(c) = checkpoint {
            checkpoint::put_pg(&mut tx, &chunk.stream_id, chunk.sequence, c).await?;
        }
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
        let (chunks, frames): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), sum(frames)::bigint FROM video_chunks WHERE status = 'processed'",
        )
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
            "SELECT chunk_id, frames FROM video_chunks WHERE stream_id = $1 AND status = 'processed' \
             ORDER BY sequence",
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

const STREAM_COLUMNS: &str = "id, name, source_url, source_kind, status, \
     credentials_secret IS NOT NULL AS has_credentials, calibration, zones, alert_rules, enabled, \
     created_at, updated_at";
const HORSE_COLUMNS: &str = "id, stream_id, display_name, colour, first_seen, last_seen, track_ids";
const ALERT_COLUMNS: &str = "id, time, stream_id, horse_id, kind, severity, message, dedup_key, \
     acknowledged_at, acknowledged_by";
const USER_COLUMNS: &str = "id, username, password_hash, role, created_at";

fn json_err(what: &'static str, e: serde_json::Error) -> SinkError {
    SinkError::Invalid {
        what,
        reason: e.to_string(),
    }
}

fn stream_row(r: &PgRow) -> Result<Stream, SinkError> {
    let calibration: Option<serde_json::Value> = r.try_get("calibration")?;
    let zones: serde_json::Value = r.try_get("zones")?;
    let alert_rules: Option<serde_json::Value> = r.try_get("alert_rules")?;
    Ok(Stream {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        source_url: r.try_get("source_url")?,
        source_kind: r.try_get("source_kind")?,
        status: r.try_get("status")?,
        has_credentials: r.try_get("has_credentials")?,
        calibration: calibration
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| json_err("stored calibration", e))?,
        zones: serde_json::from_value(zones).map_err(|e| json_err("stored zones", e))?,
        alert_rules: alert_rules
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| json_err("stored alert rules", e))?
            .unwrap_or_default(),
        enabled: r.try_get("enabled")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn horse_row(r: &PgRow) -> Result<Horse, SinkError> {
    Ok(Horse {
        id: r.try_get("id")?,
        stream_id: r.try_get("stream_id")?,
        display_name: r.try_get("display_name")?,
        colour: r.try_get("colour")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        track_ids: r.try_get("track_ids")?,
    })
}

fn alert_row(r: &PgRow) -> Result<Alert, SinkError> {
    let severity: String = r.try_get("severity")?;
    Ok(Alert {
        id: r.try_get("id")?,
        time: r.try_get("time")?,
        stream_id: r.try_get("stream_id")?,
        horse_id: r.try_get("horse_id")?,
        kind: r.try_get("kind")?,
        severity: Severity::parse(&severity)?,
        message: r.try_get("message")?,
        dedup_key: r.try_get("dedup_key")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
    })
}

fn user_row(r: &PgRow) -> Result<User, SinkError> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: Role::parse(&role)?,
        created_at: r.try_get("created_at")?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl PgStore {
    pub async fn create_stream(&self, new: &NewStream) -> Result<Stream, SinkError> {
        let row = sqlx::query(sql!(
            "INSERT INTO streams (id, name, source_url, source_kind, credentials_secret, \
               calibration, zones, enabled) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {STREAM_COLUMNS}"
        ))
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.source_url)
        .bind(&new.source_kind)
        .bind(&new.credentials_secret)
        .bind(new.calibration.as_ref().map(to_json))
        .bind(to_json(&new.zones))
        .bind(new.enabled)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "stream", &new.id, "stream", &new.id))?;
        stream_row(&row)
    }

    pub async fn get_stream(&self, id: &str) -> Result<Stream, SinkError> {
        let row = sqlx::query(sql!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = $1"))
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(sql!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| not_found("stream", id))?;
        let mut s = stream_row(&row)?;
        patch.apply(&mut s);
        let row = sqlx::query(sql!(
            "UPDATE streams SET name = $2, source_url = $3, source_kind = $4, status = $5, \
               calibration = $6, zones = $7, enabled = $8, \
               credentials_secret = CASE WHEN $9 THEN $10 ELSE credentials_secret END, \
               alert_rules = $11, updated_at = greatest(now(), updated_at) \
             WHERE id = $1 RETURNING {STREAM_COLUMNS}"
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
        .bind(to_json(&s.alert_rules))
        .fetch_one(&mut *tx)
        .await?;
        let s = stream_row(&row)?;
        tx.commit().await?;
        Ok(s)
    }

    pub async fn report_stream_status(&self, id: &str, status: &str) -> Result<bool, SinkError> {
        let done = sqlx::query(
            "UPDATE streams SET status = $2, updated_at = greatest(now(), updated_at) \
             WHERE id = $1 AND (enabled OR $2 = 'stopped') AND status IS DISTINCT FROM $2",
        )
        .bind(id)
        .bind(status)
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
        let lease = lease.as_secs_f64();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE streams SET ingest_owner = NULL, ingest_lease_until = NULL \
             WHERE ingest_owner = $1 AND (NOT enabled OR status = 'ended')",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        let (held,): (i64,) = sqlx::query_as(
            "WITH renewed AS ( \
               UPDATE streams SET ingest_lease_until = now() + make_interval(secs => $2) \
               WHERE ingest_owner = $1 AND enabled RETURNING 1) \
             SELECT count(*) FROM renewed",
        )
        .bind(owner)
        .bind(lease)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE streams SET ingest_owner = $1, \
               ingest_lease_until = now() + make_interval(secs => $2) \
             WHERE id IN (SELECT id FROM streams \
               WHERE enabled AND status <> 'ended' \
                 AND (ingest_owner IS NULL OR ingest_lease_until < now()) \
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)",
        )
        .bind(owner)
        .bind(lease)
        .bind((max - held).max(0))
        .execute(&mut *tx)
        .await?;
        let owned: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM streams WHERE ingest_owner = $1 AND enabled ORDER BY id",
        )
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM streams \
             WHERE enabled AND status <> 'ended' \
               AND (ingest_owner IS NULL OR ingest_lease_until < now())",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StreamClaims {
            owned: owned.into_iter().map(|(id,)| id).collect(),
            pending: pending as u64,
        })
    }

    pub async fn release_streams(&self, owner: &str, ids: &[String]) -> Result<(), SinkError> {
        sqlx::query(
            "UPDATE streams SET ingest_owner = NULL, ingest_lease_until = NULL \
             WHERE ingest_owner = $1 AND id = ANY($2)",
        )
        .bind(owner)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_degraded(&self, chunk: &ProcessedChunk) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO video_chunks \
               (chunk_id, stream_id, sequence, start_time, end_time, frames, detections, status) \
             SELECT $1, $2, $3, $4, $5, $6, 0, 'degraded' \
             WHERE EXISTS (SELECT 1 FROM streams WHERE id = $2) \
             ON CONFLICT (chunk_id) DO UPDATE SET status = 'degraded', frames = EXCLUDED.frames \
             WHERE video_chunks.status <> 'processed'",
        )
        .bind(chunk.chunk_id())
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(time(chunk.stream_start_time_us + chunk.start_pts_us))
        .bind(time(chunk.stream_start_time_us + chunk.end_pts_us))
        .bind(chunk.frames.len() as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_ingested(&self, chunk: &FrameChunk) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO video_chunks \
               (chunk_id, stream_id, sequence, start_time, end_time, frames, detections, status, \
                ingested_at) \
             SELECT $1, $2, $3, $4, $5, $6, 0, 'ingested', now() \
             WHERE EXISTS (SELECT 1 FROM streams WHERE id = $2) \
             ON CONFLICT (chunk_id) DO UPDATE \
               SET ingested_at = coalesce(video_chunks.ingested_at, now())",
        )
        .bind(chunk.chunk_id())
        .bind(&chunk.stream_id)
        .bind(chunk.sequence as i64)
        .bind(time(chunk.stream_start_time_us + chunk.start_pts_us))
        .bind(time(chunk.stream_start_time_us + chunk.end_pts_us))
        .bind(chunk.frames.len() as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn last_chunk_sequence(&self, stream_id: &str) -> Result<Option<u64>, SinkError> {
        let (last,): (Option<i64>,) =
            sqlx::query_as("SELECT max(sequence) FROM video_chunks WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(last.map(|q| q as u64))
    }

    pub async fn chunk_statuses(&self, stream_id: &str) -> Result<Vec<(u64, String)>, SinkError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT sequence, status FROM video_chunks WHERE stream_id = $1 ORDER BY sequence",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(q, s)| (q as u64, s)).collect())
    }

    pub async fn delete_stream(&self, id: &str) -> Result<(), SinkError> {
        let done = sqlx::query("DELETE FROM streams WHERE id = $1")
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
            sqlx::query_as("SELECT credentials_secret FROM streams WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("stream", id))?;
        Ok(secret)
    }

    pub(crate) async fn write_gait(&self, rows: &[&GaitRow]) -> Result<(), SinkError> {
        let mut streams: Vec<&str> = rows.iter().map(|r| r.stream_id.as_str()).collect();
        streams.dedup();
        let mut tx = self.pool.begin().await?;
        let known: Vec<(String,)> = sqlx::query_as("SELECT id FROM streams WHERE id = ANY($1)")
            .bind(&streams)
            .fetch_all(&mut *tx)
            .await?;
        if let Some(missing) = streams.iter().find(|s| !known.iter().any(|(k,)| k == *s)) {
            return Err(not_found("stream", missing));
        }
        sqlx::query(
            "INSERT INTO gait_metrics (time, stream_id, track_id, horse_id, speed, acceleration, \
               unit, stride_hz, gait_class, distance, pose) \
             SELECT u.t, u.s, u.tr, u.h, u.sp, u.a, u.un, u.st, u.g, u.d, u.p::jsonb \
             FROM UNNEST($1::timestamptz[], $2::text[], $3::bigint[], $4::bigint[], \
               $5::float8[], $6::float8[], $7::text[], $8::float8[], $9::text[], $10::float8[], \
               $11::text[]) AS u(t, s, tr, h, sp, a, un, st, g, d, p) \
             ON CONFLICT (stream_id, track_id, time) DO UPDATE SET \
               horse_id = coalesce(EXCLUDED.horse_id, gait_metrics.horse_id), \
               speed = EXCLUDED.speed, acceleration = EXCLUDED.acceleration, \
               unit = EXCLUDED.unit, stride_hz = EXCLUDED.stride_hz, \
               gait_class = EXCLUDED.gait_class, distance = EXCLUDED.distance, \
               pose = EXCLUDED.pose",
        )
        .bind(rows.iter().map(|r| r.time).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.stream_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.track_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.horse_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.speed).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.acceleration).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.unit.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.stride_hz).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.gait_class.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.distance).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.pose.as_ref().map(pose_json))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn gait(&self, stream_id: &str) -> Result<Vec<GaitRow>, SinkError> {
        let rows = sqlx::query(
            "SELECT time, stream_id, track_id, horse_id, speed, acceleration, unit, stride_hz, \
               gait_class, distance, pose::text AS pose FROM gait_metrics WHERE stream_id = $1 \
             ORDER BY track_id, time",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GaitRow {
                    time: r.try_get("time")?,
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
        let row = match s.horse_id {
            Some(id) => sqlx::query(sql!(
                "UPDATE horses SET first_seen = least(first_seen, $3), \
                   last_seen = greatest(last_seen, $3), colour = coalesce($4, colour), \
                   track_ids = CASE WHEN $5::bigint IS NULL OR $5 = ANY(track_ids) \
                                    THEN track_ids ELSE track_ids || $5::bigint END \
                 WHERE id = $1 AND stream_id = $2 RETURNING {HORSE_COLUMNS}"
            ))
            .bind(id)
            .bind(&s.stream_id)
            .bind(s.time)
            .bind(&s.colour)
            .bind(s.track_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("horse", id))?,
            None => {
                let mut tx = self.pool.begin().await?;
                // Serialises new horses of one stream, so Horse_N numbers are not raced.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('horses:' || $1))")
                    .bind(&s.stream_id)
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(sql!(
                    "INSERT INTO horses (stream_id, number, display_name, colour, first_seen, \
                       last_seen, track_ids) \
                     SELECT $1, coalesce(max(number), 0) + 1, \
                            'Horse_' || (coalesce(max(number), 0) + 1), \
                            $2, $3, $3, \
                            CASE WHEN $4::bigint IS NULL THEN '{{}}'::bigint[] \
                                 ELSE ARRAY[$4::bigint] END \
                     FROM horses WHERE stream_id = $1 RETURNING {HORSE_COLUMNS}"
                ))
                .bind(&s.stream_id)
                .bind(&s.colour)
                .bind(s.time)
                .bind(s.track_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| classify(e, "horse", &s.stream_id, "stream", &s.stream_id))?;
                tx.commit().await?;
                row
            }
        };
        horse_row(&row)
    }

    pub async fn get_horse(&self, id: i64) -> Result<Horse, SinkError> {
        let row = sqlx::query(sql!("SELECT {HORSE_COLUMNS} FROM horses WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("horse", id))?;
        horse_row(&row)
    }

    pub async fn list_horses(&self, stream_id: &str) -> Result<Vec<Horse>, SinkError> {
        sqlx::query(sql!(
            "SELECT {HORSE_COLUMNS} FROM horses WHERE stream_id = $1 ORDER BY last_seen DESC, id"
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
        let (stream_id,): (String,) = sqlx::query_as("SELECT stream_id FROM horses WHERE id = $1")
            .bind(horse_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("horse", horse_id))?;
        sqlx::query(
            "INSERT INTO horse_features (horse_id, stream_id, time, embedding) \
             VALUES ($1, $2, $3, $4::real[]::vector) ON CONFLICT (horse_id, time) DO NOTHING",
        )
        .bind(horse_id)
        .bind(&stream_id)
        .bind(time)
        .bind(embedding)
        .execute(&self.pool)
        .await
        .map_err(|e| classify(e, "horse feature", "", "horse", &horse_id.to_string()))?;
        sqlx::query(
            "DELETE FROM horse_features WHERE horse_id = $1 AND id NOT IN \
               (SELECT id FROM horse_features WHERE horse_id = $1 ORDER BY time DESC LIMIT $2)",
        )
        .bind(horse_id)
        .bind(GALLERY_LIMIT)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn observe_horse(&self, o: &HorseObservation) -> Result<Horse, SinkError> {
        let mut tracks = o.track_ids.clone();
        tracks.sort_unstable();
        tracks.dedup();
        let row = sqlx::query(sql!(
            "INSERT INTO horses (stream_id, number, display_name, first_seen, last_seen, track_ids) \
             VALUES ($1, $2, 'Horse_' || $2, $3, $4, $5) \
             ON CONFLICT (stream_id, number) DO UPDATE SET \
               first_seen = least(horses.first_seen, EXCLUDED.first_seen), \
               last_seen = greatest(horses.last_seen, EXCLUDED.last_seen), \
               track_ids = (SELECT coalesce(array_agg(DISTINCT t ORDER BY t), '{{}}') \
                            FROM unnest(horses.track_ids || EXCLUDED.track_ids) AS t) \
             RETURNING {HORSE_COLUMNS}"
        ))
        .bind(&o.stream_id)
        .bind(o.number as i32)
        .bind(o.first_seen)
        .bind(o.last_seen)
        .bind(&tracks)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "horse", &format!("Horse_{}", o.number), "stream", &o.stream_id))?;
        horse_row(&row)
    }

    pub async fn nearest_horse(
        &self,
        stream_id: &str,
        embedding: &[f32],
        k: usize,
    ) -> Result<Vec<HorseMatch>, SinkError> {
        // The hnsw index yields the closest gallery entries of every stream; iterative scans
        // (pgvector 0.8) keep reading until enough belong to this stream.
        let candidates = (k * 8).clamp(40, 1000) as i64;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql!("SET LOCAL hnsw.ef_search = {candidates}"))
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(i64, String, f64)> = sqlx::query_as(
            "SELECT h.id, h.display_name, m.d FROM \
               (SELECT horse_id, min(d) AS d FROM \
                  (SELECT horse_id, embedding <=> $1::real[]::vector AS d FROM horse_features \
                   WHERE stream_id = $2 ORDER BY embedding <=> $1::real[]::vector LIMIT $3) c \
                GROUP BY horse_id) m \
             JOIN horses h ON h.id = m.horse_id ORDER BY m.d, h.id LIMIT $4",
        )
        .bind(embedding)
        .bind(stream_id)
        .bind(candidates)
        .bind(k as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(horse_id, display_name, distance)| HorseMatch {
                horse_id,
                display_name,
                distance,
            })
            .collect())
    }

    pub async fn insert_alert(&self, a: &NewAlert) -> Result<Alert, SinkError> {
        let inserted = sqlx::query(sql!(
            "INSERT INTO alerts (time, stream_id, horse_id, kind, severity, message, dedup_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING \
             RETURNING {ALERT_COLUMNS}"
        ))
        .bind(a.time)
        .bind(&a.stream_id)
        .bind(a.horse_id)
        .bind(&a.kind)
        .bind(a.severity.as_str())
        .bind(&a.message)
        .bind(&a.dedup_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| alert_parent(e, a))?;
        let row = match inserted {
            Some(row) => row,
            None => {
                sqlx::query(sql!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE dedup_key = $1"
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
             WHERE ($1::text IS NULL OR stream_id = $1) AND (NOT $2 OR acknowledged_at IS NULL) \
             ORDER BY time DESC, id DESC LIMIT $3"
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
            "UPDATE alerts SET acknowledged_at = coalesce(acknowledged_at, now()), \
               acknowledged_by = coalesce(acknowledged_by, $2) \
             WHERE id = $1 RETURNING {ALERT_COLUMNS}"
        ))
        .bind(id)
        .bind(by)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| not_found("alert", id))?;
        alert_row(&row)
    }

    pub async fn create_user(&self, u: &NewUser) -> Result<User, SinkError> {
        let row = sqlx::query(sql!(
            "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| classify(e, "user", &u.username, "user", &u.username))?;
        user_row(&row)
    }

    pub async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, SinkError> {
        sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, SinkError> {
        sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    pub async fn drop_before(&self, cutoff: DateTime<Utc>) -> Result<RetentionReport, SinkError> {
        let mut report = RetentionReport::default();
        for table in ["detections", "gait_metrics"] {
            let (n,): (i64,) = sqlx::query_as(sql!(
                "SELECT count(*) FROM drop_chunks('{table}', older_than => $1::timestamptz)"
            ))
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await?;
            report.dropped_chunks += n as u64;
        }
        for delete in [
            "DELETE FROM video_chunks WHERE end_time < $1",
            "DELETE FROM chunk_errors WHERE recorded_at < $1",
        ] {
            let done = sqlx::query(delete).bind(cutoff).execute(&self.pool).await?;
            report.deleted_rows += done.rows_affected();
        }
        Ok(report)
    }
}

/// An alert naming an unknown stream or horse.
fn alert_parent(e: sqlx::Error, a: &NewAlert) -> SinkError {
    let horse = matches!(&e, sqlx::Error::Database(db)
        if db.constraint().is_some_and(|c| c.contains("horse")));
    match (horse, a.horse_id) {
        (true, Some(h)) => classify(e, "alert", "", "horse", &h.to_string()),
        _ => classify(e, "alert", "", "stream", &a.stream_id),
    }
}

#[cfg(test)]
mod tests {
    use horsestream_proto::{BoundingBox, Detection, FrameResult};

    use super::*;

    #[test]
    fn copy_text_escapes_ids_and_writes_one_line_per_detection() {
        let d = Detection {
            frame_index: 2,
            pts_us: 200_000,
            class_id: 17,
            confidence: 0.5,
            bbox: BoundingBox {
                x: 1.5,
                y: 2.0,
                w: 3.0,
                h: 4.0,
            },
            track_id: None,
            keypoints: Vec::new(),
            interpolated: false,
            candidate: false,
        };
        let chunk = ProcessedChunk {
            stream_id: "a\tb\\c".into(),
            sequence: 3,
            start_pts_us: 0,
            end_pts_us: 1,
            stream_start_time_us: 0,
            frame_width: 0,
            frame_height: 0,
            frames: vec![FrameResult {
                index: 2,
                pts_us: 200_000,
                capture_time_us: 1_700_000_000_123_456,
                detections: vec![
                    d.clone(),
                    Detection {
                        track_id: Some(9),
                        keypoints: vec![horsestream_proto::Keypoint {
                            x: 7.5,
                            y: -2.0,
                            score: 0.25,
                        }],
                        interpolated: true,
                        ..d
                    },
                ],
                embeddings: Vec::new(),
            }],
        };
        let text = copy_text(&chunk, &chunk.chunk_id());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let fields: Vec<&str> = lines[0].split('\t').collect();
        assert_eq!(fields.len(), 12, "{fields:?}");
        assert_eq!(fields[0], "2023-11-14 22:13:20.123456+00");
        assert_eq!(fields[1], "a\\tb\\\\c");
        assert_eq!(fields[2], "a\\tb\\\\c:3");
        assert_eq!(&fields[3..8], ["2", "0", "200000", "17", "0.5"]);
        let bbox: serde_json::Value = serde_json::from_str(fields[8]).unwrap();
        assert_eq!(bbox["x"], 1.5);
        assert_eq!(
            &fields[9..],
            ["\\N", "\\N", "f"],
            "no track, no pose, detected"
        );
        assert!(
            lines[1].ends_with("\t9\t[[7.5,-2.0,0.25]]\tt"),
            "{}",
            lines[1]
        );
    }
}
