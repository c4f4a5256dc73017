//! Architecture invariant: `baton-llm` (linked by the runtime, CLI and desktop app) never
//! depends on llama.cpp or whisper.cpp, directly or transitively. Checked on the
//! workspace's Cargo.lock.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

const FORBIDDEN: [&str; 4] = [
    "llama-cpp-2",
    "llama-cpp-sys-2",
    "whisper-rs",
    "whisper-rs-sys",
];

#[test]
fn baton_llm_does_not_link_native_inference() {
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let Ok(text) = std::fs::read_to_string(&lock_path) else {
        eprintln!("no Cargo.lock at {}; skipped", lock_path.display());
        return;
    };
    let lock: toml::Value = toml::from_str(&text).expect("Cargo.lock parses");
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    for package in lock["package"].as_array().expect("packages") {
        let name = package["name"].as_str().unwrap().to_owned();
        let list: Vec<String> = package
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter()
                    .filter_map(|v| v.as_str())
                    .map(|s| s.split(' ').next().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        deps.entry(name).or_default().extend(list);
    }
    let mut seen = BTreeSet::new();
    let mut stack = vec!["baton-llm".to_owned()];
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        assert!(
            !FORBIDDEN.contains(&name.as_str()),
            "baton-llm must not depend on {name}: keep native inference in the worker binaries"
        );
        if let Some(children) = deps.get(&name) {
            stack.extend(children.iter().cloned());
        }
    }
    assert!(seen.contains("baton-core"));
}
