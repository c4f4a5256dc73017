//! The Tasks view: the queue (runs, waiting tasks in run order, approvals), a run's steps
//! with their states for its graph, a step's history, logs and output, the templates with
//! the fields of their parameter schema, schedules; and the controls (run a template,
//! cancel, retry, approve/edit/reject, reorder, pause). A watcher turns the store's state
//! changes into `TasksChanged` events and a step that starts waiting for approval into a
//! desktop notification and the tray's tooltip.

use baton_core::TaskState;
use baton_store::{TaskFilter, TaskRecord};
use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::{AppHandle, State};
use tauri_specta::Event as _;

use crate::dto::AppError;
use crate::state::AppState;

type Res<T> = Result<T, AppError>;

/// A task as the view shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    /// Its id.
    pub id: String,
    /// Its run.
    pub run_id: String,
    /// The run's name.
    pub run_name: String,
    /// The step's id.
    pub step: String,
    /// Its kind.
    pub kind: String,
    /// queued, ready, running, succeeded, failed, cancelled, waiting_approval, skipped.
    pub state: String,
    /// What it runs on.
    pub resource: String,
    /// Higher first.
    pub priority: f64,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// 0..1 while running.
    pub progress: Option<f64>,
    /// The last error.
    pub error: Option<String>,
    /// Past its deadline.
    pub deadline_missed: bool,
    /// The steps it waits for.
    pub after: Vec<String>,
    /// The input as JSON.
    pub input: String,
    /// The output's text (or the file it wrote), when it succeeded.
    pub output_text: Option<String>,
    /// The whole output as JSON.
    pub output: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: f64,
    /// Finished, ms since the epoch.
    pub finished_ms: Option<f64>,
}

impl From<TaskRecord> for TaskInfo {
    fn from(t: TaskRecord) -> Self {
        let output_text = t.output.as_ref().and_then(|o| {
            o.get("text")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .or_else(|| o.get("file").and_then(|v| v.as_str()).map(str::to_owned))
        });
        Self {
            output: t
                .output
                .as_ref()
                .map(|o| serde_json::to_string_pretty(o).unwrap_or_default()),
            input: serde_json::to_string_pretty(&t.input).unwrap_or_default(),
            output_text,
            id: t.id,
            run_id: t.run_id,
            run_name: t.run_name,
            step: t.step,
            kind: t.kind,
            state: t.state.as_str().into(),
            resource: t.resource,
            priority: t.priority as f64,
            attempts: t.attempts.max(0) as u32,
            max_attempts: t.max_attempts.max(0) as u32,
            progress: t.progress,
            error: t.error,
            deadline_missed: t.deadline_missed,
            after: t.after,
            created_ms: t.created_ms as f64,
            finished_ms: t.finished_ms.map(|f| f as f64),
        }
    }
}

/// A run with its tasks counted.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `name@version` of its template.
    pub template: Option<String>,
    /// Who started it.
    pub origin: String,
    /// running, waiting_approval, succeeded, failed, cancelled.
    pub state: String,
    /// Tasks finished (any way).
    pub done: u32,
    /// Tasks in all.
    pub total: u32,
    /// Created, ms since the epoch.
    pub created_ms: f64,
}

/// The queue at a glance.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct QueueInfo {
    /// Whether the queue is paused.
    pub paused: bool,
    /// Recent runs, newest first.
    pub runs: Vec<RunInfo>,
    /// Tasks waiting or running, in the order they run.
    pub waiting: Vec<TaskInfo>,
    /// Steps waiting for a person.
    pub approvals: Vec<TaskInfo>,
}

/// One state change.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TaskEventInfo {
    /// When, ms since the epoch.
    pub at: f64,
    /// From (none when created).
    pub from: Option<String>,
    /// To.
    pub to: String,
    /// The attempt.
    pub attempt: u32,
    /// Why.
    pub reason: String,
}

/// A task with its history and log.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TaskDetail {
    /// The task.
    pub task: TaskInfo,
    /// Its state changes, oldest first.
    pub events: Vec<TaskEventInfo>,
    /// Its log lines.
    pub logs: Vec<String>,
}

/// One parameter of a template, for its form.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ParamFieldInfo {
    /// Its name.
    pub name: String,
    /// string, integer, number, boolean, array, object.
    pub kind: String,
    /// A label.
    pub title: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Its default as JSON.
    pub default: Option<String>,
    /// Must be given.
    pub required: bool,
    /// Allowed values (as text).
    pub choices: Vec<String>,
}

/// A template for the "Run a template" form.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TemplateInfo {
    /// `name@version`.
    pub key: String,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its parameters.
    pub fields: Vec<ParamFieldInfo>,
    /// Its steps' ids.
    pub steps: Vec<String>,
}

/// A schedule with its next times.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleInfo {
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// Its time zone.
    pub timezone: String,
    /// The template it runs.
    pub template: String,
    /// Whether it fires.
    pub enabled: bool,
    /// The expression in words.
    pub description: String,
    /// The next times, ms since the epoch.
    pub upcoming: Vec<f64>,
}

/// Sent when tasks change (from any process), with the approvals waiting.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct TasksChanged {
    /// Steps waiting for a person.
    pub approvals: u32,
}

fn summary(r: baton_store::RunSummary) -> RunInfo {
    let count = |s: &str| r.states.get(s).copied().unwrap_or(0).max(0) as u32;
    let total: u32 = r.states.values().map(|n| (*n).max(0) as u32).sum();
    let done = ["succeeded", "failed", "cancelled", "skipped"]
        .iter()
        .map(|s| count(s))
        .sum();
    RunInfo {
        state: r.state().into(),
        id: r.id,
        name: r.name,
        template: r.template,
        origin: r.origin,
        done,
        total,
        created_ms: r.created_ms as f64,
    }
}

/// The queue: recent runs, what waits or runs (in run order), and approvals.
#[tauri::command]
#[specta::specta]
pub async fn task_queue(state: State<'_, AppState>) -> Res<QueueInfo> {
    let rt = state.runtime()?;
    let store = rt.queue();
    let mut waiting = store
        .tasks(&TaskFilter {
            states: vec![TaskState::Running, TaskState::Ready, TaskState::Queued],
            ..TaskFilter::default()
        })
        .await?;
    waiting.sort_by(|a, b| {
        let running = |t: &TaskRecord| t.state != TaskState::Running;
        running(a)
            .cmp(&running(b))
            .then(b.priority.cmp(&a.priority))
            .then(a.position.cmp(&b.position))
    });
    let approvals = store
        .tasks(&TaskFilter {
            states: vec![TaskState::WaitingApproval],
            ..TaskFilter::default()
        })
        .await?;
    Ok(QueueInfo {
        paused: store.queue_paused().await?,
        runs: store.runs(30).await?.into_iter().map(summary).collect(),
        waiting: waiting.into_iter().map(Into::into).collect(),
        approvals: approvals.into_iter().map(Into::into).collect(),
    })
}

/// A run's steps in order, for its graph.
#[tauri::command]
#[specta::specta]
pub async fn run_tasks(state: State<'_, AppState>, run_id: String) -> Res<Vec<TaskInfo>> {
    let rt = state.runtime()?;
    let tasks = rt
        .queue()
        .tasks(&TaskFilter {
            run_id: Some(run_id),
            ..TaskFilter::default()
        })
        .await?;
    Ok(tasks.into_iter().map(Into::into).collect())
}

/// A step with its history and log.
#[tauri::command]
#[specta::specta]
pub async fn task_detail(state: State<'_, AppState>, id: String) -> Res<TaskDetail> {
    let rt = state.runtime()?;
    let store = rt.queue();
    let task = store.task(&id).await?;
    let events = store
        .task_events(&task.id)
        .await?
        .into_iter()
        .map(|e| TaskEventInfo {
            at: e.at as f64,
            from: e.from_state,
            to: e.to_state,
            attempt: e.attempt.max(0) as u32,
            reason: e.reason,
        })
        .collect();
    let logs = store
        .task_logs(&task.id, 0)
        .await?
        .into_iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect();
    Ok(TaskDetail {
        task: task.into(),
        events,
        logs,
    })
}

/// The templates with their parameter fields.
#[tauri::command]
#[specta::specta]
pub async fn task_templates(state: State<'_, AppState>) -> Res<Vec<TemplateInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .templates(false)
        .await?
        .into_iter()
        .map(|t| TemplateInfo {
            key: t.key(),
            name: t.doc().name.clone(),
            description: t
                .doc()
                .description
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            steps: t.doc().steps.iter().map(|s| s.id.clone()).collect(),
            fields: t
                .fields()
                .into_iter()
                .map(|f| ParamFieldInfo {
                    name: f.name,
                    kind: f.kind,
                    title: f.title,
                    description: f.description,
                    default: f.default.map(|d| d.to_string()),
                    required: f.required,
                    choices: f
                        .choices
                        .iter()
                        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                        .collect(),
                })
                .collect(),
        })
        .collect())
}

/// Starts a run of a template. `params` is a JSON object; values typed as text are read by
/// the schema (a number field given "3" is 3).
#[tauri::command]
#[specta::specta]
pub async fn start_template(
    state: State<'_, AppState>,
    key: String,
    params: String,
) -> Res<String> {
    let rt = state.runtime()?;
    let template = rt.template(&key).await?;
    let given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&params).map_err(|e| {
            AppError::new(
                "invalid",
                format!("the parameters are not a JSON object: {e}"),
            )
        })?;
    // Form fields arrive as text; the schema says what each one is.
    let pairs: Vec<(String, String)> = given
        .iter()
        .filter(|(_, v)| !matches!(v, serde_json::Value::String(s) if s.is_empty()))
        .map(|(k, v)| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), text)
        })
        .collect();
    let params = template
        .params_from_pairs(&pairs)
        .map_err(|e| AppError::new("invalid", e.to_string()))?;
    Ok(rt.run_template(&key, &params, "app").await?)
}

/// Cancels a task (its dependants too) or a run.
#[tauri::command]
#[specta::specta]
pub async fn cancel_task(state: State<'_, AppState>, id: String) -> Res<u32> {
    let rt = state.runtime()?;
    Ok(rt.cancel_tasks(&id, "cancelled in the app").await?.len() as u32)
}

/// Runs a failed, cancelled or skipped task again.
#[tauri::command]
#[specta::specta]
pub async fn retry_task(state: State<'_, AppState>, id: String) -> Res<()> {
    let rt = state.runtime()?;
    rt.queue().retry_task(&id).await?;
    rt.wake_worker();
    Ok(())
}

/// Approves a step waiting for a person, with the text edited or not.
#[tauri::command]
#[specta::specta]
pub async fn approve_task(
    state: State<'_, AppState>,
    id: String,
    edited: Option<String>,
) -> Res<()> {
    let rt = state.runtime()?;
    let edited = edited.map(|text| serde_json::json!({ "text": text }));
    rt.queue()
        .approve_task(&id, edited.as_ref(), "the app")
        .await?;
    rt.wake_worker();
    Ok(())
}

/// Rejects a step waiting for a person.
#[tauri::command]
#[specta::specta]
pub async fn reject_task(state: State<'_, AppState>, id: String, reason: String) -> Res<()> {
    let rt = state.runtime()?;
    let reason = if reason.trim().is_empty() {
        "rejected in the app".to_owned()
    } else {
        reason
    };
    rt.queue().reject_task(&id, &reason).await?;
    Ok(())
}

/// Moves a waiting task before another (or to the end of its priority).
#[tauri::command]
#[specta::specta]
pub async fn move_task(state: State<'_, AppState>, id: String, before: Option<String>) -> Res<()> {
    let rt = state.runtime()?;
    rt.queue().move_task(&id, before.as_deref()).await?;
    rt.wake_worker();
    Ok(())
}

/// Pauses or resumes the queue.
#[tauri::command]
#[specta::specta]
pub async fn set_queue_paused(state: State<'_, AppState>, paused: bool) -> Res<()> {
    let rt = state.runtime()?;
    rt.queue().set_queue_paused(paused).await?;
    rt.wake_worker();
    Ok(())
}

/// The schedules with their next times.
#[tauri::command]
#[specta::specta]
pub async fn task_schedules(state: State<'_, AppState>) -> Res<Vec<ScheduleInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .schedules()
        .await?
        .into_iter()
        .map(|s| ScheduleInfo {
            name: s.record.name,
            cron: s.record.cron,
            timezone: s.record.timezone,
            template: s.record.template,
            enabled: s.record.enabled,
            description: s.description,
            upcoming: s
                .upcoming
                .iter()
                .map(|t| t.timestamp_millis() as f64)
                .collect(),
        })
        .collect())
}

/// Follows the store's task changes (made by this app's worker, the CLI, the API or other
/// workers) and tells the window; a step that starts waiting for approval is announced on
/// the desktop and in the tray's tooltip.
pub fn watch(app: AppHandle, runtime: baton_runtime::Runtime, stop: baton_core::CancellationToken) {
    tauri::async_runtime::spawn(async move {
        let store = runtime.queue();
        let mut after = match store.task_events_since(0, 1_000_000).await {
            Ok(events) => events.last().map_or(0, |e| e.id),
            Err(_) => 0,
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(400)) => {}
            }
            let Ok(events) = store.task_events_since(after, 1000).await else {
                continue;
            };
            let Some(last) = events.last() else {
                continue;
            };
            after = last.id;
            let approvals = store
                .tasks(&TaskFilter {
                    states: vec![TaskState::WaitingApproval],
                    ..TaskFilter::default()
                })
                .await
                .unwrap_or_default();
            for event in events.iter().filter(|e| e.to_state == "waiting_approval") {
                if let Some(task) = approvals.iter().find(|t| t.id == event.task_id) {
                    notify(&format!(
                        "{}: {} waits for your approval",
                        task.run_name, task.step
                    ));
                }
            }
            if let Some(tray) = app.tray_by_id("baton") {
                let tip = match approvals.len() {
                    0 => "Baton".to_owned(),
                    1 => "Baton — 1 step waits for your approval".to_owned(),
                    n => format!("Baton — {n} steps wait for your approval"),
                };
                let _ = tray.set_tooltip(Some(tip));
            }
            let _ = TasksChanged {
                approvals: approvals.len() as u32,
            }
            .emit(&app);
        }
    });
}

/// A desktop notification through the freedesktop notification service (none is shown
/// where no service runs; the Tasks view's card is there either way).
fn notify(body: &str) {
    let body = body.to_owned();
    std::thread::spawn(move || {
        let result = (|| -> zbus::Result<()> {
            let connection = zbus::blocking::Connection::session()?;
            connection.call_method(
                Some("org.freedesktop.Notifications"),
                "/org/freedesktop/Notifications",
                Some("org.freedesktop.Notifications"),
                "Notify",
                &(
                    "Baton",
                    0u32,
                    "baton",
                    "Approval needed",
                    body.as_str(),
                    Vec::<&str>::new(),
                    std::collections::HashMap::<&str, zbus::zvariant::Value<'_>>::new(),
                    10_000i32,
                ),
            )?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::debug!(error = %e, "no desktop notification");
        }
    });
}
