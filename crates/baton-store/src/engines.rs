//! Remote engines (OpenAI-compatible endpoints) and routing decisions.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::{now_ms, to_datetime};
use baton_core::{RequestId, RoutingDecision, SessionId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A registered remote endpoint. Its API key is not here: `key_store` says where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineRecord {
    /// Name; its models are addressed as `NAME/MODEL`.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Model ids the endpoint serves.
    pub models: Vec<String>,
    /// US dollars per million prompt tokens.
    pub input_usd_per_mtok: f64,
    /// US dollars per million generated tokens.
    pub output_usd_per_mtok: f64,
    /// Where its key lives: `none`, `keyring` or `file`.
    pub key_store: String,
    /// Whether the router may use it.
    pub enabled: bool,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EngineRow {
    name: String,
    base_url: String,
    models: String,
    input_usd_per_mtok: f64,
    output_usd_per_mtok: f64,
    key_store: String,
    enabled: bool,
    added_at: i64,
}

impl TryFrom<EngineRow> for EngineRecord {
    type Error = StoreError;

    fn try_from(row: EngineRow) -> Result<Self, StoreError> {
        Ok(Self {
            models: serde_json::from_str(&row.models).map_err(|e| {
                StoreError::Invalid(format!("engine {}: bad model list: {e}", row.name))
            })?,
            name: row.name,
            base_url: row.base_url,
            input_usd_per_mtok: row.input_usd_per_mtok,
            output_usd_per_mtok: row.output_usd_per_mtok,
            key_store: row.key_store,
            enabled: row.enabled,
            added_at: to_datetime(row.added_at),
        })
    }
}

impl Store {
    /// Adds or replaces an engine.
    pub async fn upsert_engine(&self, engine: &EngineRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO engines (name, base_url, models, input_usd_per_mtok, output_usd_per_mtok,
                 key_store, enabled, added_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(name) DO UPDATE SET base_url = excluded.base_url,
                 models = excluded.models, input_usd_per_mtok = excluded.input_usd_per_mtok,
                 output_usd_per_mtok = excluded.output_usd_per_mtok,
                 key_store = excluded.key_store, enabled = excluded.enabled",
        )
        .bind(&engine.name)
        .bind(&engine.base_url)
        .bind(serde_json::to_string(&engine.models).expect("strings serialise"))
        .bind(engine.input_usd_per_mtok)
        .bind(engine.output_usd_per_mtok)
        .bind(&engine.key_store)
        .bind(engine.enabled)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All engines, by name.
    pub async fn engines(&self) -> Result<Vec<EngineRecord>, StoreError> {
        let rows: Vec<EngineRow> = sqlx::query_as(
            "SELECT name, base_url, models, input_usd_per_mtok, output_usd_per_mtok, key_store,
                    enabled, added_at FROM engines ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EngineRecord::try_from).collect()
    }

    /// Removes an engine; returns whether it existed.
    pub async fn remove_engine(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM engines WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a routing decision; returns its id.
    pub async fn record_decision(
        &self,
        request: &RequestId,
        session: Option<&SessionId>,
        mode: &str,
        decision: &RoutingDecision,
    ) -> Result<i64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO routing_decisions (request_id, session_id, mode, model, domain, reasons,
                 canary_of, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&request.0)
        .bind(session.map(|s| s.0.clone()))
        .bind(mode)
        .bind(&decision.model)
        .bind(decision.domain.as_str())
        .bind(serde_json::to_string(&decision.reasons).expect("strings serialise"))
        .bind(&decision.canary_of)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.last_insert_rowid())
    }

    /// Links a decision to the answer it produced (and the model that finally answered).
    pub async fn link_decision(
        &self,
        decision_id: i64,
        message_id: i64,
        model: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE routing_decisions SET message_id = ?, model = ? WHERE id = ?")
            .bind(message_id)
            .bind(model)
            .bind(decision_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The reasons recorded for the decision behind an answer, if it was routed.
    pub async fn decision_reasons(
        &self,
        message_id: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT reasons FROM routing_decisions WHERE message_id = ?")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(json,)| {
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Invalid(format!("bad routing reasons: {e}")))
        })
        .transpose()
    }
}
