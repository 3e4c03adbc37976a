//! Per-horse gait totals (`horse_totals`): per speed unit, the windows, distance and seconds
//! in each gait class over all of a horse's gait windows. The dataflow maintains them as a
//! differential collection (seeded from its checkpoints after a restart, so they are exact
//! across crashes); the sink writes each change. A write never replaces newer totals
//! (`through`), so a replay of older chunks leaves them alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{PgStore, SqliteStore, Store, dispatch, time};
use crate::SinkError;

/// A horse's totals in one speed unit.
#[derive(Debug, Clone, PartialEq)]
pub struct HorseTotalsRow {
    pub unit: String,
    pub windows: i64,
    /// `unit` × s.
    pub distance: f64,
    /// Seconds per gait class.
    pub seconds: BTreeMap<String, f64>,
    /// End of the newest window counted.
    pub through: DateTime<Utc>,
}

fn check(r: &HorseTotalsRow) -> Result<(), SinkError> {
    let bad = |reason: String| {
        Err(SinkError::Invalid {
            what: "horse totals",
            reason,
        })
    };
    if r.unit.is_empty() || r.unit.len() > 32 {
        return bad(format!("unit {:?}", r.unit));
    }
    if r.windows < 0 || !r.distance.is_finite() || r.distance < 0.0 {
        return bad(format!("{} windows, distance {}", r.windows, r.distance));
    }
    if let Some((class, s)) = r
        .seconds
        .iter()
        .find(|(c, s)| c.is_empty() || c.len() > 32 || !s.is_finite() || **s < 0.0)
    {
        return bad(format!("{s} s of {class:?}"));
    }
    Ok(())
}

fn seconds_json(r: &HorseTotalsRow) -> String {
    serde_json::to_string(&r.seconds).expect("a map of finite numbers serialises")
}

fn seconds_from(text: &str) -> Result<BTreeMap<String, f64>, SinkError> {
    serde_json::from_str(text).map_err(|e| SinkError::Invalid {
        what: "stored horse totals",
        reason: e.to_string(),
    })
}

impl PgStore {
    async fn put_totals(&self, rows: &[(i64, HorseTotalsRow)]) -> Result<(), SinkError> {
        let mut tx = self.pool().begin().await?;
        for (horse_id, r) in rows.iter().map(|(h, r)| (*h, r)) {
            sqlx::query(
                "INSERT INTO horse_totals (horse_id, unit, windows, distance, seconds, through) \
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6) \
                 ON CONFLICT (horse_id, unit) DO UPDATE SET windows = EXCLUDED.windows, \
                   distance = EXCLUDED.distance, seconds = EXCLUDED.seconds, \
                   through = EXCLUDED.through \
                 WHERE horse_totals.through < EXCLUDED.through",
            )
            .bind(horse_id)
            .bind(&r.unit)
            .bind(r.windows)
            .bind(r.distance)
            .bind(seconds_json(r))
            .bind(r.through)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn horse_id(&self, stream_id: &str, number: u32) -> Result<Option<i64>, SinkError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM horses WHERE stream_id = $1 AND number = $2")
                .bind(stream_id)
                .bind(number as i32)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn horse_totals(&self, horse_id: i64) -> Result<Vec<HorseTotalsRow>, SinkError> {
        let rows = sqlx::query(
            "SELECT unit, windows, distance, seconds::text AS seconds, through \
             FROM horse_totals WHERE horse_id = $1 ORDER BY unit",
        )
        .bind(horse_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HorseTotalsRow {
                    unit: r.try_get("unit")?,
                    windows: r.try_get("windows")?,
                    distance: r.try_get("distance")?,
                    seconds: seconds_from(r.try_get("seconds")?)?,
                    through: r.try_get("through")?,
                })
            })
            .collect()
    }
}

impl SqliteStore {
    async fn put_totals(&self, rows: &[(i64, HorseTotalsRow)]) -> Result<(), SinkError> {
        let mut tx = self.begin_write().await?;
        for (horse_id, r) in rows.iter().map(|(h, r)| (*h, r)) {
            sqlx::query(
                "INSERT INTO horse_totals (horse_id, unit, windows, distance, seconds, through_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (horse_id, unit) DO UPDATE SET windows = excluded.windows, \
                   distance = excluded.distance, seconds = excluded.seconds, \
                   through_us = excluded.through_us \
                 WHERE horse_totals.through_us < excluded.through_us",
            )
            .bind(horse_id)
            .bind(&r.unit)
            .bind(r.windows)
            .bind(r.distance)
            .bind(seconds_json(r))
            .bind(r.through.timestamp_micros())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn horse_id(&self, stream_id: &str, number: u32) -> Result<Option<i64>, SinkError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM horses WHERE stream_id = ?1 AND number = ?2")
                .bind(stream_id)
                .bind(number)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn horse_totals(&self, horse_id: i64) -> Result<Vec<HorseTotalsRow>, SinkError> {
        let rows = sqlx::query(
            "SELECT unit, windows, distance, seconds, through_us \
             FROM horse_totals WHERE horse_id = ?1 ORDER BY unit",
        )
        .bind(horse_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HorseTotalsRow {
                    unit: r.try_get("unit")?,
                    windows: r.try_get("windows")?,
                    distance: r.try_get("distance")?,
                    seconds: seconds_from(r.try_get("seconds")?)?,
                    through: time(r.try_get("through_us")?),
                })
            })
            .collect()
    }
}

impl Store {
    /// Writes a horse's totals (one row per unit) in one transaction; a unit whose stored
    /// totals reach further (`through`) keeps them.
    pub async fn put_horse_totals(
        &self,
        horse_id: i64,
        rows: &[HorseTotalsRow],
    ) -> Result<(), SinkError> {
        let rows: Vec<(i64, HorseTotalsRow)> = rows.iter().map(|r| (horse_id, r.clone())).collect();
        self.put_totals(&rows).await
    }

    /// Writes the totals of several horses (`(horse id, row)`) in one transaction, each as
    /// [`Self::put_horse_totals`] would.
    pub async fn put_totals(&self, rows: &[(i64, HorseTotalsRow)]) -> Result<(), SinkError> {
        for (_, r) in rows {
            check(r)?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        dispatch!(self.put_totals(rows))
    }

    /// The row id of horse `number` of a stream, if it was stored.
    pub async fn horse_id(&self, stream_id: &str, number: u32) -> Result<Option<i64>, SinkError> {
        dispatch!(self.horse_id(stream_id, number))
    }

    /// A horse's totals, one row per speed unit it has been measured in.
    pub async fn horse_totals(&self, horse_id: i64) -> Result<Vec<HorseTotalsRow>, SinkError> {
        dispatch!(self.horse_totals(horse_id))
    }
}
