//! [`ApiClient`]: a streaming client of Baton's API (or any OpenAI-compatible server) that
//! measures what a program on the machine sees: time to first token, decode speed, tokens.
//! `baton bench api` drives it.

use baton_core::{
    CancellationToken, ChatMessage, ChatRequest, ChatResponse, Engine, EngineError, SamplingParams,
};
use baton_remote::{ApiKey, EndpointConfig, RemoteEngine, Timeouts};
use std::time::Duration;

/// A client of one server: streamed requests, no retries (a measurement must not hide a
/// failure), timeouts long enough for requests that queue behind others.
#[derive(Debug, Clone)]
pub struct ApiClient {
    engine: RemoteEngine,
}

impl ApiClient {
    /// A client of `base_url` (`http://127.0.0.1:PORT/v1`) sending `token`; a request may
    /// wait up to `first_token` for its first token (queued behind others included).
    pub fn new(
        base_url: impl Into<String>,
        token: impl Into<String>,
        first_token: Duration,
    ) -> Result<Self, EngineError> {
        let mut config = EndpointConfig::new("api", base_url);
        config.api_key = Some(ApiKey::new(token));
        config.max_retries = 0;
        config.timeouts = Timeouts {
            connect: Duration::from_secs(10),
            first_token,
            idle: first_token,
            health: Duration::from_secs(10),
        };
        Ok(Self {
            engine: RemoteEngine::new(config)?,
        })
    }

    /// Streams one completion of `messages` by `model` with `params` (all of them are sent
    /// as OpenAI parameters). The response's `first_token_ms` and `total_ms` are measured
    /// from the moment the request is sent, as the client sees them.
    pub async fn stream(
        &self,
        model: &str,
        messages: Vec<ChatMessage>,
        params: SamplingParams,
    ) -> Result<ChatResponse, EngineError> {
        let mut request = ChatRequest::new(model, messages);
        request.params = params;
        self.engine
            .chat(request, &|_| {}, CancellationToken::new())
            .await
    }
}
