//! The RBAC matrix over HTTP: each role × each REST route gives the seed's allow/deny (admin
//! `*`; manager `streams:* horses:* analytics:read`; viewer `streams:read horses:read`), and
//! no token gives 401. Allowed calls may still fail for other reasons (a missing camera, an
//! empty upload) but never with 401/403; denied calls get 403 `forbidden` and change nothing.

mod common;

use axum::http::StatusCode;
use chrono::Utc;
use horsestream_api::app;
use horsestream_api::auth::Role;
use horsestream_sinks::{HorseSighting, NewAlert, NewStream, Severity, Store};

use common::routes::ROUTES;
use common::stores::{file_stream, state_with_store, unique};
use common::*;

/// The seed's grants, by hand (not through the API's own `allows`).
fn seed_allows(role: Role, permission: &str) -> bool {
    let grants: &[&str] = match role {
        Role::Admin => &["*"],
        Role::Manager => &["streams:*", "horses:*", "analytics:read"],
        Role::Viewer => &["streams:read", "horses:read"],
    };
    let resource = permission.split(':').next().unwrap();
    grants
        .iter()
        .any(|g| *g == "*" || *g == permission || *g == format!("{resource}:*"))
}

async fn fixture(store: &Store) -> (String, i64, i64) {
    let id = unique("rbac");
    store
        .create_stream(&NewStream {
            name: "rbac".into(),
            ..file_stream(&id)
        })
        .await
        .unwrap();
    let horse = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: id.clone(),
            time: Utc::now(),
            track_id: Some(1),
            colour: None,
        })
        .await
        .unwrap();
    let alert = store
        .insert_alert(&NewAlert {
            time: Utc::now(),
            stream_id: id.clone(),
            horse_id: None,
            kind: "k".into(),
            severity: Severity::Info,
            message: "m".into(),
            dedup_key: None,
        })
        .await
        .unwrap();
    (id, horse.id, alert.id)
}

#[tokio::test]
async fn each_role_on_each_route_gets_the_seeds_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
        .await
        .unwrap();
    let state = state_with_store(&store);
    let app = app(state.clone());
    let mut checked = 0;
    for route in ROUTES {
        for role in Role::ALL {
            // A fresh stream, horse and alert per call: a DELETE must not starve later calls.
            let (id, horse, alert) = fixture(&store).await;
            let uri = route
                .template
                .replace(
                    "{id}",
                    &if route.template.starts_with("/api/v1/horses") {
                        horse.to_string()
                    } else if route.template.starts_with("/api/v1/alerts") {
                        alert.to_string()
                    } else {
                        id.clone()
                    },
                )
                .replace("{name}", "yolox_nano")
                .replace("{token}", "1")
                .replace("{file}", "index.m3u8");
            let uri = if uri == "/api/v1/detections" {
                format!("{uri}?stream={id}")
            } else if uri.ends_with("/overlay") {
                format!("{uri}?fromPts=0&toPts=1000000")
            } else {
                uri
            };
            let body = route.body.map(|b| b.replace("{new}", &unique("n")));
            let body = body.as_deref().map(|b| ("application/json", b));
            let r = send(&app, route.method, &uri, body, Some(&token(&state, role))).await;
            let allowed = seed_allows(role, route.permission);
            if allowed {
                assert!(
                    r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                    "{role} {} {}: expected allowed, got {} {}",
                    route.method,
                    route.template,
                    r.status,
                    r.json
                );
            } else {
                assert_eq!(
                    (r.status, r.error_code()),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{role} {} {}",
                    route.method,
                    route.template
                );
                // A denied write changed nothing.
                let s = store.get_stream(&id).await.unwrap();
                assert!(
                    !s.enabled && s.name == "rbac",
                    "{role} {} {}",
                    route.method,
                    route.template
                );
            }
            checked += 1;
            let anon = send(&app, route.method, &uri, body, None).await;
            assert_eq!(
                (anon.status, anon.error_code()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{} {}",
                route.method,
                route.template
            );
        }
    }
    assert_eq!(checked, ROUTES.len() * 3);
    // The matrix is not trivially one-sided.
    let denied = ROUTES
        .iter()
        .flat_map(|r| Role::ALL.map(|role| seed_allows(role, r.permission)))
        .filter(|a| !a)
        .count();
    assert!(denied > 10 && denied < ROUTES.len() * 3);
}
