//! Shared set-up: a runtime in a temporary directory with a tiny generated chat model.
#![allow(dead_code)]

use baton_runtime::{AddModel, Paths, Runtime};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestRuntime {
    pub dir: tempfile::TempDir,
    pub runtime: Runtime,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Writes a tiny random-weight llama GGUF with `models/gen_tiny_gguf.py`.
pub fn tiny_model(dir: &Path, extra: &[&str]) -> PathBuf {
    let path = dir.join(format!("tiny{}.gguf", extra.join("")));
    let out = Command::new("python3")
        .arg(repo_root().join("models/gen_tiny_gguf.py"))
        .arg(&path)
        .args(extra)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "gen_tiny_gguf.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// A runtime whose default model is a registered tiny model called `tiny`.
pub async fn runtime_with_tiny_model() -> TestRuntime {
    runtime_with_tiny_model_and(24, 512).await
}

/// The same with a given answer length and context.
pub async fn runtime_with_tiny_model_and(max_tokens: u32, context: u32) -> TestRuntime {
    runtime_with_tiny_model_config(max_tokens, context, "").await
}

/// The same with more config sections (not `[chat]` or `[llm]`) appended.
pub async fn runtime_with_tiny_model_config(
    max_tokens: u32,
    context: u32,
    extra: &str,
) -> TestRuntime {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[chat]\ndefault_model = \"tiny\"\nmax_tokens = {max_tokens}\n[llm]\ncontext_length = {context}\n{extra}"),
    )
    .unwrap();
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: config,
        state_dir: dir.path().join("state"),
        models_dir: dir.path().join("models"),
    };
    let runtime = Runtime::open(paths).await.unwrap();
    let model = tiny_model(dir.path(), &[]);
    runtime
        .add_model(
            &model,
            AddModel {
                name: Some("tiny".into()),
                ..AddModel::default()
            },
        )
        .await
        .unwrap();
    TestRuntime { dir, runtime }
}
