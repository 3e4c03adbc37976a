//! horsestream-models: the model manifest and registry (files, sha256, signatures), ONNX
//! Runtime sessions, and the pure pre/post-processing around them (letterbox, YOLOX decode,
//! NMS). The dataflow's detection and re-identification stages call it through `Detector`.

mod detector;
pub mod embedder;
mod error;
pub mod letterbox;
pub mod manifest;
pub mod nms;
mod registry;
mod runtime;
pub mod yolox;

pub use detector::{Detected, Detector};
pub use embedder::{Embedder, cosine_distance, crop, l2_normalize};
pub use error::ModelError;
pub use letterbox::{Letterbox, LetterboxSpec, letterbox, letterbox_into};
pub use manifest::{DEFAULT_MANIFEST, Manifest, ModelEntry, Task};
pub use nms::{Candidate, iou, nms};
pub use registry::{
    ExecutionProviderKind, LoadedModel, MODEL_DIR_ENV, ModelRegistry, ModelsConfig, sha256_file,
};
pub use runtime::{ORT_DYLIB_ENV, default_dylib_path, init_runtime, resolve_dylib_path};
pub use yolox::{ClassFilter, decode};
