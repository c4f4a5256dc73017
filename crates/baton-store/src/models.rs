//! The model registry table.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::{now_ms, to_datetime};
use baton_core::{ModelFormat, TaskKind};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A registered model file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    /// Unique name used to pick the model.
    pub name: String,
    /// Absolute path of the file.
    pub path: String,
    /// File format.
    pub format: ModelFormat,
    /// What it can do.
    pub tasks: Vec<TaskKind>,
    /// Architecture from the metadata.
    pub architecture: Option<String>,
    /// Parameter count.
    pub parameters: Option<i64>,
    /// Context window the model was trained for.
    pub context_length: Option<i64>,
    /// Quantisation label.
    pub quantization: Option<String>,
    /// Whether the file carries a chat template.
    pub has_chat_template: bool,
    /// A built-in template (for example `chatml`) used instead of the file's own.
    pub chat_template_override: Option<String>,
    /// File size in bytes.
    pub file_size: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Where it came from (a package name and version).
    pub source: Option<String>,
    /// Its licence.
    pub license: Option<String>,
    /// Whether it may be chosen.
    pub enabled: bool,
    /// When it was registered.
    pub added_at: DateTime<Utc>,
    /// When its file was last verified.
    pub verified_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    name: String,
    path: String,
    format: String,
    tasks: String,
    architecture: Option<String>,
    parameters: Option<i64>,
    context_length: Option<i64>,
    quantization: Option<String>,
    has_chat_template: bool,
    chat_template_override: Option<String>,
    file_size: i64,
    sha256: String,
    source: Option<String>,
    license: Option<String>,
    enabled: bool,
    added_at: i64,
    verified_at: i64,
}

impl TryFrom<ModelRow> for ModelRecord {
    type Error = StoreError;

    fn try_from(r: ModelRow) -> Result<Self, StoreError> {
        let bad = |what: &str, e: serde_json::Error| {
            StoreError::Invalid(format!("model `{}` has an unreadable {what}: {e}", r.name))
        };
        Ok(ModelRecord {
            format: serde_json::from_value(serde_json::Value::String(r.format.clone()))
                .map_err(|e| bad("format", e))?,
            tasks: serde_json::from_str(&r.tasks).map_err(|e| bad("task list", e))?,
            name: r.name,
            path: r.path,
            architecture: r.architecture,
            parameters: r.parameters,
            context_length: r.context_length,
            quantization: r.quantization,
            has_chat_template: r.has_chat_template,
            chat_template_override: r.chat_template_override,
            file_size: r.file_size,
            sha256: r.sha256,
            source: r.source,
            license: r.license,
            enabled: r.enabled,
            added_at: to_datetime(r.added_at),
            verified_at: to_datetime(r.verified_at),
        })
    }
}

const MODEL_COLUMNS: &str =
    "name, path, format, tasks, architecture, parameters, context_length, quantization,
    has_chat_template, chat_template_override, file_size, sha256, source, license, enabled, added_at, verified_at";

impl Store {
    /// Registers a model, or updates the entry of the same name (keeping when it was added).
    pub async fn upsert_model(&self, model: &ModelRecord) -> Result<(), StoreError> {
        let format = serde_json::to_value(model.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let tasks = serde_json::to_string(&model.tasks).expect("task kinds serialize");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO models (name, path, format, tasks, architecture, parameters, context_length,
                quantization, has_chat_template, chat_template_override, file_size, sha256, source, license,
                enabled, added_at, verified_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET path = excluded.path, format = excluded.format,
                tasks = excluded.tasks, architecture = excluded.architecture,
                parameters = excluded.parameters, context_length = excluded.context_length,
                quantization = excluded.quantization, has_chat_template = excluded.has_chat_template,
                chat_template_override = excluded.chat_template_override,
                file_size = excluded.file_size, sha256 = excluded.sha256,
                source = COALESCE(excluded.source, source), license = COALESCE(excluded.license, license),
                enabled = excluded.enabled, verified_at = excluded.verified_at",
        )
        .bind(&model.name)
        .bind(&model.path)
        .bind(format)
        .bind(tasks)
        .bind(&model.architecture)
        .bind(model.parameters)
        .bind(model.context_length)
        .bind(&model.quantization)
        .bind(model.has_chat_template)
        .bind(&model.chat_template_override)
        .bind(model.file_size)
        .bind(&model.sha256)
        .bind(&model.source)
        .bind(&model.license)
        .bind(model.enabled)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All registered models, by name.
    pub async fn list_models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        let rows: Vec<ModelRow> =
            sqlx::query_as(&format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY name"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(ModelRecord::try_from).collect()
    }

    /// A registered model by name.
    pub async fn model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError> {
        let row: Option<ModelRow> = sqlx::query_as(&format!(
            "SELECT {MODEL_COLUMNS} FROM models WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(ModelRecord::try_from).transpose()
    }

    /// Removes a model from the registry (the file stays). Returns whether it existed.
    pub async fn remove_model(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM models WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
