//! Hostile callers (issue 8, security), beyond what `routes.rs` (missing, expired, forged,
//! tampered, `alg: none` tokens on REST), `gateway.rs` (no, empty, forged, `alg: none` and
//! refresh tokens at the Socket.io handshake), `rbac_matrix.rs` (role × route) and
//! `camera_models.rs` (a camera naming or redirecting to another host) cover:
//! - tokens signed with the right secret but another HMAC algorithm, an RS256 header over an
//!   HMAC signature, `alg` spelled `None`/`NONE`, another issuer, a non-numeric subject, no
//!   expiry, a token in the query string: 401 on REST and a refused Socket.io handshake
//!   (engine.io polling through the real router), expired tokens at the handshake too;
//! - the SSRF guard against encodings of another loopback host and DNS names for the
//!   registered one in the service addresses a camera returns (no connection reaches them);
//! - SQL in every text a client sends: stored and returned verbatim, or a 4xx, never a 5xx,
//!   on SQLite and TimescaleDB.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use horsestream_api::app;
use horsestream_api::auth::{ISSUER, Role, now_secs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use common::net::{bait, stub};
use common::stores::{state_with_store, stores, unique};
use common::*;

fn claims(role: Role) -> serde_json::Value {
    serde_json::json!({
        "sub": "1", "name": "admin", "role": role.as_str(), "typ": "access", "iss": ISSUER,
        "iat": now_secs(), "exp": now_secs() + 600, "jti": "sec",
    })
}

fn signed(alg: Algorithm, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

/// `token` with its header replaced by `header` (the signature is left as it was).
fn with_header(token: &str, header: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64url(header.as_bytes()))
}

/// The engine.io/Socket.io handshake over HTTP long-polling through `app`: opens a session,
/// sends the namespace CONNECT with `{ token }`, and returns the server's answer packet
/// (`40{"sid":…}` accepted, `44{"message":…}` refused).
async fn handshake(app: &axum::Router, token: &str) -> String {
    let open = Request::get("/socket.io/?EIO=4&transport=polling")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = request(app, open).await;
    assert_eq!(status, StatusCode::OK);
    let body = String::from_utf8_lossy(&body);
    let open: serde_json::Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap();
    let uri = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let connect = format!("40{}", serde_json::json!({ "token": token }));
    let (status, _, _) = request(
        app,
        Request::post(uri.as_str())
            .header("content-type", "text/plain;charset=UTF-8")
            .body(Body::from(connect))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let poll = Request::get(uri.as_str()).body(Body::empty()).unwrap();
    let (_, _, body) = tokio::time::timeout(Duration::from_secs(10), request(app, poll))
        .await
        .expect("the server answers the CONNECT");
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn tokens_of_another_algorithm_issuer_or_shape_get_401_and_a_refused_socket() {
    let state = state();
    let app = app(state.clone());
    let valid = token(&state, Role::Admin);

    let mut wrong_issuer = claims(Role::Admin);
    wrong_issuer["iss"] = "someone-else".into();
    let mut text_subject = claims(Role::Admin);
    text_subject["sub"] = "admin".into();
    let mut no_expiry = claims(Role::Admin);
    no_expiry.as_object_mut().unwrap().remove("exp");
    let mut expired = claims(Role::Admin);
    expired["iat"] = (now_secs() - 3600).into();
    expired["exp"] = (now_secs() - 600).into();
    let mut refresh = claims(Role::Admin);
    refresh["typ"] = "refresh".into();
    let unsigned = |alg: &str| {
        let t = with_header(&valid, &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        format!("{}.", t.rsplit_once('.').unwrap().0)
    };

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "HS384 with the server's secret",
            signed(Algorithm::HS384, &claims(Role::Admin)),
            "invalid token",
        ),
        (
            "HS512 with the server's secret",
            signed(Algorithm::HS512, &claims(Role::Admin)),
            "invalid token",
        ),
        (
            "RS256 header over the HS256 signature",
            with_header(&valid, r#"{"alg":"RS256","typ":"JWT"}"#),
            "invalid token",
        ),
        ("alg None", unsigned("None"), "invalid token"),
        ("alg NONE", unsigned("NONE"), "invalid token"),
        (
            "another issuer",
            signed(Algorithm::HS256, &wrong_issuer),
            "invalid token: wrong issuer",
        ),
        (
            "non-numeric subject",
            signed(Algorithm::HS256, &text_subject),
            "invalid token: bad subject",
        ),
        (
            "no expiry",
            signed(Algorithm::HS256, &no_expiry),
            "invalid token",
        ),
        (
            "expired",
            signed(Algorithm::HS256, &expired),
            "token expired",
        ),
        (
            "refresh token",
            signed(Algorithm::HS256, &refresh),
            "a Refresh token",
        ),
    ];
    for (what, t, message) in &cases {
        let r = send(&app, "GET", "/api/v1/auth/me", None, Some(t)).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "REST, {what}"
        );
        let got = r.json["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "REST, {what}: {got}");

        let answer = handshake(&app, t).await;
        assert!(
            answer.starts_with("44") && answer.contains("unauthorized"),
            "socket, {what}: {answer}"
        );
    }

    // A token anywhere but the Authorization header is no token.
    let r = send(
        &app,
        "GET",
        &format!("/api/v1/auth/me?token={valid}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The same valid token passes both doors: the refusals above are the token's.
    let r = send(&app, "GET", "/api/v1/auth/me", None, Some(&valid)).await;
    assert_eq!(r.status, StatusCode::OK);
    let answer = handshake(&app, &valid).await;
    assert!(answer.starts_with("40"), "{answer}");
}

/// A device service on the registered host answering every request with `body`.
fn device_service(body: String) -> u16 {
    stub(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

#[tokio::test]
async fn service_addresses_in_disguise_never_reach_another_host() {
    let (_, store, _dir) = stores().await.remove(0);
    let state = state_with_store(&store);
    let app = app(state.clone());
    let admin = token(&state, Role::Admin);
    let (port, hits) = bait();
    // The camera is registered as 127.0.0.1; every host below is refused before any
    // connection, whatever it resolves to.
    let hosts = [
        "2130706434".to_owned(), // 127.0.0.2 as one decimal number
        "0x7f000002".to_owned(),
        "0177.0.0.2".to_owned(), // octal
        "127.2".to_owned(),
        "127.0.0.2.".to_owned(),
        "[::ffff:127.0.0.2]".to_owned(),
        "[::1]".to_owned(),
        "localhost".to_owned(),
        "127.0.0.1.nip.io".to_owned(),
        "127.0.0.1@127.0.0.2".to_owned(),
        "127.0.0.1%2f@127.0.0.2".to_owned(),
    ];
    for host in &hosts {
        let xaddr = format!("http://{host}:{port}/onvif/ptz");
        let caps = format!(
            "<s:Envelope><s:Body><tds:GetCapabilitiesResponse><tds:Capabilities>\
             <tt:Media><tt:XAddr>{xaddr}</tt:XAddr></tt:Media><tt:PTZ><tt:XAddr>{xaddr}</tt:XAddr></tt:PTZ>\
             </tds:Capabilities></tds:GetCapabilitiesResponse></s:Body></s:Envelope>"
        );
        let device = device_service(caps);
        let id = unique("ssrf");
        let body = serde_json::json!({
            "id": id, "name": id, "sourceUrl": "rtsp://127.0.0.1/cam", "sourceKind": "rtsp",
            "credentials": {"username": "u", "password": "p", "onvifPort": device},
        });
        let r = call(
            &app,
            "POST",
            "/api/v1/streams",
            Some(&body.to_string()),
            &admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let r = call(
            &app,
            "POST",
            &format!("/api/v1/streams/{id}/ptz/stop"),
            None,
            &admin,
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::BAD_GATEWAY, "camera_host_refused"),
            "{host}: {}",
            r.json
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a disguised host was reached"
    );
}

const INJECTIONS: [&str; 4] = [
    "Robert'); DROP TABLE streams;--",
    "' OR '1'='1",
    "x\"; DELETE FROM detections; --",
    "1; SELECT pg_sleep(10)",
];

#[tokio::test]
async fn sql_in_every_text_field_is_data_or_a_4xx() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let admin = token(&state, Role::Admin);
        let id = unique("sqli");
        for (i, text) in INJECTIONS.iter().enumerate() {
            let sid = format!("{id}-{i}");
            let body = serde_json::json!({
                "id": sid, "name": text, "sourceUrl": format!("rtsp://cam/{}", urlish(text)),
                "sourceKind": "rtsp",
            });
            let r = call(
                &app,
                "POST",
                "/api/v1/streams",
                Some(&body.to_string()),
                &admin,
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED, "{backend}: {}", r.json);
            let r = call(&app, "GET", &format!("/api/v1/streams/{sid}"), None, &admin).await;
            assert_eq!(r.json["name"], *text, "{backend}: stored verbatim");
            let patch = serde_json::json!({ "name": format!("{text} (2)") });
            let r = call(
                &app,
                "PATCH",
                &format!("/api/v1/streams/{sid}"),
                Some(&patch.to_string()),
                &admin,
            )
            .await;
            assert_eq!(r.json["name"], format!("{text} (2)"), "{backend}");

            // As ids and query values: not found or refused, never a server error.
            let q = urlish(text);
            for uri in [
                format!("/api/v1/streams/{q}"),
                format!("/api/v1/streams/{q}/snapshot"),
                format!("/api/v1/horses/{q}"),
                format!("/api/v1/streams/{q}/horses"),
                format!("/api/v1/streams/{q}/overlay"),
                format!(
                    "/api/v1/detections?stream={q}&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"
                ),
                format!("/api/v1/detections?stream={sid}&from={q}&to=2026-01-02T00:00:00Z"),
                format!(
                    "/api/v1/detections?stream={sid}&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&cursor={q}"
                ),
                format!("/api/v1/alerts?stream={q}"),
                format!("/api/v1/alerts?kind={q}&severity={q}"),
            ] {
                let r = call(&app, "GET", &uri, None, &admin).await;
                assert!(
                    r.status.is_client_error() || r.status == StatusCode::OK,
                    "{backend} GET {uri}: {} {}",
                    r.status,
                    r.json
                );
                if r.status.is_client_error() {
                    r.error_code();
                }
            }
            let r = call(
                &app,
                "POST",
                &format!("/api/v1/alerts/{q}/acknowledge"),
                None,
                &admin,
            )
            .await;
            assert!(r.status.is_client_error(), "{backend}: {}", r.status);
            let rename = serde_json::json!({ "displayName": text });
            let r = call(
                &app,
                "PATCH",
                &format!("/api/v1/horses/{q}"),
                Some(&rename.to_string()),
                &admin,
            )
            .await;
            assert!(r.status.is_client_error(), "{backend}: {}", r.status);
        }
        // Every stream is still there, so no statement ran.
        let r = call(&app, "GET", "/api/v1/streams", None, &admin).await;
        let listed = r.json.to_string();
        for i in 0..INJECTIONS.len() {
            assert!(
                listed.contains(&format!("{id}-{i}")),
                "{backend}: stream {i} is gone"
            );
        }
    }
}

/// `text` percent-encoded for a URL path or query.
fn urlish(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
