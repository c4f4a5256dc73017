//! `/v1/tasks`: the task queue over HTTP, behind the same bearer token.
//!
//! - `POST /v1/tasks`: `{"template": "name[@version]", "params": {…}}` queues a template
//!   run; `{"kind": "chat", "input": {…}, "priority": 0, "deadline": "RFC 3339",
//!   "attempts": 3, "timeout_secs": 60}` queues one task. 201 with the run and its tasks.
//! - `GET /v1/tasks?state=running,ready&run=ID&limit=50`: tasks, newest first.
//! - `GET /v1/tasks/{id}`: a task with its state changes.
//! - `POST /v1/tasks/{id}/cancel`: cancels a task (and its dependants) or a whole run.
//! - `POST /v1/tasks/{id}/approve` (`{"text": "edited"}` optional) and `/reject`.
//! - `GET /v1/tasks/events?after=N&run=ID`: server-sent events, one per state change
//!   (`event: task`, the change and the task's current state as JSON), as they are stored.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baton_core::TaskState;
use baton_runtime::TaskOptions;
use baton_store::TaskFilter;
use serde_json::{json, Value};

use crate::{error, runtime_error, AppState};

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// `POST /v1/tasks`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_request(format!("the body is not a JSON object: {}", e.body_text())),
    };
    let runtime = &state.runtime;
    let run_id = if let Some(template) = body.get("template").and_then(Value::as_str) {
        let params = body.get("params").cloned().unwrap_or_else(|| json!({}));
        match runtime.run_template(template, &params, "api").await {
            Ok(id) => id,
            Err(e) => return task_error(&e),
        }
    } else if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        let deadline = match body.get("deadline").and_then(Value::as_str) {
            Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(d) => Some(d.with_timezone(&chrono::Utc)),
                Err(e) => {
                    return bad_request(format!("`deadline` is not an RFC 3339 date-time: {e}"))
                }
            },
            None => None,
        };
        let options = TaskOptions {
            priority: body.get("priority").and_then(Value::as_i64).unwrap_or(0),
            deadline,
            attempts: body
                .get("attempts")
                .and_then(Value::as_u64)
                .map(|a| a.clamp(1, 100) as u32),
            backoff_secs: None,
            timeout_secs: body.get("timeout_secs").and_then(Value::as_u64),
            origin: "api".into(),
        };
        let input = body.get("input").cloned().unwrap_or_else(|| json!({}));
        match runtime.add_task(kind, input, &options).await {
            Ok(task) => task.run_id,
            Err(e) => return task_error(&e),
        }
    } else {
        return bad_request("give `template` (with `params`) or `kind` (with `input`)");
    };
    let tasks = runtime
        .queue()
        .tasks(&TaskFilter {
            run_id: Some(run_id.clone()),
            ..TaskFilter::default()
        })
        .await;
    match tasks {
        Ok(tasks) => (
            StatusCode::CREATED,
            Json(json!({ "run": run_id, "tasks": tasks })),
        )
            .into_response(),
        Err(e) => runtime_error(&e.into()),
    }
}

/// Refusals of bad tasks are the client's fault: 400 with the reason.
fn task_error(e: &baton_runtime::RuntimeError) -> Response {
    match e {
        baton_runtime::RuntimeError::Task(m) => bad_request(m.clone()),
        baton_runtime::RuntimeError::Store(baton_store::StoreError::Invalid(m)) => {
            bad_request(m.clone())
        }
        other => runtime_error(other),
    }
}

/// Query of `GET /v1/tasks`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ListQuery {
    state: Option<String>,
    run: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/tasks`.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let mut states = Vec::new();
    for s in query
        .state
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        match s.parse::<TaskState>() {
            Ok(state) => states.push(state),
            Err(e) => return bad_request(e),
        }
    }
    let filter = TaskFilter {
        states,
        run_id: query.run,
        limit: query.limit.unwrap_or(100).min(1000),
    };
    match state.runtime.queue().tasks(&filter).await {
        Ok(tasks) => Json(json!({ "object": "list", "data": tasks })).into_response(),
        Err(e) => runtime_error(&e.into()),
    }
}

/// `GET /v1/tasks/{id}`.
pub(crate) async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    let store = state.runtime.queue();
    let task = match store.task(&id).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::NOT_FOUND, "not_found", e.to_string()),
    };
    match store.task_events(&task.id).await {
        Ok(events) => Json(json!({ "task": task, "events": events })).into_response(),
        Err(e) => runtime_error(&e.into()),
    }
}

/// `POST /v1/tasks/{id}/cancel`.
pub(crate) async fn cancel(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state
        .runtime
        .cancel_tasks(&id, "cancelled through the API")
        .await
    {
        Ok(ids) => Json(json!({ "cancelled": ids })).into_response(),
        Err(e) => task_error(&e),
    }
}

/// `POST /v1/tasks/{id}/approve`.
pub(crate) async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let store = state.runtime.queue();
    let edited = body.and_then(|Json(b)| {
        b.get("text")
            .and_then(Value::as_str)
            .map(|t| json!({ "text": t }))
    });
    let result = store.approve_task(&id, edited.as_ref(), "api").await;
    state.runtime.wake_worker();
    match result {
        Ok(output) => Json(json!({ "approved": id, "output": output })).into_response(),
        Err(e) => task_error(&e.into()),
    }
}

/// `POST /v1/tasks/{id}/reject`.
pub(crate) async fn reject(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let store = state.runtime.queue();
    let reason = body
        .and_then(|Json(b)| b.get("reason").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "rejected through the API".into());
    match store.reject_task(&id, &reason).await {
        Ok(()) => Json(json!({ "rejected": id })).into_response(),
        Err(e) => task_error(&e.into()),
    }
}

/// Query of the event stream.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EventsQuery {
    after: Option<i64>,
    run: Option<String>,
}

/// `GET /v1/tasks/events`: every stored state change after `after`, then new ones as they
/// are stored (the store is read every 200 ms; other processes write to it too).
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    let runtime = state.runtime.clone();
    tokio::spawn(async move {
        let store = runtime.queue();
        let mut after = query.after.unwrap_or(0);
        loop {
            let events = match store.task_events_since(after, 200).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "task event stream stopped");
                    return;
                }
            };
            for event in events {
                after = event.id;
                let Ok(task) = store.task(&event.task_id).await else {
                    continue;
                };
                if query.run.as_deref().is_some_and(|r| r != task.run_id) {
                    continue;
                }
                let data = json!({
                    "id": event.id, "task": task.id, "run": task.run_id, "step": task.step,
                    "from": event.from_state, "to": event.to_state, "reason": event.reason,
                    "attempt": event.attempt, "at": event.at, "progress": task.progress,
                    "state": task.state,
                });
                let sse = Event::default()
                    .event("task")
                    .id(event.id.to_string())
                    .data(data.to_string());
                if tx.send(Ok(sse)).await.is_err() {
                    return; // the client went away
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}
