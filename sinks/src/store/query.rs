//! What the API reads beyond the writers' methods: detections by time with keyset pagination,
//! detections by frame PTS (the playback overlay),
//! a horse's gait history, horse renames, users by id, and the model catalogue (`models`,
//! `stream_models`). Same methods on both backends, dispatched by [`Store`].

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::records::{GaitRow, Horse, User};
use super::{PgStore, SqliteStore, Store, dispatch, not_found, time};
use crate::SinkError;
use crate::error::classify;

/// Where a page of detections resumes: the last row's key in the stable order
/// `(time, chunk_id, frame_index, det_index)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionKey {
    pub time: DateTime<Utc>,
    pub chunk_id: String,
    pub frame_index: i32,
    pub det_index: i32,
}

/// One stream's detections in `[from, to)`, after `after`, at most `limit`, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionQuery {
    pub stream_id: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: Option<DetectionKey>,
    pub limit: i64,
}

/// A detection row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDetection {
    pub time: DateTime<Utc>,
    pub stream_id: String,
    pub chunk_id: String,
    pub frame_index: i32,
    pub det_index: i32,
    pub pts_us: i64,
    pub class_id: i32,
    pub confidence: f32,
    /// `{"x","y","w","h","confidence"}` in source pixels.
    pub bbox: serde_json::Value,
    pub horse_id: Option<i64>,
    pub track_id: Option<i64>,
    /// The pose, `[x, y, score]` per keypoint in source pixels (the pose model's keypoint
    /// order); empty when pose was off for the stream.
    pub keypoints: Vec<[f32; 3]>,
    /// Not found by the detector: the track's box interpolated over a missed frame.
    pub interpolated: bool,
}

impl StoredDetection {
    pub fn key(&self) -> DetectionKey {
        DetectionKey {
            time: self.time,
            chunk_id: self.chunk_id.clone(),
            frame_index: self.frame_index,
            det_index: self.det_index,
        }
    }
}

/// A row of the `models` table: a model file installed in the model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub name: String,
    pub task: String,
    pub file: String,
    /// Lower-case hex sha256 of the installed file.
    pub sha256: String,
    pub active: bool,
}

const GAIT_COLUMNS_PG: &str = "time, stream_id, track_id, horse_id, speed, acceleration, unit, \
                               stride_hz, gait_class, distance, pose::text AS pose";
const GAIT_COLUMNS_SQLITE: &str = "time_us, stream_id, track_id, horse_id, speed, acceleration, \
                                   unit, stride_hz, gait_class, distance, pose";

/// A `GaitRow` from a row of either backend, its time already read.
macro_rules! gait_row {
    ($r:expr, $t:expr) => {
        GaitRow {
            time: $t,
            stream_id: $r.try_get("stream_id")?,
            track_id: $r.try_get("track_id")?,
            horse_id: $r.try_get("horse_id")?,
            speed: $r.try_get("speed")?,
            acceleration: $r.try_get("acceleration")?,
            unit: $r.try_get("unit")?,
            stride_hz: $r.try_get("stride_hz")?,
            gait_class: $r.try_get("gait_class")?,
            distance: $r.try_get("distance")?,
            pose: crate::store::records::read_pose($r.try_get("pose")?)?,
        }
    };
}

impl PgStore {
    pub(super) async fn detections(
        &self,
        q: &DetectionQuery,
    ) -> Result<Vec<StoredDetection>, SinkError> {
        let (a_time, a_chunk, a_frame, a_det) = match &q.after {
            Some(k) => (
                Some(k.time),
                Some(k.chunk_id.as_str()),
                Some(k.frame_index),
                Some(k.det_index),
            ),
            None => (None, None, None, None),
        };
        let rows = sqlx::query(
            "SELECT time, stream_id, chunk_id, frame_index, det_index, pts_us, class_id, \
               confidence, bbox, horse_id, track_id, keypoints, interpolated FROM detections \
             WHERE stream_id = $1 \
               AND ($2::timestamptz IS NULL OR time >= $2) \
               AND ($3::timestamptz IS NULL OR time < $3) \
               AND ($4::timestamptz IS NULL \
                    OR (time, chunk_id, frame_index, det_index) > ($4, $5::text, $6::int, $7::int)) \
             ORDER BY time, chunk_id, frame_index, det_index LIMIT $8",
        )
        .bind(&q.stream_id)
        .bind(q.from)
        .bind(q.to)
        .bind(a_time)
        .bind(a_chunk)
        .bind(a_frame)
        .bind(a_det)
        .bind(q.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(pg_detection).collect()
    }

    pub(super) async fn detections_by_pts(
        &self,
        stream_id: &str,
        pts: std::ops::Range<i64>,
        limit: i64,
    ) -> Result<Vec<StoredDetection>, SinkError> {
        let rows = sqlx::query(
            "SELECT time, stream_id, chunk_id, frame_index, det_index, pts_us, class_id, \
               confidence, bbox, horse_id, track_id, keypoints, interpolated FROM detections \
             WHERE stream_id = $1 AND pts_us >= $2 AND pts_us < $3 \
             ORDER BY pts_us, time DESC, det_index LIMIT $4",
        )
        .bind(stream_id)
        .bind(pts.start)
        .bind(pts.end)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(pg_detection).collect()
    }

    pub(super) async fn rename_horse(&self, id: i64, name: &str) -> Result<(), SinkError> {
        let done = sqlx::query("UPDATE horses SET display_name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(|e| classify(e, "horse name", name, "horse", &id.to_string()))?;
        if done.rows_affected() == 0 {
            return Err(not_found("horse", id));
        }
        Ok(())
    }

    pub(super) async fn horse_gait(
        &self,
        horse: &Horse,
        limit: i64,
    ) -> Result<Vec<GaitRow>, SinkError> {
        let rows = sqlx::query(super::sql!(
            "SELECT {GAIT_COLUMNS_PG} FROM ( \
               SELECT {GAIT_COLUMNS_PG} FROM gait_metrics \
               WHERE stream_id = $1 \
                 AND (horse_id = $2 OR (horse_id IS NULL AND track_id = ANY($3))) \
               ORDER BY time DESC, track_id DESC LIMIT $4) AS newest \
             ORDER BY time, track_id"
        ))
        .bind(&horse.stream_id)
        .bind(horse.id)
        .bind(&horse.track_ids)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(gait_row!(r, r.try_get("time")?)))
            .collect()
    }

    pub(super) async fn upsert_model(&self, m: &ModelRow) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO models (name, task, file, sha256, active) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET task = $2, file = $3, sha256 = $4",
        )
        .bind(&m.name)
        .bind(&m.task)
        .bind(&m.file)
        .bind(&m.sha256)
        .bind(m.active)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn list_models(&self) -> Result<Vec<ModelRow>, SinkError> {
        let rows: Vec<(String, String, String, String, bool)> =
            sqlx::query_as("SELECT name, task, file, sha256, active FROM models ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(model_row).collect())
    }

    pub(super) async fn stream_models(&self) -> Result<Vec<(String, String)>, SinkError> {
        Ok(sqlx::query_as(
            "SELECT stream_id, model_name FROM stream_models ORDER BY stream_id, model_name",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub(super) async fn activate_model(
        &self,
        stream_id: &str,
        model: &str,
    ) -> Result<(), SinkError> {
        let mut tx = self.pool().begin().await?;
        let task: Option<(String,)> = sqlx::query_as("SELECT task FROM models WHERE name = $1")
            .bind(model)
            .fetch_optional(&mut *tx)
            .await?;
        let (task,) = task.ok_or_else(|| not_found("model", model))?;
        sqlx::query(
            "DELETE FROM stream_models WHERE stream_id = $1 AND model_name IN \
               (SELECT name FROM models WHERE task = $2)",
        )
        .bind(stream_id)
        .bind(&task)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO stream_models (stream_id, model_name) VALUES ($1, $2)")
            .bind(stream_id)
            .bind(model)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, "stream model", model, "stream", stream_id))?;
        tx.commit().await?;
        Ok(())
    }
}

fn model_row(
    (name, task, file, sha256, active): (String, String, String, String, bool),
) -> ModelRow {
    ModelRow {
        name,
        task,
        file,
        sha256,
        active,
    }
}

/// A `detections` row of TimescaleDB, selected with the columns of [`StoredDetection`].
fn pg_detection(r: &sqlx::postgres::PgRow) -> Result<StoredDetection, SinkError> {
    Ok(StoredDetection {
        time: r.try_get("time")?,
        stream_id: r.try_get("stream_id")?,
        chunk_id: r.try_get("chunk_id")?,
        frame_index: r.try_get("frame_index")?,
        det_index: r.try_get("det_index")?,
        pts_us: r.try_get("pts_us")?,
        class_id: r.try_get("class_id")?,
        confidence: r.try_get("confidence")?,
        bbox: r.try_get("bbox")?,
        horse_id: r.try_get("horse_id")?,
        track_id: r.try_get("track_id")?,
        keypoints: super::keypoints_from_json(r.try_get("keypoints")?)?,
        interpolated: r.try_get("interpolated")?,
    })
}

/// A `detections` row of the embedded store (µs times, text JSON, double confidence).
fn sqlite_detection(r: &sqlx::sqlite::SqliteRow) -> Result<StoredDetection, SinkError> {
    let bbox: String = r.try_get("bbox")?;
    let keypoints: Option<String> = r.try_get("keypoints")?;
    let confidence: f64 = r.try_get("confidence")?;
    Ok(StoredDetection {
        time: time(r.try_get("time_us")?),
        stream_id: r.try_get("stream_id")?,
        chunk_id: r.try_get("chunk_id")?,
        frame_index: r.try_get("frame_index")?,
        det_index: r.try_get("det_index")?,
        pts_us: r.try_get("pts_us")?,
        class_id: r.try_get("class_id")?,
        confidence: confidence as f32,
        bbox: serde_json::from_str(&bbox).map_err(|e| SinkError::Invalid {
            what: "stored bbox",
            reason: e.to_string(),
        })?,
        horse_id: r.try_get("horse_id")?,
        track_id: r.try_get("track_id")?,
        keypoints: super::keypoints_from_json(
            keypoints
                .map(|k| serde_json::from_str(&k))
                .transpose()
                .map_err(|e| SinkError::Invalid {
                    what: "stored keypoints",
                    reason: e.to_string(),
                })?,
        )?,
        interpolated: r.try_get("interpolated")?,
    })
}

impl SqliteStore {
    pub(super) async fn detections(
        &self,
        q: &DetectionQuery,
    ) -> Result<Vec<StoredDetection>, SinkError> {
        let (a_time, a_chunk, a_frame, a_det) = match &q.after {
            Some(k) => (
                Some(k.time.timestamp_micros()),
                Some(k.chunk_id.as_str()),
                Some(k.frame_index),
                Some(k.det_index),
            ),
            None => (None, None, None, None),
        };
        let rows = sqlx::query(
            "SELECT time_us, stream_id, chunk_id, frame_index, det_index, pts_us, class_id, \
               confidence, bbox, horse_id, track_id, keypoints, interpolated FROM detections \
             WHERE stream_id = ?1 \
               AND (?2 IS NULL OR time_us >= ?2) \
               AND (?3 IS NULL OR time_us < ?3) \
               AND (?4 IS NULL OR (time_us, chunk_id, frame_index, det_index) > (?4, ?5, ?6, ?7)) \
             ORDER BY time_us, chunk_id, frame_index, det_index LIMIT ?8",
        )
        .bind(&q.stream_id)
        .bind(q.from.map(|t| t.timestamp_micros()))
        .bind(q.to.map(|t| t.timestamp_micros()))
        .bind(a_time)
        .bind(a_chunk)
        .bind(a_frame)
        .bind(a_det)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sqlite_detection).collect()
    }

    pub(super) async fn detections_by_pts(
        &self,
        stream_id: &str,
        pts: std::ops::Range<i64>,
        limit: i64,
    ) -> Result<Vec<StoredDetection>, SinkError> {
        let rows = sqlx::query(
            "SELECT time_us, stream_id, chunk_id, frame_index, det_index, pts_us, class_id, \
               confidence, bbox, horse_id, track_id, keypoints, interpolated FROM detections \
             WHERE stream_id = ?1 AND pts_us >= ?2 AND pts_us < ?3 \
             ORDER BY pts_us, time_us DESC, det_index LIMIT ?4",
        )
        .bind(stream_id)
        .bind(pts.start)
        .bind(pts.end)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sqlite_detection).collect()
    }

    pub(super) async fn rename_horse(&self, id: i64, name: &str) -> Result<(), SinkError> {
        let done = sqlx::query("UPDATE horses SET display_name = ? WHERE id = ?")
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| classify(e, "horse name", name, "horse", &id.to_string()))?;
        if done.rows_affected() == 0 {
            return Err(not_found("horse", id));
        }
        Ok(())
    }

    pub(super) async fn horse_gait(
        &self,
        horse: &Horse,
        limit: i64,
    ) -> Result<Vec<GaitRow>, SinkError> {
        let track_ids = serde_json::to_string(&horse.track_ids).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(super::sql!(
            "SELECT {GAIT_COLUMNS_SQLITE} FROM ( \
               SELECT {GAIT_COLUMNS_SQLITE} FROM gait_metrics \
               WHERE stream_id = ?1 \
                 AND (horse_id = ?2 OR (horse_id IS NULL \
                      AND track_id IN (SELECT value FROM json_each(?3)))) \
               ORDER BY time_us DESC, track_id DESC LIMIT ?4) \
             ORDER BY time_us, track_id"
        ))
        .bind(&horse.stream_id)
        .bind(horse.id)
        .bind(track_ids)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(gait_row!(r, time(r.try_get("time_us")?))))
            .collect()
    }

    pub(super) async fn upsert_model(&self, m: &ModelRow) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO models (name, task, file, sha256, active) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (name) DO UPDATE SET task = ?2, file = ?3, sha256 = ?4",
        )
        .bind(&m.name)
        .bind(&m.task)
        .bind(&m.file)
        .bind(&m.sha256)
        .bind(m.active)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn list_models(&self) -> Result<Vec<ModelRow>, SinkError> {
        let rows: Vec<(String, String, String, String, bool)> =
            sqlx::query_as("SELECT name, task, file, sha256, active FROM models ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(model_row).collect())
    }

    pub(super) async fn stream_models(&self) -> Result<Vec<(String, String)>, SinkError> {
        Ok(sqlx::query_as(
            "SELECT stream_id, model_name FROM stream_models ORDER BY stream_id, model_name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub(super) async fn activate_model(
        &self,
        stream_id: &str,
        model: &str,
    ) -> Result<(), SinkError> {
        let mut tx = self.begin_write().await?;
        let task: Option<(String,)> = sqlx::query_as("SELECT task FROM models WHERE name = ?")
            .bind(model)
            .fetch_optional(&mut *tx)
            .await?;
        let (task,) = task.ok_or_else(|| not_found("model", model))?;
        sqlx::query(
            "DELETE FROM stream_models WHERE stream_id = ?1 AND model_name IN \
               (SELECT name FROM models WHERE task = ?2)",
        )
        .bind(stream_id)
        .bind(&task)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO stream_models (stream_id, model_name) VALUES (?, ?)")
            .bind(stream_id)
            .bind(model)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, "stream model", model, "stream", stream_id))?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// A page of one stream's detections in the stable order `(time, chunk, frame, index)`:
    /// those in `[from, to)` strictly after `after`, at most `limit` (1 to 10 000).
    pub async fn detections(&self, q: &DetectionQuery) -> Result<Vec<StoredDetection>, SinkError> {
        if !(1..=10_000).contains(&q.limit) {
            return Err(SinkError::Invalid {
                what: "detection limit",
                reason: format!("{} is not within 1..=10000", q.limit),
            });
        }
        if let (Some(from), Some(to)) = (q.from, q.to)
            && from > to
        {
            return Err(SinkError::Invalid {
                what: "time range",
                reason: "from is after to".into(),
            });
        }
        dispatch!(self.detections(q))
    }

    /// One stream's detections whose frame PTS lies in `pts` (µs), at most `limit` (1 to
    /// 10 000), ordered by `(pts, time newest first, index)`: a stream that ran twice (a file
    /// restarted) has rows of both runs at one PTS, the newest run's first. What the playback
    /// overlay draws.
    pub async fn detections_by_pts(
        &self,
        stream_id: &str,
        pts: std::ops::Range<i64>,
        limit: i64,
    ) -> Result<Vec<StoredDetection>, SinkError> {
        if !(1..=10_000).contains(&limit) {
            return Err(SinkError::Invalid {
                what: "detection limit",
                reason: format!("{limit} is not within 1..=10000"),
            });
        }
        if pts.start > pts.end {
            return Err(SinkError::Invalid {
                what: "pts range",
                reason: "from is after to".into(),
            });
        }
        dispatch!(self.detections_by_pts(stream_id, pts, limit))
    }

    /// A user by id (what a token's subject names); `None` when there is none.
    pub async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, SinkError> {
        dispatch!(self.find_user_by_id(id))
    }

    /// Renames a horse; a name taken by another horse of its stream is a
    /// [`SinkError::Conflict`], an unknown id a [`SinkError::NotFound`].
    pub async fn rename_horse(&self, id: i64, display_name: &str) -> Result<Horse, SinkError> {
        let name = display_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(SinkError::Invalid {
                what: "horse name",
                reason: "must have 1 to 100 characters".into(),
            });
        }
        dispatch!(self.rename_horse(id, name))?;
        self.get_horse(id).await
    }

    /// The newest `limit` gait windows of a horse (rows naming it, or rows of its tracks that
    /// name no horse), returned oldest first.
    pub async fn horse_gait(&self, horse: &Horse, limit: i64) -> Result<Vec<GaitRow>, SinkError> {
        dispatch!(self.horse_gait(horse, limit.max(0)))
    }

    /// Records (or updates) an installed model; `active` is kept for a known model.
    pub async fn upsert_model(&self, model: &ModelRow) -> Result<(), SinkError> {
        dispatch!(self.upsert_model(model))
    }

    /// Every installed model, by name.
    pub async fn list_models(&self) -> Result<Vec<ModelRow>, SinkError> {
        dispatch!(self.list_models())
    }

    /// Every `(stream_id, model_name)` choice, by stream and model.
    pub async fn stream_models(&self) -> Result<Vec<(String, String)>, SinkError> {
        dispatch!(self.stream_models())
    }

    /// Makes `model` the stream's model for the model's task (replacing any other model of
    /// that task for the stream). An unknown model or stream is a [`SinkError::NotFound`].
    pub async fn activate_model(&self, stream_id: &str, model: &str) -> Result<(), SinkError> {
        dispatch!(self.activate_model(stream_id, model))
    }
}
