//! Settings → Engines: remote OpenAI-compatible endpoints (Ollama, vLLM, llama.cpp's
//! server, OpenRouter). Each command is one runtime call; API keys go from the form to the
//! runtime's key store and never come back, nor into a log line.

use crate::dto::{AppError, EngineInfo, EngineTestInfo, NewEngine};
use crate::state::AppState;
use tauri::State;

type Res<T> = Result<T, AppError>;

/// The engine `name` with its live health, if it exists.
async fn engine_info(rt: &baton_runtime::Runtime, name: &str) -> Res<Option<EngineInfo>> {
    Ok(rt
        .engine_statuses()
        .await?
        .into_iter()
        .find(|e| e.record.name == name)
        .map(Into::into))
}

/// Adds (or replaces) a remote engine: the runtime checks that it answers and lists its
/// models before anything is saved; the key goes to the key store the config names.
#[tauri::command]
#[specta::specta]
pub async fn add_engine(state: State<'_, AppState>, engine: NewEngine) -> Res<EngineInfo> {
    let rt = state.runtime()?;
    let record = rt.add_engine(engine.into()).await?;
    tracing::info!(engine = %record.name, url = %record.base_url, key_store = %record.key_store, "remote engine added");
    engine_info(&rt, &record.name).await?.ok_or_else(|| {
        AppError::new(
            "engine",
            format!(
                "{} was added but is not listed; reopen Settings",
                record.name
            ),
        )
    })
}

/// Checks that a remote engine answers, and how fast; the outcome counts toward its
/// circuit breaker. A failure is an error whose message says what went wrong.
#[tauri::command]
#[specta::specta]
pub async fn test_engine(state: State<'_, AppState>, name: String) -> Res<EngineTestInfo> {
    let rt = state.runtime()?;
    let health = rt.test_engine(&name).await?;
    Ok(EngineTestInfo {
        ready: health.ready,
        latency_ms: health.latency_ms as f64,
        detail: health.detail,
        engine: engine_info(&rt, &name).await?,
        name,
    })
}

/// Removes a remote engine and its key; false when there was none.
#[tauri::command]
#[specta::specta]
pub async fn remove_engine(state: State<'_, AppState>, name: String) -> Res<bool> {
    let rt = state.runtime()?;
    Ok(rt.remove_engine(&name).await?)
}
