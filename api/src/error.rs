//! The one error type of the API and its JSON body, `{ "error": { "code", "message" } }`.
//! Clients get a stable `code` and a clean message; the cause of a 5xx is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Everything a handler or extractor of the API can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is well-formed HTTP but its content is not acceptable.
    #[error("{message}")]
    BadRequest {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// No credentials, or credentials that do not prove who the caller is.
    #[error("{0}")]
    Unauthorized(String),
    /// A known caller whose role does not grant the route's permission.
    #[error("role {role} lacks permission {permission}")]
    Forbidden {
        role: &'static str,
        permission: &'static str,
    },
    #[error("{0}")]
    NotFound(String),
    /// A dependency the request needs is not there yet (or any more).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a failed dependency; the cause is logged and the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// 422 `invalid_value`: well-formed JSON whose values are refused.
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::BadRequest {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_value",
            message: message.into(),
        }
    }

    /// 409 `conflict`: the id or name is taken.
    pub fn conflict(message: impl Into<String>) -> Self {
        AppError::BadRequest {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
        }
    }

    /// 502 with `code`: the camera (or another upstream) failed or misbehaved.
    pub fn upstream(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            status: StatusCode::BAD_GATEWAY,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::Unauthorized(message.into())
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(cause.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { status, .. } => *status,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. } => code,
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden { .. } => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The body sent to clients (also used for Socket.io acknowledgements).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        }
    }
}

impl From<horsestream_sinks::SinkError> for AppError {
    /// Unknown rows → 404, taken ids → 409, refused values → 422, a store that is down → 503;
    /// anything else is internal (logged, not sent).
    fn from(e: horsestream_sinks::SinkError) -> Self {
        use horsestream_sinks::SinkError;
        match e {
            SinkError::NotFound { .. } => AppError::NotFound(e.to_string()),
            SinkError::Conflict { .. } => AppError::conflict(e.to_string()),
            SinkError::Invalid { .. } => AppError::invalid(e.to_string()),
            e if e.is_retriable() => {
                tracing::warn!(error = %e, "store unavailable");
                AppError::Unavailable("database unavailable, try again".into())
            }
            e => AppError::internal(e),
        }
    }
}

/// `{ "error": { "code": "...", "message": "..." } }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed with an internal error");
            }
            AppError::Unavailable(why) => tracing::debug!(%why, "request refused: unavailable"),
            _ => tracing::debug!(%status, code = self.code(), message = %self, "request refused"),
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"horsestream\""),
            );
        }
        response
    }
}

/// The JSON 404 for paths no route matches.
pub async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

/// The JSON 405 for a known path called with a method it does not serve.
pub async fn method_not_allowed() -> AppError {
    AppError::BadRequest {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "method not allowed on this route".into(),
    }
}
