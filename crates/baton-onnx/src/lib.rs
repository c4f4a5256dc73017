//! ONNX Runtime for Baton: `ort` with `load-dynamic`, so `libonnxruntime.so` is loaded at run
//! time, never linked or downloaded. It comes from the `onnxruntime` PyPI wheel that
//! `scripts/setup.sh` installs into the project venv (the Debian package carries a copy in
//! `/usr/lib/baton`), or from `ORT_DYLIB_PATH`.
//!
//! [`environment`] loads the library and builds the one process-wide environment the first
//! time it is called; every crate that runs ONNX models (vision, voice activity, voices)
//! builds its sessions from it. Errors are plain strings that say what to do; crates wrap
//! them in their own error types.
#![warn(missing_docs)]

pub use ort;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Finds `libonnxruntime.so`: `$ORT_DYLIB_PATH`; then `../lib/baton/` beside the running
/// binary (where the Debian package installs it); then the `onnxruntime` wheel inside the
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
    let packaged = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|bin| bin.join("../lib/baton")));
    if let Some(found) = packaged.as_deref().and_then(library_in) {
        return Ok(found);
    }
    let venv = std::env::var_os("BATON_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/baton-venv")));
    if let Some(venv) = venv {
        if let Ok(libs) = std::fs::read_dir(venv.join("lib")) {
            for py in libs.flatten() {
                if let Some(found) = library_in(&py.path().join("site-packages/onnxruntime/capi")) {
                    return Ok(found);
                }
            }
        }
    }
    Err("ONNX Runtime not found: run scripts/setup.sh (it installs `onnxruntime==1.31.0` into the venv) or set ORT_DYLIB_PATH to libonnxruntime.so".into())
}

/// The `libonnxruntime.so*` file in `dir`, if there is one.
fn library_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|f| {
            f.file_name()
                .to_string_lossy()
                .starts_with("libonnxruntime.so")
        })
        .map(|f| f.path())
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

#[cfg(test)]
mod tests {
    use super::library_in;

    #[test]
    fn the_library_is_found_by_its_name_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"").unwrap();
        assert_eq!(
            library_in(dir.path()),
            None,
            "a provider is not the runtime"
        );
        let lib = dir.path().join("libonnxruntime.so.1.31.0");
        std::fs::write(&lib, b"").unwrap();
        assert_eq!(library_in(dir.path()), Some(lib));
        assert_eq!(library_in(&dir.path().join("missing")), None);
    }
}
