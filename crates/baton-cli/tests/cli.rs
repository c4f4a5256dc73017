//! The `baton` binary driven as a person or a script would, against real SQLite files.

use std::path::Path;
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("config.toml")
    }

    fn baton(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(args)
            .env("BATON_DATA_DIR", self.data())
            .env("BATON_CONFIG", self.config())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .output()
            .expect("run baton")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.baton(args);
        assert!(
            out.status.success(),
            "baton {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn err(&self, args: &[&str]) -> String {
        let out = self.baton(args);
        assert!(!out.status.success(), "baton {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }
}

#[test]
fn sessions_are_created_found_by_search_and_exported() {
    let env = Env::new();
    let id = env
        .ok(&["sessions", "new", "Trip to Lisbon"])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 36, "prints the new id: {id}");
    env.ok(&["sessions", "append", &id, "Which museums open on Mondays?"]);
    env.ok(&[
        "sessions",
        "append",
        "--role",
        "assistant",
        &id[id.len() - 8..],
        "The Gulbenkian opens on Mondays.",
    ]);
    let other = env.ok(&["sessions", "new", "Groceries"]).trim().to_owned();
    env.ok(&["sessions", "append", &other, "lentils, rice, lemons"]);

    // Each command is a new process: the data survives restarts.
    let list = env.ok(&["sessions", "list"]);
    assert!(
        list.contains("Trip to Lisbon") && list.contains("Groceries"),
        "{list}"
    );
    let hits = env.ok(&["sessions", "search", "museum"]);
    assert!(
        hits.contains("Trip to Lisbon") && hits.contains("[museums]"),
        "{hits}"
    );
    assert!(!hits.contains("Groceries"));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "sessions", "search", "lemons"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["session_id"], other.as_str());

    let md = env.ok(&["sessions", "export", &id]);
    assert!(md.starts_with("# Trip to Lisbon\n"), "{md}");
    assert!(
        md.contains("## You") && md.contains("## Assistant") && md.contains("Gulbenkian"),
        "{md}"
    );
    let out = env.dir.path().join("export.json");
    env.ok(&[
        "sessions",
        "export",
        &id,
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(exported["session"]["title"], "Trip to Lisbon");
    assert_eq!(exported["messages"].as_array().unwrap().len(), 2);

    env.ok(&["sessions", "rename", &id, "Lisbon, May"]);
    assert!(env
        .ok(&["sessions", "show", &id])
        .starts_with("# Lisbon, May"));
    env.ok(&["sessions", "delete", &id]);
    assert!(env
        .ok(&["sessions", "search", "museum"])
        .contains("No messages match"));
    let err = env.err(&["sessions", "show", &id]);
    assert!(err.contains("no session matches"), "{err}");
}

#[test]
fn append_reads_standard_input() {
    use std::io::Write;
    let env = Env::new();
    let id = env.ok(&["sessions", "new", "stdin"]).trim().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["sessions", "append", &id, "-"])
        .env("BATON_DATA_DIR", env.data())
        .env("BATON_CONFIG", env.config())
        .env("XDG_STATE_HOME", env.dir.path().join("state"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped text about otters\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(env.ok(&["sessions", "search", "otters"]).contains("stdin"));
    let err = env.err(&["sessions", "append", &id, "   "]);
    assert!(err.contains("cannot be empty"), "{err}");
}

fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0]
}

#[test]
fn a_malformed_config_gives_one_line_naming_the_file_and_is_not_overwritten() {
    let env = Env::new();
    let cases = [
        ("[chat]\ntemprature = 0.5\n", "temprature"),
        ("[chat]\ntemperature = 9\n", "chat.temperature"),
        ("[logging\nlevel = 'x'\n", "line 1"),
        ("[llm]\ncontext_length = \"big\"\n", "llm.context_length"),
    ];
    for (text, needle) in cases {
        std::fs::write(env.config(), text).unwrap();
        let stderr = env.err(&["sessions", "list"]);
        let line = one_line_error(&stderr);
        assert!(
            line.contains(&env.config().display().to_string()) && line.contains(needle),
            "{line}"
        );
        assert!(line.contains("baton config show --defaults"), "{line}");
        assert_eq!(std::fs::read_to_string(env.config()).unwrap(), text);
    }
    std::fs::write(env.config(), "[chat]\ntemperature = 0.1\n").unwrap();
    let shown = env.ok(&["config", "show"]);
    assert!(shown.contains("temperature = 0.1"), "{shown}");
    let defaults = env.ok(&["config", "show", "--defaults"]);
    assert!(defaults.contains("default_model = \"auto\""), "{defaults}");
    let paths: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "config", "path"])).unwrap();
    assert_eq!(paths["config_file"], env.config().display().to_string());
}

#[test]
fn a_non_sqlite_database_file_is_refused_and_kept() {
    let env = Env::new();
    std::fs::create_dir_all(env.data()).unwrap();
    let db = env.data().join("baton.sqlite3");
    std::fs::write(&db, "my shopping list\n").unwrap();
    let stderr = env.err(&["sessions", "list"]);
    let line = one_line_error(&stderr);
    assert!(
        line.contains(&db.display().to_string()) && line.contains("not a Baton database"),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&db).unwrap(), "my shopping list\n");
}

#[test]
fn an_unwritable_data_dir_is_reported_in_one_line() {
    let env = Env::new();
    let blocker = env.dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "--data-dir",
            blocker.join("data").to_str().unwrap(),
            "sessions",
            "list",
        ])
        .env("BATON_CONFIG", env.config())
        .env("XDG_STATE_HOME", env.dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line = one_line_error(&stderr);
    assert!(
        line.contains("blocker") && line.contains("--data-dir"),
        "{line}"
    );
}

#[test]
fn logs_go_to_a_file_in_the_state_dir() {
    let env = Env::new();
    env.ok(&["sessions", "new", "logged"]);
    let _ = env.baton(&["sessions", "show", "no-such-session"]);
    let log_dir = env.dir.path().join("state/baton/logs");
    let logs: String = std::fs::read_dir(&log_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", log_dir.display()))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        logs.contains("command failed") && logs.contains("no-such-session"),
        "{logs}"
    );
}

#[test]
fn store_benchmark_prints_figures() {
    let env = Env::new();
    let dir = env.dir.path().join("bench");
    let out = env.ok(&[
        "--json",
        "bench",
        "store",
        "--messages",
        "3000",
        "--queries",
        "20",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["messages"], 3000);
    assert!(report["bulk_insert_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["search_one_word_ms"]["p95"].as_f64().unwrap() >= 0.0);
    assert!(Path::new(&dir).join("baton.sqlite3").exists());
}

#[test]
fn help_describes_every_command() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for word in ["sessions", "config", "bench", "--data-dir", "--json"] {
        assert!(help.contains(word), "{help}");
    }
    let help = env.ok(&["sessions", "--help"]);
    for word in [
        "list", "new", "show", "rename", "delete", "search", "export",
    ] {
        assert!(help.contains(word), "{help}");
    }
}
