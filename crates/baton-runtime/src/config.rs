//! The TOML config file: typed settings, validated, with documented defaults.
//!
//! Unknown keys and bad values are rejected with the file, the key and the reason, in one
//! line. A missing file means all defaults.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The default config file, with every setting documented. `baton config show --defaults`
/// prints it; a test checks that it parses to [`Config::default`].
pub const DEFAULT_CONFIG_TOML: &str = r#"# Baton configuration. Every key is optional; these are the defaults.

[chat]
# Model used when none is chosen (a name from `baton models list`).
default_model = "smollm2-135m-instruct"
# Instructions placed before every conversation. Empty for none.
system_prompt = "You are a helpful assistant. Answer concisely."
# Sampling temperature, 0 (deterministic) to 2.
temperature = 0.3
# Nucleus sampling mass, above 0 and at most 1.
top_p = 0.95
# Most tokens generated for one answer, 1 to 32768.
max_tokens = 512

[llm]
# Context window requested from local models, in tokens (256 to 131072).
context_length = 4096
# Seconds an idle local model stays loaded.
keep_alive_secs = 300
# Memory local models may use together, in MiB; 0 picks 60% of the machine's memory.
memory_budget_mb = 0

[logging]
# Level of the log file: error, warn, info, debug or trace.
level = "info"
# Daily log files kept before the oldest is deleted (1 to 365).
max_files = 7
"#;

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Chat defaults.
    pub chat: ChatConfig,
    /// Local LLM engine settings.
    pub llm: LlmConfig,
    /// Log file settings.
    pub logging: LoggingConfig,
}

/// Chat defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Model used when none is chosen.
    pub default_model: String,
    /// Instructions placed before every conversation.
    pub system_prompt: String,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Most tokens generated for one answer.
    pub max_tokens: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            default_model: "smollm2-135m-instruct".into(),
            system_prompt: "You are a helpful assistant. Answer concisely.".into(),
            temperature: 0.3,
            top_p: 0.95,
            max_tokens: 512,
        }
    }
}

/// Local LLM engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Context window requested from local models.
    pub context_length: u32,
    /// Seconds an idle model stays loaded.
    pub keep_alive_secs: u64,
    /// Memory budget for loaded models in MiB (0: automatic).
    pub memory_budget_mb: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            context_length: 4096,
            keep_alive_secs: 300,
            memory_budget_mb: 0,
        }
    }
}

/// Log file settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Level of the log file.
    pub level: String,
    /// Daily files kept.
    pub max_files: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            max_files: 7,
        }
    }
}

/// A config file that cannot be used. Display is one line naming the file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {file}: {reason}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TOML is malformed or has unknown keys or wrongly typed values.
    #[error("config file {file}, line {line}: {message}. Fix it, or see the defaults with `baton config show --defaults`")]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong, with the key when known.
        message: String,
    },
    /// A value is out of range.
    #[error("config file {file}: `{key}` {reason}. Fix it, or see the defaults with `baton config show --defaults`")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The dotted key.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
}

impl Config {
    /// Loads and validates `file`; a missing file gives the defaults.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ConfigError::Read {
                    file: file.to_owned(),
                    reason: e.to_string(),
                })
            }
        };
        Self::parse(&text, file)
    }

    /// Parses and validates config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            let message = inner.message().trim().replace('\n', " ");
            let message = if key.is_empty() || key == "." {
                message
            } else {
                format!("`{key}`: {message}")
            };
            ConfigError::Parse {
                file: file.to_owned(),
                line,
                message,
            }
        })?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let chat = &self.chat;
        if chat.default_model.trim().is_empty() {
            return Err(invalid("chat.default_model", "must name a model".into()));
        }
        if !(0.0..=2.0).contains(&chat.temperature) {
            return Err(invalid(
                "chat.temperature",
                format!("must be between 0 and 2, not {}", chat.temperature),
            ));
        }
        if !(chat.top_p > 0.0 && chat.top_p <= 1.0) {
            return Err(invalid(
                "chat.top_p",
                format!("must be above 0 and at most 1, not {}", chat.top_p),
            ));
        }
        if !(1..=32_768).contains(&chat.max_tokens) {
            return Err(invalid(
                "chat.max_tokens",
                format!("must be between 1 and 32768, not {}", chat.max_tokens),
            ));
        }
        if !(256..=131_072).contains(&self.llm.context_length) {
            return Err(invalid(
                "llm.context_length",
                format!(
                    "must be between 256 and 131072, not {}",
                    self.llm.context_length
                ),
            ));
        }
        const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        if !LEVELS.contains(&self.logging.level.as_str()) {
            return Err(invalid(
                "logging.level",
                format!(
                    "must be one of {}, not `{}`",
                    LEVELS.join(", "),
                    self.logging.level
                ),
            ));
        }
        if !(1..=365).contains(&self.logging.max_files) {
            return Err(invalid(
                "logging.max_files",
                format!("must be between 1 and 365, not {}", self.logging.max_files),
            ));
        }
        Ok(())
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/home/u/.config/baton/config.toml"))
    }

    #[test]
    fn documented_defaults_are_the_defaults() {
        assert_eq!(parse(DEFAULT_CONFIG_TOML).unwrap(), Config::default());
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(
            parse(&Config::default().to_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let c = parse("[chat]\ntemperature = 0.2\n").unwrap();
        assert_eq!(c.chat.temperature, 0.2);
        assert_eq!(c.chat.max_tokens, 512);
    }

    #[test]
    fn unknown_keys_are_rejected_with_key_line_and_file() {
        let err = parse("[chat]\ntemperature = 0.2\ntemprature = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.toml") && err.contains("line 3") && err.contains("temprature"),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
        let err = parse("[colour]\nx = 1\n").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        let err = parse("[chat]\ntemperature = 5.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`chat.temperature` must be between 0 and 2"),
            "{err}"
        );
        let err = parse("[chat]\nmax_tokens = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat.max_tokens") && err.contains("line 2"),
            "{err}"
        );
        let err = parse("[logging]\nlevel = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("logging.level"), "{err}");
        let err = parse("this is not toml").unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains('\n'), "{err}");
    }
}
