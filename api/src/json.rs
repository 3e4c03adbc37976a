//! `ApiJson<T>`: axum's JSON extractor and response, with rejections in the API's error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON request body or response. Rejections become [`AppError`]s: a body that is not JSON
/// → 400 `malformed_json`, JSON of the wrong shape or types → 422 `invalid_body`, no JSON
/// content type → 415, a body over the limit → 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !json_content_type(&req) {
            return Err(rejection_to_error(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e| rejection_to_error(JsonRejection::BytesRejection(e)))?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            // serde_json calls some shape errors syntax errors (an array longer than the
            // struct it fills: "trailing characters"); a body that is JSON is not malformed.
            Err(JsonRejection::JsonSyntaxError(e))
                if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() =>
            {
                Err(AppError::BadRequest {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "invalid_body",
                    message: format!(
                        "Failed to deserialize the JSON body into the target type: {}",
                        std::error::Error::source(&e)
                            .map_or_else(|| e.body_text(), |s| s.to_string())
                    ),
                })
            }
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`),
/// as axum's `Json` requires.
fn json_content_type(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

fn rejection_to_error(rejection: JsonRejection) -> AppError {
    let (status, code) = match &rejection {
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        JsonRejection::MissingJsonContentType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        _ => (rejection.status(), "bad_request"),
    };
    AppError::BadRequest {
        status,
        code,
        message: rejection.body_text(),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
