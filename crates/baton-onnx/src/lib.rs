//! ONNX Runtime for Baton: `ort` with `load-dynamic`, so `libonnxruntime.so` is loaded at run
//! time, never linked or downloaded. It comes from the `onnxruntime` PyPI wheel that
//! `scripts/setup.sh` installs into the project venv, or from `ORT_DYLIB_PATH`.
//!
//! [`environment`] loads the library and builds the one process-wide environment the first
//! time it is called; every crate that runs ONNX models (vision, voice activity, voices)
//! builds its sessions from it. Errors are plain strings that say what to do; crates wrap
//! them in their own error types.
#![warn(missing_docs)]

pub use ort;

use std::path::PathBuf;
use std::sync::OnceLock;

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Finds `libonnxruntime.so`: `$ORT_DYLIB_PATH`, then the `onnxruntime` wheel inside the
/// project venv (`$BATON_VENV`, default `~/.cache/baton-venv`).
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(format!(
            "ORT_DYLIB_PATH points to {}, which does not exist",
            p.display()
        ));
    }
    let venv = std::env::var_os("BATON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/baton-venv")));
    if let Some(venv) = venv {
        if let Ok(libs) = std::fs::read_dir(venv.join("lib")) {
            for py in libs.flatten() {
                let capi = py.path().join("site-packages/onnxruntime/capi");
                if let Ok(files) = std::fs::read_dir(&capi) {
                    for f in files.flatten() {
                        let name = f.file_name().to_string_lossy().into_owned();
                        if name.starts_with("libonnxruntime.so") {
                            return Ok(f.path());
                        }
                    }
                }
            }
        }
    }
    Err("ONNX Runtime not found: run scripts/setup.sh (it installs `onnxruntime==1.31.0` into the venv) or set ORT_DYLIB_PATH to libonnxruntime.so".into())
}

/// The process-wide ONNX Runtime environment, loaded on first use.
pub fn environment() -> Result<ort::environment::Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = find_library()?;
            let builder = ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
            builder
                .with_name("baton")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .clone()
}
