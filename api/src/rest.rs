//! The REST resources under `/api/v1` (streams, detections, models, horses, alerts, camera)
//! over the [`horsestream_sinks::Store`], each route behind the seed's RBAC, and the OpenAPI
//! document generated from the handlers' annotations (`GET /api/v1/openapi.json`).
//!
//! | route | permission |
//! |---|---|
//! | `GET /streams`, `GET /streams/{id}`, `GET /detections`, `GET /streams/{id}/snapshot` | `streams:read` |
//! | `GET /streams/{id}/hls/{file}`, `GET /streams/{id}/overlay` (playback) | `streams:read` |
//! | `POST /streams`, `PATCH /streams/{id}`, `DELETE /streams/{id}` | `streams:write` |
//! | `POST /streams/{id}/start`, `/stop`, `/ptz/*` | `streams:control` |
//! | `GET /streams/{id}/horses`, `GET /horses/{id}` | `horses:read` |
//! | `PATCH /horses/{id}` | `horses:write` |
//! | `GET /alerts` | `analytics:read` |
//! | `POST /alerts/{id}/acknowledge` | `analytics:write` |
//! | `GET /models` | `models:read` |
//! | `POST /models/{name}`, `PUT /streams/{id}/model` | `models:write` |

pub mod alerts;
pub mod camera;
pub mod detections;
pub mod horses;
pub mod models;
pub mod playback;
pub mod streams;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "horsestream API", description = "Streams, detections, horses, alerts, models and cameras of horsestream. Every route takes an access token (`POST /api/v1/auth/login`) as `Authorization: Bearer …`; errors have one body, `{\"error\": {\"code\", \"message\"}}`."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    tags(
        (name = "streams"), (name = "detections"), (name = "horses"), (name = "alerts"),
        (name = "models"), (name = "camera"), (name = "playback"),
    )
)]
struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The annotated routes and the OpenAPI document they make.
fn annotated() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(streams::list, streams::create))
        .routes(routes!(streams::get, streams::patch, streams::delete))
        .routes(routes!(streams::start))
        .routes(routes!(streams::stop))
        .routes(routes!(detections::list))
        .routes(routes!(horses::list))
        .routes(routes!(horses::profile, horses::rename))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(models::list))
        .routes(routes!(models::upload))
        .routes(routes!(models::activate))
        .routes(routes!(camera::ptz_move))
        .routes(routes!(camera::ptz_stop))
        .routes(routes!(camera::preset_set))
        .routes(routes!(camera::preset_goto))
        .routes(routes!(camera::snapshot))
        .routes(routes!(playback::hls))
        .routes(routes!(playback::overlay))
        .split_for_parts()
}

/// The OpenAPI document of the REST resources.
pub fn openapi() -> utoipa::openapi::OpenApi {
    annotated().1
}

/// Every REST route plus `GET /api/v1/openapi.json` (the document serialized once, here).
pub fn routes() -> Router<AppState> {
    let (router, doc) = annotated();
    let doc = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    router.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
        }),
    )
}

/// A list's page size when the query gives none.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page size a list accepts.
pub const MAX_LIMIT: i64 = 1000;

/// The `limit` query parameter of a list: [`DEFAULT_LIMIT`] when absent, else 1 to
/// [`MAX_LIMIT`] (400 `invalid_query` otherwise).
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, crate::AppError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(crate::AppError::bad_request(
            "invalid_query",
            format!("limit must be within 1..={MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// An id of a stream: 1 to 64 of `A-Z a-z 0-9 _ - .` (it appears in room names and URLs).
pub(crate) fn valid_stream_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
