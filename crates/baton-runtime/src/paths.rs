//! Where Baton keeps its files: XDG directories with command-line and environment overrides.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "BATON_DATA_DIR";
/// Environment variable that overrides the models directory.
pub const MODELS_DIR_ENV: &str = "BATON_MODELS_DIR";
/// Environment variable that overrides the config file.
pub const CONFIG_ENV: &str = "BATON_CONFIG";

/// The directories and files Baton uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Paths {
    /// The database and user data (`$XDG_DATA_HOME/baton`).
    pub data_dir: PathBuf,
    /// The TOML config file (`$XDG_CONFIG_HOME/baton/config.toml`).
    pub config_file: PathBuf,
    /// Logs and other state (`$XDG_STATE_HOME/baton`).
    pub state_dir: PathBuf,
    /// Fetched model files (`$XDG_DATA_HOME/baton/models`, or `BATON_MODELS_DIR`).
    pub models_dir: PathBuf,
}

impl Paths {
    /// Resolves the paths: explicit arguments first, then environment variables, then XDG.
    pub fn resolve(data_dir: Option<&Path>, config_file: Option<&Path>) -> Self {
        let dirs = directories::ProjectDirs::from("", "", "baton");
        let home_fallback = || {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let env_path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let data_dir = data_dir
            .map(Path::to_owned)
            .or_else(|| env_path(DATA_DIR_ENV))
            .or_else(|| dirs.as_ref().map(|d| d.data_dir().to_owned()))
            .unwrap_or_else(|| home_fallback().join(".local/share/baton"));
        let config_file = config_file
            .map(Path::to_owned)
            .or_else(|| env_path(CONFIG_ENV))
            .or_else(|| dirs.as_ref().map(|d| d.config_dir().join("config.toml")))
            .unwrap_or_else(|| home_fallback().join(".config/baton/config.toml"));
        let state_dir = dirs
            .as_ref()
            .and_then(|d| d.state_dir().map(Path::to_owned))
            .unwrap_or_else(|| home_fallback().join(".local/state/baton"));
        // Models are large and shared between data directories (tests use their own data
        // directory but the same fetched models), so they do not follow `--data-dir`.
        let models_dir = env_path(MODELS_DIR_ENV)
            .or_else(|| dirs.as_ref().map(|d| d.data_dir().join("models")))
            .unwrap_or_else(|| home_fallback().join(".local/share/baton/models"));
        Self {
            data_dir,
            config_file,
            state_dir,
            models_dir,
        }
    }

    /// The directory for rotating log files.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }
}
