//! Architecture invariants, checked on the workspace's Cargo.lock: the speech worker links
//! whisper.cpp's ggml only (llama.cpp vendors another ggml; the two cannot share a binary),
//! and the model converter links no native inference at all.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

fn closure(deps: &HashMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(name) = stack.pop() {
        if seen.insert(name.clone()) {
            stack.extend(deps.get(&name).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn stt_worker_links_whisper_only_and_the_converter_nothing_native() {
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let Ok(text) = std::fs::read_to_string(&lock_path) else {
        eprintln!("no Cargo.lock at {}; skipped", lock_path.display());
        return;
    };
    let lock: toml::Value = toml::from_str(&text).expect("Cargo.lock parses");
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    for package in lock["package"].as_array().expect("packages") {
        let name = package["name"].as_str().unwrap().to_owned();
        let list = package
            .get("dependencies")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(|s| s.split(' ').next().unwrap().to_owned());
        deps.entry(name).or_default().extend(list);
    }
    let worker = closure(&deps, "baton-stt-worker");
    assert!(worker.contains("whisper-rs-sys"));
    for forbidden in ["llama-cpp-2", "llama-cpp-sys-2", "baton-llm-worker"] {
        assert!(
            !worker.contains(forbidden),
            "baton-stt-worker must not depend on {forbidden}: one ggml per binary"
        );
    }
    let convert = closure(&deps, "baton-whisper-convert");
    for forbidden in [
        "whisper-rs",
        "whisper-rs-sys",
        "llama-cpp-2",
        "llama-cpp-sys-2",
    ] {
        assert!(
            !convert.contains(forbidden),
            "baton-whisper-convert must stay pure Rust, found {forbidden}"
        );
    }
}
