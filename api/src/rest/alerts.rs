//! `GET /api/v1/alerts` (filters: stream, unacknowledged, limit) and
//! `POST /api/v1/alerts/{id}/acknowledge`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use horsestream_sinks::{Alert, AlertQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::{ApiPath, ApiQuery};
use crate::rest::page_limit;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    pub stream: Option<String>,
    /// Only alerts nobody acknowledged yet.
    #[serde(default)]
    pub unacknowledged: bool,
    /// 1 to 1000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertOut {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub stream_id: String,
    pub horse_id: Option<i64>,
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub message: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

impl From<Alert> for AlertOut {
    fn from(a: Alert) -> Self {
        AlertOut {
            id: a.id,
            time: a.time,
            stream_id: a.stream_id,
            horse_id: a.horse_id,
            kind: a.kind,
            severity: a.severity.as_str().to_owned(),
            message: a.message,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertParams),
    responses((status = 200, body = Vec<AlertOut>), (status = 400, body = ErrorBody)))]
pub async fn list(
    _: Authorized<perm::AnalyticsRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<AlertParams>,
) -> Result<ApiJson<Vec<AlertOut>>, AppError> {
    let limit = page_limit(p.limit)?;
    let store = state.store()?;
    if let Some(s) = &p.stream {
        store.get_stream(s).await?;
    }
    let alerts = store
        .list_alerts(&AlertQuery {
            stream_id: p.stream,
            unacknowledged_only: p.unacknowledged,
            limit,
        })
        .await?;
    Ok(ApiJson(alerts.into_iter().map(AlertOut::from).collect()))
}

/// Acknowledges as the caller; acknowledging again keeps the first time and name.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path)),
    responses((status = 200, body = AlertOut), (status = 404, body = ErrorBody)))]
pub async fn acknowledge(
    a: Authorized<perm::AnalyticsWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<AlertOut>, AppError> {
    let alert = state
        .store()?
        .acknowledge_alert(id, &a.principal().username)
        .await?;
    Ok(ApiJson(alert.into()))
}
