//! Baton's local OpenAI-compatible HTTP API: `POST /v1/chat/completions` (streamed over
//! server-sent events or as one JSON body), `GET /v1/models` and `POST /v1/embeddings`, for other programs on the
//! machine, and Baton's task queue under `/v1/tasks` (see the `tasks` module).
//!
//! It is meant to be left running. It listens on 127.0.0.1 only, and every request passes
//! the checks of the `guard` module first: a loopback `Host` (DNS rebinding), no web page unless its
//! origin is allowed (CORS for those), a rate limit per client and the bearer token,
//! compared in constant time. The token lives in the key store ([`token`]): created once,
//! shown by `baton serve --show-token`, replaced by `--rotate-token` (a running server
//! follows within a second). Every request, refused ones too, is written to the audit log
//! (the `audit` module, `baton audit`) off the request path; prompt text only when opted into.
//!
//! The request's sampling parameters (`max_tokens`, `temperature`, `top_p`, `stop`, `seed`,
//! penalties, `response_format`) are honoured for that request; parameters Baton cannot
//! honour are refused with a 400 that says why ([`request`]).
//!
//! Requests go through the same runtime as the chat window: routing (`model: "auto"` or no
//! model), fallbacks, circuit breakers, run records. A client that disconnects cancels its
//! generation.
#![warn(missing_docs)]

mod audit;
pub mod client;
mod embeddings;
mod guard;
pub mod request;
mod tasks;
pub mod token;

pub use client::ApiClient;
pub use request::{CompletionRequest, RequestError};
pub use token::{new_token, rotate_token, stored_token, TokenError, TokenSource, API_TOKEN_ENTRY};

use audit::AuditNote;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use baton_core::{CancellationToken, ChatEvent, EngineError, FinishReason};
use baton_runtime::config::ApiConfig;
use baton_runtime::{Runtime, RuntimeError};
use serde_json::json;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}. Pick another port with --port")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The stored token could not be read or created.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    audit: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Server {
    /// The base URL clients use (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Waits until the server stops and its audit rows are written.
    pub async fn wait(self) {
        let _ = self.task.await;
        let _ = self.audit.await;
    }

    /// Stops accepting connections, waits for the server to end and writes the audit rows
    /// still queued.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// A per-client rate limit: a token bucket refilled at `per_minute`, holding `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a client may make per minute.
    pub per_minute: NonZeroU32,
    /// Requests it may make at once above that pace.
    pub burst: NonZeroU32,
}

/// How a server runs: its port, its token and its safety settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// Where the bearer token comes from.
    pub token: TokenSource,
    /// Web origins allowed to call (with CORS headers); any other `Origin` gets 403.
    pub allowed_origins: Vec<String>,
    /// The per-client rate limit; `None` for none (benchmarks).
    pub rate_limit: Option<RateLimit>,
    /// Whether audit rows keep the prompts' text.
    pub audit_prompts: bool,
    /// How long audit rows are kept; `None` for ever.
    pub audit_keep: Option<Duration>,
}

impl ServeOptions {
    /// The settings of a config's `[api]` section, on `port` with `token`.
    pub fn new(api: &ApiConfig, port: u16, token: impl Into<TokenSource>) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            port,
            token: token.into(),
            allowed_origins: api.allowed_origins.clone(),
            rate_limit: Some(RateLimit {
                per_minute: nonzero(api.requests_per_minute),
                burst: nonzero(api.burst),
            }),
            audit_prompts: api.audit_prompts,
            audit_keep: (api.audit_days > 0)
                .then(|| Duration::from_secs(u64::from(api.audit_days) * 86_400)),
        }
    }
}

pub(crate) struct AppState {
    runtime: Runtime,
    tokens: token::TokenCheck,
    allowed_origins: Vec<String>,
    limiter: Option<Arc<guard::Limiter>>,
    audit: audit::AuditSink,
    audit_prompts: bool,
}

/// Starts the API on 127.0.0.1:`port` (0 picks a free port) with `token` (a fixed token,
/// or the key store's) and the runtime config's `[api]` settings.
pub async fn serve(
    runtime: Runtime,
    port: u16,
    token: impl Into<TokenSource>,
) -> Result<Server, ApiError> {
    let options = ServeOptions::new(&runtime.config().api, port, token);
    serve_with(runtime, options).await
}

/// Starts the API with `options`. A stored token is read (created if missing) before the
/// port is bound, so a key store that does not answer is reported here.
pub async fn serve_with(runtime: Runtime, options: ServeOptions) -> Result<Server, ApiError> {
    let tokens = token::TokenCheck::new(options.token).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;
    let shutdown = CancellationToken::new();
    let limiter = options
        .rate_limit
        .map(|r| Arc::new(guard::Limiter::new(r.per_minute, r.burst)));
    if let Some(limiter) = limiter.clone() {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => limiter.forget_idle(),
                }
            }
        });
    }
    let (audit, audit_task) = audit::start(runtime.store().clone(), options.audit_keep);
    let state = Arc::new(AppState {
        runtime,
        tokens,
        allowed_origins: options.allowed_origins,
        limiter,
        audit,
        audit_prompts: options.audit_prompts,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/v1/tasks/events", get(tasks::events))
        .route("/v1/tasks/{id}", get(tasks::get_one))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/approve", post(tasks::approve))
        .route("/v1/tasks/{id}/reject", post(tasks::reject))
        .fallback(no_such_endpoint)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state);
    let stop = shutdown.clone();
    // Tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds each one back
    // until the previous is acknowledged (up to 40 ms with delayed ACKs).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
        });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });
    tracing::info!(%addr, "local API listening");
    Ok(Server {
        addr,
        task,
        audit: audit_task,
        shutdown,
    })
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    error_with_param(status, kind, None, message)
}

fn error_with_param(
    status: StatusCode,
    kind: &str,
    param: Option<&str>,
    message: impl Into<String>,
) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param,
                                "code": status.as_u16()}});
    (status, Json(body)).into_response()
}

fn runtime_error(e: &RuntimeError) -> Response {
    let (status, kind) = match e {
        RuntimeError::Engine(EngineError::InvalidRequest(_)) => {
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        }
        RuntimeError::Engine(EngineError::ModelUnavailable { .. }) => {
            (StatusCode::NOT_FOUND, "model_not_found")
        }
        RuntimeError::Engine(EngineError::Timeout { .. }) => {
            (StatusCode::GATEWAY_TIMEOUT, "timeout")
        }
        RuntimeError::Engine(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine_error"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    error(status, kind, e.to_string())
}

fn denied() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "missing or wrong bearer token: send `Authorization: Bearer TOKEN` with the server's token (`baton serve --show-token` prints the stored one; a server started with BATON_API_TOKEN wants that one)",
    )
}

/// Any other path: a 404 in OpenAI's shape, naming the endpoints there are.
async fn no_such_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "no endpoint {method} {}: Baton serves POST /v1/chat/completions, GET /v1/models, POST /v1/embeddings and /v1/tasks",
            uri.path()
        ),
    )
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    match state.runtime.model_names().await {
        Ok(names) => {
            let data: Vec<_> = std::iter::once("auto".to_owned())
                .chain(names)
                .map(|id| json!({"id": id, "object": "model", "owned_by": "baton"}))
                .collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
        Err(e) => runtime_error(&e),
    }
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

/// Cancels a generation when the response (and so the client's connection) is dropped.
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(note): Extension<Arc<AuditNote>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                e.status(),
                "invalid_request_error",
                format!(
                    "the request body could not be read ({}); requests are limited to 2 MB",
                    e.body_text()
                ),
            )
        }
    };
    // Any content type is accepted (curl's default is a form type): the body must be JSON.
    let request = match request::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            return error_with_param(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.param.as_deref(),
                e.message,
            )
        }
    };
    let CompletionRequest {
        model,
        messages,
        stream,
        include_usage,
        sampling,
    } = request;
    note.model(model.as_deref().unwrap_or("auto"));
    if state.audit_prompts {
        let text: Vec<String> = messages
            .iter()
            .map(|m| format!("{}: {}", m.role, m.content))
            .collect();
        note.prompt(text.join("\n"));
    }
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let runtime = state.runtime.clone();
    let cancel = CancellationToken::new();
    if !stream {
        let guard = CancelOnDrop(cancel.clone());
        let result = runtime
            .complete(model, messages, sampling, &|_| {}, cancel)
            .await;
        drop(guard);
        return match result {
            Ok(r) => {
                note.model(r.model.clone());
                Json(json!({
                "id": id, "object": "chat.completion", "created": created, "model": r.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": r.content},
                             "finish_reason": finish_reason(r.finish_reason)}],
                "usage": usage(&r.usage),
                }))
                .into_response()
            }
            Err(e) => runtime_error(&e),
        };
    }
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<Event, std::convert::Infallible>>();
    // An error before anything was streamed (unknown model, engine down) still gets its
    // HTTP status: the headers wait for the first chunk.
    let (early_tx, early_rx) = tokio::sync::oneshot::channel::<Response>();
    let guard = CancelOnDrop(cancel.clone());
    tokio::spawn(async move {
        let streamed = std::sync::atomic::AtomicBool::new(false);
        let send = |value: serde_json::Value| {
            streamed.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = tx.send(Ok(Event::default().data(value.to_string())));
        };
        // Every chunk names the model that answers (known once the engine started).
        let answering = std::sync::Mutex::new(String::new());
        let chunk = |model: &str, delta: serde_json::Value, finish: Option<&str>| {
            let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                   "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            if include_usage {
                // As OpenAI: with include_usage, every chunk but the last has `usage: null`.
                c["usage"] = serde_json::Value::Null;
            }
            c
        };
        let on_event = |event: ChatEvent| match event {
            ChatEvent::Started { model } => {
                note.model(model.clone());
                send(chunk(
                    &model,
                    json!({"role": "assistant", "content": ""}),
                    None,
                ));
                *answering.lock().expect("model lock") = model;
            }
            ChatEvent::Token { text } => {
                let model = answering.lock().expect("model lock").clone();
                send(chunk(&model, json!({"content": text}), None));
            }
            ChatEvent::Notice { .. } | ChatEvent::Restart { .. } => {}
        };
        match runtime
            .complete(model, messages, sampling, &on_event, cancel)
            .await
        {
            Ok(r) => {
                send(chunk(
                    &r.model,
                    json!({}),
                    Some(finish_reason(r.finish_reason)),
                ));
                if include_usage {
                    send(
                        json!({"id": id, "object": "chat.completion.chunk", "created": created,
                        "model": r.model, "choices": [], "usage": usage(&r.usage)}),
                    );
                }
                let _ = tx.send(Ok(Event::default().data("[DONE]")));
            }
            Err(e) if !streamed.load(std::sync::atomic::Ordering::SeqCst) => {
                let _ = early_tx.send(runtime_error(&e));
            }
            Err(e) => {
                // Headers are gone: report the error in-stream, as OpenAI does, and end
                // without [DONE] so clients see the answer is incomplete.
                send(json!({"error": {"message": e.to_string(), "type": "engine_error"}}));
            }
        }
    });
    // Dropped with this future if the client goes away while the answer has not started:
    // the guard cancels the generation then too.
    let Some(first) = rx.recv().await else {
        return early_rx.await.unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the answer ended before it started; see the log (`baton -v serve`)",
            )
        });
    };
    let stream = futures::StreamExt::map(
        futures::StreamExt::chain(
            futures::stream::once(async move { first }),
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        ),
        move |item| {
            let _keep = &guard;
            item
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Token counts in OpenAI's shape.
fn usage(u: &baton_core::Usage) -> serde_json::Value {
    json!({"prompt_tokens": u.prompt_tokens,
           "completion_tokens": u.completion_tokens,
           "total_tokens": u.prompt_tokens + u.completion_tokens,
           "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens}})
}
