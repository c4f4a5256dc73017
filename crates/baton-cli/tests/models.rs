//! `baton models` and `baton chat` with a tiny generated model and the real worker binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn baton(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .env("BATON_DATA_DIR", dir.join("data"))
        .env("BATON_CONFIG", dir.join("config.toml"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .expect("run baton")
}

fn tiny_model(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    let path = dir.join("tiny.gguf");
    let out = Command::new("python3")
        .arg(root.join("models/gen_tiny_gguf.py"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn models_are_added_listed_verified_and_chatted_with() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.toml"),
        "[chat]\ndefault_model = \"tiny\"\nmax_tokens = 16\n",
    )
    .unwrap();
    let model = tiny_model(d);
    let out = baton(
        d,
        &["models", "add", model.to_str().unwrap(), "--name", "tiny"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8(baton(d, &["models", "list"]).stdout).unwrap();
    assert!(
        list.contains("tiny") && list.contains("llama") && list.contains("(default)"),
        "{list}"
    );
    let info = String::from_utf8(baton(d, &["models", "info", "tiny"]).stdout).unwrap();
    assert!(
        info.contains("sha256") && info.contains("chat template") && info.contains("gpu"),
        "{info}"
    );
    assert!(baton(d, &["models", "verify"]).status.success());

    let out = baton(d, &["--json", "chat", "hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["model"], "tiny");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let list = String::from_utf8(baton(d, &["sessions", "list"]).stdout).unwrap();
    assert!(
        list.contains("hello") && list.contains("    2  "),
        "the turn was stored: {list}"
    );

    // Enough tokens that the tiny model's decoding takes several milliseconds (timings
    // are whole milliseconds; 16 tokens took under one and read as 0 tok/s).
    let out = baton(
        d,
        &[
            "--json", "bench", "llm", "--model", "tiny", "--tokens", "400", "--runs", "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bench: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "decode_tokens_per_sec_worker",
        "decode_tokens_per_sec_direct",
        "worker_to_direct_ratio",
    ] {
        assert!(bench[key].as_f64().unwrap() > 0.0, "{key}: {bench}");
    }
    assert!(
        bench["prefix_tokens_reused"].as_u64().unwrap() > 0,
        "{bench}"
    );

    // Broken files: one line each, the file untouched, nothing registered.
    for (name, bytes) in [
        ("zero.gguf", Vec::new()),
        ("text.gguf", b"hello world, not a model".to_vec()),
    ] {
        let path = d.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = baton(d, &["models", "add", path.to_str().unwrap()]);
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
    let out = baton(d, &["models", "remove", "tiny"]);
    assert!(out.status.success());
    let out = baton(d, &["chat", "hello again"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success() && stderr.contains("baton models list"),
        "{stderr}"
    );
}

#[test]
fn doctor_reports_worker_models_and_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton(dir.path(), &["--json", "doctor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["gpu"]["devices"].is_array());
    assert_eq!(report["default_model_ready"], false);
}

#[test]
fn bench_api_prints_concurrent_and_sequential_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("config.toml"), "[chat]\ndefault_model = \"tiny\"\n").unwrap();
    let model = tiny_model(d);
    let out = baton(
        d,
        &["models", "add", model.to_str().unwrap(), "--name", "tiny"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = baton(
        d,
        &["bench", "api", "--clients", "1,2", "--max-tokens", "8"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("concurrent tok/s") && stdout.contains("sequential tok/s"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w == "1" || w == "2")
        })
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");

    let out = baton(
        d,
        &[
            "--json",
            "bench",
            "api",
            "--clients",
            "2",
            "--max-tokens",
            "8",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &report["results"][0];
    assert_eq!(row["clients"], 2);
    for side in ["concurrent", "sequential"] {
        assert_eq!(row[side]["completion_tokens"], 16, "{report}");
        assert!(row[side]["aggregate_tokens_per_sec"].as_f64().unwrap() > 0.0);
    }

    let out = baton(d, &["bench", "api", "--model", "nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("baton models list"),
        "{stderr}"
    );
}

/// `baton eval` over a small set file with the tiny model, then `eval runs`, `eval show`
/// and `eval compare`; `baton models default` with a pinned and an automatic default.
#[test]
fn eval_runs_a_set_and_models_default_explains_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.toml"),
        "[chat]\ndefault_model = \"tiny\"\nmax_tokens = 16\n",
    )
    .unwrap();
    let model = tiny_model(d);
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(baton(
        d,
        &["models", "add", model.to_str().unwrap(), "--name", "tiny"],
    ));
    let set = d.join("mine.jsonl");
    std::fs::write(
        &set,
        concat!(
            r#"{"id": "a", "domain": "general", "prompt": "Say anything.", "check": {"type": "regex", "pattern": "(?s).*"}}"#,
            "\n",
            r#"{"id": "b", "domain": "math", "prompt": "2 + 2?", "check": {"type": "number", "value": 4.5}}"#,
            "\n"
        ),
    )
    .unwrap();
    let table = ok(baton(
        d,
        &["eval", set.to_str().unwrap(), "--models", "tiny"],
    ));
    assert!(table.contains("tiny/single"), "{table}");
    assert!(
        table.contains("100% (1)") && table.contains("0% (1)"),
        "{table}"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&ok(baton(d, &["--json", "eval", "runs"]))).unwrap();
    assert_eq!(runs[0]["results"], 2, "{runs}");
    let shown = ok(baton(d, &["eval", "show", "1", "--failures"]));
    assert!(shown.contains("✗ b tiny/single"), "{shown}");
    let compared = ok(baton(d, &["eval", "compare", "tiny", "tiny/single"]));
    assert!(
        compared.contains("+0.0 points") && compared.contains("not significant"),
        "{compared}"
    );
    // A bad set names its line.
    std::fs::write(&set, "{\"id\": \"a\"}\n").unwrap();
    let out = baton(d, &["eval", set.to_str().unwrap(), "--models", "tiny"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("mine, line 1"),
        "{err}"
    );

    // The config pins the default: `models default` shows it and refuses to change it.
    let shown = ok(baton(d, &["models", "default"]));
    assert!(
        shown.starts_with("tiny\n") && shown.contains("Chat models for this machine"),
        "{shown}"
    );
    let out = baton(d, &["models", "default", "tiny"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("sets chat.default_model"),
        "{err}"
    );
    // With "auto" a registered chat model can be chosen and is remembered.
    std::fs::write(d.join("config.toml"), "[chat]\ndefault_model = \"auto\"\n").unwrap();
    ok(baton(d, &["models", "default", "tiny"]));
    let doctor = ok(baton(d, &["doctor"]));
    assert!(
        doctor.contains("Default chat model: tiny, chosen for this machine"),
        "{doctor}"
    );
}
