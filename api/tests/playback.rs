//! Processed playback through `oneshot`, on SQLite and TimescaleDB: a stream's HLS playlist and
//! segments from the HLS directory (content types, 404 for files not written yet, no way out of
//! the stream's folder), its overlay by frame PTS (boxes, track ids, horse names, the newest
//! run of a restarted stream, bad ranges), and the web client at `/` beside the JSON 404 of
//! unknown API paths.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use horsestream_api::auth::Role;
use horsestream_api::{AppState, PlaybackSettings, app};
use horsestream_proto::{Keypoint, testing};
use horsestream_sinks::HorseSighting;

use common::stores::{file_stream, state_with_store, stores, unique};
use common::*;

/// A raw GET as the holder of `bearer`: status, content type and body bytes.
async fn get_raw(
    app: &axum::Router,
    uri: &str,
    bearer: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder().method("GET").uri(uri);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (status, headers, bytes) = request(app, req.body(Body::empty()).unwrap()).await;
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, bytes.to_vec())
}

fn playback(state: AppState, hls: &std::path::Path, web: Option<&std::path::Path>) -> AppState {
    state.with_playback(PlaybackSettings {
        hls_dir: Some(hls.to_path_buf()),
        web_dir: web.map(|p| p.to_path_buf()),
    })
}

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
                        #EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2.000000,\nseg_000000.ts\n";

#[tokio::test]
async fn hls_files_are_served_from_the_streams_folder_only() {
    let tmp = tempfile::tempdir().unwrap();
    let hls = tmp.path().join("hls");
    for (backend, store, _dir) in stores().await {
        let id = unique("hls");
        store.create_stream(&file_stream(&id)).await.unwrap();
        let folder = hls.join(&id);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("index.m3u8"), PLAYLIST).unwrap();
        let segment: Vec<u8> = (0..188u32 * 4).map(|i| (i % 251) as u8).collect();
        std::fs::write(folder.join("seg_000000.ts"), &segment).unwrap();
        // Files a traversal would reach: beside the streams' folders and above the HLS root.
        std::fs::write(hls.join("index.m3u8"), "outside the stream").unwrap();
        std::fs::write(tmp.path().join("index.m3u8"), "outside the HLS root").unwrap();
        let state = playback(state_with_store(&store), &hls, None);
        let app = app(state.clone());
        let viewer = token(&state, Role::Viewer);

        let (s, ct, body) = get_raw(
            &app,
            &format!("/api/v1/streams/{id}/hls/index.m3u8"),
            Some(&viewer),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{backend}");
        assert_eq!(ct, "application/vnd.apple.mpegurl");
        assert_eq!(body, PLAYLIST.as_bytes());
        let (s, ct, body) = get_raw(
            &app,
            &format!("/api/v1/streams/{id}/hls/seg_000000.ts"),
            Some(&viewer),
        )
        .await;
        assert_eq!(
            (s, ct.as_str()),
            (StatusCode::OK, "video/mp2t"),
            "{backend}"
        );
        assert_eq!(body, segment);

        // Not written yet; not a playback file name; another stream's; no token.
        let not_yet = send(
            &app,
            "GET",
            &format!("/api/v1/streams/{id}/hls/seg_000001.ts"),
            None,
            Some(&viewer),
        )
        .await;
        assert_eq!(
            (not_yet.status, not_yet.error_code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
        for file in [
            "..%2Findex.m3u8",
            "..%2F..%2Findex.m3u8",
            "%2E%2E",
            "seg_0.ts%2F..%2F..%2Findex.m3u8",
            "notes.txt",
        ] {
            let r = send(
                &app,
                "GET",
                &format!("/api/v1/streams/{id}/hls/{file}"),
                None,
                Some(&viewer),
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "{backend} {file}: {}",
                r.json
            );
        }
        // A stream whose id is dots lives in its own folder, not the HLS root's parent.
        let _ = store.create_stream(&file_stream("..")).await;
        let r = send(
            &app,
            "GET",
            "/api/v1/streams/../hls/index.m3u8",
            None,
            Some(&viewer),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{backend}: {}", r.json);
        let unknown = send(
            &app,
            "GET",
            &format!("/api/v1/streams/{}/hls/index.m3u8", unique("nope")),
            None,
            Some(&viewer),
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        let anon = send(
            &app,
            "GET",
            &format!("/api/v1/streams/{id}/hls/index.m3u8"),
            None,
            None,
        )
        .await;
        assert_eq!(
            (anon.status, anon.error_code()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
}

#[tokio::test]
async fn hls_without_a_configured_folder_is_unavailable() {
    let state = state();
    let app = app(state.clone());
    let r = send(
        &app,
        "GET",
        "/api/v1/streams/cam/hls/index.m3u8",
        None,
        Some(&token(&state, Role::Admin)),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}

/// A stream whose pose is on: each box of the overlay carries its keypoints, `[x, y, score]` in
/// source pixels in the model's order, exactly as stored; a box without pose has none.
#[tokio::test]
async fn overlay_boxes_carry_their_keypoints() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let viewer = token(&state, Role::Viewer);
        let id = unique("pose");
        store.create_stream(&file_stream(&id)).await.unwrap();
        let start = Utc::now().timestamp_micros() - 60_000_000;
        // Frames 100 ms apart with 2 boxes each; the first box of each frame has a pose.
        let mut chunk = testing::chunk(&id, 0, start, 0, 2_000_000, &[2; 20]);
        for f in &mut chunk.frames {
            let b = f.detections[0].bbox;
            f.detections[0].keypoints = (0..17)
                .map(|k| Keypoint {
                    x: b.x + 2.5 * k as f32,
                    y: b.y + b.h - k as f32,
                    score: 0.125 + k as f32 / 32.0,
                })
                .collect();
        }
        store.write_chunk(&chunk).await.unwrap();
        let r = call(
            &app,
            "GET",
            &format!("/api/v1/streams/{id}/overlay?fromPts=300000&toPts=400000"),
            None,
            &viewer,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
        let boxes = &r.json["frames"][0]["boxes"];
        assert_eq!(r.json["frames"][0]["ptsUs"], 300_000, "{backend}");
        // Frame 3: box 0 at (10, 23) sized 50×40 (`testing::chunk`).
        let want: Vec<serde_json::Value> = (0..17)
            .map(|k| {
                serde_json::json!([
                    10.0 + 2.5 * k as f64,
                    63.0 - k as f64,
                    0.125 + k as f64 / 32.0
                ])
            })
            .collect();
        assert_eq!(boxes[0]["keypoints"], serde_json::json!(want), "{backend}");
        assert_eq!(boxes[1]["keypoints"], serde_json::json!([]), "{backend}");
    }
}

#[tokio::test]
async fn overlay_gives_each_frames_boxes_and_horses_by_pts() {
    for (backend, store, _dir) in stores().await {
        let state = state_with_store(&store);
        let app = app(state.clone());
        let viewer = token(&state, Role::Viewer);
        let id = unique("ovl");
        store.create_stream(&file_stream(&id)).await.unwrap();
        let start = Utc::now().timestamp_micros() - 60_000_000;
        // Two 2 s chunks, frames 100 ms apart: frame i of chunk c has (i + c) % 3 boxes.
        for seq in 0..2u64 {
            let boxes: Vec<usize> = (0..20).map(|i| (i + seq as usize) % 3).collect();
            store
                .write_chunk(&testing::chunk(
                    &id,
                    seq,
                    start,
                    seq as i64 * 2_000_000,
                    2_000_000,
                    &boxes,
                ))
                .await
                .unwrap();
        }
        // Track 1 is a horse; track 2 is not one yet.
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

        let r = call(
            &app,
            "GET",
            &format!("/api/v1/streams/{id}/overlay?fromPts=1900000&toPts=2300000"),
            None,
            &viewer,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
        assert_eq!(r.json["truncated"], false);
        let frames = r.json["frames"].as_array().unwrap();
        // pts 1.9 s (chunk 0, frame 19: 1 box), 2.0 (chunk 1, frame 0: 1), 2.1 (2), 2.2 (0).
        let pts: Vec<i64> = frames
            .iter()
            .map(|f| f["ptsUs"].as_i64().unwrap())
            .collect();
        assert_eq!(pts, [1_900_000, 2_000_000, 2_100_000], "{backend}");
        let counts: Vec<usize> = frames
            .iter()
            .map(|f| f["boxes"].as_array().unwrap().len())
            .collect();
        assert_eq!(counts, [1, 1, 2], "{backend}");
        let b = &frames[2]["boxes"];
        assert_eq!(b[0]["trackId"], 1);
        assert_eq!(b[0]["horseId"], horse.id);
        assert_eq!(b[0]["horse"], horse.display_name);
        assert_eq!(
            (b[0]["x"].as_f64(), b[0]["w"].as_f64()),
            (Some(10.0), Some(50.0))
        );
        assert_eq!(b[0]["y"].as_f64(), Some(21.0), "frame 1 of its chunk");
        assert_eq!(b[1]["trackId"], 2);
        assert!(b[1]["horse"].is_null());

        // The stream ran again from pts 0 (a restarted file): the newest run's boxes win.
        let later = start + 30_000_000;
        store
            .write_chunk(&testing::chunk(&id, 7, later, 0, 2_000_000, &[3; 20]))
            .await
            .unwrap();
        let r = call(
            &app,
            "GET",
            &format!("/api/v1/streams/{id}/overlay?fromPts=0&toPts=200000"),
            None,
            &viewer,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
        let counts: Vec<usize> = r.json["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["boxes"].as_array().unwrap().len())
            .collect();
        assert_eq!(counts, [3, 3], "{backend}: the old run had 0 and 1");

        for (query, code) in [
            ("fromPts=5&toPts=4", "invalid_range"),
            ("fromPts=-1&toPts=4", "invalid_range"),
            ("fromPts=0&toPts=60000001", "invalid_range"),
            ("fromPts=0", "invalid_query"),
            ("fromPts=a&toPts=4", "invalid_query"),
            ("fromPts=0&toPts=4&extra=1", "invalid_query"),
        ] {
            let r = call(
                &app,
                "GET",
                &format!("/api/v1/streams/{id}/overlay?{query}"),
                None,
                &viewer,
            )
            .await;
            assert_eq!(
                (r.status, r.error_code()),
                (StatusCode::BAD_REQUEST, code),
                "{backend} {query}"
            );
        }
        let unknown = call(
            &app,
            "GET",
            &format!(
                "/api/v1/streams/{}/overlay?fromPts=0&toPts=1",
                unique("nope")
            ),
            None,
            &viewer,
        )
        .await;
        assert_eq!(
            (unknown.status, unknown.error_code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
}

#[tokio::test]
async fn the_web_client_is_served_at_the_root_and_api_paths_stay_json() {
    let tmp = tempfile::tempdir().unwrap();
    let web = tmp.path().join("dist");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), "<!doctype html><div id=root></div>").unwrap();
    std::fs::write(web.join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "not for clients").unwrap();
    let state = playback(state(), tmp.path(), Some(&web));
    let app = app(state);

    let (s, ct, body) = get_raw(&app, "/", None).await;
    assert_eq!(
        (s, ct.as_str()),
        (StatusCode::OK, "text/html; charset=utf-8")
    );
    assert!(String::from_utf8(body).unwrap().contains("id=root"));
    let (s, ct, _) = get_raw(&app, "/assets/app.js", None).await;
    assert_eq!(
        (s, ct.as_str()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );
    // A client-side route gets the page; a missing asset does not.
    let (s, _, body) = get_raw(&app, "/streams/paddock-1", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8(body).unwrap().contains("id=root"));
    let (s, _, _) = get_raw(&app, "/assets/missing.js", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for path in [
        "/..%2Fsecret.txt",
        "/assets/..%2F..%2Fsecret.txt",
        "/../secret.txt",
    ] {
        let (_, _, body) = get_raw(&app, path, None).await;
        assert!(
            !String::from_utf8_lossy(&body).contains("not for clients"),
            "{path}"
        );
    }
    // Unknown API paths and other methods keep the JSON error.
    let r = send(&app, "GET", "/api/v1/nothing-here", None, None).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = send(&app, "POST", "/", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_web_folder_the_root_is_the_json_404() {
    let app = app(state());
    let r = send(&app, "GET", "/", None, None).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}
