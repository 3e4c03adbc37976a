//! Integration tests against the real ONNX Runtime library and the real model files.
//!
//! They need `libonnxruntime.so` (`ORT_DYLIB_PATH`, default
//! `~/.cache/horsestream/onnxruntime/libonnxruntime.so`) and the model directory
//! (`HORSESTREAM_MODEL_DIR`, default `<workspace>/../shared/models`); both are set up by
//! `scripts/install-deps.sh`. When either is missing the tests FAIL, they never skip.

use std::path::PathBuf;

use horsestream_models::{
    Detected, ExecutionProviderKind, MODEL_DIR_ENV, Manifest, ModelError, ModelRegistry,
    init_runtime,
};

const SETUP: &str = "run scripts/install-deps.sh, or set HORSESTREAM_MODEL_DIR to the \
                     directory with yolox_nano.onnx / reid_mobilenetv2.onnx and ORT_DYLIB_PATH \
                     to libonnxruntime.so";

fn workspace_sibling(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn model_dir() -> PathBuf {
    let dir = std::env::var_os(MODEL_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_sibling("shared/models"));
    assert!(
        dir.join("yolox_nano.onnx").is_file(),
        "model directory {} has no yolox_nano.onnx: {SETUP}",
        dir.display()
    );
    dir
}

fn registry_with(manifest: Manifest) -> ModelRegistry {
    if let Err(e) = init_runtime(None) {
        panic!("{e}");
    }
    ModelRegistry::new(model_dir(), manifest).with_intra_threads(2)
}

fn registry() -> ModelRegistry {
    registry_with(Manifest::embedded())
}

fn horses() -> image::RgbImage {
    let path = workspace_sibling("shared/media/horses.jpg");
    image::open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
        .to_rgb8()
}

fn center(d: &Detected) -> (f32, f32, f32, f32) {
    let b = d.bbox;
    (b.x + b.w / 2.0, b.y + b.h / 2.0, b.w, b.h)
}

#[test]
fn yolox_finds_the_three_horses_of_the_readme() {
    let mut det = registry().detector("yolox_nano").unwrap();
    let img = horses();
    let out = det.detect(std::slice::from_ref(&img)).unwrap();
    assert_eq!(out.len(), 1);
    let found = &out[0];
    for d in found {
        eprintln!(
            "class {} score {:.3} cx,cy,w,h {:?}",
            d.class_id,
            d.score,
            center(d)
        );
    }
    // (cx, cy, w, h, score) from shared/models/README.md, best first.
    let expected = [
        (183.0, 297.0, 366.0, 228.0, 0.80),
        (342.0, 265.0, 192.0, 195.0, 0.64),
        (517.0, 278.0, 158.0, 135.0, 0.59),
    ];
    assert!(
        found.len() >= 3,
        "expected at least 3 horses, got {found:?}"
    );
    for (d, &(cx, cy, w, h, score)) in found.iter().zip(&expected) {
        let (gx, gy, gw, gh) = center(d);
        assert_eq!(d.class_id, 17);
        let close = |a: f32, b: f32| (a - b).abs() <= 4.0;
        assert!(
            close(gx, cx) && close(gy, cy) && close(gw, w) && close(gh, h),
            "box {:?} is not near ({cx},{cy},{w},{h})",
            center(d)
        );
        assert!(
            (d.score - score).abs() < 0.03,
            "score {} vs {score}",
            d.score
        );
        let b = d.bbox;
        assert!(b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= 773.0 && b.y + b.h <= 512.0);
    }
}

#[test]
fn candidates_add_low_score_boxes_and_leave_the_detections_as_they_were() {
    let reg = registry();
    let mut plain = reg.detector("yolox_nano").unwrap();
    let mut with = reg.detector("yolox_nano").unwrap().with_candidates();
    let photo = horses();
    // The photo, and harder versions of it: blurred, and shrunk to a quarter.
    let frames = vec![
        photo.clone(),
        image::imageops::blur(&photo, 4.0),
        image::imageops::resize(
            &photo,
            photo.width() / 4,
            photo.height() / 4,
            image::imageops::FilterType::Triangle,
        ),
    ];
    let a = plain.detect(&frames).unwrap();
    let b = with.detect(&frames).unwrap();
    let mut candidates = 0;
    for (a, b) in a.iter().zip(&b) {
        // NMS keeps a box unless a higher-scoring one overlaps it, and every candidate
        // scores lower than every detection: the detections are exactly the plain ones.
        let detections: Vec<_> = b.iter().filter(|d| !d.candidate).cloned().collect();
        assert_eq!(&detections, a);
        for d in b.iter().filter(|d| d.candidate) {
            assert!((0.1..0.3).contains(&d.score), "{d:?}");
            candidates += 1;
        }
        assert!(a.iter().all(|d| !d.candidate && d.score >= 0.3));
    }
    eprintln!("{candidates} candidates");
    assert!(candidates > 0, "no low-score box on any frame: {b:?}");
}

#[test]
fn a_batch_of_two_identical_frames_gives_identical_results() {
    let mut det = registry().detector("yolox_nano").unwrap();
    let img = horses();
    let single = det.detect(std::slice::from_ref(&img)).unwrap();
    let pair = det.detect(&[img.clone(), img]).unwrap();
    assert_eq!(pair.len(), 2);
    assert_eq!(pair[0], pair[1]);
    assert_eq!(pair[0].len(), single[0].len());
    for (a, b) in pair[0].iter().zip(&single[0]) {
        assert_eq!(a.class_id, b.class_id);
        assert!((a.score - b.score).abs() < 1e-4);
        let (a, b) = (a.bbox, b.bbox);
        assert!((a.x - b.x).abs() < 0.05 && (a.y - b.y).abs() < 0.05);
        assert!((a.w - b.w).abs() < 0.05 && (a.h - b.h).abs() < 0.05);
    }
    assert!(det.detect(&[]).unwrap().is_empty());
}

#[test]
fn the_reid_model_matches_its_manifest_signature() {
    let model = registry().load("reid_mobilenetv2").unwrap();
    assert_eq!(model.execution_provider, ExecutionProviderKind::Cpu);
}

#[test]
fn the_reid_file_as_detector_is_refused_naming_both_signatures() {
    let mut manifest = Manifest::embedded();
    let reid = manifest.get("reid_mobilenetv2").unwrap().clone();
    let yolox = manifest
        .models
        .iter_mut()
        .find(|m| m.name == "yolox_nano")
        .unwrap();
    yolox.file = reid.file.clone();
    yolox.sha256 = reid.sha256.clone();
    let err = registry_with(manifest).detector("yolox_nano").unwrap_err();
    assert!(
        matches!(err, ModelError::SignatureMismatch { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("\"yolox_nano\""), "{msg}");
    assert!(msg.contains("reid_mobilenetv2.onnx"), "{msg}");
    assert!(
        msg.contains("images:f32[N,3,416,416] -> output:f32[N,3549,85]"),
        "{msg}"
    );
    assert!(msg.contains(",3,224,224] -> embedding:f32["), "{msg}");
    assert!(msg.contains(",1280]"), "{msg}");
}

#[test]
fn a_wrong_sha256_is_refused_with_both_digests() {
    let mut manifest = Manifest::embedded();
    let yolox = manifest
        .models
        .iter_mut()
        .find(|m| m.name == "yolox_nano")
        .unwrap();
    yolox.sha256 = Some("0".repeat(64));
    let err = registry_with(manifest).detector("yolox_nano").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ModelError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(msg.contains("yolox_nano.onnx"), "{msg}");
    assert!(msg.contains(&"0".repeat(64)), "{msg}");
    assert!(
        msg.contains("1c0f404d267fc5e0c173f160a61f599b80dade2be362aa45856b244e5f00c38e"),
        "{msg}"
    );
}

#[test]
fn a_missing_model_file_is_refused_naming_it() {
    let mut manifest = Manifest::embedded();
    let yolox = manifest
        .models
        .iter_mut()
        .find(|m| m.name == "yolox_nano")
        .unwrap();
    yolox.file = "no_such_model.onnx".into();
    let err = registry_with(manifest).detector("yolox_nano").unwrap_err();
    assert!(
        matches!(err, ModelError::ModelFileMissing { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_such_model.onnx"), "{err}");
}

#[test]
fn an_unavailable_gpu_provider_falls_back_to_cpu_and_still_detects() {
    let mut det = registry()
        .with_execution_provider(ExecutionProviderKind::TensorRt)
        .detector("yolox_nano")
        .unwrap();
    // The CPU wheel of onnxruntime has neither TensorRT nor CUDA; a GPU build would report one.
    eprintln!("running on {}", det.execution_provider());
    let out = det.detect(&[horses()]).unwrap();
    assert!(out[0].len() >= 3);
}

#[test]
fn reid_embeddings_are_unit_length_and_tell_horses_apart() {
    use horsestream_models::{cosine_distance, crop};
    let reg = registry();
    let mut detector = reg.detector("yolox_nano").unwrap();
    let mut embedder = reg.embedder("reid_mobilenetv2").unwrap();
    let img = horses();
    let found = detector
        .detect(std::slice::from_ref(&img))
        .unwrap()
        .remove(0);
    assert!(found.len() >= 3);
    let mut crops: Vec<_> = found.iter().take(3).map(|d| crop(&img, &d.bbox)).collect();
    // The first horse again, its box moved by 4 px: still the same horse.
    let mut shifted = found[0].bbox;
    shifted.x += 4.0;
    shifted.y += 4.0;
    crops.push(crop(&img, &shifted));
    let e = embedder.embed(&crops).unwrap();
    assert_eq!(e.len(), 4);
    for v in &e {
        assert_eq!(v.len(), 1280);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let same = cosine_distance(&e[0], &e[3]);
    let others = [cosine_distance(&e[0], &e[1]), cosine_distance(&e[0], &e[2])];
    assert!(
        others.iter().all(|d| same < *d),
        "same horse {same}, other horses {others:?}"
    );
}
