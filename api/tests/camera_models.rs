//! The camera proxy and model uploads against real things: snapshots from the project's
//! GStreamer RTSP camera (`scripts/rtsp-camera.py`, basic auth with the stream's stored
//! credentials), the SSRF guard against a camera that redirects or names another host (loopback
//! listeners stand in for the attacker's target and must see no connection), and model uploads
//! checked by the real ONNX Runtime against the manifest (the shipped model files).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use horsestream_api::auth::Role;
use horsestream_api::{ModelSettings, app};
use horsestream_models::Manifest;

use common::net::{bait, stub};
use common::stores::{state_with_store, stores, unique};
use common::*;
use horsestream_proto::testing::free_port;

struct Camera(Child);

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_camera(port: u16) -> Camera {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rtsp-camera.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args([
            "--port",
            &port.to_string(),
            "--user",
            "cam-user",
            "--password",
            "cam pass!",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start scripts/rtsp-camera.py (bash scripts/install-deps.sh installs GStreamer)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "camera did not start");
    Camera(child)
}

/// Creates a stream through the API (as `admin`), which must succeed.
async fn create_stream(app: &axum::Router, admin: &str, body: serde_json::Value) {
    let r = call(
        app,
        "POST",
        "/api/v1/streams",
        Some(&body.to_string()),
        admin,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
}

/// An RTSP camera stream `id` at `url`, with `creds` when given.
async fn create(
    app: &axum::Router,
    admin: &str,
    id: &str,
    url: &str,
    creds: Option<serde_json::Value>,
) {
    let mut body =
        serde_json::json!({"id": id, "name": id, "sourceUrl": url, "sourceKind": "rtsp"});
    if let Some(c) = creds {
        body["credentials"] = c;
    }
    create_stream(app, admin, body).await;
}

/// A file stream `id` (no camera behind it).
async fn create_file(app: &axum::Router, admin: &str, id: &str) {
    let body = serde_json::json!({"id": id, "name": id, "sourceUrl": "file:///x.mp4", "sourceKind": "file"});
    create_stream(app, admin, body).await;
}

async fn raw(app: &axum::Router, uri: &str, bearer: &str) -> (StatusCode, Vec<u8>) {
    let req = axum::http::Request::get(uri)
        .header("authorization", format!("Bearer {bearer}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, body) = request(app, req).await;
    (status, body.to_vec())
}

#[tokio::test]
async fn snapshot_is_a_jpeg_from_the_streams_own_camera_with_its_stored_credentials() {
    let (_, store, _dir) = stores().await.remove(0);
    let state = state_with_store(&store);
    let app = app(state.clone());
    let admin = token(&state, Role::Admin);
    let port = free_port();
    let _camera = start_camera(port);
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let good = unique("snap");
    create(
        &app,
        &admin,
        &good,
        &url,
        Some(serde_json::json!({"username": "cam-user", "password": "cam pass!"})),
    )
    .await;
    let (status, jpeg) = raw(
        &app,
        &format!("/api/v1/streams/{good}/snapshot"),
        &token(&state, Role::Viewer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&jpeg));
    assert!(
        jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]),
        "{} bytes",
        jpeg.len()
    );
    assert!(jpeg.len() > 1000);

    let wrong = unique("snap-wrong");
    create(
        &app,
        &admin,
        &wrong,
        &url,
        Some(serde_json::json!({"username": "cam-user", "password": "nope"})),
    )
    .await;
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/streams/{wrong}/snapshot"),
        None,
        &admin,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_GATEWAY, "camera_error"),
        "{}",
        r.json
    );
    assert!(
        !r.json.to_string().contains("nope"),
        "the password is not echoed"
    );

    let file = unique("snap-file");
    create_file(&app, &admin, &file).await;
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/streams/{file}/snapshot"),
        None,
        &admin,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "not_a_camera")
    );
}

#[tokio::test]
async fn snapshot_refuses_a_camera_that_redirects_elsewhere() {
    let (_, store, _dir) = stores().await.remove(0);
    let state = state_with_store(&store);
    let app = app(state.clone());
    let admin = token(&state, Role::Admin);
    let (bait_port, hits) = bait();
    let port = stub(format!(
        "RTSP/1.0 302 Moved Temporarily\r\nCSeq: 1\r\nLocation: rtsp://127.0.0.2:{bait_port}/cam\r\n\r\n"
    ));
    let id = unique("redirect");
    create(
        &app,
        &admin,
        &id,
        &format!("rtsp://127.0.0.1:{port}/cam"),
        None,
    )
    .await;
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/streams/{id}/snapshot"),
        None,
        &admin,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_GATEWAY, "redirect_refused"),
        "{}",
        r.json
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the redirect target was never contacted"
    );
}

#[tokio::test]
async fn ptz_reaches_only_the_registered_host_and_refuses_redirects() {
    let (_, store, _dir) = stores().await.remove(0);
    let state = state_with_store(&store);
    let app = app(state.clone());
    let admin = token(&state, Role::Admin);
    let manager = token(&state, Role::Manager);

    // A device service naming a PTZ/media service on another host.
    let (bait_port, hits) = bait();
    let caps = format!(
        "<s:Envelope><s:Body><tds:GetCapabilitiesResponse><tds:Capabilities>\
         <tt:Media><tt:XAddr>http://127.0.0.2:{bait_port}/onvif/media</tt:XAddr></tt:Media>\
         <tt:PTZ><tt:XAddr>http://127.0.0.2:{bait_port}/onvif/ptz</tt:XAddr></tt:PTZ>\
         </tds:Capabilities></tds:GetCapabilitiesResponse></s:Body></s:Envelope>"
    );
    let device = stub(format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{caps}",
        caps.len()
    ));
    let id = unique("ptz-other");
    create(
        &app,
        &admin,
        &id,
        "rtsp://127.0.0.1/cam",
        Some(serde_json::json!({"username": "u", "password": "p", "onvifPort": device})),
    )
    .await;
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/streams/{id}/ptz/move"),
        Some(r#"{"pan": 0.3, "tilt": -0.2, "timeoutMs": 500}"#),
        &manager,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_GATEWAY, "camera_host_refused"),
        "{}",
        r.json
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // A device service that redirects.
    let redirect = stub(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.2:{bait_port}/x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    let id = unique("ptz-redirect");
    create(
        &app,
        &admin,
        &id,
        "rtsp://127.0.0.1/cam",
        Some(serde_json::json!({"username": "u", "password": "p", "onvifPort": redirect})),
    )
    .await;
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/streams/{id}/ptz/stop"),
        None,
        &manager,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_GATEWAY, "redirect_refused"),
        "{}",
        r.json
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // No credentials, bad values.
    let bare = unique("ptz-bare");
    create(&app, &admin, &bare, "rtsp://127.0.0.1/cam", None).await;
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/streams/{bare}/ptz/presets"),
        Some(r#"{"name": "gate"}"#),
        &manager,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::BAD_REQUEST, "no_credentials")
    );
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/streams/{bare}/ptz/move"),
        Some(r#"{"pan": 2}"#),
        &manager,
    )
    .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value")
    );
    let r = call(
        &app,
        "POST",
        "/api/v1/streams/no-such-cam/ptz/stop",
        None,
        &manager,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

fn shipped(file: &str) -> Vec<u8> {
    let dir = std::env::var("HORSESTREAM_MODEL_DIR")
        .expect("HORSESTREAM_MODEL_DIR (scripts/services.sh env)");
    std::fs::read(std::path::Path::new(&dir).join(file)).expect("shipped model file")
}

async fn upload(app: &axum::Router, name: &str, bytes: Vec<u8>, bearer: &str) -> Reply {
    let req = axum::http::Request::post(format!("/api/v1/models/{name}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from(bytes))
        .unwrap();
    let (status, headers, body) = request(app, req).await;
    assert!(!body.is_empty(), "{status} without a body");
    Reply::new(status, headers, &body)
}

#[tokio::test]
async fn model_uploads_are_checked_against_the_manifest_then_activated_per_stream() {
    use sha2::Digest;
    let yolox = shipped("yolox_nano.onnx");
    let reid = shipped("reid_mobilenetv2.onnx");
    for (backend, store, _dir) in stores().await {
        let models_dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::embedded();
        // A manifest entry with the re-ID file's digest but the detector's signature: the digest
        // passes, so only the signature check can refuse it.
        let mut wrong = manifest.get("reid_mobilenetv2").unwrap().clone();
        let det = manifest.get("yolox_nano").unwrap().clone();
        wrong.name = "reid_declared_as_detector".into();
        wrong.file = "wrong.onnx".into();
        wrong.inputs = det.inputs.clone();
        wrong.outputs = det.outputs.clone();
        manifest.models.push(wrong);
        let settings = ModelSettings {
            dir: Some(models_dir.path().into()),
            manifest,
            max_upload_bytes: reid.len() as u64 + 1024,
        };
        let state = state_with_store(&store).with_models(settings);
        let app = app(state.clone());
        let admin = token(&state, Role::Admin);

        let r = upload(&app, "yolox_nano", yolox.clone(), &admin).await;
        assert_eq!(r.status, StatusCode::CREATED, "{backend}: {}", r.json);
        assert_eq!(
            r.json["sha256"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(&yolox))
        );
        assert_eq!(
            std::fs::read(models_dir.path().join("yolox_nano.onnx")).unwrap(),
            yolox
        );

        let mut tampered = yolox.clone();
        let n = tampered.len();
        tampered[n / 2] ^= 0xFF;
        let r = upload(&app, "yolox_nano", tampered, &admin).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch"),
            "{backend}"
        );
        let r = upload(&app, "reid_declared_as_detector", reid.clone(), &admin).await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "signature_mismatch"),
            "{backend}: {}",
            r.json
        );
        assert!(
            !models_dir.path().join("wrong.onnx").exists(),
            "a refused file is not installed"
        );
        let r = upload(
            &app,
            "reid_mobilenetv2",
            [reid.clone(), yolox.clone()].concat(),
            &admin,
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            "{backend}"
        );
        let r = upload(&app, "yolov99", vec![1, 2, 3], &admin).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = upload(&app, "yolox_nano", Vec::new(), &admin).await;
        assert_eq!(r.error_code(), "invalid_value");
        assert_eq!(
            std::fs::read_dir(models_dir.path()).unwrap().count(),
            1,
            "no scratch left behind"
        );

        let id = unique("model");
        create_file(&app, &admin, &id).await;
        let r = call(
            &app,
            "PUT",
            &format!("/api/v1/streams/{id}/model"),
            Some(r#"{"model": "yolox_nano"}"#),
            &admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.json);
        assert_eq!(r.json["models"], serde_json::json!(["yolox_nano"]));
        let r = call(
            &app,
            "PUT",
            &format!("/api/v1/streams/{id}/model"),
            Some(r#"{"model": "reid_mobilenetv2"}"#),
            &admin,
        )
        .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::CONFLICT, "conflict"),
            "{backend}: not installed"
        );
        let r = call(
            &app,
            "PUT",
            "/api/v1/streams/no-such-m/model",
            Some(r#"{"model": "yolox_nano"}"#),
            &admin,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        let list = call(&app, "GET", "/api/v1/models", None, &admin).await;
        let y = list
            .json
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "yolox_nano")
            .unwrap()
            .clone();
        assert_eq!(y["installed"], true);
        assert!(
            y["streams"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == id.as_str()),
            "{backend}: {y}"
        );
        assert_eq!(
            y["signature"],
            "images:f32[N,3,416,416] -> output:f32[N,3549,85]"
        );
    }
}
