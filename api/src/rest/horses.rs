//! `GET /api/v1/streams/{id}/horses`, `GET /api/v1/horses/{id}` (profile: the horse, aggregates
//! over its gait history, and the history) and `PATCH /api/v1/horses/{id}` (rename).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use horsestream_sinks::{GaitRow, Horse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiPath;

/// Gait windows returned with a profile (the newest).
pub const GAIT_HISTORY_LIMIT: i64 = 1000;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorseOut {
    pub id: i64,
    pub stream_id: String,
    pub display_name: String,
    pub colour: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub track_ids: Vec<i64>,
}

impl From<Horse> for HorseOut {
    fn from(h: Horse) -> Self {
        HorseOut {
            id: h.id,
            stream_id: h.stream_id,
            display_name: h.display_name,
            colour: h.colour,
            first_seen: h.first_seen,
            last_seen: h.last_seen,
            track_ids: h.track_ids,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GaitOut {
    pub time: DateTime<Utc>,
    pub track_id: i64,
    pub speed: f64,
    pub acceleration: f64,
    pub unit: String,
    pub stride_hz: Option<f64>,
    pub gait_class: String,
    pub distance: f64,
    /// From pose keypoints, when the stream runs a pose model.
    pub pose: Option<GaitPoseOut>,
}

/// Gait metrics of a window from pose keypoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GaitPoseOut {
    /// Poses in the window with at least one measurable limb.
    pub samples: u32,
    /// Stride frequency from the hooves' fore–aft motion, Hz.
    pub hoof_stride_hz: Option<f64>,
    /// Share of the hoof signal's variance the stride explains, 0..=1.
    pub hoof_confidence: f64,
    /// Left fore, right fore, left hind, right hind.
    pub joints: Vec<GaitJointOut>,
    /// Signed symmetry index of the fore limbs' range of motion, percent (positive: the left
    /// moves more).
    pub symmetry_fore: Option<f64>,
    /// The same for the hind limbs.
    pub symmetry_hind: Option<f64>,
}

/// One limb's joint angle over a window (elbow keypoint for a fore limb, knee for a hind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GaitJointOut {
    /// `left_fore`, `right_fore`, `left_hind` or `right_hind`.
    pub limb: String,
    pub mean_deg: Option<f64>,
    /// Range of motion: 95th − 5th percentile of the angle, degrees.
    pub rom_deg: Option<f64>,
    pub samples: u32,
}

impl From<horsestream_sinks::GaitPose> for GaitPoseOut {
    fn from(p: horsestream_sinks::GaitPose) -> Self {
        GaitPoseOut {
            samples: p.samples,
            hoof_stride_hz: p.hoof_stride_hz,
            hoof_confidence: p.hoof_confidence,
            joints: p
                .joints
                .into_iter()
                .map(|j| GaitJointOut {
                    limb: j.limb,
                    mean_deg: j.mean_deg,
                    rom_deg: j.rom_deg,
                    samples: j.samples,
                })
                .collect(),
            symmetry_fore: p.symmetry_fore,
            symmetry_hind: p.symmetry_hind,
        }
    }
}

/// Aggregates over the gait windows of one unit (`metres_per_second`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GaitAggregate {
    pub unit: String,
    pub windows: u64,
    pub total_distance: f64,
    pub mean_speed: f64,
    pub max_speed: f64,
    /// Mean stride frequency over the windows that have one.
    pub mean_stride_hz: Option<f64>,
    /// Windows per gait class (`walk`, `trot`, …).
    pub gait_windows: BTreeMap<String, u64>,
}

/// What a horse has done in one speed unit over ALL its gait windows, kept by the dataflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GaitTotalsOut {
    pub unit: String,
    pub windows: i64,
    /// Path length (`unit` × s), each stretch counted once.
    pub distance: f64,
    /// Seconds in each gait class (`standstill`, `walk`, `trot`, `canter`, `gallop`).
    pub seconds: BTreeMap<String, f64>,
    /// End of the newest window counted.
    pub through: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorseProfile {
    pub horse: HorseOut,
    /// Over the horse's whole history, one entry per speed unit.
    #[serde(default)]
    pub totals: Vec<GaitTotalsOut>,
    /// Over the windows in `gait` (the newest 1000), one entry per speed unit.
    pub aggregates: Vec<GaitAggregate>,
    /// Oldest first, at most 1000 (the newest).
    pub gait: Vec<GaitOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameHorse {
    pub display_name: String,
}

/// Aggregates per unit (speeds in different units are never mixed). Pure.
pub fn aggregate(rows: &[GaitRow]) -> Vec<GaitAggregate> {
    let mut by_unit: BTreeMap<&str, Vec<&GaitRow>> = BTreeMap::new();
    for r in rows {
        by_unit.entry(r.unit.as_str()).or_default().push(r);
    }
    by_unit
        .into_iter()
        .map(|(unit, rs)| {
            let n = rs.len() as f64;
            let strides: Vec<f64> = rs.iter().filter_map(|r| r.stride_hz).collect();
            let mut gait_windows = BTreeMap::new();
            for r in &rs {
                *gait_windows.entry(r.gait_class.clone()).or_insert(0) += 1;
            }
            GaitAggregate {
                unit: unit.to_owned(),
                windows: rs.len() as u64,
                total_distance: rs.iter().map(|r| r.distance).sum(),
                mean_speed: rs.iter().map(|r| r.speed).sum::<f64>() / n,
                max_speed: rs.iter().map(|r| r.speed).fold(f64::MIN, f64::max),
                mean_stride_hz: (!strides.is_empty())
                    .then(|| strides.iter().sum::<f64>() / strides.len() as f64),
                gait_windows,
            }
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/streams/{id}/horses", tag = "horses",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<HorseOut>), (status = 404, body = ErrorBody)))]
pub async fn list(
    _: Authorized<perm::HorsesRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Vec<HorseOut>>, AppError> {
    let store = state.store()?;
    store.get_stream(&id).await?;
    let horses = store.list_horses(&id).await?;
    Ok(ApiJson(horses.into_iter().map(HorseOut::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/horses/{id}", tag = "horses",
    params(("id" = i64, Path)),
    responses((status = 200, body = HorseProfile), (status = 404, body = ErrorBody)))]
pub async fn profile(
    _: Authorized<perm::HorsesRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<HorseProfile>, AppError> {
    let store = state.store()?;
    let horse = store.get_horse(id).await?;
    let rows = store.horse_gait(&horse, GAIT_HISTORY_LIMIT).await?;
    let totals = store
        .horse_totals(horse.id)
        .await?
        .into_iter()
        .map(|t| GaitTotalsOut {
            unit: t.unit,
            windows: t.windows,
            distance: t.distance,
            seconds: t.seconds,
            through: t.through,
        })
        .collect();
    Ok(ApiJson(HorseProfile {
        totals,
        aggregates: aggregate(&rows),
        gait: rows
            .into_iter()
            .map(|r| GaitOut {
                time: r.time,
                track_id: r.track_id,
                speed: r.speed,
                acceleration: r.acceleration,
                unit: r.unit,
                stride_hz: r.stride_hz,
                gait_class: r.gait_class,
                distance: r.distance,
                pose: r.pose.map(Into::into),
            })
            .collect(),
        horse: horse.into(),
    }))
}

#[utoipa::path(patch, path = "/api/v1/horses/{id}", tag = "horses", request_body = RenameHorse,
    params(("id" = i64, Path)),
    responses((status = 200, body = HorseOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename(
    _: Authorized<perm::HorsesWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RenameHorse>,
) -> Result<ApiJson<HorseOut>, AppError> {
    let horse = state.store()?.rename_horse(id, &req.display_name).await?;
    Ok(ApiJson(horse.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unit: &str, speed: f64, distance: f64, class: &str, stride: Option<f64>) -> GaitRow {
        GaitRow {
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            stream_id: "s".into(),
            track_id: 1,
            horse_id: None,
            speed,
            acceleration: 0.0,
            unit: unit.into(),
            stride_hz: stride,
            gait_class: class.into(),
            distance,
            pose: None,
        }
    }

    #[test]
    fn aggregates_per_unit_never_mixing_units() {
        let rows = [
            row("metres_per_second", 2.0, 4.0, "walk", Some(1.0)),
            row("metres_per_second", 4.0, 8.0, "trot", None),
            row("metres_per_second", 3.0, 6.0, "walk", Some(2.0)),
            row("pixels_per_second", 100.0, 200.0, "unknown", None),
        ];
        let a = aggregate(&rows);
        assert_eq!(a.len(), 2);
        let m = &a[0];
        assert_eq!((m.unit.as_str(), m.windows), ("metres_per_second", 3));
        assert_eq!(
            (m.total_distance, m.mean_speed, m.max_speed),
            (18.0, 3.0, 4.0)
        );
        assert_eq!(m.mean_stride_hz, Some(1.5));
        assert_eq!(m.gait_windows["walk"], 2);
        assert_eq!(m.gait_windows["trot"], 1);
        assert_eq!(a[1].max_speed, 100.0);
        assert_eq!(a[1].mean_stride_hz, None);
        assert!(aggregate(&[]).is_empty());
    }
}
