//! `GET /api/v1/models` (the manifest's models, which are installed, which streams use them),
//! `POST /api/v1/models/{name}` (upload a model file: size-limited, then checked by the model
//! registry exactly as the dataflow would load it — sha256 and the tensor signature of the
//! manifest entry — before it replaces the installed file), and `PUT /api/v1/streams/{id}/model`
//! (the stream's model for that model's task).

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use horsestream_models::{ModelEntry, ModelError, ModelRegistry};
use horsestream_sinks::store::ModelRow;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Authorized, perm};
use crate::error::{AppError, ErrorBody};
use crate::json::ApiJson;
use crate::params::ApiPath;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelOut {
    pub name: String,
    /// `detection`, `reid`, `pose`, …
    pub task: String,
    pub file: String,
    /// The tensor signature the file must have, `inputs -> outputs`.
    pub signature: String,
    /// Whether a verified file was uploaded or registered.
    pub installed: bool,
    /// sha256 of the installed file.
    pub sha256: Option<String>,
    /// Streams that run this model.
    pub streams: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivateModel {
    pub model: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamModels {
    pub stream_id: String,
    pub models: Vec<String>,
}

/// A manifest entry as clients see it; `sha256` is the installed file's, if any.
fn model_out(entry: &ModelEntry, sha256: Option<String>, choices: &[(String, String)]) -> ModelOut {
    ModelOut {
        name: entry.name.clone(),
        task: entry.task.to_string(),
        file: entry.file.clone(),
        signature: entry.signature(),
        installed: sha256.is_some(),
        sha256,
        streams: choices
            .iter()
            .filter(|(_, model)| *model == entry.name)
            .map(|(stream, _)| stream.clone())
            .collect(),
    }
}

/// The `models` row of a verified file of `entry`.
fn model_row(entry: &ModelEntry, sha256: String) -> ModelRow {
    ModelRow {
        name: entry.name.clone(),
        task: entry.task.to_string(),
        file: entry.file.clone(),
        sha256,
        active: false,
    }
}

fn unknown_model(name: &str) -> AppError {
    AppError::NotFound(format!("unknown model {name:?}"))
}

fn model_dir(state: &AppState) -> Result<&Path, AppError> {
    state
        .models()
        .dir
        .as_deref()
        .ok_or_else(|| AppError::Unavailable("no model directory configured".into()))
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    responses((status = 200, body = Vec<ModelOut>), (status = 403, body = ErrorBody)))]
pub async fn list(
    _: Authorized<perm::ModelsRead>,
    State(state): State<AppState>,
) -> Result<ApiJson<Vec<ModelOut>>, AppError> {
    let store = state.store()?;
    let installed = store.list_models().await?;
    let choices = store.stream_models().await?;
    let out = state
        .models()
        .manifest
        .models
        .iter()
        .map(|m| {
            let sha256 = installed
                .iter()
                .find(|r| r.name == m.name)
                .map(|r| r.sha256.clone());
            model_out(m, sha256, &choices)
        })
        .collect();
    Ok(ApiJson(out))
}

/// Why an uploaded file was refused, as a client error.
fn refused(name: &str, e: ModelError) -> AppError {
    let (code, message) = match &e {
        ModelError::ChecksumMismatch {
            expected, actual, ..
        } => (
            "checksum_mismatch",
            format!("sha256 {actual} is not the manifest's {expected} for {name:?}"),
        ),
        ModelError::SignatureMismatch {
            expected, actual, ..
        } => (
            "signature_mismatch",
            format!("signature {actual} is not the manifest's {expected} for {name:?}"),
        ),
        ModelError::RuntimeMissing { .. } | ModelError::RuntimeLoad { .. } => {
            tracing::error!(error = %e, "ONNX Runtime unavailable, model upload cannot be checked");
            return AppError::Unavailable("the model runtime is unavailable".into());
        }
        _ => {
            tracing::info!(model = %name, error = %e, "model upload refused");
            (
                "invalid_model",
                format!("the file is not a loadable ONNX model for {name:?}"),
            )
        }
    };
    AppError::BadRequest {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code,
        message,
    }
}

fn too_large(limit: u64) -> AppError {
    AppError::BadRequest {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
        message: format!("model files are limited to {limit} bytes"),
    }
}

/// Removes the upload's scratch directory however the request ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The raw model file as the body (`application/octet-stream`).
#[utoipa::path(post, path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "a model of the manifest")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ModelOut), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    a: Authorized<perm::ModelsWrite>,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, ApiJson<ModelOut>), AppError> {
    let settings = state.models();
    let entry = settings
        .manifest
        .get(&name)
        .map_err(|_| unknown_model(&name))?
        .clone();
    let limit = settings.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let store = state.store()?.clone();
    let dir = model_dir(&state)?.to_owned();
    let scratch = Scratch(dir.join(format!(".upload-{}", uuid::Uuid::new_v4())));
    tokio::fs::create_dir_all(&scratch.0)
        .await
        .map_err(AppError::internal)?;
    let path = scratch.0.join(&entry.file);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(AppError::internal)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| AppError::bad_request("bad_request", e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    file.sync_all().await.map_err(AppError::internal)?;
    drop(file);
    if size == 0 {
        return Err(AppError::invalid("empty model file"));
    }
    let sha256 = hex::encode(hasher.finalize());
    let manifest = settings.manifest.clone();
    let (check_dir, check_name) = (scratch.0.clone(), name.clone());
    tokio::task::spawn_blocking(move || {
        ModelRegistry::new(check_dir, manifest)
            .load(&check_name)
            .map(drop)
    })
    .await
    .map_err(AppError::internal)?
    .map_err(|e| refused(&name, e))?;
    tokio::fs::rename(&path, dir.join(&entry.file))
        .await
        .map_err(AppError::internal)?;
    store
        .upsert_model(&model_row(&entry, sha256.clone()))
        .await?;
    tracing::info!(model = %name, bytes = size, %sha256, by = %a.principal().username, "model uploaded");
    let choices = store.stream_models().await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(model_out(&entry, Some(sha256), &choices)),
    ))
}

/// Makes `model` the stream's model for its task. A model installed in the model directory
/// without an upload is verified (sha256) and registered first.
#[utoipa::path(put, path = "/api/v1/streams/{id}/model", tag = "models", request_body = ActivateModel,
    params(("id" = String, Path)),
    responses((status = 200, body = StreamModels), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn activate(
    _: Authorized<perm::ModelsWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ActivateModel>,
) -> Result<ApiJson<StreamModels>, AppError> {
    let store = state.store()?;
    store.get_stream(&id).await?;
    let entry = state
        .models()
        .manifest
        .get(&req.model)
        .map_err(|_| unknown_model(&req.model))?
        .clone();
    if !store
        .list_models()
        .await?
        .iter()
        .any(|m| m.name == req.model)
    {
        let dir = model_dir(&state)?.to_owned();
        let manifest = state.models().manifest.clone();
        let name = req.model.clone();
        let sha256 = tokio::task::spawn_blocking(move || {
            let path = ModelRegistry::new(dir, manifest).verify(&name)?;
            horsestream_models::sha256_file(&path)
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|e| match e {
            ModelError::ModelFileMissing { .. } | ModelError::OptionalModelMissing { .. } => {
                AppError::conflict(format!(
                    "model {:?} is not installed: upload it first",
                    req.model
                ))
            }
            e => refused(&req.model, e),
        })?;
        store.upsert_model(&model_row(&entry, sha256)).await?;
    }
    store.activate_model(&id, &req.model).await?;
    let models = store
        .stream_models()
        .await?
        .into_iter()
        .filter(|(s, _)| *s == id)
        .map(|(_, m)| m)
        .collect();
    Ok(ApiJson(StreamModels {
        stream_id: id,
        models,
    }))
}
