//! `POST /api/v1/auth/login`, `POST /api/v1/auth/refresh`, `GET /api/v1/auth/me`.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{Authenticated, Permission, Principal, Role, TokenKind, TokenPair, users};
use crate::error::AppError;
use crate::json::ApiJson;

/// Longest username and password accepted: argon2 cost grows with input, and nobody types more.
pub const MAX_USERNAME_LEN: usize = 128;
pub const MAX_PASSWORD_LEN: usize = 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/me", get(me))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub permissions: Vec<String>,
}

impl UserInfo {
    fn new(id: i64, username: &str, role: Role) -> Self {
        UserInfo {
            id,
            username: username.to_owned(),
            role,
            permissions: role
                .permissions()
                .into_iter()
                .map(|p: Permission| p.as_str().to_owned())
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_expires_in: u64,
    pub user: UserInfo,
}

impl TokenResponse {
    fn new(pair: TokenPair, user: UserInfo) -> Self {
        TokenResponse {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer".into(),
            expires_in: pair.access_expires_in.as_secs(),
            refresh_expires_in: pair.refresh_expires_in.as_secs(),
            user,
        }
    }
}

fn invalid_credentials() -> AppError {
    AppError::unauthorized("invalid username or password")
}

fn store_error(e: users::UserStoreError) -> AppError {
    match e {
        users::UserStoreError::Backend {
            retriable: true, ..
        } => AppError::Unavailable("user store unavailable, try again".into()),
        other => AppError::internal(other),
    }
}

async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<ApiJson<TokenResponse>, AppError> {
    if req.username.is_empty() || req.username.len() > MAX_USERNAME_LEN {
        return Err(AppError::BadRequest {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_body",
            message: format!("username must have 1 to {MAX_USERNAME_LEN} bytes"),
        });
    }
    if req.password.len() > MAX_PASSWORD_LEN {
        return Err(AppError::BadRequest {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_body",
            message: format!("password must have at most {MAX_PASSWORD_LEN} bytes"),
        });
    }
    let user = state
        .users()
        .find_by_username(&req.username)
        .await
        .map_err(store_error)?;
    // An unknown user costs the same argon2 verification as a wrong password, so response
    // times do not tell which usernames exist.
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => state.dummy_password_hash().await?,
    };
    let ok = state.verify_password(req.password, hash).await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            tracing::info!(username = %req.username, "login refused");
            return Err(invalid_credentials());
        }
    };
    let pair = state
        .tokens()
        .issue(user.id, &user.username, user.role)
        .map_err(AppError::internal)?;
    tracing::info!(username = %user.username, role = %user.role, "login");
    Ok(ApiJson(TokenResponse::new(
        pair,
        UserInfo::new(user.id, &user.username, user.role),
    )))
}

/// Exchanges a valid refresh token for a new pair; the role is read again from the store, so
/// a role change or a removed user takes effect here.
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<ApiJson<TokenResponse>, AppError> {
    let claims = state
        .tokens()
        .verify(&req.refresh_token, TokenKind::Refresh)
        .map_err(|e| AppError::unauthorized(e.to_string()))?;
    let id = claims
        .user_id()
        .ok_or_else(|| AppError::unauthorized("invalid token: bad subject"))?;
    let user = state
        .users()
        .find_by_id(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| AppError::unauthorized("user no longer exists"))?;
    let pair = state
        .tokens()
        .issue(user.id, &user.username, user.role)
        .map_err(AppError::internal)?;
    Ok(ApiJson(TokenResponse::new(
        pair,
        UserInfo::new(user.id, &user.username, user.role),
    )))
}

async fn me(Authenticated(p): Authenticated) -> ApiJson<UserInfo> {
    let Principal {
        user_id,
        username,
        role,
        ..
    } = p;
    ApiJson(UserInfo::new(user_id, &username, role))
}
