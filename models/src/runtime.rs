//! Loading the ONNX Runtime shared library (ort's `load-dynamic`) and the one process-wide
//! ort `Environment`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::ModelError;

/// Environment variable naming `libonnxruntime.so`.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

struct Runtime {
    env: Environment,
    path: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Where `scripts/install-deps.sh` puts the library: `$HOME/.cache/horsestream/onnxruntime/libonnxruntime.so`.
pub fn default_dylib_path() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/horsestream/onnxruntime/libonnxruntime.so")
}

/// The library `init_runtime(dylib)` would load, and where that choice came from.
pub fn resolve_dylib_path(dylib: Option<&Path>) -> (PathBuf, &'static str) {
    if let Some(p) = dylib {
        return (p.to_owned(), "configuration");
    }
    match std::env::var_os(ORT_DYLIB_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), ORT_DYLIB_ENV),
        _ => (default_dylib_path(), "the default path"),
    }
}

/// Loads ONNX Runtime from `dylib`, else `ORT_DYLIB_PATH`, else [`default_dylib_path`], and
/// creates the process-wide environment. Idempotent: later calls return the path loaded first
/// (a different path asked for later is ignored with a warning; a process holds one runtime).
pub fn init_runtime(dylib: Option<&Path>) -> Result<PathBuf, ModelError> {
    runtime(dylib).map(|r| r.path.clone())
}

/// The environment sessions are built in; initialises the runtime from the default places if
/// nobody did yet.
pub(crate) fn environment(dylib: Option<&Path>) -> Result<&'static Environment, ModelError> {
    runtime(dylib).map(|r| &r.env)
}

fn runtime(dylib: Option<&Path>) -> Result<&'static Runtime, ModelError> {
    if let Some(rt) = RUNTIME.get() {
        warn_if_other(rt, dylib);
        return Ok(rt);
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = RUNTIME.get() {
        warn_if_other(rt, dylib);
        return Ok(rt);
    }
    let (path, origin) = resolve_dylib_path(dylib);
    if !path.is_file() {
        return Err(ModelError::RuntimeMissing { path, origin });
    }
    let builder = ort::init_from(&path).map_err(|source| ModelError::RuntimeLoad {
        path: path.clone(),
        source,
    })?;
    let env = builder
        .with_name("horsestream")
        .with_telemetry(false)
        .build()
        .map_err(ModelError::ort("creating the ONNX Runtime environment"))?;
    tracing::info!(path = %path.display(), origin, "loaded ONNX Runtime");
    Ok(RUNTIME.get_or_init(|| Runtime { env, path }))
}

fn warn_if_other(rt: &Runtime, dylib: Option<&Path>) {
    if let Some(p) = dylib
        && p != rt.path
    {
        tracing::warn!(
            requested = %p.display(),
            loaded = %rt.path.display(),
            "ONNX Runtime is already loaded from another path; keeping it"
        );
    }
}
