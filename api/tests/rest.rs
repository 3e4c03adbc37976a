//! REST routes through `oneshot` against both real stores (SQLite and TimescaleDB): streams,
//! detections with cursor pagination, horses, alerts, models, the OpenAPI document, the
//! store-backed users, and the error body of bad input.

mod common;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use horsestream_api::app;
use horsestream_api::auth::{Role, StoreUserStore};
use horsestream_proto::{ProcessedChunk, testing};
use horsestream_sinks::{GaitRow, HorseSighting, NewAlert, Severity, Store};

use common::stores::{file_stream, state_with_store, stores, unique};
use common::*;

fn json(v: serde_json::Value) -> String {
    v.to_string()
}

async fn add_stream(store: &Store, id: &str) {
    store.create_stream(&file_stream(id)).await.unwrap();
}

#[tokio::test]
async fn streams_crud_start_stop_and_credentials_never_come_back() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let admin = token(&state, Role::Admin);
        let id = unique("crud");
        let create = json(serde_json::json!({
            "id": id, "name": "North paddock", "sourceUrl": "rtsp://cam.local:554/main",
            "sourceKind": "rtsp",
            "credentials": {"username": "onvif-user", "password": "hunter2-secret"},
            "zones": [{"name": "gate", "polygon": [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]}],
            "calibration": {"pixels_per_metre": 40.0}
        }));
        let r = call(&app, "POST", "/api/v1/streams", Some(&create), &admin).await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend}: {}", r.json);
        assert_eq!(r.json["hasCredentials"], true);
        assert_eq!(r.json["status"], "stopped");
        assert_eq!(r.json["zones"][0]["name"], "gate");
        assert!(
            !r.json.to_string().contains("hunter2"),
            "{backend}: credentials returned"
        );
        // Stored server-side, exactly as given.
        let secret = store.stream_credentials(&id).await.unwrap().unwrap();
        assert!(secret.contains("hunter2-secret") && secret.contains("onvif-user"));

        let again = call(&app, "POST", "/api/v1/streams", Some(&create), &admin).await;
        assert_eq!(
            (again.status, again.error_code()),
            (StatusCode::CONFLICT, "conflict")
        );

        let got = call(&app, "GET", &format!("/api/v1/streams/{id}"), None, &admin).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.json["sourceUrl"], "rtsp://cam.local:554/main");
        let list = call(&app, "GET", "/api/v1/streams", None, &admin).await;
        assert!(
            list.json
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == id.as_str())
        );
        assert!(!list.json.to_string().contains("hunter2"));

        let patch = json(serde_json::json!({"name": "Renamed", "credentials": null}));
        let p = call(
            &app,
            "PATCH",
            &format!("/api/v1/streams/{id}"),
            Some(&patch),
            &admin,
        )
        .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.json);
        assert_eq!(
            (p.json["name"].as_str(), p.json["hasCredentials"].as_bool()),
            (Some("Renamed"), Some(false))
        );
        assert_eq!(store.stream_credentials(&id).await.unwrap(), None);

        // Alert settings: the defaults, then the stream's own rules; bad ones are refused.
        assert_eq!(
            p.json["alertRules"],
            serde_json::json!({"no_movement_s": 600.0, "lying_down_s": 30.0, "zone_exit": true})
        );
        let rules = json(serde_json::json!({
            "alertRules": {"no_movement_s": 120, "lying_down_s": null, "zone_exit": false}
        }));
        let r = call(
            &app,
            "PATCH",
            &format!("/api/v1/streams/{id}"),
            Some(&rules),
            &admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(
            r.json["alertRules"],
            serde_json::json!({"no_movement_s": 120.0, "lying_down_s": null, "zone_exit": false})
        );
        let stored = store.get_stream(&id).await.unwrap().alert_rules;
        assert_eq!(
            (stored.no_movement_s, stored.lying_down_s, stored.zone_exit),
            (Some(120.0), None, false)
        );
        for bad in [
            serde_json::json!({"alertRules": {"no_movement_s": -1}}),
            serde_json::json!({"alertRules": {"no_movement_s": "ten"}}),
            serde_json::json!({"alertRules": {"snooze": 5}}),
        ] {
            let r = call(
                &app,
                "PATCH",
                &format!("/api/v1/streams/{id}"),
                Some(&json(bad.clone())),
                &admin,
            )
            .await;
            assert!(r.status.is_client_error(), "{bad}: {}", r.status);
            assert!(r.json["error"]["code"].is_string(), "{bad}: {}", r.json);
        }
        assert_eq!(store.get_stream(&id).await.unwrap().alert_rules, stored);

        let s = call(
            &app,
            "POST",
            &format!("/api/v1/streams/{id}/start"),
            None,
            &admin,
        )
        .await;
        assert_eq!(
            (s.json["enabled"].as_bool(), s.json["status"].as_str()),
            (Some(true), Some("starting"))
        );
        assert!(
            store.get_stream(&id).await.unwrap().enabled,
            "the table is what ingest polls"
        );
        let s = call(
            &app,
            "POST",
            &format!("/api/v1/streams/{id}/stop"),
            None,
            &admin,
        )
        .await;
        assert_eq!(
            (s.json["enabled"].as_bool(), s.json["status"].as_str()),
            (Some(false), Some("stopped"))
        );

        let d = call(
            &app,
            "DELETE",
            &format!("/api/v1/streams/{id}"),
            None,
            &admin,
        )
        .await;
        assert_eq!(d.status, StatusCode::NO_CONTENT);
        for (m, u) in [
            ("GET", format!("/api/v1/streams/{id}")),
            ("DELETE", format!("/api/v1/streams/{id}")),
            ("POST", format!("/api/v1/streams/{id}/start")),
        ] {
            let r = call(&app, m, &u, None, &admin).await;
            assert_eq!(
                (r.status, r.error_code()),
                (StatusCode::NOT_FOUND, "not_found"),
                "{m} {u}"
            );
        }
    }
}

#[tokio::test]
async fn bad_stream_bodies_get_the_one_error_body() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let admin = token(&state, Role::Admin);
        let id = unique("bad");
        let ok = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"id": id, "name": "n", "sourceUrl": "rtsp://cam/x", "sourceKind": "rtsp"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v.to_string()
        };
        let huge = format!(
            "{{\"id\": \"{id}\", \"name\": \"{}\"}}",
            "x".repeat(3 << 20)
        );
        let cases: Vec<(String, StatusCode, &str)> = vec![
            (
                "{\"id\": ".into(),
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                ok(serde_json::json!({"enabled": "yes"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                ok(serde_json::json!({"colour": 1})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                ok(serde_json::json!({"sourceUrl": "rtsp://u:p@cam/x"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
            (
                ok(serde_json::json!({"sourceKind": "ftp"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
            (
                ok(serde_json::json!({"id": "has space"})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
            (
                ok(serde_json::json!({"calibration": {"pixels_per_metre": -1.0}})),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
            (huge, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ];
        for (body, status, code) in cases {
            let r = call(&app, "POST", "/api/v1/streams", Some(&body), &admin).await;
            assert_eq!(
                (r.status, r.error_code()),
                (status, code),
                "{backend}: {}",
                &body[..body.len().min(80)]
            );
        }
        assert!(
            store.get_stream(&id).await.is_err(),
            "{backend}: nothing was created"
        );
        let r = call(
            &app,
            "PATCH",
            "/api/v1/streams/nope-never",
            Some("{\"name\": \"x\"}"),
            &admin,
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
        let r = call(&app, "GET", "/api/v1/horses/not-a-number", None, &admin).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_path")
        );
    }
}

/// Chunk `sequence` (2 s each) of a stream that started at `start`.
fn chunk(stream_id: &str, sequence: u64, start: DateTime<Utc>, boxes: &[usize]) -> ProcessedChunk {
    let first_pts = sequence as i64 * 2_000_000;
    testing::chunk(
        stream_id,
        sequence,
        start.timestamp_micros(),
        first_pts,
        2_000_000,
        boxes,
    )
}

type Key = (String, String, i64, i64);

/// The keys of a detection page's items, in order.
fn keys(page: &serde_json::Value) -> Vec<Key> {
    page["items"].as_array().unwrap().iter().map(key).collect()
}

/// The `id` of each element of a JSON array, in order.
fn ids_of(list: &serde_json::Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect()
}

/// A gait window of `track` at `time`, in metres per second, as far as `speed` for one second.
fn gait(
    stream_id: &str,
    time: DateTime<Utc>,
    track_id: i64,
    speed: f64,
    stride_hz: Option<f64>,
    gait_class: &str,
) -> GaitRow {
    GaitRow {
        time,
        stream_id: stream_id.into(),
        track_id,
        horse_id: None,
        speed,
        acceleration: 0.0,
        unit: "metres_per_second".into(),
        stride_hz,
        gait_class: gait_class.into(),
        distance: speed,
        pose: None,
    }
}

fn key(d: &serde_json::Value) -> Key {
    (
        d["time"].as_str().unwrap().to_owned(),
        d["chunkId"].as_str().unwrap().to_owned(),
        d["frameIndex"].as_i64().unwrap(),
        d["detIndex"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn detection_pages_cover_every_row_once_in_stable_order() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let viewer = token(&state, Role::Viewer);
        let id = unique("det");
        add_stream(&store, &id).await;
        let t0 = DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut expected = 0;
        for seq in 0..4u64 {
            // Frames with 0..3 boxes; a chunk's frames overlap the next chunk's time span.
            let boxes: Vec<usize> = (0..6).map(|f| (f + seq as usize) % 4).collect();
            expected += boxes.iter().sum::<usize>();
            store
                .write_chunk(&chunk(&id, seq, t0, &boxes))
                .await
                .unwrap();
        }
        let mut seen: Vec<Key> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut uri = format!("/api/v1/detections?stream={id}&limit=7");
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={c}"));
            }
            let r = call(&app, "GET", &uri, None, &viewer).await;
            assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
            let items = r.json["items"].as_array().unwrap();
            assert!(items.len() <= 7);
            seen.extend(items.iter().map(key));
            pages += 1;
            match r.json["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(pages < 100, "pagination does not end");
        }
        assert_eq!(seen.len(), expected, "{backend}: every detection once");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{backend}: no row twice");
        let all = call(
            &app,
            "GET",
            &format!("/api/v1/detections?stream={id}&limit=1000"),
            None,
            &viewer,
        )
        .await;
        let all = keys(&all.json);
        assert_eq!(
            all, seen,
            "{backend}: pages concatenate to the single-page order"
        );
        // Times are identical across backends' formatting, so order by parsed time too.
        let times: Vec<DateTime<Utc>> = seen.iter().map(|k| k.0.parse().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));

        // A time range keeps exactly the rows inside [from, to).
        let (from, to) = (
            t0 + Duration::milliseconds(2_200),
            t0 + Duration::milliseconds(4_300),
        );
        let r = call(
            &app,
            "GET",
            &format!(
                "/api/v1/detections?stream={id}&limit=1000&from={}&to={}",
                from.to_rfc3339().replace('+', "%2B"),
                to.to_rfc3339().replace('+', "%2B")
            ),
            None,
            &viewer,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let inside = keys(&r.json);
        let want: Vec<Key> = seen
            .iter()
            .filter(|k| {
                let t: DateTime<Utc> = k.0.parse().unwrap();
                t >= from && t < to
            })
            .cloned()
            .collect();
        assert!(!want.is_empty());
        assert_eq!(inside, want, "{backend}");

        let bad: &[(String, StatusCode, &str)] = &[
            (
                format!(
                    "/api/v1/detections?stream={id}&from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z"
                ),
                StatusCode::BAD_REQUEST,
                "invalid_range",
            ),
            (
                format!("/api/v1/detections?stream={id}&from=yesterday"),
                StatusCode::BAD_REQUEST,
                "invalid_time",
            ),
            (
                format!("/api/v1/detections?stream={id}&cursor=garbage"),
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
            ),
            (
                format!("/api/v1/detections?stream={id}&limit=0"),
                StatusCode::BAD_REQUEST,
                "invalid_query",
            ),
            (
                format!("/api/v1/detections?stream={id}&limit=ten"),
                StatusCode::BAD_REQUEST,
                "invalid_query",
            ),
            (
                "/api/v1/detections".into(),
                StatusCode::BAD_REQUEST,
                "invalid_query",
            ),
            (
                "/api/v1/detections?stream=no-such-stream-x".into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
        ];
        for (uri, status, code) in bad {
            let r = call(&app, "GET", uri, None, &viewer).await;
            assert_eq!(
                (r.status, r.error_code()),
                (*status, *code),
                "{backend}: {uri}"
            );
        }
        if let Some(c) = cursor {
            let other = unique("det-other");
            add_stream(&store, &other).await;
            let r = call(
                &app,
                "GET",
                &format!("/api/v1/detections?stream={other}&cursor={c}"),
                None,
                &viewer,
            )
            .await;
            assert_eq!(r.error_code(), "invalid_cursor");
        }
    }
}

#[tokio::test]
async fn horses_list_profile_with_gait_aggregates_and_rename() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let manager = token(&state, Role::Manager);
        let id = unique("horse");
        add_stream(&store, &id).await;
        let t0 = DateTime::parse_from_rfc3339("2025-04-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = store
            .upsert_horse(&HorseSighting {
                horse_id: None,
                stream_id: id.clone(),
                time: t0,
                track_id: Some(5),
                colour: Some("bay".into()),
            })
            .await
            .unwrap();
        let b = store
            .upsert_horse(&HorseSighting {
                horse_id: None,
                stream_id: id.clone(),
                time: t0,
                track_id: Some(9),
                colour: None,
            })
            .await
            .unwrap();
        let speeds = [1.0, 3.0, 5.0];
        let rows: Vec<GaitRow> = speeds
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let class = if s < 2.0 { "walk" } else { "trot" };
                let time = t0 + Duration::seconds(i as i64);
                gait(&id, time, 5, s, Some(1.0 + i as f64), class)
            })
            .chain(std::iter::once(gait(&id, t0, 9, 9.0, None, "canter")))
            .collect();
        store.write_gait(&rows).await.unwrap();

        let list = call(
            &app,
            "GET",
            &format!("/api/v1/streams/{id}/horses"),
            None,
            &manager,
        )
        .await;
        assert_eq!(list.status, StatusCode::OK, "{backend}: {}", list.json);
        let mut listed = ids_of(&list.json);
        listed.sort();
        assert_eq!(listed, {
            let mut v = vec![a.id, b.id];
            v.sort();
            v
        });

        let p = call(
            &app,
            "GET",
            &format!("/api/v1/horses/{}", a.id),
            None,
            &manager,
        )
        .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.json);
        assert_eq!(p.json["horse"]["displayName"], a.display_name.as_str());
        assert_eq!(
            p.json["gait"].as_array().unwrap().len(),
            3,
            "{backend}: only this horse's track"
        );
        let agg = &p.json["aggregates"][0];
        assert_eq!(agg["windows"], 3);
        assert_eq!(agg["totalDistance"].as_f64(), Some(speeds.iter().sum()));
        assert_eq!(agg["maxSpeed"].as_f64(), Some(5.0));
        assert_eq!(agg["meanSpeed"].as_f64(), Some(3.0));
        assert_eq!(
            (
                agg["gaitWindows"]["walk"].as_i64(),
                agg["gaitWindows"]["trot"].as_i64()
            ),
            (Some(1), Some(2))
        );

        let body = json(serde_json::json!({"displayName": "Dobbin"}));
        let r = call(
            &app,
            "PATCH",
            &format!("/api/v1/horses/{}", a.id),
            Some(&body),
            &manager,
        )
        .await;
        assert_eq!(
            (r.status, r.json["displayName"].as_str()),
            (StatusCode::OK, Some("Dobbin")),
            "{}",
            r.json
        );
        assert_eq!(store.get_horse(a.id).await.unwrap().display_name, "Dobbin");
        let r = call(
            &app,
            "PATCH",
            &format!("/api/v1/horses/{}", b.id),
            Some(&body),
            &manager,
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::CONFLICT, "conflict"),
            "{backend}"
        );
        let r = call(
            &app,
            "PATCH",
            &format!("/api/v1/horses/{}", b.id),
            Some("{\"displayName\": \"  \"}"),
            &manager,
        )
        .await;
        assert_eq!(r.error_code(), "invalid_value");
        let r = call(&app, "GET", "/api/v1/horses/999999999", None, &manager).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
        let r = call(
            &app,
            "GET",
            "/api/v1/streams/no-such-stream-h/horses",
            None,
            &manager,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn alerts_filter_and_acknowledge_as_the_caller() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let admin = token(&state, Role::Admin);
        let id = unique("alert");
        add_stream(&store, &id).await;
        let t0 = Utc::now() - Duration::minutes(5);
        let mut ids = Vec::new();
        for i in 0..3 {
            let a = store
                .insert_alert(&NewAlert {
                    time: t0 + Duration::seconds(i),
                    stream_id: id.clone(),
                    horse_id: None,
                    kind: "horse_down".into(),
                    severity: Severity::Warning,
                    message: format!("alert {i}"),
                    dedup_key: Some(format!("{id}/{i}")),
                })
                .await
                .unwrap();
            ids.push(a.id);
        }
        let r = call(
            &app,
            "GET",
            &format!("/api/v1/alerts?stream={id}"),
            None,
            &admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
        let got = ids_of(&r.json);
        assert_eq!(
            got,
            ids.iter().rev().copied().collect::<Vec<_>>(),
            "newest first, this stream only"
        );

        let r = call(
            &app,
            "POST",
            &format!("/api/v1/alerts/{}/acknowledge", ids[1]),
            None,
            &admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["acknowledgedBy"], "admin");
        assert!(r.json["acknowledgedAt"].is_string());
        let r = call(
            &app,
            "GET",
            &format!("/api/v1/alerts?stream={id}&unacknowledged=true&limit=10"),
            None,
            &admin,
        )
        .await;
        let got = ids_of(&r.json);
        assert_eq!(got, vec![ids[2], ids[0]]);
        let r = call(
            &app,
            "GET",
            &format!("/api/v1/alerts?stream={id}&limit=1"),
            None,
            &admin,
        )
        .await;
        assert_eq!(r.json.as_array().unwrap().len(), 1);

        for (m, uri, status, code) in [
            (
                "POST",
                "/api/v1/alerts/999999999/acknowledge".to_owned(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "GET",
                "/api/v1/alerts?unacknowledged=maybe".to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid_query",
            ),
            (
                "GET",
                "/api/v1/alerts?limit=5000".to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid_query",
            ),
            (
                "GET",
                "/api/v1/alerts?stream=no-such-stream-a".to_owned(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
        ] {
            let r = call(&app, m, &uri, None, &admin).await;
            assert_eq!(
                (r.status, r.error_code()),
                (status, code),
                "{backend}: {uri}"
            );
        }
    }
}

#[tokio::test]
async fn store_backed_users_log_in_and_refresh() {
    for (backend, store, _dir) in stores().await {
        let users = StoreUserStore::new(store.clone());
        let name = unique("user");
        let hash = horsestream_api::auth::users::hash_password("s3cret-pw").unwrap();
        let uid = users.insert(&name, &hash, Role::Manager).await.unwrap();
        assert!(
            matches!(
                users.insert(&name, &hash, Role::Viewer).await,
                Err(horsestream_api::auth::UserStoreError::Duplicate(_))
            ),
            "{backend}"
        );
        let state = horsestream_api::AppState::new(&auth_config(), std::sync::Arc::new(users))
            .with_store(store.clone());
        let app = app(state);
        let body = json(serde_json::json!({"username": name, "password": "s3cret-pw"}));
        let r = post_json(&app, "/api/v1/auth/login", &body).await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
        assert_eq!(
            (
                r.json["user"]["id"].as_i64(),
                r.json["user"]["role"].as_str()
            ),
            (Some(uid), Some("manager"))
        );
        let refresh = json(serde_json::json!({"refreshToken": r.json["refreshToken"]}));
        let r2 = post_json(&app, "/api/v1/auth/refresh", &refresh).await;
        assert_eq!(r2.status, StatusCode::OK, "{backend}: {}", r2.json);
        let bad = json(serde_json::json!({"username": name, "password": "wrong"}));
        assert_eq!(
            post_json(&app, "/api/v1/auth/login", &bad).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn openapi_document_lists_every_rest_route() {
    let app = app(state());
    let r = send(&app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.json["paths"].as_object().unwrap();
    for (method, path) in common::routes::ROUTES
        .iter()
        .map(|r| (r.method, r.template))
    {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))
            [method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"].is_object());
    }
    assert!(r.json["components"]["securitySchemes"]["bearer"].is_object());
    assert!(r.json["components"]["schemas"]["ErrorBody"].is_object());
}
