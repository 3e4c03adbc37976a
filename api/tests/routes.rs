//! Route tests through `oneshot`: login, refresh, bearer checks, the error body of bad input,
//! and the RBAC matrix (each role × each permission, over HTTP).

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use horsestream_api::auth::{
    Authorized, Claims, Permission, RequiredPermission, Role, TokenKind, now_secs, perm,
};
use horsestream_api::{AppState, app};

use common::*;

fn login_body(user: &str, pw: &str) -> String {
    serde_json::json!({ "username": user, "password": pw }).to_string()
}

#[tokio::test]
async fn login_ok_returns_a_token_pair_that_authenticates() {
    let app = app(state());
    let r = post_json(
        &app,
        "/api/v1/auth/login",
        &login_body("manager", "pw-manager"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["tokenType"], "Bearer");
    assert_eq!(r.json["expiresIn"], 15 * 60);
    assert_eq!(r.json["refreshExpiresIn"], 7 * 24 * 3600);
    assert_eq!(r.json["user"]["username"], "manager");
    assert_eq!(r.json["user"]["role"], "manager");
    assert_eq!(
        r.json["user"]["permissions"],
        serde_json::json!([
            "streams:read",
            "streams:write",
            "streams:control",
            "horses:read",
            "horses:write",
            "analytics:read"
        ])
    );
    let access = r.json["accessToken"].as_str().unwrap();
    let me = send(&app, "GET", "/api/v1/auth/me", None, Some(access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["username"], "manager");
}

#[tokio::test]
async fn bad_password_and_unknown_user_get_the_same_401() {
    let app = app(state());
    let bad = post_json(&app, "/api/v1/auth/login", &login_body("admin", "nope")).await;
    let unknown = post_json(&app, "/api/v1/auth/login", &login_body("ghost", "pw-admin")).await;
    for r in [&bad, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error_code(), "unauthorized");
        assert_eq!(r.json["error"]["message"], "invalid username or password");
        assert!(r.headers.contains_key("www-authenticate"));
    }
}

#[tokio::test]
async fn bad_login_bodies_get_the_consistent_error_body() {
    let app = app(state());
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        (
            "application/json",
            "{\"username\": \"admin\",",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "application/json",
            "not json",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "application/json",
            "{\"username\": 1, \"password\": \"x\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "application/json",
            "{\"username\": \"admin\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "application/json",
            "{\"username\": \"a\", \"password\": \"b\", \"x\": 1}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "application/json",
            "[]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        // JSON, longer than the two fields it would fill (serde_json calls this "trailing
        // characters", a syntax error; found by the rest_json fuzz target).
        (
            "application/json",
            "[\"a\", \"b\", \"c\"]\n\r",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "application/json; charset=utf-8",
            "{\"username\": 1, \"password\": \"x\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "application/problem+json",
            "{\"username\": 1, \"password\": \"x\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "application/json",
            "{\"username\": \"\", \"password\": \"b\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "text/plain",
            "{\"username\": \"a\", \"password\": \"b\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for &(ct, body, status, code) in cases {
        let r = send(&app, "POST", "/api/v1/auth/login", Some((ct, body)), None).await;
        assert_eq!(r.status, status, "{body}: {}", r.json);
        assert_eq!(r.error_code(), code, "{body}");
    }
    let long = login_body("admin", &"x".repeat(2000));
    let r = post_json(&app, "/api/v1/auth/login", &long).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let huge = login_body("admin", &"x".repeat(3 << 20));
    let r = post_json(&app, "/api/v1/auth/login", &huge).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn refresh_issues_a_new_pair_and_rereads_the_role() {
    let store = store();
    let app = app(state_with(store.clone(), &auth_config()));
    let login = post_json(
        &app,
        "/api/v1/auth/login",
        &login_body("viewer", "pw-viewer"),
    )
    .await;
    let refresh = login.json["refreshToken"].as_str().unwrap().to_owned();
    let access = login.json["accessToken"].as_str().unwrap().to_owned();

    store.set_role("viewer", Role::Manager);
    let body = serde_json::json!({ "refreshToken": refresh }).to_string();
    let r = post_json(&app, "/api/v1/auth/refresh", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["user"]["role"], "manager");
    let new_access = r.json["accessToken"].as_str().unwrap();
    assert_ne!(new_access, access);
    let me = send(&app, "GET", "/api/v1/auth/me", None, Some(new_access)).await;
    assert_eq!(me.json["role"], "manager");

    // An access token is not a refresh token, and a refresh token is not a bearer.
    let wrong = serde_json::json!({ "refreshToken": access }).to_string();
    let r = post_json(&app, "/api/v1/auth/refresh", &wrong).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let r = send(&app, "GET", "/api/v1/auth/me", None, Some(&refresh)).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );

    // A removed user cannot refresh any more.
    store.remove("viewer");
    let r = post_json(&app, "/api/v1/auth/refresh", &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["error"]["message"], "user no longer exists");

    let r = post_json(&app, "/api/v1/auth/refresh", "{\"refresh\": 1}").await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
}

#[tokio::test]
async fn missing_expired_forged_and_unsigned_tokens_get_401() {
    let state = state();
    let app = app(state.clone());
    let valid = token(&state, Role::Admin);

    let expired = state
        .tokens()
        .sign(&Claims {
            sub: "1".into(),
            name: "admin".into(),
            role: Role::Admin,
            typ: TokenKind::Access,
            iss: "horsestream".into(),
            iat: now_secs() - 3600,
            exp: now_secs() - 600,
            jti: "x".into(),
        })
        .unwrap();
    let other = AppState::new(
        &horsestream_api::auth::AuthConfig::new(b"a different secret, 32 bytes or more".to_vec())
            .unwrap(),
        store(),
    );
    let forged = token(&other, Role::Admin);
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });

    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing bearer token"),
        (Some(expired), "token expired"),
        (Some(forged), "invalid token: bad signature"),
        (Some(tampered), "invalid token"),
        (Some(alg_none_token(&valid)), "invalid token"),
        (Some("not.a.jwt".into()), "invalid token"),
    ];
    for (t, message) in cases {
        let r = send(&app, "GET", "/api/v1/auth/me", None, t.as_deref()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{t:?}");
        assert_eq!(r.error_code(), "unauthorized");
        let got = r.json["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{got:?} for {t:?}");
    }
    let basic = axum::http::Request::builder()
        .uri("/api/v1/auth/me")
        .header("authorization", "Basic YWRtaW46cHc=")
        .body(axum::body::Body::empty())
        .unwrap();
    use tower::ServiceExt;
    let res = app.clone().oneshot(basic).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let ok = send(&app, "GET", "/api/v1/auth/me", None, Some(&valid)).await;
    assert_eq!(ok.status, StatusCode::OK);
}

async fn guarded<P: RequiredPermission>(a: Authorized<P>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "user": a.principal().username, "may": P::PERMISSION.as_str() }))
}

/// A router with one route per permission, each guarded by `Authorized<P>`, beside the app.
fn guarded_router(state: AppState) -> Router {
    macro_rules! route {
        ($r:expr, $($p:ident),*) => {
            $r$(.route(
                &format!("/test/{}", Permission::$p.as_str()),
                get(guarded::<perm::$p>),
            ))*
        };
    }
    let r: Router<AppState> = route!(
        Router::new(),
        StreamsRead,
        StreamsWrite,
        StreamsControl,
        HorsesRead,
        HorsesWrite,
        AnalyticsRead,
        AnalyticsWrite,
        ModelsRead,
        ModelsWrite,
        UsersRead,
        UsersWrite
    );
    r.with_state(state)
}

/// The seed's roles over HTTP: every role × every permission gives 200 or 403.
#[tokio::test]
async fn rbac_matrix_over_http() {
    use Permission::*;
    #[rustfmt::skip]
    let table: &[(Permission, [bool; 3])] = &[
        //                 admin manager viewer
        (StreamsRead,    [true, true,  true]),
        (StreamsWrite,   [true, true,  false]),
        (StreamsControl, [true, true,  false]),
        (HorsesRead,     [true, true,  true]),
        (HorsesWrite,    [true, true,  false]),
        (AnalyticsRead,  [true, true,  false]),
        (AnalyticsWrite, [true, false, false]),
        (ModelsRead,     [true, false, false]),
        (ModelsWrite,    [true, false, false]),
        (UsersRead,      [true, false, false]),
        (UsersWrite,     [true, false, false]),
    ];
    assert_eq!(table.len(), Permission::ALL.len());
    let state = state();
    let router = guarded_router(state.clone());
    for &(p, allowed) in table {
        for (role, allow) in Role::ALL.into_iter().zip(allowed) {
            let uri = format!("/test/{p}");
            let r = send(&router, "GET", &uri, None, Some(&token(&state, role))).await;
            if allow {
                assert_eq!(r.status, StatusCode::OK, "{role} {p}");
                assert_eq!(r.json["may"], p.as_str());
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{role} {p}");
                assert_eq!(r.error_code(), "forbidden");
                assert_eq!(
                    r.json["error"]["message"],
                    format!("role {role} lacks permission {p}")
                );
            }
            let anonymous = send(&router, "GET", &uri, None, None).await;
            assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "anonymous {p}");
        }
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_body() {
    let app = app(state());
    let r = send(&app, "GET", "/api/v1/nothing-here", None, None).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = send(&app, "GET", "/api/v1/auth/login", None, None).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn health_is_public_and_ready_waits_for_the_events_consumer() {
    let app = app(state());
    let r = send(&app, "GET", "/api/v1/health", None, None).await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let r = send(&app, "GET", "/api/v1/ready", None, None).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}
