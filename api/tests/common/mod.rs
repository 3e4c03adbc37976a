//! Helpers shared by the API's integration tests: an `AppState` with one user per role,
//! requests through `oneshot`, and hand-made tokens.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use horsestream_api::AppState;
use horsestream_api::auth::{AuthConfig, InMemoryUserStore, Role, users};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub const SECRET: &[u8] = b"test secret of at least thirty-two bytes";

/// The password of each test user is `pw-<role>`; the user is named after its role.
pub fn password(role: Role) -> String {
    format!("pw-{role}")
}

/// argon2 hashes are slow on purpose: compute them once per test binary.
fn hashes() -> &'static Vec<(Role, String)> {
    static H: OnceLock<Vec<(Role, String)>> = OnceLock::new();
    H.get_or_init(|| {
        Role::ALL
            .iter()
            .map(|&r| (r, users::hash_password(&password(r)).unwrap()))
            .collect()
    })
}

pub fn store() -> Arc<InMemoryUserStore> {
    let store = InMemoryUserStore::new();
    for (role, hash) in hashes() {
        store.insert(role.as_str(), hash, *role).unwrap();
    }
    Arc::new(store)
}

pub fn auth_config() -> AuthConfig {
    AuthConfig::new(SECRET.to_vec()).unwrap()
}

pub fn state_with(store: Arc<InMemoryUserStore>, cfg: &AuthConfig) -> AppState {
    AppState::new(cfg, store)
}

pub fn state() -> AppState {
    state_with(store(), &auth_config())
}

/// An access token for the test user of `role`, issued directly.
pub fn token(state: &AppState, role: Role) -> String {
    let id = Role::ALL.iter().position(|&r| r == role).unwrap() as i64 + 1;
    state
        .tokens()
        .issue(id, role.as_str(), role)
        .unwrap()
        .access_token
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
}

impl Reply {
    /// A reply whose body is JSON, or empty (`null`).
    pub fn new(status: StatusCode, headers: HeaderMap, bytes: &[u8]) -> Reply {
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(bytes))
            })
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    /// Asserts the API's error body and returns its code.
    pub fn error_code(&self) -> &str {
        let e = &self.json["error"];
        assert!(
            e["code"].is_string() && e["message"].is_string(),
            "not an error body: {}",
            self.json
        );
        assert_eq!(
            self.json.as_object().unwrap().len(),
            1,
            "only `error`: {}",
            self.json
        );
        e["code"].as_str().unwrap()
    }
}

/// One request through the router: its status, headers and whole body.
pub async fn request(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

/// One request through the router: `body` is sent as `content_type` when given.
pub async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<(&str, &str)>,
    bearer: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some((content_type, b)) => req
            .header("content-type", content_type)
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let (status, headers, bytes) = request(app, req).await;
    Reply::new(status, headers, &bytes)
}

/// [`send`] as the holder of `bearer`, with a JSON body when given.
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    json: Option<&str>,
    bearer: &str,
) -> Reply {
    send(
        app,
        method,
        uri,
        json.map(|b| ("application/json", b)),
        Some(bearer),
    )
    .await
}

pub async fn post_json(app: &Router, uri: &str, body: &str) -> Reply {
    send(app, "POST", uri, Some(("application/json", body)), None).await
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &c| (n << 8) | c as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned (`alg: none`) token carrying the claims of a valid admin token.
pub fn alg_none_token(valid: &str) -> String {
    let claims = valid.split('.').nth(1).unwrap();
    format!("{}.{claims}.", b64url(br#"{"alg":"none","typ":"JWT"}"#))
}

pub mod net;
pub mod routes;
pub mod stores;
