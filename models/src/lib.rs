//! horsestream-models: the model manifest and registry (files, sha256, signatures), ONNX
//! Runtime sessions, and the pure pre/post-processing around them (letterbox, YOLOX/YOLOv5/
//! YOLOv8 decode, NMS, affine crops, SimCC decode). The dataflow's detection, re-identification
//! and pose stages call it through `Detector`, `Embedder` and `PoseEstimator`.

mod detector;
pub mod embedder;
mod error;
pub mod heads;
mod inference;
pub mod letterbox;
pub mod manifest;
pub mod nms;
mod normalize;
mod parallel;
pub mod pose;
mod registry;
mod resample;
mod runtime;

pub use detector::{Detected, Detector};
pub use embedder::{Embedder, cosine_distance, crop, l2_normalize};
pub use error::ModelError;
pub use heads::{ClassFilter, decode_output};
pub use inference::{LARGEST_BATCH, pieces};
pub use letterbox::{Letterbox, LetterboxSpec, letterbox, letterbox_into};
pub use manifest::{
    DEFAULT_MANIFEST, DetectionHead, DetectionParams, Manifest, ModelEntry, PoseParams, Task,
};
pub use nms::{Candidate, iou, nms};
pub use pose::{AP10K_KEYPOINTS, Keypoint, Pose, PoseEstimator};
pub use registry::{
    ExecutionProviderKind, LoadedModel, MODEL_DIR_ENV, ModelRegistry, ModelsConfig, cores,
    sha256_file,
};
pub use runtime::{ORT_DYLIB_ENV, default_dylib_path, init_runtime, resolve_dylib_path};
