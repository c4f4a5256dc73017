//! Baton's local OpenAI-compatible HTTP API: `POST /v1/chat/completions` (streamed over
//! server-sent events or as one JSON body), `GET /v1/models` and `POST /v1/embeddings`, for other programs on the
//! machine, and Baton's task queue under `/v1/tasks` (see the `tasks` module). It listens on 127.0.0.1 only and every request needs the bearer token.
//!
//! The request's sampling parameters (`max_tokens`, `temperature`, `top_p`, `stop`, `seed`,
//! penalties, `response_format`) are honoured for that request; parameters Baton cannot
//! honour are refused with a 400 that says why ([`request`]).
//!
//! Requests go through the same runtime as the chat window: routing (`model: "auto"` or no
//! model), fallbacks, circuit breakers, run records. A client that disconnects cancels its
//! generation.
#![warn(missing_docs)]

pub mod client;
mod embeddings;
pub mod request;
mod tasks;

pub use client::ApiClient;
pub use request::{CompletionRequest, RequestError};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use baton_core::{CancellationToken, ChatEvent, EngineError, FinishReason};
use baton_runtime::{Runtime, RuntimeError};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

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
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Server {
    /// The base URL clients use (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Waits until the server stops.
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops accepting connections and waits for the server to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

struct AppState {
    runtime: Runtime,
    token: String,
}

/// A fresh random bearer token.
pub fn new_token() -> String {
    format!("baton-{:032x}", rand::random::<u128>())
}

/// Starts the API on 127.0.0.1:`port` (0 picks a free port).
pub async fn serve(runtime: Runtime, port: u16, token: String) -> Result<Server, ApiError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;
    let state = Arc::new(AppState { runtime, token });
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
        .with_state(state);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    // Tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds each one back
    // until the previous is acknowledged (up to 40 ms with delayed ACKs).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
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

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given == Some(state.token.as_str())
}

fn denied() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "missing or wrong bearer token: send `Authorization: Bearer TOKEN` with the token `baton serve` printed",
    )
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
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
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if !authorized(&state, &headers) {
        return denied();
    }
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
            Ok(r) => Json(json!({
                "id": id, "object": "chat.completion", "created": created, "model": r.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": r.content},
                             "finish_reason": finish_reason(r.finish_reason)}],
                "usage": usage(&r.usage),
            }))
            .into_response(),
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
