//! Chat turns: store the user's message, run an engine, store the answer and the run.
//!
//! The user's message is committed before any engine runs, so a crash, a cancellation or a
//! failing model never loses what the person typed. The answer is stored when it is
//! complete, or, when cancelled, with the text generated so far.

use crate::{Runtime, RuntimeError};
use baton_core::{
    CancellationToken, ChatMessage, ChatRequest, ChatResponse, EngineError, EventSink,
    FinishReason, Role, SamplingParams, SessionId,
};
use baton_store::{Message, ModelRun, NewMessage, RunStatus};
use std::time::Instant;
use tracing::Instrument;

/// One turn the person starts: text for a session, optionally with a chosen model.
#[derive(Debug, Clone)]
pub struct ChatTurn {
    /// The session to continue.
    pub session: SessionId,
    /// What the person wrote.
    pub text: String,
    /// A model by registry name; `None` uses the configured default.
    pub model: Option<String>,
}

/// What a completed turn produced.
#[derive(Debug, Clone)]
pub struct TurnOutcome {
    /// The stored user message (absent when regenerating).
    pub user: Option<Message>,
    /// The stored answer.
    pub assistant: Message,
    /// The engine's response with timings and usage.
    pub response: ChatResponse,
}

/// The largest message a person may send, in bytes. Longer text gets a clear error instead of
/// being stored and sent to a model whose context it could never fit.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

impl Runtime {
    /// Sends a message in a session and streams the answer to `on_event`.
    pub async fn send(
        &self,
        turn: ChatTurn,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<TurnOutcome, RuntimeError> {
        if turn.text.trim().is_empty() {
            return Err(RuntimeError::Engine(EngineError::InvalidRequest(
                "the message is empty; type something to send".into(),
            )));
        }
        if turn.text.len() > MAX_MESSAGE_BYTES {
            return Err(RuntimeError::Engine(EngineError::InvalidRequest(format!(
                "the message is {} MiB; the limit is 1 MiB. Attach long documents in parts",
                turn.text.len() / (1 << 20)
            ))));
        }
        let session = self.store.find_session(&turn.session.0).await?;
        let user = self
            .store
            .append_message(&session.id, NewMessage::new(Role::User, &turn.text))
            .await?;
        let outcome = self
            .answer(&session.id, turn.model, on_event, cancel)
            .await?;
        Ok(TurnOutcome {
            user: Some(user),
            ..outcome
        })
    }

    /// Answers the session's conversation as it stands (after [`Runtime::send`] stored the
    /// user's message, or to regenerate after the last answer was removed).
    pub async fn answer(
        &self,
        session: &SessionId,
        model: Option<String>,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<TurnOutcome, RuntimeError> {
        let model = model.unwrap_or_else(|| self.config.chat.default_model.clone());
        let engine = self.engine_for(&model)?;
        let mut messages = Vec::new();
        if !self.config.chat.system_prompt.trim().is_empty() {
            messages.push(ChatMessage::system(self.config.chat.system_prompt.clone()));
        }
        messages.extend(
            self.store
                .messages(session)
                .await?
                .into_iter()
                .map(|m| ChatMessage::new(m.role, m.content)),
        );
        let mut request = ChatRequest::new(model.clone(), messages);
        request.session = Some(session.clone());
        request.params = SamplingParams {
            temperature: self.config.chat.temperature,
            top_p: self.config.chat.top_p,
            max_tokens: self.config.chat.max_tokens,
            ..SamplingParams::default()
        };
        let request_id = request.id.clone();
        let span =
            tracing::info_span!("chat", request = %request_id, session = %session, model = %model);
        let started = Instant::now();
        let result = engine
            .chat(request, on_event, cancel)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let (status, error) = match &result {
            Ok(r) if r.finish_reason == FinishReason::Cancelled => (RunStatus::Cancelled, None),
            Ok(_) => (RunStatus::Ok, None),
            Err(e) => (RunStatus::Error, Some(e.to_string())),
        };
        let usage = result.as_ref().map(|r| r.usage).unwrap_or_default();
        let run = ModelRun {
            request_id,
            session_id: Some(session.clone()),
            model: model.clone(),
            engine: engine.name().to_owned(),
            task: "chat".into(),
            status,
            error,
            prompt_tokens: Some(i64::from(usage.prompt_tokens)),
            cached_prompt_tokens: Some(i64::from(usage.cached_prompt_tokens)),
            completion_tokens: Some(i64::from(usage.completion_tokens)),
            first_token_ms: result
                .as_ref()
                .ok()
                .and_then(|r| r.first_token_ms)
                .map(|v| v as i64),
            total_ms: Some(started.elapsed().as_millis() as i64),
            cost_usd: result.as_ref().ok().and_then(|r| r.cost_usd),
        };
        if let Err(e) = self.store.record_run(&run).await {
            tracing::warn!(error = %e, "could not record the model run");
        }
        let response = result?;
        tracing::info!(
            tokens = response.usage.completion_tokens,
            cached = response.usage.cached_prompt_tokens,
            ms = response.total_ms,
            "answered"
        );
        let assistant = self
            .store
            .append_message(
                session,
                NewMessage {
                    role: Some(Role::Assistant),
                    content: response.content.clone(),
                    model: Some(response.model.clone()),
                    prompt_tokens: Some(i64::from(response.usage.prompt_tokens)),
                    completion_tokens: Some(i64::from(response.usage.completion_tokens)),
                    latency_ms: Some(response.total_ms as i64),
                    first_token_ms: response.first_token_ms.map(|v| v as i64),
                    tokens_per_second: response.tokens_per_second(),
                    cost_usd: response.cost_usd,
                },
            )
            .await?;
        Ok(TurnOutcome {
            user: None,
            assistant,
            response,
        })
    }
}
