//! Pose end to end through the real dataflow (`horsestream demo`: ingest, 2 timely workers,
//! YOLOX + re-ID in ONNX Runtime, the pose stage, tracking, the SQLite store). No animal-pose
//! weights are reachable, so the pose model is one this test writes (`fixed-peaks`): whatever
//! the crop, keypoint `k`'s SimCC vectors peak at network pixel `(U[k], V[k])` with the value
//! `SCORE[k]`. Each stored keypoint must then be that network pixel mapped back through the
//! detection's own crop (box centre, padding 1.25, square) — which checks the per-stream
//! activation, the batched crops, the inverse affine, the detection ↔ pose pairing and the
//! store's `keypoints` column together.
//!
//! Needs the real detector and re-ID files (`HORSESTREAM_MODEL_DIR`) and `libonnxruntime.so`;
//! the Kafka test also the test broker and TimescaleDB (`scripts/services.sh`).

mod common;
#[path = "common/pose_model.rs"]
mod pose_model;

use std::path::Path;
use std::process::Command;

use common::*;
use horsestream_sinks::Store;
use horsestream_sinks::store::{DetectionQuery, ModelRow, NewStream, StoredDetection};
use pose_model::{K, POSE_FILE, POSE_MODEL, expected, joint_angles, model_dir, peak};

/// `horsestream demo` on the sample video into `store`, logging warnings; its stderr.
fn demo(store: &str, models: &Path, manifest: &Path, extra: &[&str]) -> String {
    let (video, _) = sample();
    let mut args = vec![
        "demo",
        video.to_str().unwrap(),
        "--store",
        store,
        "--stream-id",
        "paddock",
        "--model-dir",
        models.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(&args)
        .env("HORSESTREAM_LOG", "warn")
        .output()
        .expect("running horsestream");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "$ horsestream {}\n{}{stderr}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success(), "demo failed: {}", error_line(&out));
    stderr
}

fn detections(rt: &tokio::runtime::Runtime, store: &Store, stream: &str) -> Vec<StoredDetection> {
    let mut all: Vec<StoredDetection> = Vec::new();
    loop {
        let page = rt
            .block_on(store.detections(&DetectionQuery {
                stream_id: stream.into(),
                from: None,
                to: None,
                after: all.last().map(StoredDetection::key),
                limit: 1000,
            }))
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A stream whose pose model is activated in `stream_models` (what `PUT
/// /api/v1/streams/{id}/model` stores) gets keypoints on every detection, where the model put
/// them.
#[test]
fn a_stream_with_an_activated_pose_model_stores_keypoints_where_the_model_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (models, manifest) = model_dir(dir.path(), true);
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let rt = runtime();
    let store = rt.block_on(Store::connect(&url)).unwrap();
    rt.block_on(async {
        store
            .create_stream(&NewStream {
                id: "paddock".into(),
                name: "paddock".into(),
                source_url: sample().0.display().to_string(),
                source_kind: "file".into(),
                credentials_secret: None,
                calibration: None,
                zones: Vec::new(),
                enabled: true,
            })
            .await
            .unwrap();
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(models.join(POSE_FILE)).unwrap(),
        ));
        store
            .upsert_model(&ModelRow {
                name: POSE_MODEL.into(),
                task: "pose".into(),
                file: POSE_FILE.into(),
                sha256,
                active: false,
            })
            .await
            .unwrap();
        store.activate_model("paddock", POSE_MODEL).await.unwrap();
    });

    demo(&url, &models, &manifest, &[]);

    check_keypoints(&detections(&rt, &store, "paddock"));
    check_gait_pose(&rt.block_on(store.gait("paddock")).unwrap());
}

/// Every gait window carries pose metrics, and they are what `fixed-peaks` implies: each
/// stored pose is the same pattern moved and scaled with its box (a similarity, which keeps
/// angles), so every joint's mean angle is the pattern's own and its range of motion 0; the
/// hooves keep their place relative to the body, so there is no hoof stride, and with no
/// motion no symmetry index either.
fn check_gait_pose(rows: &[horsestream_sinks::GaitRow]) {
    assert!(!rows.is_empty(), "no gait window");
    for r in rows {
        let pose = r
            .pose
            .as_ref()
            .unwrap_or_else(|| panic!("window without pose: {r:?}"));
        assert!(pose.samples >= 8, "{pose:?}");
        assert_eq!(pose.hoof_stride_hz, None, "{pose:?}");
        assert_eq!((pose.symmetry_fore, pose.symmetry_hind), (None, None));
        assert_eq!(pose.joints.len(), 4);
        for (j, (limb, angle)) in pose.joints.iter().zip(joint_angles()) {
            assert_eq!(j.limb, limb);
            let mean = j.mean_deg.expect("mean angle");
            assert!((mean - angle).abs() < 0.5, "{limb}: {j:?}");
            assert!(j.rom_deg.expect("range of motion") < 0.5, "{limb}: {j:?}");
        }
    }
}

/// Every detected box (at least one per frame of the sample) has the 17 keypoints where the
/// `fixed-peaks` model put them for its box, with their scores; a box the tracker interpolated
/// over a frame the detector missed was never seen, and has none.
fn check_keypoints(rows: &[StoredDetection]) {
    let detected = rows.iter().filter(|r| !r.interpolated).count();
    assert!(detected >= 220, "{detected} detections");
    for r in rows {
        if r.interpolated {
            assert!(r.keypoints.is_empty(), "interpolated {:?}", r.key());
            continue;
        }
        assert_eq!(r.keypoints.len(), K, "detection {:?}", r.key());
        for (k, [x, y, score]) in r.keypoints.iter().enumerate() {
            let (ex, ey) = expected(&r.bbox, k);
            let at = format!(
                "detection {:?} keypoint {k}: ({x}, {y}) vs ({ex}, {ey})",
                r.key()
            );
            assert!(
                (f64::from(*x) - ex).abs() < 0.01 && (f64::from(*y) - ey).abs() < 0.01,
                "{at}"
            );
            assert_eq!(*score, peak(k).2, "{at}");
        }
    }
}

/// The production path: chunks of two streams (the same video) on Kafka, `horsestream
/// dataflow` with 2 workers, TimescaleDB (`COPY` with the `keypoints` column). Only the stream
/// whose pose model is activated gets keypoints; the other's detections have none.
#[test]
fn on_kafka_and_timescaledb_only_the_stream_with_pose_activated_gets_keypoints() {
    let url = required_env("HORSESTREAM_DATABASE_URL");
    let dir = tempfile::tempdir().unwrap();
    let (models, manifest) = model_dir(dir.path(), true);
    let (posed, k) = ingested_sample("pose-on");
    let plain = unique("pose-off");
    let video = sample().0.to_str().unwrap().to_owned();
    run_ok(&["ingest", "--input", &video, "--stream-id", &plain], &k);
    register(&url, &posed);
    register(&url, &plain);
    let rt = runtime();
    let store = rt.block_on(Store::connect(&url)).unwrap();
    rt.block_on(async {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(models.join(POSE_FILE)).unwrap(),
        ));
        store
            .upsert_model(&ModelRow {
                name: POSE_MODEL.into(),
                task: "pose".into(),
                file: POSE_FILE.into(),
                sha256,
                active: false,
            })
            .await
            .unwrap();
        store.activate_model(&posed, POSE_MODEL).await.unwrap();
    });
    run_ok(
        &[
            "dataflow",
            "--until-end",
            "--workers",
            "2",
            "--group-id",
            &unique("pose-group"),
            "--database-url",
            &url,
            "--model-dir",
            models.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &k,
    );
    check_keypoints(&detections(&rt, &store, &posed));
    let others = detections(&rt, &store, &plain);
    assert!(others.len() >= 220, "{} detections", others.len());
    assert!(others.iter().all(|r| r.keypoints.is_empty()));
}

/// `--pose-model` for every stream, but the optional pose file is not installed: the dataflow
/// runs without pose (detections stored, no keypoints) and says so once, not per worker or
/// per chunk.
#[test]
fn a_missing_pose_model_is_logged_once_and_the_dataflow_runs_without_pose() {
    let dir = tempfile::tempdir().unwrap();
    let (models, manifest) = model_dir(dir.path(), false);
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let stderr = demo(&url, &models, &manifest, &["--pose-model", POSE_MODEL]);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("pose model unavailable"))
            .count(),
        1,
        "{stderr}"
    );
    check_stored_without_pose(&url);
}

/// A pose model whose keypoints are not AP-10K's in order (here the manifest swaps the
/// elbows) would have its points misread as joints by the gait analysis: it is refused like a
/// missing model, once, with the reason, and the dataflow runs without pose.
#[test]
fn a_pose_model_of_another_keypoint_layout_is_refused_and_the_dataflow_runs_without_pose() {
    let dir = tempfile::tempdir().unwrap();
    let (models, manifest) = model_dir(dir.path(), true);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let (left, right) = (
        r#""left_shoulder", "left_elbow","#,
        r#""right_shoulder", "right_elbow","#,
    );
    assert_eq!(
        (text.matches(left).count(), text.matches(right).count()),
        (1, 1)
    );
    let swapped = text
        .replace(left, "LEFT")
        .replace(right, r#""right_shoulder", "left_elbow","#)
        .replace("LEFT", r#""left_shoulder", "right_elbow","#);
    std::fs::write(&manifest, swapped).unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let stderr = demo(&url, &models, &manifest, &["--pose-model", POSE_MODEL]);
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("pose model unavailable"))
        .collect();
    assert_eq!(refusals.len(), 1, "{stderr}");
    assert!(
        refusals[0].contains(r#"keypoint 6 is "right_elbow" where AP-10K's is "left_elbow""#),
        "{stderr}"
    );
    check_stored_without_pose(&url);
}

/// The demo's store at `url` holds the sample's detections (at least one a frame), none with
/// keypoints, and gait windows without pose metrics.
fn check_stored_without_pose(url: &str) {
    let rt = runtime();
    let store = rt.block_on(Store::connect(url)).unwrap();
    let rows = detections(&rt, &store, "paddock");
    assert!(rows.len() >= 220, "{} detections", rows.len());
    assert!(rows.iter().all(|r| r.keypoints.is_empty()));
    let gait = rt.block_on(store.gait("paddock")).unwrap();
    assert!(gait.iter().all(|g| g.pose.is_none()), "{gait:?}");
}

/// A name that is no pose model is a configuration mistake, refused at start-up.
#[test]
fn a_pose_model_flag_naming_another_task_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (models, manifest) = model_dir(dir.path(), false);
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let (video, _) = sample();
    let out = horsestream(&[
        "demo",
        video.to_str().unwrap(),
        "--store",
        &url,
        "--model-dir",
        models.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--pose-model",
        "yolox_nano",
    ]);
    assert!(!out.status.success());
    assert!(
        error_line(&out).contains("not a pose model"),
        "{}",
        error_line(&out)
    );
}
