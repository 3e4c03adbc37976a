//! The pose model the tests write (`fixed-peaks`; no animal-pose weights are reachable): whatever
//! the crop, keypoint `k`'s SimCC vectors peak at network pixel `peak(k)` with its score, so
//! every keypoint the dataflow stores has a known place for its box (`expected`). Used by
//! `tests/pose.rs` and the browser test of `tests/web_live.rs`.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};

use super::common::required_env;

#[path = "../../models/tests/support/onnx.rs"]
mod onnx;

use onnx::{float_tensor, int_attr, int64_tensor, ints_attr, node, value_info};

pub const K: usize = 17;
pub const SIDE: i64 = 256;
pub const POSE_MODEL: &str = "rtmpose_ap10k";
pub const POSE_FILE: &str = "rtmpose-m_ap10k_256x256.onnx";

/// Network pixel (column, row) and score of keypoint `k`: distinct for every keypoint. The
/// elbows and knees (6, 9, 12, 15) sit off the line through the others, each by its own
/// amount, so every limb has a joint angle of its own.
pub fn peak(k: usize) -> (f64, f64, f32) {
    let bend = match k {
        6 => 24.0,
        9 => -14.0,
        12 => 36.0,
        15 => -6.0,
        _ => 0.0,
    };
    (
        40.0 + 10.0 * k as f64,
        220.0 - 9.0 * k as f64 - bend,
        0.5 + k as f32 / 64.0,
    )
}

/// `fixed-peaks` (opset 13) with the embedded manifest's `rtmpose_ap10k` signature: the input
/// only lends the batch size (max over each item, times 0), to which one-hot SimCC rows (bin
/// `2u` of `simcc_x`, `2v` of `simcc_y`, split ratio 2) are added.
pub fn fixed_peaks_model() -> Vec<u8> {
    let bins = 2 * SIDE as usize;
    let (mut xs, mut ys) = (vec![0f32; K * bins], vec![0f32; K * bins]);
    for k in 0..K {
        let (u, v, score) = peak(k);
        xs[k * bins + 2 * u as usize] = score;
        ys[k * bins + 2 * v as usize] = score;
    }
    let nodes = vec![
        node(
            "ReduceMax",
            &["input"],
            "item_max",
            vec![ints_attr("axes", vec![1, 2, 3]), int_attr("keepdims", 0)],
        ),
        node("Reshape", &["item_max", "n_1_1"], "per_item", vec![]),
        node("Mul", &["per_item", "zero"], "zeros", vec![]),
        node("Add", &["zeros", "peaks_x"], "simcc_x", vec![]),
        node("Add", &["zeros", "peaks_y"], "simcc_y", vec![]),
    ];
    let graph = onnx::GraphProto {
        node: nodes,
        name: "fixed_peaks".to_owned(),
        initializer: vec![
            int64_tensor("n_1_1", vec![-1, 1, 1]),
            float_tensor("zero", vec![1], vec![0.0]),
            float_tensor("peaks_x", vec![1, K as i64, bins as i64], xs),
            float_tensor("peaks_y", vec![1, K as i64, bins as i64], ys),
        ],
        input: vec![value_info(
            "input",
            &[None, Some(3), Some(SIDE), Some(SIDE)],
        )],
        output: vec![
            value_info("simcc_x", &[None, Some(K as i64), Some(bins as i64)]),
            value_info("simcc_y", &[None, Some(K as i64), Some(bins as i64)]),
        ],
    };
    onnx::model(graph)
}

/// A model directory with the real detector and re-ID files (linked) and, with `pose`, the
/// `fixed-peaks` model under the pose entry's file name; and a manifest override pinning its
/// digest, as a deployment that installs pose weights would.
pub fn model_dir(dir: &Path, pose: bool) -> (PathBuf, PathBuf) {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let real = PathBuf::from(required_env("HORSESTREAM_MODEL_DIR"));
    for f in ["yolox_nano.onnx", "reid_mobilenetv2.onnx"] {
        std::os::unix::fs::symlink(real.join(f), models.join(f)).unwrap();
    }
    let bytes = fixed_peaks_model();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    if pose {
        std::fs::write(models.join(POSE_FILE), &bytes).unwrap();
    }
    let embedded = include_str!("../../models/manifest.toml");
    let entry = format!("file = \"{POSE_FILE}\"\n");
    assert_eq!(
        embedded.matches(&entry).count(),
        1,
        "the pose entry's file line"
    );
    let manifest = dir.join("manifest.toml");
    std::fs::write(
        &manifest,
        embedded.replace(&entry, &format!("{entry}sha256 = \"{sha256}\"\n")),
    )
    .unwrap();
    (models, manifest)
}

/// Where keypoint `k` of a detection whose box is `bbox` belongs, source pixels: RTMPose's
/// crop (centre of the box, side = longer side × 1.25, onto 256 × 256) undone.
pub fn expected(bbox: &serde_json::Value, k: usize) -> (f64, f64) {
    let get = |key: &str| bbox[key].as_f64().unwrap();
    let (w, h) = (get("w").max(1.0), get("h").max(1.0));
    let (cx, cy) = (get("x") + w / 2.0, get("y") + h / 2.0);
    let side = (w * 1.25).max(h * 1.25);
    let (u, v, _) = peak(k);
    (
        cx + (u - 128.0) * side / 256.0,
        cy + (v - 128.0) * side / 256.0,
    )
}

/// Each limb's joint angle (degrees) in the `fixed-peaks` pattern, at the elbow or knee, in
/// the order gait reports them. A stored pose is the pattern moved and scaled with its box (a
/// similarity, which keeps angles), so these are the mean angles gait must find.
pub fn joint_angles() -> [(&'static str, f64); 4] {
    // AP-10K: shoulder, elbow, front paw (left 5-7, right 8-10); hip, knee, back paw (11-16).
    let angle = |[p, j, d]: [usize; 3]| {
        let (p, j, d) = (peak(p), peak(j), peak(d));
        let (a, b) = ((p.0 - j.0, p.1 - j.1), (d.0 - j.0, d.1 - j.1));
        (a.0 * b.1 - a.1 * b.0)
            .abs()
            .atan2(a.0 * b.0 + a.1 * b.1)
            .to_degrees()
    };
    [
        ("left_fore", angle([5, 6, 7])),
        ("right_fore", angle([8, 9, 10])),
        ("left_hind", angle([11, 12, 13])),
        ("right_hind", angle([14, 15, 16])),
    ]
}
