//! Chat turns: store the user's message, run an engine, store the answer and the run.
//!
//! The user's message is committed before any engine runs, so a crash, a cancellation or a
//! failing model never loses what the person typed. The answer is stored when it is
//! complete, or, when cancelled, with the text generated so far.

use crate::{Runtime, RuntimeError};
use baton_core::{
    CancellationToken, ChatEvent, ChatMessage, ChatRequest, ChatResponse, EngineError, EventSink,
    FinishReason, OrchestrationEvent, RequestId, Role, SamplingParams, SessionId,
};
use baton_store::{Message, ModelRun, NewMessage, RunStatus};
use std::time::Instant;
use tracing::Instrument;

pub use crate::orchestrate::{Answer, AnswerOptions, Mode, ProgressSink};

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

/// Whether a message carries memory snippets.
fn is_memory(m: &ChatMessage) -> bool {
    m.role == Role::System && m.content.starts_with(crate::memory::MEMORY_HEADER)
}

impl Runtime {
    /// Whether `model` is answered by a remote engine.
    pub fn is_remote(&self, model: &str) -> bool {
        self.remotes
            .read()
            .expect("remote lock")
            .contains_key(model)
    }

    /// Sends a message in a session and streams the answer to `on_event` (single mode; the
    /// model is routed when `turn.model` is `None` or `auto`).
    pub async fn send(
        &self,
        turn: ChatTurn,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<TurnOutcome, RuntimeError> {
        let options = AnswerOptions::new(turn.model.clone(), Mode::Single);
        self.send_with(turn, options, on_event, &|_| {}, cancel)
            .await
    }

    /// Sends a message and answers it in the given mode, streaming the answer to `on_event`
    /// and orchestration progress (routing, fallbacks, branches, rounds) to `on_progress`.
    pub async fn send_with(
        &self,
        turn: ChatTurn,
        options: AnswerOptions,
        on_event: EventSink<'_>,
        on_progress: ProgressSink<'_>,
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
            .answer_with(&session.id, options, on_event, on_progress, cancel)
            .await?;
        Ok(TurnOutcome {
            user: Some(user),
            ..outcome
        })
    }

    /// Answers the session's conversation as it stands (after [`Runtime::send`] stored the
    /// user's message, or to regenerate after the last answer was removed), in single mode.
    pub async fn answer(
        &self,
        session: &SessionId,
        model: Option<String>,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<TurnOutcome, RuntimeError> {
        let options = AnswerOptions::new(model, Mode::Single);
        self.answer_with(session, options, on_event, &|_| {}, cancel)
            .await
    }

    /// Answers the conversation in the given mode (see [`Runtime::send_with`]).
    pub async fn answer_with(
        &self,
        session: &SessionId,
        options: AnswerOptions,
        on_event: EventSink<'_>,
        on_progress: ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Result<TurnOutcome, RuntimeError> {
        let writer = options
            .model
            .clone()
            .filter(|m| m != "auto")
            .unwrap_or_else(|| self.default_model());
        let params = self.answer_params(&options.sampling);
        let prepared = self
            .prepare_context(session, &writer, &params, &cancel)
            .await?;
        let messages = prepared.messages;
        let request_id = RequestId::new();
        let span = tracing::info_span!("turn", request = %request_id, session = %session, mode = %options.mode);
        let result = self
            .orchestrate(
                &request_id,
                Some(session),
                &options,
                messages,
                on_event,
                on_progress,
                cancel,
            )
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let (response, decision) = result?;
        // Memory stayed on this machine when the answering engine is remote and may not
        // see it (`call` removed it): then the answer had no sources.
        let sources = if self.is_remote(&response.model) && !self.memory_settings().await?.remote {
            Vec::new()
        } else {
            prepared.sources
        };
        tracing::info!(
            model = %response.model,
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
                    mode: Some(options.mode.to_string()),
                    sources,
                },
            )
            .await?;
        self.memory_changed();
        if let Some(id) = decision {
            if let Err(e) = self
                .store
                .link_decision(id, assistant.id, &response.model)
                .await
            {
                tracing::warn!(error = %e, "could not link the routing decision");
            }
        }
        Ok(TurnOutcome {
            user: None,
            assistant,
            response,
        })
    }

    /// Runs one engine call through its circuit breaker and records it in `model_runs`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call(
        &self,
        model: &str,
        messages: Vec<ChatMessage>,
        session: Option<&SessionId>,
        params: &SamplingParams,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
        mode: Mode,
        step: &str,
    ) -> Result<ChatResponse, EngineError> {
        let engine = self.engine_for(model)?;
        let mut messages = messages;
        if self.is_remote(model)
            && messages.iter().any(is_memory)
            && !self
                .memory_settings()
                .await
                .map(|s| s.remote)
                .unwrap_or(false)
        {
            tracing::info!(
                model,
                "memory is not sent to remote engines (memory.remote is off)"
            );
            messages.retain(|m| !is_memory(m));
        }
        let breaker = self.breaker_key(model, engine.name());
        if let Err(secs) = self.breakers.acquire(&breaker) {
            return Err(EngineError::Unavailable {
                engine: engine.name().to_owned(),
                reason: format!(
                    "its circuit breaker is open after repeated failures; the next try goes through in {secs} s"
                ),
            });
        }
        let mut request = ChatRequest::new(model, messages);
        request.session = session.cloned();
        request.params = params.clone();
        let request_id = request.id.clone();
        let span = tracing::info_span!("chat", request = %request_id, model = %model, step = %step);
        let started = Instant::now();
        let result = engine
            .chat(request, on_event, cancel)
            .instrument(span.clone())
            .await;
        match &result {
            Err(e) if !matches!(e, EngineError::InvalidRequest(_)) => {
                self.breakers.failure(&breaker)
            }
            _ => self.breakers.success(&breaker),
        }
        let (status, error) = match &result {
            Ok(r) if r.finish_reason == FinishReason::Cancelled => (RunStatus::Cancelled, None),
            Ok(_) => (RunStatus::Ok, None),
            Err(e) => (RunStatus::Error, Some(e.to_string())),
        };
        let usage = result.as_ref().map(|r| r.usage).unwrap_or_default();
        let run = ModelRun {
            request_id,
            session_id: session.cloned(),
            model: model.to_owned(),
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
            mode: mode.to_string(),
            step: step.to_owned(),
        };
        if let Err(e) = self.store.record_run(&run).await {
            let _entered = span.enter();
            tracing::warn!(error = %e, "could not record the model run");
        }
        result
    }

    /// Runs `chain` in order until one model answers, telling the user about each fallback.
    /// Engine outages (crash, timeout, unavailable, failure) always fall back; a model that
    /// is missing or unusable falls back only when the router chose it (`routed`): a model
    /// the person named gets its own error.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call_with_fallback(
        &self,
        chain: &[String],
        routed: bool,
        messages: Vec<ChatMessage>,
        session: Option<&SessionId>,
        params: &SamplingParams,
        on_event: EventSink<'_>,
        on_progress: ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError> {
        let mut last = None;
        for (i, model) in chain.iter().enumerate() {
            let emitted = std::sync::atomic::AtomicBool::new(false);
            let sink = |event: ChatEvent| {
                if matches!(event, ChatEvent::Token { .. }) {
                    emitted.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                on_event(event);
            };
            let result = self
                .call(
                    model,
                    messages.clone(),
                    session,
                    params,
                    &sink,
                    cancel.clone(),
                    Mode::Single,
                    "answer",
                )
                .await;
            let error = match result {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            let Some(next) = chain.get(i + 1) else {
                last = Some(error);
                break;
            };
            let outage = matches!(
                error,
                EngineError::Crashed { .. }
                    | EngineError::Timeout { .. }
                    | EngineError::Unavailable { .. }
                    | EngineError::Failed { .. }
            );
            if cancel.is_cancelled()
                || matches!(error, EngineError::InvalidRequest(_))
                || !(outage || routed)
            {
                return Err(error);
            }
            let reason = error.to_string();
            tracing::warn!(from = %model, to = %next, %reason, "falling back");
            on_progress(OrchestrationEvent::Fallback {
                from: model.clone(),
                to: next.clone(),
                reason: reason.clone(),
            });
            if emitted.load(std::sync::atomic::Ordering::SeqCst) {
                on_event(ChatEvent::Restart {
                    reason: reason.clone(),
                });
            }
            on_event(ChatEvent::Notice {
                message: format!("{model} failed ({reason}); {next} answers instead"),
            });
            last = Some(error);
        }
        Err(last.unwrap_or_else(|| EngineError::ModelUnavailable {
            model: "auto".into(),
            hint: "no model is registered; fetch the default with `baton models fetch`".into(),
        }))
    }
}
