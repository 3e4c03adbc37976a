//! The YOLOv5 and YOLOv8 heads through the whole `Detector` path and the real ONNX Runtime,
//! with models this test writes: their output is a constant tensor of known boxes (broadcast
//! over the batch), so the centred Ultralytics letterbox, the head's layout, the class filter,
//! the manifest's per-model threshold and the mapping back to source pixels are all checked.
//! (No YOLOv5/YOLOv8 weights are available here; `real_models.rs` covers YOLOX on real ones.)
//!
//! Needs `libonnxruntime.so` (`ORT_DYLIB_PATH`); fails without it.

use std::path::Path;

use horsestream_models::manifest::{ChannelOrder, Dim, LetterboxPlacement};
use horsestream_models::{
    DetectionHead, Detector, Manifest, ModelRegistry, init_runtime, sha256_file,
};

#[path = "support/onnx.rs"]
mod onnx;

use onnx::{float_tensor, int_attr, int64_tensor, ints_attr, node, value_info};

/// 64×64 input, strides 8/16/32: 64 + 16 + 4 = 84 grid cells; 2 classes, horse = class 1.
const SIZE: u32 = 64;
const CELLS: usize = 84;
const CLASSES: usize = 2;

/// `output = ReduceMax(images)[N, 1, 1] · 0 + table`: the constant `table` ([1, d1, d2]) for every image
/// of the batch (the input still flows through the graph, so the batch size is real).
fn constant_head_model(d1: usize, d2: usize, table: Vec<f32>) -> Vec<u8> {
    assert_eq!(table.len(), d1 * d2);
    let graph = onnx::GraphProto {
        node: vec![
            node(
                "ReduceMax",
                &["images"],
                "m",
                vec![ints_attr("axes", vec![1, 2, 3]), int_attr("keepdims", 0)],
            ),
            // [N] → [N, 1, 1], to broadcast against the [1, d1, d2] table.
            node("Unsqueeze", &["m", "axes12"], "m3", vec![]),
            node("Mul", &["m3", "zero"], "z", vec![]),
            node("Add", &["z", "table"], "output", vec![]),
        ],
        name: "constant_head".to_owned(),
        initializer: vec![
            float_tensor("zero", vec![1], vec![0.0]),
            int64_tensor("axes12", vec![1, 2]),
            float_tensor("table", vec![1, d1 as i64, d2 as i64], table),
        ],
        input: vec![value_info(
            "images",
            &[None, Some(3), Some(i64::from(SIZE)), Some(i64::from(SIZE))],
        )],
        output: vec![value_info(
            "output",
            &[None, Some(d1 as i64), Some(d2 as i64)],
        )],
    };
    onnx::model(graph)
}

/// The embedded detector entry turned into a 64×64 Ultralytics-style model of `head`, its file
/// written to `dir`.
fn detector(dir: &Path, head: DetectionHead, model: Vec<u8>) -> Detector {
    if let Err(e) = init_runtime(None) {
        panic!("{e} (run scripts/install-deps.sh or set ORT_DYLIB_PATH)");
    }
    let mut manifest = Manifest::embedded();
    let entry = manifest
        .models
        .iter_mut()
        .find(|m| m.name == "yolox_nano")
        .unwrap();
    entry.file = format!("{head}.onnx");
    let path = dir.join(&entry.file);
    std::fs::write(&path, model).unwrap();
    entry.sha256 = Some(sha256_file(&path).unwrap());
    let p = entry.detection.as_mut().unwrap();
    p.head = head;
    p.input_size = SIZE;
    p.letterbox = LetterboxPlacement::Center;
    p.channel_order = ChannelOrder::Rgb;
    p.pixel_range = [0.0, 1.0];
    p.num_classes = CLASSES as u32;
    p.horse_class_id = 1;
    p.score_threshold = 0.5;
    let [_, d1, d2] = p.output_shape(1);
    let side = Dim::Fixed(u64::from(SIZE));
    entry.inputs[0].shape = vec![Dim::Symbolic("N".into()), Dim::Fixed(3), side.clone(), side];
    entry.outputs[0].shape = vec![
        Dim::Symbolic("N".into()),
        Dim::Fixed(d1 as u64),
        Dim::Fixed(d2 as u64),
    ];
    manifest.validate("test").unwrap();
    ModelRegistry::new(dir, manifest)
        .with_intra_threads(1)
        .detector("yolox_nano")
        .unwrap()
}

/// Boxes in network pixels `(cx, cy, w, h, class scores)`; the horse box is the first.
/// On a 200×100 frame the centred letterbox scales by 0.32 into 64×32 at y = 16, so the horse
/// box (22..42, 27..37) is (68.75, 34.375, 62.5, 31.25) in the frame.
const BOXES: [(f32, f32, f32, f32, [f32; CLASSES]); 3] = [
    (32.0, 32.0, 20.0, 10.0, [0.1, 0.9]),
    // Not a horse.
    (10.0, 30.0, 8.0, 8.0, [0.8, 0.2]),
    // A horse below this model's threshold (0.5).
    (50.0, 40.0, 8.0, 8.0, [0.0, 0.45]),
];

fn check(found: &[horsestream_models::Detected], score: f32) {
    assert_eq!(found.len(), 1, "{found:?}");
    let d = found[0];
    assert_eq!(d.class_id, 1);
    assert!((d.score - score).abs() < 1e-6, "{d:?}");
    let b = d.bbox;
    let close = |a: f32, e: f32| (a - e).abs() < 1e-3;
    assert!(
        close(b.x, 68.75) && close(b.y, 34.375) && close(b.w, 62.5) && close(b.h, 31.25),
        "{b:?}"
    );
}

fn frames() -> Vec<image::RgbImage> {
    vec![
        image::RgbImage::new(200, 100),
        image::RgbImage::new(200, 100),
    ]
}

#[test]
fn yolov8_head_end_to_end() {
    // [4 + C, A], channels first: box i is column i.
    let mut table = vec![0.0; (4 + CLASSES) * CELLS];
    for (i, (cx, cy, w, h, scores)) in BOXES.iter().enumerate() {
        let col = [*cx, *cy, *w, *h, scores[0], scores[1]];
        for (ch, v) in col.into_iter().enumerate() {
            table[ch * CELLS + 3 * i + 5] = v;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut det = detector(
        dir.path(),
        DetectionHead::Yolov8,
        constant_head_model(4 + CLASSES, CELLS, table),
    );
    let out = det.detect(&frames()).unwrap();
    assert_eq!(out.len(), 2);
    check(&out[0], 0.9);
    assert_eq!(out[0], out[1]);
}

#[test]
fn yolov5_head_end_to_end() {
    // [3·A, 5 + C]: box i is row i, score = objectness × class.
    let rows = 3 * CELLS;
    let mut table = vec![0.0; rows * (5 + CLASSES)];
    for (i, (cx, cy, w, h, scores)) in BOXES.iter().enumerate() {
        let row = [*cx, *cy, *w, *h, 0.8, scores[0], scores[1]];
        let at = (7 * i + 100) * (5 + CLASSES);
        table[at..at + 5 + CLASSES].copy_from_slice(&row);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut det = detector(
        dir.path(),
        DetectionHead::Yolov5,
        constant_head_model(rows, 5 + CLASSES, table),
    );
    let out = det.detect(&frames()).unwrap();
    assert_eq!(out.len(), 2);
    // 0.8 × 0.9; the third box is 0.8 × 0.45 = 0.36 < 0.5.
    check(&out[0], 0.72);
    assert_eq!(out[0], out[1]);
}
