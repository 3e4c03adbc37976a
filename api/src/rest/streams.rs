//! `/api/v1/streams`: list, get, create, patch, delete, start and stop. Camera credentials are
//! accepted on create and patch, stored server-side with the stream, and never returned (the
//! stream says `hasCredentials`) nor logged.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use horsestream_sinks::{AlertRules, Calibration, NewStream, Stream, StreamPatch, Zone};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::camera::CameraCredentials;
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiPath;
use crate::rest::valid_stream_id;
use axum::extract::State;

/// The kinds of source ingest knows.
pub const SOURCE_KINDS: [&str; 6] = ["rtsp", "rtmp", "hls", "http", "youtube", "file"];

/// A stream as clients see it: never its credentials.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamOut {
    pub id: String,
    pub name: String,
    pub source_url: String,
    pub source_kind: String,
    /// `stopped`, `starting`, `live`, `reconnecting`, `error`, …
    pub status: String,
    pub has_credentials: bool,
    /// `{"pixels_per_metre": 42.0}` or `{"homography": [[…],[…],[…]]}`.
    #[schema(value_type = Option<Object>)]
    pub calibration: Option<Calibration>,
    #[schema(value_type = Vec<Object>)]
    pub zones: Vec<Zone>,
    /// The alert rules the dataflow applies to this stream's horses:
    /// `{"no_movement_s": 600, "lying_down_s": 30, "zone_exit": true}` (seconds; `null` turns
    /// a timed rule off).
    #[schema(value_type = Object)]
    pub alert_rules: AlertRules,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Stream> for StreamOut {
    fn from(s: Stream) -> Self {
        StreamOut {
            id: s.id,
            name: s.name,
            source_url: s.source_url,
            source_kind: s.source_kind,
            status: s.status,
            has_credentials: s.has_credentials,
            calibration: s.calibration,
            zones: s.zones,
            alert_rules: s.alert_rules,
            enabled: s.enabled,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateStream {
    /// 1–64 of `A-Z a-z 0-9 _ - .`
    pub id: String,
    pub name: String,
    /// Without user info: credentials go in `credentials`.
    pub source_url: String,
    /// `rtsp`, `hls`, `http` or `file`.
    pub source_kind: String,
    pub credentials: Option<CameraCredentials>,
    #[schema(value_type = Option<Object>)]
    pub calibration: Option<Calibration>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub zones: Vec<Zone>,
    /// Whether ingest should run it; `POST …/start` sets it too.
    #[serde(default)]
    pub enabled: bool,
}

/// A partial update: absent fields stay; `credentials: null` / `calibration: null` clear.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchStream {
    pub name: Option<String>,
    pub source_url: Option<String>,
    pub source_kind: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<CameraCredentials>)]
    pub credentials: Option<Option<CameraCredentials>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub calibration: Option<Option<Calibration>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub zones: Option<Vec<Zone>>,
    /// Replaces the stream's alert rules (fields left out take their defaults).
    #[schema(value_type = Option<Object>)]
    pub alert_rules: Option<AlertRules>,
    pub enabled: Option<bool>,
}

/// `null` → `Some(None)`, a value → `Some(Some(v))`; an absent field stays `None` (default).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn check_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(AppError::invalid("name must have 1 to 200 characters"));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), AppError> {
    if !SOURCE_KINDS.contains(&kind) {
        return Err(AppError::invalid(format!(
            "sourceKind {kind:?} is not one of {}",
            SOURCE_KINDS.join(", ")
        )));
    }
    Ok(())
}

/// A source URL is stored and returned as is, so it must not carry credentials.
fn check_source_url(url: &str) -> Result<(), AppError> {
    if url.is_empty() || url.len() > 2048 {
        return Err(AppError::invalid("sourceUrl must have 1 to 2048 bytes"));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(AppError::invalid(
                "sourceUrl must not hold credentials: send them as `credentials`",
            ));
        }
        if !matches!(scheme, "rtsp" | "rtsps" | "http" | "https" | "file") {
            return Err(AppError::invalid(format!(
                "sourceUrl scheme {scheme:?} is not rtsp, rtsps, http, https or file"
            )));
        }
    }
    Ok(())
}

fn secret(c: &CameraCredentials) -> Result<String, AppError> {
    c.validate()?;
    c.to_secret().map_err(AppError::internal)
}

#[utoipa::path(get, path = "/api/v1/streams", tag = "streams",
    responses((status = 200, body = Vec<StreamOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    _: Authorized<perm::StreamsRead>,
    State(state): State<AppState>,
) -> Result<ApiJson<Vec<StreamOut>>, AppError> {
    let streams = state.store()?.list_streams().await?;
    Ok(ApiJson(streams.into_iter().map(StreamOut::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/streams/{id}", tag = "streams",
    params(("id" = String, Path)),
    responses((status = 200, body = StreamOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    _: Authorized<perm::StreamsRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<StreamOut>, AppError> {
    Ok(ApiJson(state.store()?.get_stream(&id).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/streams", tag = "streams", request_body = CreateStream,
    responses((status = 201, body = StreamOut), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    a: Authorized<perm::StreamsWrite>,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateStream>,
) -> Result<(StatusCode, ApiJson<StreamOut>), AppError> {
    if !valid_stream_id(&req.id) {
        return Err(AppError::invalid(
            "id must have 1 to 64 of A-Z a-z 0-9 _ - .",
        ));
    }
    check_name(&req.name)?;
    check_kind(&req.source_kind)?;
    check_source_url(&req.source_url)?;
    let new = NewStream {
        id: req.id,
        name: req.name,
        source_url: req.source_url,
        source_kind: req.source_kind,
        credentials_secret: req.credentials.as_ref().map(secret).transpose()?,
        calibration: req.calibration,
        zones: req.zones,
        enabled: req.enabled,
    };
    let stream = state.store()?.create_stream(&new).await?;
    tracing::info!(stream = %stream.id, by = %a.principal().username, "stream created");
    Ok((StatusCode::CREATED, ApiJson(stream.into())))
}

#[utoipa::path(patch, path = "/api/v1/streams/{id}", tag = "streams", request_body = PatchStream,
    params(("id" = String, Path)),
    responses((status = 200, body = StreamOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch(
    _: Authorized<perm::StreamsWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PatchStream>,
) -> Result<ApiJson<StreamOut>, AppError> {
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    if let Some(k) = &req.source_kind {
        check_kind(k)?;
    }
    if let Some(u) = &req.source_url {
        check_source_url(u)?;
    }
    let credentials_secret = match &req.credentials {
        None => None,
        Some(None) => Some(None),
        Some(Some(c)) => Some(Some(secret(c)?)),
    };
    let patch = StreamPatch {
        name: req.name,
        source_url: req.source_url,
        source_kind: req.source_kind,
        status: None,
        credentials_secret,
        calibration: req.calibration,
        zones: req.zones,
        alert_rules: req.alert_rules,
        enabled: req.enabled,
    };
    Ok(ApiJson(
        state.store()?.update_stream(&id, &patch).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/streams/{id}", tag = "streams",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    a: Authorized<perm::StreamsWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    state.store()?.delete_stream(&id).await?;
    tracing::info!(stream = %id, by = %a.principal().username, "stream deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_running(state: &AppState, id: &str, run: bool) -> Result<StreamOut, AppError> {
    let patch = StreamPatch {
        enabled: Some(run),
        status: Some(if run { "starting" } else { "stopped" }.to_owned()),
        ..StreamPatch::default()
    };
    Ok(state.store()?.update_stream(id, &patch).await?.into())
}

/// Marks the stream enabled and `starting`; ingest workers polling the table pick it up and
/// report `live` (or `reconnecting`, `error`) themselves.
#[utoipa::path(post, path = "/api/v1/streams/{id}/start", tag = "streams",
    params(("id" = String, Path)),
    responses((status = 200, body = StreamOut), (status = 404, body = ErrorBody)))]
pub async fn start(
    a: Authorized<perm::StreamsControl>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<StreamOut>, AppError> {
    let s = set_running(&state, &id, true).await?;
    tracing::info!(stream = %id, by = %a.principal().username, "stream start requested");
    Ok(ApiJson(s))
}

/// Marks the stream disabled and `stopped`; ingest workers stop it at their next poll.
#[utoipa::path(post, path = "/api/v1/streams/{id}/stop", tag = "streams",
    params(("id" = String, Path)),
    responses((status = 200, body = StreamOut), (status = 404, body = ErrorBody)))]
pub async fn stop(
    a: Authorized<perm::StreamsControl>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<StreamOut>, AppError> {
    let s = set_running(&state, &id, false).await?;
    tracing::info!(stream = %id, by = %a.principal().username, "stream stop requested");
    Ok(ApiJson(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls_with_credentials_or_odd_schemes_are_refused() {
        assert!(check_source_url("rtsp://cam.local:554/stream1").is_ok());
        assert!(check_source_url("file:///data/a.mp4").is_ok());
        assert!(check_source_url("rtsp://user:pw@cam/x").is_err());
        assert!(check_source_url("rtsp://user@cam/x").is_err());
        assert!(check_source_url("gopher://cam/x").is_err());
        assert!(check_source_url("").is_err());
        // An @ in the path is not user info.
        assert!(check_source_url("http://cam/a@b").is_ok());
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let p: PatchStream = serde_json::from_str(r#"{"credentials": null}"#).unwrap();
        assert!(matches!(p.credentials, Some(None)));
        let p: PatchStream = serde_json::from_str("{}").unwrap();
        assert!(p.credentials.is_none() && p.calibration.is_none());
    }
}
