//! `/api/v1/streams/{id}/ptz/*` and `/api/v1/streams/{id}/snapshot`: the camera proxy. The
//! browser names only the stream; the camera host, port and credentials come from the store.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::camera::CameraCredentials;
use crate::camera::guard::{self, Target};
use crate::camera::onvif::{OnvifClient, OnvifError, PtzCommand};
use crate::camera::rtsp::{self, SnapshotError};
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiPath;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveRequest {
    /// Pan velocity, -1 (left) to 1 (right).
    #[serde(default)]
    pub pan: f64,
    /// Tilt velocity, -1 (down) to 1 (up).
    #[serde(default)]
    pub tilt: f64,
    /// Zoom velocity, -1 (out) to 1 (in).
    #[serde(default)]
    pub zoom: f64,
    /// The camera stops by itself after this long (ms, at most 60 000).
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresetRequest {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PtzResult {
    pub ok: bool,
    /// The camera's token of the preset just set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset_token: Option<String>,
}

impl From<OnvifError> for AppError {
    fn from(e: OnvifError) -> Self {
        let code = match &e {
            OnvifError::Guard(_) => "camera_host_refused",
            OnvifError::Redirect(_) => "redirect_refused",
            OnvifError::Timeout => "camera_timeout",
            _ => "camera_error",
        };
        tracing::info!(error = %e, "PTZ command failed");
        AppError::upstream(code, e.to_string())
    }
}

impl From<SnapshotError> for AppError {
    fn from(e: SnapshotError) -> Self {
        let code = match &e {
            SnapshotError::Guard(_) => "camera_host_refused",
            SnapshotError::Redirect => "redirect_refused",
            SnapshotError::Timeout => "camera_timeout",
            SnapshotError::Grab(_) => "camera_error",
        };
        tracing::info!(error = %e, "snapshot failed");
        AppError::upstream(code, e.to_string())
    }
}

/// The stream's registered camera (its source URL, split by the guard) and stored credentials.
async fn camera_of(
    state: &AppState,
    id: &str,
) -> Result<(Target, Option<CameraCredentials>), AppError> {
    let store = state.store()?;
    let stream = store.get_stream(id).await?;
    let target = guard::parse(&stream.source_url).map_err(|e| {
        AppError::bad_request(
            "not_a_camera",
            format!("the stream's source is not a camera URL: {e}"),
        )
    })?;
    let credentials = store
        .stream_credentials(id)
        .await?
        .map(|s| CameraCredentials::from_secret(&s))
        .transpose()?;
    Ok((target, credentials))
}

async fn ptz(state: &AppState, id: &str, cmd: PtzCommand) -> Result<ApiJson<PtzResult>, AppError> {
    let (target, credentials) = camera_of(state, id).await?;
    let credentials = credentials.ok_or_else(|| {
        AppError::bad_request(
            "no_credentials",
            "the stream has no camera credentials: PTZ needs the camera's ONVIF login",
        )
    })?;
    let client = OnvifClient::new(target.host, credentials, state.camera().timeout);
    let outcome = client.ptz(&cmd).await?;
    Ok(ApiJson(PtzResult {
        ok: true,
        preset_token: outcome.preset_token,
    }))
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/ptz/move", tag = "camera", request_body = MoveRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = PtzResult), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn ptz_move(
    _: Authorized<perm::StreamsControl>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<MoveRequest>,
) -> Result<ApiJson<PtzResult>, AppError> {
    for (name, v) in [("pan", req.pan), ("tilt", req.tilt), ("zoom", req.zoom)] {
        if !(-1.0..=1.0).contains(&v) {
            return Err(AppError::invalid(format!("{name} must be within -1..=1")));
        }
    }
    if req.timeout_ms.is_some_and(|t| t == 0 || t > 60_000) {
        return Err(AppError::invalid("timeoutMs must be within 1..=60000"));
    }
    let cmd = PtzCommand::ContinuousMove {
        pan: req.pan,
        tilt: req.tilt,
        zoom: req.zoom,
        timeout: req.timeout_ms.map(Duration::from_millis),
    };
    ptz(&state, &id, cmd).await
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/ptz/stop", tag = "camera",
    params(("id" = String, Path)),
    responses((status = 200, body = PtzResult), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn ptz_stop(
    _: Authorized<perm::StreamsControl>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<PtzResult>, AppError> {
    ptz(&state, &id, PtzCommand::Stop).await
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/ptz/presets", tag = "camera", request_body = PresetRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = PtzResult), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn preset_set(
    _: Authorized<perm::StreamsControl>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PresetRequest>,
) -> Result<ApiJson<PtzResult>, AppError> {
    if req.name.trim().is_empty() || req.name.chars().count() > 64 {
        return Err(AppError::invalid(
            "preset name must have 1 to 64 characters",
        ));
    }
    ptz(&state, &id, PtzCommand::SetPreset { name: req.name }).await
}

#[utoipa::path(post, path = "/api/v1/streams/{id}/ptz/presets/{token}/goto", tag = "camera",
    params(("id" = String, Path), ("token" = String, Path)),
    responses((status = 200, body = PtzResult), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn preset_goto(
    _: Authorized<perm::StreamsControl>,
    State(state): State<AppState>,
    ApiPath((id, token)): ApiPath<(String, String)>,
) -> Result<ApiJson<PtzResult>, AppError> {
    if token.is_empty() || token.len() > 64 {
        return Err(AppError::invalid("preset token must have 1 to 64 bytes"));
    }
    ptz(&state, &id, PtzCommand::GotoPreset { token }).await
}

/// One JPEG frame from the stream's RTSP camera.
#[utoipa::path(get, path = "/api/v1/streams/{id}/snapshot", tag = "camera",
    params(("id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn snapshot(
    _: Authorized<perm::StreamsRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, AppError> {
    let (target, credentials) = camera_of(&state, &id).await?;
    if target.scheme != "rtsp" {
        return Err(AppError::bad_request(
            "not_a_camera",
            "snapshots are taken from rtsp:// streams only",
        ));
    }
    let cam = state.camera();
    let jpeg = rtsp::snapshot(&cam.ffmpeg, &target, credentials.as_ref(), cam.timeout).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}
