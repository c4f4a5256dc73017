//! [`RemoteEngine`]: the [`Engine`] over an OpenAI-compatible `/chat/completions` endpoint.

use crate::ratelimit::retry_after;
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use baton_core::{
    CancellationToken, ChatEvent, ChatRequest, ChatResponse, Engine, EngineError, EngineHealth,
    EventSink, FinishReason, OutputFormat, Usage,
};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tracing::Instrument;

/// An API key. Its `Debug` output is redacted so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the `Authorization` header or the key store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// How long each phase of a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// From sending the request to the first streamed token.
    pub first_token: Duration,
    /// Between two streamed chunks once tokens flow.
    pub idle: Duration,
    /// A health check or model listing.
    pub health: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            health: Duration::from_secs(5),
        }
    }
}

/// Everything needed to talk to one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The engine's name in Baton (`baton engines add NAME`); models are addressed as
    /// `NAME/MODEL`.
    pub name: String,
    /// Base URL up to and including the API version, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Bearer token, if the endpoint needs one.
    pub api_key: Option<ApiKey>,
    /// US dollars per million prompt tokens.
    pub input_usd_per_mtok: f64,
    /// US dollars per million generated tokens.
    pub output_usd_per_mtok: f64,
    /// Phase timeouts.
    pub timeouts: Timeouts,
    /// Retries after the first attempt, for retryable failures before any token arrived.
    pub max_retries: usize,
    /// The longest a rate limit may make a request wait before it is reported instead.
    pub max_wait: Duration,
}

impl EndpointConfig {
    /// An endpoint with default timeouts, 3 retries, a 30 s rate-limit cap and no prices.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: None,
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
            timeouts: Timeouts::default(),
            max_retries: 3,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// An OpenAI-compatible endpoint as a Baton engine.
#[derive(Debug, Clone)]
pub struct RemoteEngine {
    engine_name: String,
    config: EndpointConfig,
    client: reqwest::Client,
}

/// One failed attempt: the error, whether another attempt may succeed, and how long the
/// endpoint asked to wait.
#[derive(Debug)]
struct AttemptError {
    error: EngineError,
    retry: bool,
    wait: Option<Duration>,
}

impl AttemptError {
    fn fatal(error: EngineError) -> Self {
        Self {
            error,
            retry: false,
            wait: None,
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u32,
}

impl RemoteEngine {
    /// Builds the HTTP client for `config`.
    pub fn new(config: EndpointConfig) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Failed {
                engine: format!("remote:{}", config.name),
                message: format!("could not set up HTTP: {e}"),
                retryable: false,
            })?;
        Ok(Self {
            engine_name: format!("remote:{}", config.name),
            config,
            client,
        })
    }

    /// The endpoint's configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The model name the endpoint knows: `NAME/llama3` → `llama3` (names without this
    /// engine's prefix pass through).
    pub fn remote_model<'a>(&self, model: &'a str) -> &'a str {
        model
            .strip_prefix(&self.config.name)
            .and_then(|m| m.strip_prefix('/'))
            .unwrap_or(model)
    }

    /// The models the endpoint lists at `GET /models`.
    pub async fn list_models(&self) -> Result<Vec<String>, EngineError> {
        #[derive(Deserialize)]
        struct List {
            data: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            id: String,
        }
        let response = self
            .authorized(self.client.get(format!("{}/models", self.config.base_url)))
            .timeout(self.config.timeouts.health)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, false).error)?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = response.text().await.unwrap_or_default();
            return Err(self.status_error(status, &headers, &body, "").error);
        }
        let list: List = response.json().await.map_err(|e| EngineError::Failed {
            engine: self.engine_name.clone(),
            message: format!(
                "{}/models did not return an OpenAI-style model list ({e}); is the URL right?",
                self.config.base_url
            ),
            retryable: false,
        })?;
        Ok(list.data.into_iter().map(|i| i.id).collect())
    }

    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some(key) => builder.bearer_auth(key.expose()),
            None => builder,
        }
    }

    fn transport_error(&self, e: &reqwest::Error, streaming: bool) -> AttemptError {
        let what = if e.is_timeout() {
            "timed out".to_owned()
        } else if e.is_connect() {
            format!("could not connect to {}", self.config.base_url)
        } else if streaming {
            "the connection dropped mid-answer".to_owned()
        } else {
            "the request failed".to_owned()
        };
        AttemptError {
            error: EngineError::Unavailable {
                engine: self.engine_name.clone(),
                reason: format!(
                    "{what} ({}); check that the server is running (`baton engines test {}`)",
                    error_chain(e),
                    self.config.name
                ),
            },
            retry: true,
            wait: None,
        }
    }

    fn status_error(
        &self,
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &str,
        model: &str,
    ) -> AttemptError {
        let detail = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.get("error"))
                    .or_else(|| v.get("message"))
                    .and_then(|m| m.as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        let engine = self.engine_name.clone();
        let code = status.as_u16();
        let wait = retry_after(headers, SystemTime::now());
        match code {
            401 | 403 => AttemptError::fatal(EngineError::Failed {
                engine,
                message: format!(
                    "the endpoint refused the API key (HTTP {code}: {detail}); set a valid one with `baton engines add {} --url {} --key-stdin`",
                    self.config.name, self.config.base_url
                ),
                retryable: false,
            }),
            404 => AttemptError::fatal(EngineError::ModelUnavailable {
                model: model.to_owned(),
                hint: format!(
                    "{} answered HTTP 404 ({detail}); list what it serves with `baton engines test {}`",
                    self.config.base_url, self.config.name
                ),
            }),
            400 | 413 | 422 => AttemptError::fatal(EngineError::InvalidRequest(format!(
                "{} refused the request (HTTP {code}): {detail}",
                self.config.name
            ))),
            429 => AttemptError {
                error: EngineError::Unavailable {
                    engine,
                    reason: format!(
                        "rate limited (HTTP 429{}): {detail}",
                        wait.map(|w| format!(", retry in {:.0} s", w.as_secs_f64().ceil()))
                            .unwrap_or_default()
                    ),
                },
                retry: true,
                wait,
            },
            408 | 500..=599 => AttemptError {
                error: EngineError::Failed {
                    engine,
                    message: format!("HTTP {code}: {detail}"),
                    retryable: true,
                },
                retry: true,
                wait,
            },
            _ => AttemptError::fatal(EngineError::Failed {
                engine,
                message: format!("unexpected HTTP {code}: {detail}"),
                retryable: false,
            }),
        }
    }

    fn cost(&self, usage: &Usage) -> Option<f64> {
        let (i, o) = (
            self.config.input_usd_per_mtok,
            self.config.output_usd_per_mtok,
        );
        if i == 0.0 && o == 0.0 {
            return None;
        }
        Some((f64::from(usage.prompt_tokens) * i + f64::from(usage.completion_tokens) * o) / 1e6)
    }

    async fn attempt(
        &self,
        request: &ChatRequest,
        on_event: EventSink<'_>,
        cancel: &CancellationToken,
        emitted: &AtomicBool,
    ) -> Result<ChatResponse, AttemptError> {
        let started = Instant::now();
        let remote_model = self.remote_model(&request.model);
        let body = request_body(remote_model, request);
        let send = self
            .authorized(
                self.client
                    .post(format!("{}/chat/completions", self.config.base_url)),
            )
            .json(&body)
            .send();
        let response = tokio::select! {
            _ = cancel.cancelled() => return Ok(self.cancelled(request, String::new(), Usage::default(), None, started)),
            r = tokio::time::timeout(self.config.timeouts.first_token, send) => match r {
                Err(_) => return Err(self.timeout(self.config.timeouts.first_token)),
                Ok(Err(e)) => return Err(self.transport_error(&e, false)),
                Ok(Ok(r)) => r,
            },
        };
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            return Err(self.status_error(status, &headers, &text, &request.model));
        }
        on_event(baton_core::ChatEvent::Started {
            model: request.model.clone(),
        });
        let mut events = response.bytes_stream().eventsource();
        let mut content = String::new();
        let mut usage = Usage::default();
        let mut chunks = 0u32;
        let mut first_token_ms = None;
        let mut finish: Option<FinishReason> = None;
        let mut done = false;
        loop {
            let limit = if first_token_ms.is_none() {
                self.config
                    .timeouts
                    .first_token
                    .saturating_sub(started.elapsed())
            } else {
                self.config.timeouts.idle
            };
            let next = tokio::select! {
                _ = cancel.cancelled() => {
                    return Ok(self.cancelled(request, content, usage, first_token_ms, started));
                }
                n = tokio::time::timeout(limit, events.next()) => n,
            };
            let event = match next {
                Err(_) => {
                    let mut e = self.timeout(limit);
                    e.retry = !emitted.load(Ordering::SeqCst);
                    return Err(e);
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let mut err = match e {
                        eventsource_stream::EventStreamError::Transport(t) => {
                            self.transport_error(&t, true)
                        }
                        other => AttemptError::fatal(self.protocol_error(&other.to_string())),
                    };
                    err.retry &= !emitted.load(Ordering::SeqCst);
                    return Err(err);
                }
                Ok(Some(Ok(event))) => event,
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
                AttemptError::fatal(self.protocol_error(&format!("unreadable chunk ({e})")))
            })?;
            if let Some(error) = chunk.error {
                let message = error
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| error.to_string());
                return Err(AttemptError {
                    error: EngineError::Failed {
                        engine: self.engine_name.clone(),
                        message: format!("the endpoint reported an error mid-answer: {message}"),
                        retryable: true,
                    },
                    retry: !emitted.load(Ordering::SeqCst),
                    wait: None,
                });
            }
            if let Some(u) = chunk.usage {
                usage = Usage {
                    prompt_tokens: u.prompt_tokens,
                    cached_prompt_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
                    completion_tokens: u.completion_tokens,
                };
            }
            for choice in chunk.choices {
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                    first_token_ms.get_or_insert(started.elapsed().as_millis() as u64);
                    chunks += 1;
                    content.push_str(&text);
                    emitted.store(true, Ordering::SeqCst);
                    on_event(ChatEvent::Token { text });
                }
                if let Some(reason) = choice.finish_reason {
                    finish = Some(if reason == "length" {
                        FinishReason::Length
                    } else {
                        FinishReason::Stop
                    });
                }
            }
        }
        if !done && finish.is_none() {
            return Err(AttemptError {
                error: EngineError::Failed {
                    engine: self.engine_name.clone(),
                    message: format!(
                        "the connection dropped mid-answer after {} characters; send the message again",
                        content.len()
                    ),
                    retryable: true,
                },
                retry: !emitted.load(Ordering::SeqCst),
                wait: None,
            });
        }
        if usage.completion_tokens == 0 {
            // Endpoints that ignore `include_usage`: each streamed chunk is about one token.
            usage.completion_tokens = chunks;
        }
        Ok(ChatResponse {
            model: request.model.clone(),
            content,
            cost_usd: self.cost(&usage),
            usage,
            finish_reason: finish.unwrap_or(FinishReason::Stop),
            first_token_ms,
            total_ms: started.elapsed().as_millis() as u64,
        })
    }

    fn cancelled(
        &self,
        request: &ChatRequest,
        content: String,
        usage: Usage,
        first_token_ms: Option<u64>,
        started: Instant,
    ) -> ChatResponse {
        ChatResponse {
            model: request.model.clone(),
            content,
            cost_usd: self.cost(&usage),
            usage,
            finish_reason: FinishReason::Cancelled,
            first_token_ms,
            total_ms: started.elapsed().as_millis() as u64,
        }
    }

    fn timeout(&self, limit: Duration) -> AttemptError {
        AttemptError {
            error: EngineError::Timeout {
                engine: self.engine_name.clone(),
                seconds: limit.as_secs().max(1),
            },
            retry: true,
            wait: None,
        }
    }

    fn protocol_error(&self, what: &str) -> EngineError {
        EngineError::Failed {
            engine: self.engine_name.clone(),
            message: format!(
                "{} does not speak the OpenAI streaming protocol: {what}",
                self.config.base_url
            ),
            retryable: false,
        }
    }
}

/// The `/chat/completions` body for `request`: the model as the endpoint knows it, the
/// messages, and the request's sampling in OpenAI's names. Its output format becomes
/// `response_format`; a GBNF grammar has no OpenAI equivalent and is left out (callers
/// validate remote answers themselves).
fn request_body(remote_model: &str, request: &ChatRequest) -> serde_json::Value {
    let p = &request.params;
    let mut body = json!({
        "model": remote_model,
        "messages": request.messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
    });
    if !p.stop.is_empty() {
        body["stop"] = json!(p.stop);
    }
    if let Some(seed) = p.seed {
        body["seed"] = json!(seed);
    }
    if p.presence_penalty != 0.0 {
        body["presence_penalty"] = json!(p.presence_penalty);
    }
    if p.frequency_penalty != 0.0 {
        body["frequency_penalty"] = json!(p.frequency_penalty);
    }
    match &p.format {
        None => {}
        Some(OutputFormat::JsonObject) => {
            body["response_format"] = json!({"type": "json_object"});
        }
        Some(OutputFormat::JsonSchema { name, schema }) => {
            // OpenAI requires a name matching ^[a-zA-Z0-9_-]{1,64}$.
            let name: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .take(64)
                .collect();
            let name = if name.is_empty() {
                "answer".to_owned()
            } else {
                name
            };
            body["response_format"] = json!({"type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": true}});
        }
        Some(OutputFormat::Grammar { .. }) => {
            tracing::debug!(
                request = %request.id,
                "a GBNF grammar cannot be sent to an OpenAI-compatible endpoint; the answer is asked for without it"
            );
        }
    }
    body
}

/// The innermost cause of an error ("tcp connect error: Connection refused"): reqwest's
/// outer layers repeat the URL, which the message already names.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut root = e;
    while let Some(source) = root.source() {
        root = source;
    }
    root.to_string()
}

#[async_trait]
impl Engine for RemoteEngine {
    fn name(&self) -> &str {
        &self.engine_name
    }

    async fn chat(
        &self,
        request: ChatRequest,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError> {
        if request.messages.is_empty() {
            return Err(EngineError::InvalidRequest(
                "the conversation is empty".into(),
            ));
        }
        let span = tracing::info_span!("remote_chat", request = %request.id, engine = %self.engine_name, model = %request.model);
        let emitted = AtomicBool::new(false);
        let max_wait = self.config.max_wait;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(8))
            .with_max_times(self.config.max_retries)
            .with_jitter();
        let attempts = (|| self.attempt(&request, on_event, &cancel, &emitted))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &AttemptError| e.retry && !cancel.is_cancelled())
            .adjust(move |e: &AttemptError, next: Option<Duration>| match (e.wait, next) {
                // The endpoint asked for a wait longer than we accept: report it instead.
                (Some(wait), _) if wait > max_wait => None,
                (Some(wait), Some(next)) => Some(wait.max(next)),
                (_, next) => next,
            })
            .notify(|e: &AttemptError, after: Duration| {
                tracing::warn!(error = %e.error, retry_in_ms = after.as_millis() as u64, "retrying");
            });
        attempts.instrument(span).await.map_err(|e| e.error)
    }

    async fn health(&self) -> Result<EngineHealth, EngineError> {
        let started = Instant::now();
        let models = self.list_models().await?;
        Ok(EngineHealth {
            ready: true,
            latency_ms: started.elapsed().as_millis() as u64,
            detail: format!("{} model(s): {}", models.len(), models.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted_in_debug_output() {
        let mut config = EndpointConfig::new("x", "http://h/v1/");
        config.api_key = Some(ApiKey::new("sk-secret"));
        let text = format!("{config:?}");
        assert!(!text.contains("sk-secret"), "{text}");
        assert_eq!(config.base_url, "http://h/v1");
    }

    #[test]
    fn the_body_carries_the_requests_sampling() {
        use baton_core::{ChatMessage, SamplingParams};
        let mut request = ChatRequest::new("e/m", vec![ChatMessage::user("hi")]);
        let body = request_body("m", &request);
        for absent in [
            "stop",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "response_format",
        ] {
            assert!(body.get(absent).is_none(), "{absent}: {body}");
        }
        request.params = SamplingParams {
            temperature: 0.25,
            top_p: 0.5,
            max_tokens: 7,
            stop: vec!["END".into()],
            seed: Some(42),
            presence_penalty: 0.5,
            frequency_penalty: -1.0,
            format: Some(OutputFormat::JsonObject),
            ..SamplingParams::default()
        };
        let body = request_body("m", &request);
        assert_eq!(body["model"], "m");
        assert_eq!(body["temperature"], 0.25);
        assert_eq!(body["top_p"], 0.5);
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["stop"], json!(["END"]));
        assert_eq!(body["seed"], 42);
        assert_eq!(body["presence_penalty"], 0.5);
        assert_eq!(body["frequency_penalty"], -1.0);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));

        let schema = json!({"type": "object"});
        request.params.format = Some(OutputFormat::JsonSchema {
            name: "my plan!".into(),
            schema: schema.clone(),
        });
        assert_eq!(
            request_body("m", &request)["response_format"],
            json!({"type": "json_schema",
                   "json_schema": {"name": "myplan", "schema": schema, "strict": true}})
        );
        request.params.format = Some(OutputFormat::Grammar {
            grammar: "root ::= \"x\"".into(),
        });
        assert!(request_body("m", &request).get("response_format").is_none());
    }

    #[test]
    fn model_names_lose_the_engine_prefix() {
        let engine = RemoteEngine::new(EndpointConfig::new("ollama", "http://h/v1")).unwrap();
        assert_eq!(engine.remote_model("ollama/llama3:8b"), "llama3:8b");
        assert_eq!(engine.remote_model("gpt-4o"), "gpt-4o");
        assert_eq!(engine.name(), "remote:ollama");
    }
}
