use std::path::PathBuf;

/// Everything that can go wrong in this crate. `Display` never repeats the cause; use
/// `source()` (or `{:#}` in anyhow) for the chain.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model manifest {path}")]
    ManifestRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model manifest {origin}")]
    ManifestParse {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid model manifest {origin}: {reason}")]
    ManifestInvalid { origin: String, reason: String },
    #[error("model {name:?} is not in the manifest (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error(
        "no model directory configured: set HORSESTREAM_MODEL_DIR or `model_dir` \
         (scripts/install-deps.sh sets up the default one)"
    )]
    NoModelDir,
    #[error(
        "model file {path} (model {name:?}) is missing; get it as described in models/manifest.toml \
         or run scripts/install-deps.sh, and set HORSESTREAM_MODEL_DIR"
    )]
    ModelFileMissing { name: String, path: PathBuf },
    #[error(
        "model {name:?} is enabled but its file {path} is missing: this optional model does not \
         ship with horsestream. To get it: {obtain}. Or turn the feature off for the stream"
    )]
    OptionalModelMissing {
        name: String,
        path: PathBuf,
        obtain: String,
    },
    #[error("cannot read model file {path}")]
    ModelFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "sha256 mismatch for model file {path}: manifest expects {expected}, file has {actual}"
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model {name:?} ({path}) has signature {actual}, manifest expects {expected}")]
    SignatureMismatch {
        name: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model {name:?} has task {actual}, expected {expected}")]
    WrongTask {
        name: String,
        expected: String,
        actual: String,
    },
    #[error(
        "ONNX Runtime library not found at {path} (taken from {origin}); run scripts/install-deps.sh \
         or set ORT_DYLIB_PATH to libonnxruntime.so (>= 1.31)"
    )]
    RuntimeMissing { path: PathBuf, origin: &'static str },
    #[error("cannot load ONNX Runtime from {path}")]
    RuntimeLoad {
        path: PathBuf,
        #[source]
        source: ort::LoadDynamicError,
    },
    #[error("ONNX Runtime call failed: {context}")]
    Ort {
        context: String,
        #[source]
        source: ort::Error,
    },
    #[error("model {name:?} returned an output of shape {actual:?}, expected {expected}")]
    UnexpectedOutput {
        name: String,
        expected: String,
        actual: Vec<i64>,
    },
    #[error("input tensor has {actual} values, expected {expected} for a batch of {batch}")]
    InputSize {
        batch: usize,
        expected: usize,
        actual: usize,
    },
}

impl ModelError {
    pub(crate) fn ort<R>(context: impl Into<String>) -> impl FnOnce(ort::Error<R>) -> ModelError {
        let context = context.into();
        move |e| ModelError::Ort {
            context,
            // Drops the recoverable builder (if any); the message and code stay.
            source: ort::Error::new_with_code(e.code(), e.message()),
        }
    }
}
