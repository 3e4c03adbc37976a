//! The pose stage end to end through the real ONNX Runtime, with an ONNX model this test
//! writes itself (no animal-pose weights are available): its SimCC outputs peak where bright
//! dots are in the crop, so the whole path — box padding and aspect fix, affine warp,
//! normalisation and channel order, batching, SimCC argmax and confidence, inverse affine —
//! is checked against dot positions known in source pixels.
//!
//! The model (`SimCC-from-dots`), for an input `[N, 3, 256, 256]`:
//! keypoint `k` reads plane `k % 3` (Gather); its x vector is the plane's column maxima and
//! its y vector the row maxima (ReduceMax), each value repeated twice (split ratio 2: bin
//! `2i` is pixel `i`); `simcc_y` is scaled by a per-keypoint positive factor so that the
//! confidence `min(max x, max y)` differs between keypoints. A red dot is thus found by
//! keypoints 0, 3, 6, …, a green one by 1, 4, 7, …, a blue one by 2, 5, 8, ….
//!
//! Needs `libonnxruntime.so` (`ORT_DYLIB_PATH`, set up by `scripts/install-deps.sh`); fails
//! without it.

use std::path::Path;

use horsestream_models::{
    AP10K_KEYPOINTS, Manifest, ModelError, ModelRegistry, Pose, init_runtime, sha256_file,
};
use horsestream_proto::BoundingBox;
use image::{Rgb, RgbImage};

#[path = "support/onnx.rs"]
mod onnx;

use onnx::{float_tensor, int_attr, int64_tensor, ints_attr, node, value_info};

const K: usize = 17;
const SIDE: i64 = 256;

/// `simcc_y` factor of keypoint `k`: positive (argmax unchanged), below 1 for most keypoints
/// so that `max y < max x` there and the confidence is the y maximum.
fn y_factor(k: usize) -> f32 {
    0.5 + k as f32 / 32.0
}

/// The serialized `SimCC-from-dots` model (opset 13) with the embedded manifest's
/// `rtmpose_ap10k` signature.
fn simcc_from_dots_model() -> Vec<u8> {
    let bins = 2 * SIDE;
    let mut nodes = vec![
        node(
            "Gather",
            &["input", "kp_plane"],
            "planes",
            vec![int_attr("axis", 1)],
        ),
        // Max over rows → one value per column (x); over columns → per row (y).
        node(
            "ReduceMax",
            &["planes"],
            "px",
            vec![ints_attr("axes", vec![2]), int_attr("keepdims", 0)],
        ),
        node(
            "ReduceMax",
            &["planes"],
            "py",
            vec![ints_attr("axes", vec![3]), int_attr("keepdims", 0)],
        ),
    ];
    for (axis, out) in [("x", "simcc_x"), ("y", "raw_y")] {
        let p = format!("p{axis}");
        let u = format!("u{axis}");
        let c = format!("c{axis}");
        nodes.push(node("Unsqueeze", &[&p, "axis3"], &u, vec![]));
        nodes.push(node("Concat", &[&u, &u], &c, vec![int_attr("axis", 3)]));
        nodes.push(node("Reshape", &[&c, "keep_keep_flat"], out, vec![]));
    }
    nodes.push(node("Mul", &["raw_y", "y_factors"], "simcc_y", vec![]));
    let graph = onnx::GraphProto {
        node: nodes,
        name: "simcc_from_dots".to_owned(),
        initializer: vec![
            int64_tensor("kp_plane", (0..K as i64).map(|k| k % 3).collect()),
            int64_tensor("axis3", vec![3]),
            int64_tensor("keep_keep_flat", vec![0, 0, -1]),
            float_tensor(
                "y_factors",
                vec![1, K as i64, 1],
                (0..K).map(y_factor).collect(),
            ),
        ],
        input: vec![value_info(
            "input",
            &[None, Some(3), Some(SIDE), Some(SIDE)],
        )],
        output: vec![
            value_info("simcc_x", &[None, Some(K as i64), Some(bins)]),
            value_info("simcc_y", &[None, Some(K as i64), Some(bins)]),
        ],
    };
    onnx::model(graph)
}

/// A registry over a temporary directory holding the test model under the embedded pose
/// entry's file name, its digest pinned in the manifest as a deployment would.
fn registry(dir: &Path) -> ModelRegistry {
    if let Err(e) = init_runtime(None) {
        panic!("{e} (run scripts/install-deps.sh or set ORT_DYLIB_PATH)");
    }
    let mut manifest = Manifest::embedded();
    let entry = manifest
        .models
        .iter_mut()
        .find(|m| m.name == "rtmpose_ap10k")
        .expect("the embedded manifest has the optional pose entry");
    let path = dir.join(&entry.file);
    std::fs::write(&path, simcc_from_dots_model()).unwrap();
    entry.sha256 = Some(sha256_file(&path).unwrap());
    ModelRegistry::new(dir, manifest).with_intra_threads(1)
}

/// A 5×5 dot of `colour` centred on `(x, y)`.
fn dot(img: &mut RgbImage, x: u32, y: u32, colour: [u8; 3]) {
    for yy in y - 2..=y + 2 {
        for xx in x - 2..=x + 2 {
            img.put_pixel(xx, yy, Rgb(colour));
        }
    }
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];

/// A box and the red, green and blue dot centres placed for it (source pixels).
struct Case {
    bbox: BoundingBox,
    dots: [(u32, u32); 3],
}

fn bbox(x: f32, y: f32, w: f32, h: f32) -> BoundingBox {
    BoundingBox { x, y, w, h }
}

/// Network pixels per source pixel for this box (256 / the padded, squared side).
fn scale(b: &BoundingBox) -> f32 {
    256.0 / (b.w.max(b.h) * 1.25)
}

/// Each keypoint lands on its plane's dot: within half the dot (2 px) plus one network pixel
/// (the argmax takes the first of the equal maxima inside the dot).
fn check(pose: &Pose, case: &Case, what: &str) {
    assert_eq!(pose.keypoints.len(), K, "{what}");
    let tol = 2.0 + 1.0 / scale(&case.bbox) + 0.01;
    // (255 - mean) / std of the plane a full-intensity dot lights.
    let peak = [
        (255.0 - 123.675) / 58.395,
        (255.0 - 116.28) / 57.12,
        (255.0 - 103.53) / 57.375,
    ];
    for (k, kp) in pose.keypoints.iter().enumerate() {
        let (dx, dy) = case.dots[k % 3];
        let (ex, ey) = (dx as f32, dy as f32);
        assert!(
            (kp.x - ex).abs() <= tol && (kp.y - ey).abs() <= tol,
            "{what}: keypoint {k} ({}) at ({}, {}), its dot at ({ex}, {ey}), tolerance {tol}",
            AP10K_KEYPOINTS[k],
            kp.x,
            kp.y
        );
        let expected = peak[k % 3] * y_factor(k).min(1.0);
        assert!(
            (kp.confidence - expected).abs() < 1e-4,
            "{what}: keypoint {k} confidence {} vs {expected}",
            kp.confidence
        );
        assert!(kp.is_located());
    }
}

#[test]
fn keypoints_land_on_the_dots_in_source_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mut pose = registry(dir.path())
        .pose_estimator("rtmpose_ap10k")
        .unwrap();
    assert_eq!(pose.keypoint_names(), AP10K_KEYPOINTS);

    // Frame A, 640×480: a wide box (height raised to the width), a tall box (width raised to
    // the height, so dots outside the box but inside the padded crop count) and a box
    // sticking out of the top-left corner (black border in the crop).
    let a_cases = [
        Case {
            bbox: bbox(40.0, 60.0, 200.0, 90.0),
            dots: [(60, 70), (225, 140), (150, 35)],
        },
        Case {
            bbox: bbox(420.0, 200.0, 60.0, 220.0),
            dots: [(380, 230), (470, 400), (520, 300)],
        },
        Case {
            bbox: bbox(-30.0, 300.0, 120.0, 150.0),
            dots: [(10, 310), (80, 440), (40, 455)],
        },
    ];
    // Frame B, 320×240: one box near full size (the crop shrinks the image).
    let b_cases = [Case {
        bbox: bbox(20.0, 20.0, 280.0, 200.0),
        dots: [(300, 30), (40, 210), (160, 120)],
    }];
    let paint = |w: u32, h: u32, cases: &[Case]| {
        let mut img = RgbImage::new(w, h);
        for c in cases {
            for (&(x, y), colour) in c.dots.iter().zip([RED, GREEN, BLUE]) {
                dot(&mut img, x, y, colour);
            }
        }
        img
    };
    let frame_a = paint(640, 480, &a_cases);
    let frame_b = paint(320, 240, &b_cases);

    // One frame, its three boxes in one batch.
    let boxes: Vec<BoundingBox> = a_cases.iter().map(|c| c.bbox).collect();
    let got = pose.estimate(&frame_a, &boxes).unwrap();
    assert_eq!(got.len(), 3);
    for (i, (p, c)) in got.iter().zip(&a_cases).enumerate() {
        check(p, c, &format!("frame A box {i}"));
    }

    // Crops of two frames mixed in one batch, and the same through batches of 2: the same
    // poses in the same order.
    let crops = [
        (&frame_b, b_cases[0].bbox),
        (&frame_a, a_cases[1].bbox),
        (&frame_a, a_cases[0].bbox),
    ];
    let mixed = pose.estimate_crops(&crops).unwrap();
    check(&mixed[0], &b_cases[0], "frame B in a mixed batch");
    check(&mixed[1], &a_cases[1], "frame A box 1 in a mixed batch");
    check(&mixed[2], &a_cases[0], "frame A box 0 in a mixed batch");
    assert_eq!(mixed[1], got[1]);
    let mut small = pose.with_max_batch(2);
    assert_eq!(small.estimate_crops(&crops).unwrap(), mixed);
    assert!(small.estimate(&frame_a, &[]).unwrap().is_empty());
}

#[test]
fn a_box_without_its_dots_is_not_pulled_to_another_box() {
    // The crop of a box far from every dot sees black only: every SimCC vector is flat, so
    // the argmax is bin 0 (the crop's top-left) and the confidence that of black.
    let dir = tempfile::tempdir().unwrap();
    let mut pose = registry(dir.path())
        .pose_estimator("rtmpose_ap10k")
        .unwrap();
    let mut img = RgbImage::new(400, 400);
    dot(&mut img, 30, 30, RED);
    let b = bbox(250.0, 250.0, 80.0, 80.0);
    let got = pose.estimate(&img, &[b]).unwrap();
    // Crop region: centre (290, 290), side 100 → top-left (240, 240).
    for (k, kp) in got[0].keypoints.iter().enumerate() {
        assert!(
            (kp.x - 240.0).abs() < 1e-3 && (kp.y - 240.0).abs() < 1e-3,
            "{k}: {kp:?}"
        );
        assert!(
            !kp.is_located(),
            "{k}: black gives a negative normalised value: {kp:?}"
        );
    }
}

#[test]
fn a_detector_entry_is_not_a_pose_model() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    // The pose file under the detector's name: the signature check refuses it first.
    let mut manifest = reg.manifest().clone();
    let pose_entry = manifest.get("rtmpose_ap10k").unwrap().clone();
    let det = manifest
        .models
        .iter_mut()
        .find(|m| m.name == "yolox_nano")
        .unwrap();
    det.file = pose_entry.file.clone();
    det.sha256 = pose_entry.sha256.clone();
    let err = ModelRegistry::new(dir.path(), manifest)
        .detector("yolox_nano")
        .unwrap_err();
    assert!(
        matches!(err, ModelError::SignatureMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("simcc_x:f32[N,17,512]"), "{err}");
}
