//! Baton's local OpenAI-compatible HTTP API: `POST /v1/chat/completions` (streamed over
//! server-sent events or as one JSON body) and `GET /v1/models`, for other programs on the
//! machine. It listens on 127.0.0.1 only and every request needs the bearer token.
//!
//! Requests go through the same runtime as the chat window: routing (`model: "auto"` or no
//! model), fallbacks, circuit breakers, run records. A client that disconnects cancels its
//! generation.
#![warn(missing_docs)]

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use baton_core::{
    CancellationToken, ChatEvent, ChatMessage, EngineError, FinishReason, SamplingOverrides,
};
use baton_runtime::{Runtime, RuntimeError};
use serde::Deserialize;
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
        .with_state(state);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
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

/// An error in OpenAI's shape: `{"error": {"message", "type", "code"}}`.
fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "code": status.as_u16()}});
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

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
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
    let request: CompletionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!(
                    "the body is not a chat completion request ({e}); send JSON like {{\"model\": \"auto\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}"
                ),
            )
        }
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let runtime = state.runtime.clone();
    let cancel = CancellationToken::new();
    if !request.stream {
        let guard = CancelOnDrop(cancel.clone());
        let result = runtime
            .complete(
                request.model,
                request.messages,
                SamplingOverrides::default(),
                &|_| {},
                cancel,
            )
            .await;
        drop(guard);
        return match result {
            Ok(r) => Json(json!({
                "id": id, "object": "chat.completion", "created": created, "model": r.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": r.content},
                             "finish_reason": finish_reason(r.finish_reason)}],
                "usage": {"prompt_tokens": r.usage.prompt_tokens,
                          "completion_tokens": r.usage.completion_tokens,
                          "total_tokens": r.usage.prompt_tokens + r.usage.completion_tokens},
            }))
            .into_response(),
            Err(e) => runtime_error(&e),
        };
    }
    let (tx, rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<Event, std::convert::Infallible>>();
    let guard = CancelOnDrop(cancel.clone());
    tokio::spawn(async move {
        let send = |value: serde_json::Value| {
            let _ = tx.send(Ok(Event::default().data(value.to_string())));
        };
        let chunk = |model: &str, delta: serde_json::Value, finish: Option<&str>| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let on_event = |event: ChatEvent| match event {
            ChatEvent::Started { model } => send(chunk(
                &model,
                json!({"role": "assistant", "content": ""}),
                None,
            )),
            ChatEvent::Token { text } => send(chunk("", json!({"content": text}), None)),
            ChatEvent::Notice { .. } | ChatEvent::Restart { .. } => {}
        };
        match runtime
            .complete(
                request.model,
                request.messages,
                SamplingOverrides::default(),
                &on_event,
                cancel,
            )
            .await
        {
            Ok(r) => {
                send(chunk(
                    &r.model,
                    json!({}),
                    Some(finish_reason(r.finish_reason)),
                ));
                send(
                    json!({"id": id, "object": "chat.completion.chunk", "created": created,
                    "model": r.model, "choices": [],
                    "usage": {"prompt_tokens": r.usage.prompt_tokens,
                              "completion_tokens": r.usage.completion_tokens,
                              "total_tokens": r.usage.prompt_tokens + r.usage.completion_tokens}}),
                );
                let _ = tx.send(Ok(Event::default().data("[DONE]")));
            }
            Err(e) => {
                // Headers are gone: report the error in-stream, as OpenAI does, and end
                // without [DONE] so clients see the answer is incomplete.
                send(json!({"error": {"message": e.to_string(), "type": "engine_error"}}));
            }
        }
    });
    let stream = futures::StreamExt::map(
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        move |item| {
            let _keep = &guard;
            item
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
