//! What the tests that run the real `baton` binary on real models share: the model cache,
//! turns for tests that load chat models, and a private data directory per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The tests that run chat models take turns: each loads a real model on a 2-core machine.
static MODELS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for this test's turn with the models.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    MODELS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The models the tests use, in a cache that survives runs (`make test` fills it).
pub fn models_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    cache.join("baton").join("test-models")
}

/// The default chat model on this kind of machine.
pub const CHAT: &str = "qwen2.5-coder-1.5b-instruct";
/// The smaller model it is compared with.
pub const SMALL: &str = "qwen2.5-coder-0.5b-instruct";

/// The passphrase of the encrypted key file ([`Env::with_key_file`]), given to every child.
pub const PASSPHRASE: &str = "a test passphrase";

/// A data directory, config and state of one test, with models from the cache.
pub struct Env {
    /// Holds everything the test writes.
    pub dir: tempfile::TempDir,
}

impl Env {
    /// An environment with `models` fetched (from the cache) and registered.
    pub fn new(models: &[&str]) -> Self {
        Self::with_config(models, "")
    }

    /// The same with a config file holding `config`.
    pub fn with_config(models: &[&str], config: &str) -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("config.toml"), config).unwrap();
        let mut args = vec!["models", "fetch"];
        args.extend_from_slice(models);
        env.ok(&args);
        env
    }

    /// An environment without models or a config file (the default key store, the OS
    /// keyring).
    pub fn bare() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// An environment without models whose key store is the encrypted file (its
    /// passphrase, [`PASSPHRASE`], is given to each child, never to this process).
    pub fn with_key_file() -> Self {
        let env = Self::bare();
        std::fs::write(env.path("config.toml"), "[secrets]\nstore = \"file\"\n").unwrap();
        env
    }

    /// `baton ARGS` in this environment, not started yet. Settings of the person running
    /// the tests (an API token, a queue) are left out.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(args)
            .env("BATON_DATA_DIR", self.path("data"))
            .env("BATON_CONFIG", self.path("config.toml"))
            .env("BATON_MODELS_DIR", models_dir())
            .env("XDG_STATE_HOME", self.path("state"))
            .env("BATON_SECRETS_PASSPHRASE", PASSPHRASE)
            .env_remove("BATON_API_TOKEN")
            .env_remove("BATON_QUEUE");
        cmd
    }

    /// Runs `baton ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run baton")
    }

    /// Runs `baton ARGS`, which must succeed, and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "baton {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `baton --json ARGS` and reads its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// A path inside the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| contains(&b, needle)) {
            found.push(path);
        }
    }
    found
}

/// Whether `haystack` holds `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
