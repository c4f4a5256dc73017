//! The [`Engine`] trait: one interface for every chat model, local or remote.

use crate::chat::{ChatEvent, ChatRequest, ChatResponse};
use crate::error::EngineError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use tokio_util::sync::CancellationToken;

/// Receives streamed events of one request. Must not block.
pub type EventSink<'a> = &'a (dyn Fn(ChatEvent) + Send + Sync);

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineHealth {
    /// Whether the engine can take requests now.
    pub ready: bool,
    /// Round-trip time of the check in milliseconds.
    pub latency_ms: u64,
    /// Free-form detail (loaded models, worker pid, endpoint version).
    pub detail: String,
}

/// A chat completion engine: a supervised local worker process or a remote
/// OpenAI-compatible endpoint. The orchestrator drives every model through this trait.
#[async_trait]
pub trait Engine: Send + Sync {
    /// A stable name for logs, metrics and circuit breakers (for example `local-llm` or
    /// `remote:openrouter`).
    fn name(&self) -> &str;

    /// Generate a completion for `request`, streaming events to `on_event` as they come.
    ///
    /// When `cancel` fires, the engine stops generating as soon as it can and returns the
    /// text so far with [`crate::FinishReason::Cancelled`].
    async fn chat(
        &self,
        request: ChatRequest,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError>;

    /// Check that the engine answers.
    async fn health(&self) -> Result<EngineHealth, EngineError>;
}
