//! The model registry as the runtime sees it: GGUF files validated before they are
//! registered, kept in SQLite, and served by the supervised local LLM engine.

use crate::{Runtime, RuntimeError};
use baton_core::{ModelFormat, TaskKind};
use baton_llm::{gguf, GgufError, LocalLlmConfig, ModelSpec};
use baton_store::ModelRecord;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Name → how to load it, shared with the engine's resolver.
pub(crate) type SpecMap = Arc<RwLock<HashMap<String, ModelSpec>>>;

/// Options of [`Runtime::add_model`].
#[derive(Debug, Clone, Default)]
pub struct AddModel {
    /// Registry name; defaults to the file name without `.gguf`, lowercased.
    pub name: Option<String>,
    /// Built-in chat template (for example `chatml`) for models without one.
    pub chat_template: Option<String>,
    /// Where the file came from.
    pub source: Option<String>,
    /// Its licence.
    pub license: Option<String>,
}

/// What `verify` found for one model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    /// The model.
    pub name: String,
    /// Whether the file is intact and matches the registered checksum.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// The local engine's settings from the config.
pub(crate) fn llm_config(config: &crate::Config) -> LocalLlmConfig {
    let budget = if config.llm.memory_budget_mb > 0 {
        Some(config.llm.memory_budget_mb * 1024 * 1024)
    } else {
        total_memory_bytes().map(|total| total / 10 * 6)
    };
    LocalLlmConfig {
        keep_alive: Duration::from_secs(config.llm.keep_alive_secs),
        memory_budget_bytes: budget,
        n_parallel: config.llm.parallel,
        queue_timeout: Duration::from_secs(config.llm.queue_timeout_secs),
        ..LocalLlmConfig::default()
    }
}

/// Physical memory of this machine in bytes (`MemTotal`), when it can be read.
pub(crate) fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub(crate) fn spec_for(record: &ModelRecord, context_length: u32) -> ModelSpec {
    let trained = record
        .context_length
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(context_length);
    let mut spec = ModelSpec::new(&record.path, context_length.min(trained.max(256)));
    if let Some(template) = &record.chat_template_override {
        spec = spec.with_chat_template(template.clone());
    }
    spec
}

fn default_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "model".into())
}

impl Runtime {
    pub(crate) async fn load_model_specs(&self) -> Result<(), RuntimeError> {
        let records = self.store.list_models().await?;
        {
            let mut specs = self.specs.write().expect("spec lock");
            specs.clear();
            for record in records
                .iter()
                .filter(|r| r.enabled && r.format == ModelFormat::Gguf)
            {
                specs.insert(
                    record.name.clone(),
                    spec_for(record, self.config.llm.context_length),
                );
            }
        }
        // Installing or removing a model can change the automatic default.
        self.resolve_default_model().await
    }

    /// Validates a GGUF file, or a whisper.cpp ggml speech model, and registers it
    /// (replacing an entry of the same name).
    pub async fn add_model(
        &self,
        path: &Path,
        options: AddModel,
    ) -> Result<ModelRecord, RuntimeError> {
        let path = std::fs::canonicalize(path).map_err(|e| {
            RuntimeError::Model(format!(
                "cannot open {}: {e}; check the path",
                path.display()
            ))
        })?;
        if is_whisper_ggml(&path) {
            return self.add_whisper_model(&path, options).await;
        }
        let info = inspect_blocking(&path).await?;
        let name = options.name.unwrap_or_else(|| default_name(&path));
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            return Err(RuntimeError::Model(format!(
                "`{name}` is not a usable model name: use letters, digits, dots and dashes"
            )));
        }
        let sha = sha_blocking(&path).await?;
        let tasks = if info.has_chat_template || options.chat_template.is_some() {
            vec![TaskKind::Chat, TaskKind::Completion]
        } else {
            vec![TaskKind::Completion]
        };
        let now = chrono::Utc::now();
        let record = ModelRecord {
            name: name.clone(),
            path: path.display().to_string(),
            format: ModelFormat::Gguf,
            tasks,
            architecture: info.architecture.clone(),
            parameters: i64::try_from(info.parameters).ok(),
            context_length: info.context_length.and_then(|c| i64::try_from(c).ok()),
            quantization: info.quantization.clone(),
            has_chat_template: info.has_chat_template,
            chat_template_override: options.chat_template,
            file_size: i64::try_from(info.file_size).unwrap_or(i64::MAX),
            sha256: sha,
            source: options.source,
            license: options.license,
            enabled: true,
            added_at: now,
            verified_at: now,
        };
        self.store.upsert_model(&record).await?;
        self.llm.unload(&name).await;
        self.load_model_specs().await?;
        Ok(self.store.model(&name).await?.unwrap_or(record))
    }

    /// Registers a whisper.cpp ggml model (its structure is checked by the speech worker
    /// when it loads it, with an error naming the file).
    async fn add_whisper_model(
        &self,
        path: &Path,
        options: AddModel,
    ) -> Result<ModelRecord, RuntimeError> {
        let name = options.name.unwrap_or_else(|| default_name(path));
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            return Err(RuntimeError::Model(format!(
                "`{name}` is not a usable model name: use letters, digits, dots and dashes"
            )));
        }
        let size = std::fs::metadata(path)
            .map_err(|e| RuntimeError::Model(format!("cannot read {}: {e}", path.display())))?
            .len();
        let sha = sha_blocking(path).await?;
        let now = chrono::Utc::now();
        let record = ModelRecord {
            name: name.clone(),
            path: path.display().to_string(),
            format: ModelFormat::WhisperGgml,
            tasks: vec![TaskKind::SpeechToText],
            architecture: Some("whisper".into()),
            parameters: None,
            context_length: None,
            quantization: None,
            has_chat_template: false,
            chat_template_override: None,
            file_size: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: sha,
            source: options.source,
            license: options.license,
            enabled: true,
            added_at: now,
            verified_at: now,
        };
        self.store.upsert_model(&record).await?;
        self.stt.lock().await.remove(&name);
        Ok(record)
    }

    /// Registered models.
    pub async fn models(&self) -> Result<Vec<ModelRecord>, RuntimeError> {
        Ok(self.store.list_models().await?)
    }

    /// A registered model by name, or an error naming the command that lists them.
    pub async fn model(&self, name: &str) -> Result<ModelRecord, RuntimeError> {
        self.store.model(name).await?.ok_or_else(|| {
            RuntimeError::Model(format!(
                "no model named `{name}` is registered; see `baton models list`"
            ))
        })
    }

    /// Unregisters a model (its file stays) and unloads it.
    pub async fn remove_model(&self, name: &str) -> Result<(), RuntimeError> {
        if !self.store.remove_model(name).await? {
            return Err(RuntimeError::Model(format!(
                "no model named `{name}` is registered; see `baton models list`"
            )));
        }
        self.llm.unload(name).await;
        self.load_model_specs().await
    }

    /// Re-reads a registered model's file: present, a valid GGUF, and the same bytes.
    pub async fn verify_model(&self, name: &str) -> Result<Verification, RuntimeError> {
        let record = self.model(name).await?;
        let path = Path::new(&record.path);
        // Only GGUF files have a structure to check here; other formats are checked by
        // their bytes (and by their worker when it loads them).
        let inspected = if record.format == ModelFormat::Gguf {
            inspect_blocking(path).await.map(|_| ())
        } else {
            Ok(())
        };
        let result = match inspected {
            Err(e) => Err(e.to_string()),
            Ok(()) => match sha_blocking(path).await {
                Err(e) => Err(e.to_string()),
                Ok(sha) if sha != record.sha256 => Err(format!(
                    "{} changed since it was registered (sha256 {} now, {} then); add it again with `baton models add` if the change is intended",
                    record.path,
                    &sha[..12],
                    &record.sha256[..12.min(record.sha256.len())]
                )),
                Ok(_) => Ok(()),
            },
        };
        Ok(match result {
            Ok(()) => Verification {
                name: record.name,
                ok: true,
                detail: format!(
                    "{} is intact ({} bytes, sha256 matches)",
                    record.path, record.file_size
                ),
            },
            Err(detail) => Verification {
                name: record.name,
                ok: false,
                detail,
            },
        })
    }

    /// The GPU probe made when the engine started.
    pub fn gpu_report(&self) -> &baton_llm::GpuReport {
        self.llm.gpu_report()
    }

    /// Models currently loaded in worker processes.
    pub async fn loaded_models(&self) -> Vec<baton_llm::LoadedModelStatus> {
        self.llm.loaded().await
    }

    /// Where the LLM worker binary is, or why it cannot be found.
    pub fn llm_worker(&self) -> Result<std::path::PathBuf, baton_core::EngineError> {
        self.llm.worker_binary()
    }
}

/// Whether the file starts with whisper.cpp's ggml magic (0x67676d6c, little-endian).
fn is_whisper_ggml(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && u32::from_le_bytes(magic) == 0x6767_6d6c
}

async fn inspect_blocking(path: &Path) -> Result<gguf::GgufInfo, RuntimeError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || gguf::inspect(&path))
        .await
        .map_err(|e| RuntimeError::Model(format!("model inspection failed: {e}")))?
        .map_err(|e: GgufError| RuntimeError::Model(e.to_string()))
}

async fn sha_blocking(path: &Path) -> Result<String, RuntimeError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || gguf::sha256_file(&path))
        .await
        .map_err(|e| RuntimeError::Model(format!("checksum failed: {e}")))?
        .map_err(|e| RuntimeError::Model(e.to_string()))
}
