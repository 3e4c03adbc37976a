//! The model registry: resolves a model's file in the model directory, checks its sha256,
//! builds an ort `Session` on the configured execution provider, and refuses a model whose
//! real inputs/outputs differ from the manifest signature.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::session::Session;
use ort::session::builder::SessionBuilder;
use ort::value::{Outlet, ValueType};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::detector::Detector;
use crate::manifest::{Dim, Manifest, ModelEntry, Task, TensorSpec};
use crate::{ModelError, runtime};

/// Environment variable naming the model directory.
pub const MODEL_DIR_ENV: &str = "HORSESTREAM_MODEL_DIR";

/// Which ONNX Runtime execution provider to ask for. Unavailable providers fall back to CPU
/// with a warning; [`LoadedModel::execution_provider`] tells which one is really in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProviderKind {
    #[default]
    Cpu,
    Cuda,
    #[serde(rename = "tensorrt")]
    TensorRt,
}

impl fmt::Display for ExecutionProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutionProviderKind::Cpu => "cpu",
            ExecutionProviderKind::Cuda => "cuda",
            ExecutionProviderKind::TensorRt => "tensorrt",
        })
    }
}

/// The `models` section of the horsestream config.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Directory holding the model files; when unset, `HORSESTREAM_MODEL_DIR`.
    pub model_dir: Option<PathBuf>,
    /// Manifest override; when unset, the embedded `models/manifest.toml`.
    pub manifest: Option<PathBuf>,
    /// `libonnxruntime.so`; when unset, `ORT_DYLIB_PATH`, then the install script's path.
    pub ort_dylib: Option<PathBuf>,
    /// Threads per session for work inside one operator; when unset, ONNX Runtime's default.
    pub intra_threads: Option<usize>,
    /// Whether a session's idle intra-op threads spin waiting for work; when unset, ONNX
    /// Runtime's default (they do). Spinning wins latency when one session has the cores to
    /// itself and burns the cores other sessions need when several share them.
    pub intra_spinning: Option<bool>,
    pub execution_provider: ExecutionProviderKind,
}

/// The cores this process may use: the thread count of a model's work when
/// [`ModelsConfig::intra_threads`] is unset.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Finds, verifies and opens the models of one manifest in one directory.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    dir: PathBuf,
    manifest: Manifest,
    ort_dylib: Option<PathBuf>,
    intra_threads: Option<usize>,
    intra_spinning: Option<bool>,
    execution_provider: ExecutionProviderKind,
}

/// A verified model with its session.
pub struct LoadedModel {
    pub entry: ModelEntry,
    pub path: PathBuf,
    pub session: Session,
    /// The provider the session really runs on.
    pub execution_provider: ExecutionProviderKind,
    /// Threads the model's work may use: its session's intra-op threads, and the threads that
    /// prepare its input ([`ModelsConfig::intra_threads`], else the machine's cores).
    pub threads: usize,
}

impl LoadedModel {
    /// The entry's parameters for `task` (picked by `params`), or [`ModelError::WrongTask`]
    /// when the entry is another task's model. Validation guarantees a model of `task` has them.
    pub(crate) fn task_params<P: Clone>(
        &self,
        task: Task,
        params: impl FnOnce(&ModelEntry) -> Option<&P>,
    ) -> Result<P, ModelError> {
        match params(&self.entry) {
            Some(p) if self.entry.task == task => Ok(p.clone()),
            _ => Err(ModelError::WrongTask {
                name: self.entry.name.clone(),
                expected: task.to_string(),
                actual: self.entry.task.to_string(),
            }),
        }
    }
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.entry.name)
            .field("path", &self.path)
            .field("execution_provider", &self.execution_provider)
            .finish_non_exhaustive()
    }
}

impl ModelRegistry {
    /// CPU, ONNX Runtime's default thread count, runtime library from the default places.
    pub fn new(dir: impl Into<PathBuf>, manifest: Manifest) -> ModelRegistry {
        ModelRegistry {
            dir: dir.into(),
            manifest,
            ort_dylib: None,
            intra_threads: None,
            intra_spinning: None,
            execution_provider: ExecutionProviderKind::Cpu,
        }
    }

    /// Model directory from the config, else `HORSESTREAM_MODEL_DIR`; manifest from the
    /// config's override file, else the embedded one.
    pub fn from_config(config: &ModelsConfig) -> Result<ModelRegistry, ModelError> {
        let dir = match &config.model_dir {
            Some(d) => d.clone(),
            None => match std::env::var_os(MODEL_DIR_ENV) {
                Some(d) if !d.is_empty() => PathBuf::from(d),
                _ => return Err(ModelError::NoModelDir),
            },
        };
        let manifest = Manifest::load(config.manifest.as_deref())?;
        Ok(ModelRegistry {
            dir,
            manifest,
            ort_dylib: config.ort_dylib.clone(),
            intra_threads: config.intra_threads,
            intra_spinning: config.intra_spinning,
            execution_provider: config.execution_provider,
        })
    }

    pub fn with_intra_threads(mut self, threads: usize) -> ModelRegistry {
        self.intra_threads = Some(threads);
        self
    }

    pub fn with_execution_provider(mut self, ep: ExecutionProviderKind) -> ModelRegistry {
        self.execution_provider = ep;
        self
    }

    pub fn with_ort_dylib(mut self, path: impl Into<PathBuf>) -> ModelRegistry {
        self.ort_dylib = Some(path.into());
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The model's file path (not checked).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, ModelError> {
        Ok(self.dir.join(&self.manifest.get(name)?.file))
    }

    /// Checks the model file exists and has the manifest's sha256; returns its path.
    pub fn verify(&self, name: &str) -> Result<PathBuf, ModelError> {
        let entry = self.manifest.get(name)?;
        let path = self.dir.join(&entry.file);
        if !path.is_file() {
            return Err(if entry.optional {
                ModelError::OptionalModelMissing {
                    name: name.to_owned(),
                    path,
                    obtain: entry.source.obtain.clone(),
                }
            } else {
                ModelError::ModelFileMissing {
                    name: name.to_owned(),
                    path,
                }
            });
        }
        let Some(expected) = &entry.sha256 else {
            // Only an `optional` model passes validation without a digest.
            tracing::warn!(
                model = %entry.name,
                path = %path.display(),
                "no sha256 pinned for this user-supplied model: the file is not checked; pin it in \
                 an override manifest"
            );
            return Ok(path);
        };
        let actual = sha256_file(&path)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(ModelError::ChecksumMismatch {
                path,
                expected: expected.to_ascii_lowercase(),
                actual,
            });
        }
        Ok(path)
    }

    /// Verifies the file, builds the session, and checks its signature against the manifest.
    pub fn load(&self, name: &str) -> Result<LoadedModel, ModelError> {
        let path = self.verify(name)?;
        let entry = self.manifest.get(name)?.clone();
        let env = runtime::environment(self.ort_dylib.as_deref())?;
        let mut builder =
            Session::builder(env).map_err(ModelError::ort("creating a session builder"))?;
        if let Some(n) = self.intra_threads {
            builder = builder
                .with_intra_threads(n)
                .map_err(ModelError::ort(format!("setting {n} intra-op threads")))?;
        }
        if let Some(spin) = self.intra_spinning {
            builder = builder
                .with_intra_op_spinning(spin)
                .map_err(ModelError::ort("setting intra-op spinning"))?;
        }
        let (mut builder, execution_provider) = register_provider(builder, self.execution_provider);
        let session = builder
            .commit_from_file(&path)
            .map_err(ModelError::ort(format!("loading {}", path.display())))?;
        check_signature(&entry, &path, session.inputs(), session.outputs())?;
        tracing::info!(
            model = %entry.name,
            path = %path.display(),
            requested = %self.execution_provider,
            execution_provider = %execution_provider,
            intra_threads = ?self.intra_threads,
            intra_spinning = ?self.intra_spinning,
            "model loaded"
        );
        let threads = self.intra_threads.unwrap_or_else(cores);
        Ok(LoadedModel {
            entry,
            path,
            session,
            execution_provider,
            threads,
        })
    }

    /// Loads a detection model as a [`Detector`] with the manifest's defaults (horse only).
    pub fn detector(&self, name: &str) -> Result<Detector, ModelError> {
        Detector::new(self.load(name)?)
    }

    /// A re-identification embedder for the manifest entry `name`.
    pub fn embedder(&self, name: &str) -> Result<crate::Embedder, ModelError> {
        crate::Embedder::new(self.load(name)?)
    }

    /// A SimCC pose estimator for the manifest entry `name` (e.g. `rtmpose_ap10k`). A missing
    /// file of an optional model gives [`ModelError::OptionalModelMissing`], naming the file
    /// and how to obtain it.
    pub fn pose_estimator(&self, name: &str) -> Result<crate::PoseEstimator, ModelError> {
        crate::PoseEstimator::new(self.load(name)?)
    }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let read_err = |source| ModelError::ModelFileRead {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Registers the requested provider (TensorRT falls back to CUDA, both to CPU) and returns
/// the one that will really run.
fn register_provider(
    builder: SessionBuilder,
    kind: ExecutionProviderKind,
) -> (SessionBuilder, ExecutionProviderKind) {
    /// The builder back, and `None` when `E` is registered, else why not.
    fn attempt<E: ExecutionProvider + Into<ExecutionProviderDispatch>>(
        builder: SessionBuilder,
        ep: E,
    ) -> (SessionBuilder, Option<String>) {
        match E::is_available() {
            Ok(true) => {}
            Ok(false) => {
                return (
                    builder,
                    Some(format!("this ONNX Runtime library has no {}", E::NAME)),
                );
            }
            Err(e) => return (builder, Some(format!("cannot query {}: {e}", E::NAME))),
        }
        let dispatch: ExecutionProviderDispatch = ep.into();
        match builder.with_execution_providers([dispatch.error_on_failure()]) {
            Ok(b) => (b, None),
            Err(e) => {
                let reason = format!("registering {} failed: {e}", E::NAME);
                (e.recover(), Some(reason))
            }
        }
    }

    let mut builder = builder;
    let chain: &[ExecutionProviderKind] = match kind {
        ExecutionProviderKind::Cpu => &[],
        ExecutionProviderKind::Cuda => &[ExecutionProviderKind::Cuda],
        ExecutionProviderKind::TensorRt => {
            &[ExecutionProviderKind::TensorRt, ExecutionProviderKind::Cuda]
        }
    };
    for &candidate in chain {
        let (b, failure) = match candidate {
            ExecutionProviderKind::TensorRt => attempt(builder, ep::TensorRT::default()),
            _ => attempt(builder, ep::CUDA::default()),
        };
        builder = b;
        match failure {
            None => return (builder, candidate),
            Some(reason) => {
                tracing::warn!(requested = %kind, tried = %candidate, %reason, "execution provider unavailable");
            }
        }
    }
    if kind != ExecutionProviderKind::Cpu {
        tracing::warn!(requested = %kind, "falling back to the CPU execution provider");
    }
    (builder, ExecutionProviderKind::Cpu)
}

/// Compares the session's real inputs/outputs with the manifest. A symbolic manifest dimension
/// must be dynamic in the model; a fixed one must be equal.
fn check_signature(
    entry: &ModelEntry,
    path: &Path,
    inputs: &[Outlet],
    outputs: &[Outlet],
) -> Result<(), ModelError> {
    let matches = |specs: &[TensorSpec], outlets: &[Outlet]| {
        specs.len() == outlets.len() && specs.iter().zip(outlets).all(|(s, o)| outlet_matches(s, o))
    };
    if matches(&entry.inputs, inputs) && matches(&entry.outputs, outputs) {
        return Ok(());
    }
    let join = |outlets: &[Outlet]| {
        outlets
            .iter()
            .map(outlet_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(ModelError::SignatureMismatch {
        name: entry.name.clone(),
        path: path.to_owned(),
        expected: entry.signature(),
        actual: format!("{} -> {}", join(inputs), join(outputs)),
    })
}

fn outlet_matches(spec: &TensorSpec, outlet: &Outlet) -> bool {
    let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
        return false;
    };
    spec.name == outlet.name()
        && ty.to_string() == spec.dtype.as_str()
        && shape.len() == spec.shape.len()
        && spec.shape.iter().zip(shape.iter()).all(|(d, &n)| match d {
            Dim::Fixed(f) => i64::try_from(*f) == Ok(n),
            Dim::Symbolic(_) => n < 0,
        })
}

/// `name:f32[N,3,416,416]`; a dynamic dimension shows its symbol, or `?` when it has none.
fn outlet_string(outlet: &Outlet) -> String {
    match outlet.dtype() {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => {
            let dims: Vec<String> = shape
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    if n >= 0 {
                        n.to_string()
                    } else {
                        match dimension_symbols.get(i) {
                            Some(s) if !s.is_empty() => s.clone(),
                            _ => "?".to_owned(),
                        }
                    }
                })
                .collect();
            format!("{}:{ty}[{}]", outlet.name(), dims.join(","))
        }
        other => format!("{}:{other:?}", outlet.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_refuses_unknown_keys() {
        let c: ModelsConfig = toml::from_str(
            "model_dir = \"/m\"\nintra_threads = 2\nexecution_provider = \"tensorrt\"",
        )
        .unwrap();
        assert_eq!(c.model_dir.as_deref(), Some(Path::new("/m")));
        assert_eq!(c.intra_threads, Some(2));
        assert_eq!(c.execution_provider, ExecutionProviderKind::TensorRt);
        assert_eq!(
            toml::from_str::<ModelsConfig>("").unwrap(),
            ModelsConfig::default()
        );
        assert!(toml::from_str::<ModelsConfig>("model_directory = \"/m\"").is_err());
    }

    #[test]
    fn a_missing_optional_model_names_its_file_and_how_to_get_it() {
        let dir = std::env::temp_dir().join(format!("hs-models-none-{}", std::process::id()));
        let reg = ModelRegistry::new(&dir, Manifest::embedded());
        let err = reg.verify("rtmpose_ap10k").unwrap_err();
        assert!(
            matches!(err, ModelError::OptionalModelMissing { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("rtmpose-m_ap10k_256x256.onnx"), "{msg}");
        assert!(msg.contains("mmdeploy"), "{msg}");
        assert!(msg.contains("turn the feature off"), "{msg}");
        // A required model keeps the install-script hint.
        let err = reg.verify("yolox_nano").unwrap_err();
        assert!(
            matches!(err, ModelError::ModelFileMissing { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn an_unpinned_optional_model_is_accepted_unchecked() {
        let dir = std::env::temp_dir().join(format!("hs-models-unpinned-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rtmpose-m_ap10k_256x256.onnx"), b"not checked").unwrap();
        let reg = ModelRegistry::new(&dir, Manifest::embedded());
        let got = reg.verify("rtmpose_ap10k");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got.unwrap(), dir.join("rtmpose-m_ap10k_256x256.onnx"));
    }

    #[test]
    fn sha256_of_a_known_file() {
        let path = std::env::temp_dir().join(format!("hs-models-sha-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let digest = sha256_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
