//! Model runs: one row per engine call, for analytics.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::now_ms;
use baton_core::{RequestId, SessionId};
use serde::Serialize;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// It produced an answer.
    Ok,
    /// It failed.
    Error,
    /// It was cancelled.
    Cancelled,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// A record of one engine call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRun {
    /// The request.
    pub request_id: RequestId,
    /// The session, if the run belonged to one.
    pub session_id: Option<SessionId>,
    /// The model.
    pub model: String,
    /// The engine that ran it.
    pub engine: String,
    /// The task kind (`chat`, …).
    pub task: String,
    /// How it ended.
    pub status: RunStatus,
    /// The error, if it failed.
    pub error: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Prompt tokens served from cache.
    pub cached_prompt_tokens: Option<i64>,
    /// Generated tokens.
    pub completion_tokens: Option<i64>,
    /// Milliseconds to first token.
    pub first_token_ms: Option<i64>,
    /// Milliseconds in total.
    pub total_ms: Option<i64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// The orchestration mode the run served (`single`, `fanout`, `refine`).
    pub mode: String,
    /// Its step in that mode (`answer`, `critique`, `judge`, `revise`).
    pub step: String,
}

impl Store {
    /// Records a run; durable when this returns.
    pub async fn record_run(&self, run: &ModelRun) -> Result<i64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO model_runs (request_id, session_id, model, engine, task, status, error,
                prompt_tokens, cached_prompt_tokens, completion_tokens, first_token_ms, total_ms,
                cost_usd, mode, step, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&run.request_id.0)
        .bind(run.session_id.as_ref().map(|s| s.0.clone()))
        .bind(&run.model)
        .bind(&run.engine)
        .bind(&run.task)
        .bind(run.status.as_str())
        .bind(&run.error)
        .bind(run.prompt_tokens)
        .bind(run.cached_prompt_tokens)
        .bind(run.completion_tokens)
        .bind(run.first_token_ms)
        .bind(run.total_ms)
        .bind(run.cost_usd)
        .bind(&run.mode)
        .bind(&run.step)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.last_insert_rowid())
    }

    /// Number of recorded runs for a model.
    pub async fn run_count(&self, model: &str) -> Result<i64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM model_runs WHERE model = ?")
            .bind(model)
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }
}
