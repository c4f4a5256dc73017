//! The durable task queue on SQLite: workflow runs, their tasks and dependencies, every
//! state change with its time and reason, logs, leases, approvals and retries.
//!
//! Each change is one transaction that checks the state it expects (`WHERE state = …`), so
//! several workers (threads or processes) share the queue without a lock manager: the one
//! whose update matched owns the change. A task's work is at least once (a worker killed
//! after the work and before the commit runs it again); a succeeded task never runs again.
//! Decisions (run order, admission, what a failure does to dependants, backoff) come from
//! `baton_core::tasks`.

use std::collections::BTreeMap;

use baton_core::tasks::{
    check_graph, dependant_outcome, dependants_of, reorder, retry_delay_ms, ReadyTask, TaskState,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Sqlite, Transaction};

use crate::error::StoreError;
use crate::open::Store;
use crate::time::now_ms;

/// The longest backoff between attempts.
pub const MAX_BACKOFF_MS: u64 = 10 * 60 * 1000;
/// The setting that pauses the whole queue.
const PAUSED_KEY: &str = "tasks.paused";

/// A task to add as a step of a new run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTask {
    /// The step's id within its run.
    pub step: String,
    /// `chat`, `transcribe`, `speak`, `ocr`, `batch`, `approval`, `write`, `noop`.
    pub kind: String,
    /// The input (strings are templates over parameters and earlier outputs).
    pub input: Value,
    /// What it runs on (`chat:MODEL`, `stt`, `tts`, `ocr`, `person`, `none`).
    pub resource: String,
    /// Memory the resource needs when not loaded, in MB.
    pub memory_mb: u64,
    /// Higher runs first.
    pub priority: i64,
    /// When it should be done, ms since the epoch.
    pub deadline_ms: Option<i64>,
    /// Attempts before it fails for good (at least 1).
    pub max_attempts: u32,
    /// The first backoff between attempts; it doubles each time.
    pub backoff_ms: u64,
    /// How long one attempt may run.
    pub timeout_ms: Option<u64>,
    /// The steps (of the same run) it waits for.
    pub after: Vec<String>,
}

/// A workflow run to add: a template instance, a single task or a schedule's firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRun {
    /// What a person sees.
    pub name: String,
    /// `name@version` when made from a template.
    pub template: Option<String>,
    /// The parameters its steps are rendered over.
    pub params: Value,
    /// Who made it: `cli`, `app`, `api`, `schedule:NAME`.
    pub origin: String,
    /// Its steps.
    pub tasks: Vec<NewTask>,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Its id (UUID v7).
    pub id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// The run's name.
    pub run_name: String,
    /// The step's id within the run.
    pub step: String,
    /// Its kind.
    pub kind: String,
    /// Its input, as stored (before rendering).
    pub input: Value,
    /// What it runs on.
    pub resource: String,
    /// Memory the resource needs, in MB.
    pub memory_mb: i64,
    /// Priority (higher first).
    pub priority: i64,
    /// Deadline, ms since the epoch.
    pub deadline_ms: Option<i64>,
    /// Order within its priority.
    pub position: i64,
    /// Its state.
    pub state: TaskState,
    /// Attempts started.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// First backoff.
    pub backoff_ms: i64,
    /// Time limit of one attempt.
    pub timeout_ms: Option<i64>,
    /// A retry waits until then.
    pub not_before_ms: Option<i64>,
    /// The worker running it.
    pub lease_owner: Option<String>,
    /// When the lease lapses.
    pub lease_until_ms: Option<i64>,
    /// Progress 0..1 while running.
    pub progress: Option<f64>,
    /// Where a resumable kind continues.
    pub checkpoint: Option<Value>,
    /// The output when it succeeded.
    pub output: Option<Value>,
    /// The last error.
    pub error: Option<String>,
    /// It finished after its deadline (or is past it).
    pub deadline_missed: bool,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// First started.
    pub started_ms: Option<i64>,
    /// Finished.
    pub finished_ms: Option<i64>,
    /// The steps it waits for.
    pub after: Vec<String>,
}

/// One change of a task's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TaskEvent {
    /// Order of events.
    pub id: i64,
    /// The task.
    pub task_id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// The state before (`None` when created).
    pub from_state: Option<String>,
    /// The state after.
    pub to_state: String,
    /// The attempt it belongs to.
    pub attempt: i64,
    /// The worker that made it.
    pub worker: Option<String>,
    /// Why.
    pub reason: String,
}

/// A log line a task wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TaskLog {
    /// Order of lines.
    pub id: i64,
    /// The task.
    pub task_id: String,
    /// When.
    pub at: i64,
    /// `info`, `warn`, `error`.
    pub level: String,
    /// The line.
    pub message: String,
}

/// A run with its tasks counted by state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `name@version` of its template.
    pub template: Option<String>,
    /// Its parameters.
    pub params: Value,
    /// Who made it.
    pub origin: String,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Tasks per state.
    pub states: BTreeMap<String, i64>,
}

impl RunSummary {
    /// The run's overall state: running while any task is not finished, else failed when
    /// any failed, cancelled when any was cancelled, else succeeded.
    pub fn state(&self) -> &'static str {
        let count = |s: &str| self.states.get(s).copied().unwrap_or(0);
        if count("waiting_approval") > 0 {
            "waiting_approval"
        } else if count("running") + count("ready") + count("queued") > 0 {
            "running"
        } else if count("failed") + count("skipped") > 0 {
            "failed"
        } else if count("cancelled") > 0 {
            "cancelled"
        } else {
            "succeeded"
        }
    }
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only these states.
    pub states: Vec<TaskState>,
    /// Only this run.
    pub run_id: Option<String>,
    /// At most this many (newest first); 0 for all.
    pub limit: u32,
}

/// A stored template version.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TemplateRecord {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: i64,
    /// Its YAML text.
    pub yaml: String,
    /// Shipped with Baton.
    pub builtin: bool,
    /// Stored, ms since the epoch.
    pub created_at: i64,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ScheduleRecord {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone it is read in.
    pub timezone: String,
    /// `name` or `name@version` of the template it runs.
    pub template: String,
    /// The parameters, JSON.
    pub params: String,
    /// Whether it fires.
    pub enabled: bool,
    /// `run_once` (a missed time runs once at start) or `skip`.
    pub missed: String,
    /// Its next time, ms since the epoch.
    pub next_run_at: Option<i64>,
    /// Its last firing.
    pub last_run_at: Option<i64>,
    /// The run it last made.
    pub last_run_id: Option<String>,
    /// Created.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    name: String,
    template: Option<String>,
    params: String,
    origin: String,
    created_at: i64,
    states: String,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    run_id: String,
    run_name: String,
    step: String,
    kind: String,
    input: String,
    resource: String,
    memory_mb: i64,
    priority: i64,
    deadline: Option<i64>,
    position: i64,
    state: String,
    attempts: i64,
    max_attempts: i64,
    backoff_ms: i64,
    timeout_ms: Option<i64>,
    not_before: Option<i64>,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    progress: Option<f64>,
    checkpoint: Option<String>,
    output: Option<String>,
    error: Option<String>,
    deadline_missed: bool,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    after_steps: Option<String>,
}

const TASK_SELECT: &str = "SELECT t.id, t.run_id, r.name AS run_name, t.step, t.kind, t.input,
        t.resource, t.memory_mb, t.priority, t.deadline, t.position, t.state, t.attempts,
        t.max_attempts, t.backoff_ms, t.timeout_ms, t.not_before, t.lease_owner, t.lease_until,
        t.progress, t.checkpoint, t.output, t.error, t.deadline_missed, t.created_at,
        t.started_at, t.finished_at,
        (SELECT group_concat(d2.step, char(31)) FROM task_deps d JOIN tasks d2 ON d2.id = d.depends_on
          WHERE d.task_id = t.id) AS after_steps
    FROM tasks t JOIN task_runs r ON r.id = t.run_id";

fn json(text: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("stored {what} is not valid JSON: {e}")))
}

impl TryFrom<TaskRow> for TaskRecord {
    type Error = StoreError;

    fn try_from(row: TaskRow) -> Result<Self, StoreError> {
        let state = row
            .state
            .parse::<TaskState>()
            .map_err(StoreError::Invalid)?;
        let now = now_ms();
        let mut after: Vec<String> = row
            .after_steps
            .map(|s| s.split('\u{1f}').map(str::to_owned).collect())
            .unwrap_or_default();
        after.sort();
        Ok(TaskRecord {
            input: json(&row.input, "task input")?,
            checkpoint: row
                .checkpoint
                .as_deref()
                .map(|c| json(c, "checkpoint"))
                .transpose()?,
            output: row
                .output
                .as_deref()
                .map(|o| json(o, "task output"))
                .transpose()?,
            deadline_missed: row.deadline_missed
                || (!state.is_terminal() && row.deadline.is_some_and(|d| d < now)),
            id: row.id,
            run_id: row.run_id,
            run_name: row.run_name,
            step: row.step,
            kind: row.kind,
            resource: row.resource,
            memory_mb: row.memory_mb,
            priority: row.priority,
            deadline_ms: row.deadline,
            position: row.position,
            state,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            backoff_ms: row.backoff_ms,
            timeout_ms: row.timeout_ms,
            not_before_ms: row.not_before,
            lease_owner: row.lease_owner,
            lease_until_ms: row.lease_until,
            progress: row.progress,
            error: row.error,
            created_ms: row.created_at,
            started_ms: row.started_at,
            finished_ms: row.finished_at,
            after,
        })
    }
}

/// Records a state change inside a transaction.
#[allow(clippy::too_many_arguments)]
async fn event(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    from: Option<TaskState>,
    to: TaskState,
    attempt: i64,
    worker: Option<&str>,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO task_events (task_id, at, from_state, to_state, attempt, worker, reason)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(task_id)
    .bind(at)
    .bind(from.map(TaskState::as_str))
    .bind(to.as_str())
    .bind(attempt)
    .bind(worker)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The state a task enters when its dependencies have succeeded.
fn ready_state(kind: &str) -> TaskState {
    if kind == "approval" {
        TaskState::WaitingApproval
    } else {
        TaskState::Ready
    }
}

impl Store {
    /// Adds a run and its tasks in one transaction. Steps without dependencies are ready
    /// at once; the graph is checked first (a cycle is refused, naming it).
    pub(crate) async fn create_run(
        &self,
        run: &NewRun,
    ) -> Result<(String, Vec<String>), StoreError> {
        if run.tasks.is_empty() {
            return Err(StoreError::Invalid("a run needs at least one step".into()));
        }
        let graph: Vec<(String, Vec<String>)> = run
            .tasks
            .iter()
            .map(|t| (t.step.clone(), t.after.clone()))
            .collect();
        let order = check_graph(&graph).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let run_id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO task_runs (id, name, template, params, origin, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&run_id)
        .bind(&run.name)
        .bind(&run.template)
        .bind(run.params.to_string())
        .bind(&run.origin)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (mut position,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM tasks")
                .fetch_one(&mut *tx)
                .await?;
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        let mut in_order = vec![String::new(); run.tasks.len()];
        for index in order {
            let task = &run.tasks[index];
            let id = uuid::Uuid::now_v7().to_string();
            position += 1;
            let state = if task.after.is_empty() {
                ready_state(&task.kind)
            } else {
                TaskState::Queued
            };
            sqlx::query(
                "INSERT INTO tasks (id, run_id, step, kind, input, resource, memory_mb, priority,
                    deadline, position, state, max_attempts, backoff_ms, timeout_ms, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(&run_id)
            .bind(&task.step)
            .bind(&task.kind)
            .bind(task.input.to_string())
            .bind(&task.resource)
            .bind(task.memory_mb as i64)
            .bind(task.priority)
            .bind(task.deadline_ms)
            .bind(position)
            .bind(state.as_str())
            .bind(task.max_attempts.max(1) as i64)
            .bind(task.backoff_ms.min(MAX_BACKOFF_MS) as i64)
            .bind(task.timeout_ms.map(|t| t as i64))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for need in &task.after {
                sqlx::query("INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)")
                    .bind(&id)
                    .bind(&ids[need.as_str()])
                    .execute(&mut *tx)
                    .await?;
            }
            let reason = match state {
                TaskState::Queued => format!("added; waits for {}", task.after.join(", ")),
                TaskState::WaitingApproval => "added; waits for a person's approval".into(),
                _ => "added; ready to run".into(),
            };
            event(&mut tx, &id, None, state, 0, None, &reason, now).await?;
            ids.insert(&task.step, id.clone());
            in_order[index] = id;
        }
        tx.commit().await?;
        Ok((run_id, in_order))
    }

    /// Ready tasks whose backoff has passed, in no particular order (the scheduler orders
    /// them). Empty while the queue is paused.
    pub(crate) async fn ready_tasks(&self) -> Result<Vec<ReadyTask>, StoreError> {
        if self.queue_paused().await? {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64, Option<i64>, i64, String, i64)> = sqlx::query_as(
            "SELECT id, priority, deadline, position, resource, memory_mb FROM tasks
             WHERE state = 'ready' AND (not_before IS NULL OR not_before <= ?)
             ORDER BY priority DESC, position LIMIT 500",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, priority, deadline_ms, position, resource, memory_mb)| ReadyTask {
                    id,
                    priority,
                    deadline_ms,
                    position,
                    resource,
                    memory_mb: memory_mb.max(0) as u64,
                },
            )
            .collect())
    }

    /// When the next backed-off ready task may run (ms since the epoch), if one waits.
    pub(crate) async fn next_retry_at(&self) -> Result<Option<i64>, StoreError> {
        let (at,): (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(not_before) FROM tasks WHERE state = 'ready' AND not_before > ?",
        )
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(at)
    }

    /// Takes a ready task for `worker` with a lease of `lease_ms`. `None` when another
    /// worker took it first (or it is no longer ready).
    pub(crate) async fn claim_task(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let claimed: Option<(i64,)> = sqlx::query_as(
            "UPDATE tasks SET state = 'running', attempts = attempts + 1, lease_owner = ?,
                lease_until = ?, started_at = COALESCE(started_at, ?), not_before = NULL,
                progress = NULL
             WHERE id = ? AND state = 'ready' AND (not_before IS NULL OR not_before <= ?)
             RETURNING attempts",
        )
        .bind(worker)
        .bind(now + lease_ms as i64)
        .bind(now)
        .bind(task_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt,)) = claimed else {
            // Roll back now: a dropped transaction keeps its write lock until the
            // pooled connection is used again, and other writers time out on it.
            tx.rollback().await?;
            return Ok(None);
        };
        event(
            &mut tx,
            task_id,
            Some(TaskState::Ready),
            TaskState::Running,
            attempt,
            Some(worker),
            &format!("attempt {attempt} started on {worker}"),
            now,
        )
        .await?;
        tx.commit().await?;
        self.load_task(task_id).await.map(Some)
    }

    /// Renews `worker`'s lease and records progress. `false` when the task is no longer
    /// running under this worker (cancelled, or its lease was taken away): stop its work.
    pub(crate) async fn renew_lease(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET lease_until = ?, progress = COALESCE(?, progress)
             WHERE id = ? AND state = 'running' AND lease_owner = ?",
        )
        .bind(now_ms() + lease_ms as i64)
        .bind(progress.map(|p| p.clamp(0.0, 1.0)))
        .bind(task_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores where a resumable task got to (a batch's rows done), under `worker`'s lease.
    pub(crate) async fn save_checkpoint(
        &self,
        task_id: &str,
        worker: &str,
        checkpoint: &Value,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tasks SET checkpoint = ?, progress = COALESCE(?, progress)
             WHERE id = ? AND state = 'running' AND lease_owner = ?",
        )
        .bind(checkpoint.to_string())
        .bind(progress.map(|p| p.clamp(0.0, 1.0)))
        .bind(task_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks `worker`'s running task succeeded with its output and readies the dependants
    /// whose dependencies have all succeeded. `false` when it was not running under this
    /// worker any more (the output is dropped).
    pub(crate) async fn complete_task(
        &self,
        task_id: &str,
        worker: &str,
        output: &Value,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let done: Option<(i64, Option<i64>)> = sqlx::query_as(
            "UPDATE tasks SET state = 'succeeded', output = ?, error = NULL, finished_at = ?,
                lease_owner = NULL, lease_until = NULL, progress = 1.0,
                deadline_missed = (deadline IS NOT NULL AND deadline < ?)
             WHERE id = ? AND state = 'running' AND lease_owner = ?
             RETURNING attempts, deadline",
        )
        .bind(output.to_string())
        .bind(now)
        .bind(now)
        .bind(task_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt, deadline)) = done else {
            // Roll back now: a dropped transaction keeps its write lock until the
            // pooled connection is used again, and other writers time out on it.
            tx.rollback().await?;
            return Ok(false);
        };
        let reason = match deadline {
            Some(d) if d < now => format!(
                "succeeded {} s after its deadline",
                (now - d).div_euclid(1000)
            ),
            _ => "succeeded".into(),
        };
        event(
            &mut tx,
            task_id,
            Some(TaskState::Running),
            TaskState::Succeeded,
            attempt,
            Some(worker),
            &reason,
            now,
        )
        .await?;
        promote_dependants(&mut tx, task_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt of `worker`'s running task. With attempts left and a
    /// retryable error it goes back to ready after its backoff; otherwise it fails and its
    /// dependants are skipped. Returns the new state (`None` when it was not running under
    /// this worker).
    pub(crate) async fn fail_task(
        &self,
        task_id: &str,
        worker: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Option<TaskState>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT attempts, max_attempts, backoff_ms FROM tasks
             WHERE id = ? AND state = 'running' AND lease_owner = ?",
        )
        .bind(task_id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt, max_attempts, backoff)) = row else {
            // Roll back now: a dropped transaction keeps its write lock until the
            // pooled connection is used again, and other writers time out on it.
            tx.rollback().await?;
            return Ok(None);
        };
        let state = after_failure(
            &mut tx,
            task_id,
            Some(worker),
            attempt,
            max_attempts,
            backoff,
            retryable,
            &format!("attempt {attempt} failed: {error}"),
            error,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(state))
    }

    /// Takes running tasks whose lease lapsed (their worker died or hung) back: ready again
    /// when attempts are left (the lost attempt counts and is recorded), else failed.
    /// Returns the tasks moved.
    pub(crate) async fn recover_expired_leases(
        &self,
    ) -> Result<Vec<(String, TaskState)>, StoreError> {
        let now = now_ms();
        self.take_back(LeaseLoss::Expired(now), now).await
    }

    /// Takes back at once the running tasks leased to `worker` (a worker that restarts
    /// under the same name: its earlier attempts died with it). Recorded like a lapsed lease,
    /// without a backoff: the attempt was lost, not failed.
    pub(crate) async fn release_worker_leases(
        &self,
        worker: &str,
    ) -> Result<Vec<(String, TaskState)>, StoreError> {
        self.take_back(LeaseLoss::Restarted(worker), now_ms()).await
    }

    /// Moves the running tasks whose lease is lost back to ready (or failed), each in its
    /// own transaction that checks the loss again.
    async fn take_back(
        &self,
        loss: LeaseLoss<'_>,
        now: i64,
    ) -> Result<Vec<(String, TaskState)>, StoreError> {
        let (condition, bind) = match loss {
            LeaseLoss::Expired(at) => ("lease_until < CAST(? AS INTEGER)", at.to_string()),
            LeaseLoss::Restarted(worker) => ("lease_owner = ?", worker.to_owned()),
        };
        let lost: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT id FROM tasks WHERE state = 'running' AND {condition} LIMIT 1000"
        ))
        .bind(&bind)
        .fetch_all(&self.pool)
        .await?;
        let mut moved = Vec::new();
        for (id,) in lost {
            let mut tx = self.begin_write().await?;
            let row: Option<(i64, i64, i64, Option<String>)> = sqlx::query_as(&format!(
                "SELECT attempts, max_attempts, backoff_ms, lease_owner FROM tasks
                 WHERE id = ? AND state = 'running' AND {condition}"
            ))
            .bind(&id)
            .bind(&bind)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((attempt, max_attempts, backoff, owner)) = row else {
                continue;
            };
            let owner = owner.unwrap_or_else(|| "a worker".into());
            let (error, backoff) = match loss {
                LeaseLoss::Expired(_) => (
                    format!("{owner} stopped during attempt {attempt} (its lease expired)"),
                    backoff,
                ),
                LeaseLoss::Restarted(_) => {
                    (format!("{owner} restarted during attempt {attempt}"), 0)
                }
            };
            let state = after_failure(
                &mut tx,
                &id,
                None,
                attempt,
                max_attempts,
                backoff,
                true,
                &error,
                &error,
                now,
            )
            .await?;
            tx.commit().await?;
            moved.push((id, state));
        }
        Ok(moved)
    }

    /// Cancels a task that has not finished (a running one's worker sees it at its next
    /// lease renewal and stops) and every dependant that has not finished, with `reason`.
    /// Returns the ids cancelled.
    pub(crate) async fn cancel_task(
        &self,
        task_id: &str,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT state, step, attempts FROM tasks WHERE id = ?")
                .bind(task_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((state, step, attempt)) = row else {
            return Err(StoreError::Invalid(format!(
                "no task `{task_id}`; list tasks with `baton tasks list`"
            )));
        };
        let state = state.parse::<TaskState>().map_err(StoreError::Invalid)?;
        if state.is_terminal() {
            return Err(StoreError::Invalid(format!(
                "task {step} is already {state}; nothing to cancel"
            )));
        }
        set_state(
            &mut tx,
            task_id,
            state,
            TaskState::Cancelled,
            attempt,
            reason,
            now,
        )
        .await?;
        let mut cancelled = vec![task_id.to_owned()];
        cancelled.extend(
            finish_dependants(
                &mut tx,
                task_id,
                TaskState::Cancelled,
                &format!("step {step} was cancelled"),
                now,
            )
            .await?,
        );
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Cancels every unfinished task of a run.
    pub(crate) async fn cancel_run(
        &self,
        run_id: &str,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM tasks WHERE run_id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled', 'skipped')
             ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut cancelled = Vec::new();
        for (id,) in ids {
            match self.cancel_task(&id, reason).await {
                Ok(list) => cancelled.extend(list),
                // Cancelled already as a dependant of an earlier one.
                Err(StoreError::Invalid(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    /// Approves a step waiting for a person (`task_id` may be the id's first or last
    /// characters, as with [`Store::task`]): its output is `edited` when given, else what its
    /// dependencies produced (one dependency's output as is; several as an object by step).
    /// Its dependants become ready.
    pub(crate) async fn approve_task(
        &self,
        task_id: &str,
        edited: Option<&Value>,
        by: &str,
    ) -> Result<Value, StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let outputs: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT t.step, t.output FROM task_deps d JOIN tasks t ON t.id = d.depends_on
             WHERE d.task_id = ? ORDER BY t.position",
        )
        .bind(task_id)
        .fetch_all(&mut *tx)
        .await?;
        let output = match edited {
            Some(value) => value.clone(),
            None if outputs.len() == 1 => outputs[0]
                .1
                .as_deref()
                .map(|o| json(o, "task output"))
                .transpose()?
                .unwrap_or(Value::Null),
            None => {
                let mut map = serde_json::Map::new();
                for (step, output) in outputs {
                    let value = output
                        .as_deref()
                        .map(|o| json(o, "task output"))
                        .transpose()?;
                    map.insert(step, value.unwrap_or(Value::Null));
                }
                Value::Object(map)
            }
        };
        let done: Option<(i64,)> = sqlx::query_as(
            "UPDATE tasks SET state = 'succeeded', output = ?, finished_at = ?
             WHERE id = ? AND state = 'waiting_approval' RETURNING attempts",
        )
        .bind(output.to_string())
        .bind(now)
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt,)) = done else {
            return Err(StoreError::Invalid(format!(
                "task `{task_id}` is not waiting for approval"
            )));
        };
        let reason = if edited.is_some() {
            format!("approved with edits by {by}")
        } else {
            format!("approved by {by}")
        };
        event(
            &mut tx,
            task_id,
            Some(TaskState::WaitingApproval),
            TaskState::Succeeded,
            attempt,
            None,
            &reason,
            now,
        )
        .await?;
        promote_dependants(&mut tx, task_id, now).await?;
        tx.commit().await?;
        Ok(output)
    }

    /// Rejects a step waiting for a person (an id or its first or last characters): it fails
    /// (not retried) and its dependants are skipped.
    pub(crate) async fn reject_task(&self, task_id: &str, reason: &str) -> Result<(), StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT step, attempts FROM tasks WHERE id = ? AND state = 'waiting_approval'",
        )
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((step, attempt)) = row else {
            return Err(StoreError::Invalid(format!(
                "task `{task_id}` is not waiting for approval"
            )));
        };
        let why = format!("rejected: {reason}");
        sqlx::query("UPDATE tasks SET error = ? WHERE id = ?")
            .bind(&why)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        set_state(
            &mut tx,
            task_id,
            TaskState::WaitingApproval,
            TaskState::Failed,
            attempt,
            &why,
            now,
        )
        .await?;
        finish_dependants(
            &mut tx,
            task_id,
            TaskState::Skipped,
            &format!("step {step} was rejected"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs a failed, cancelled or skipped task (an id or its first or last characters) again
    /// (attempts start over), and puts its skipped or cancelled dependants back in the queue.
    pub(crate) async fn retry_task(&self, task_id: &str) -> Result<TaskState, StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT state, kind FROM tasks WHERE id = ?")
                .bind(task_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((state, kind)) = row else {
            return Err(StoreError::Invalid(format!("no task `{task_id}`")));
        };
        let state = state.parse::<TaskState>().map_err(StoreError::Invalid)?;
        if !matches!(
            state,
            TaskState::Failed | TaskState::Cancelled | TaskState::Skipped
        ) {
            return Err(StoreError::Invalid(format!(
                "task `{task_id}` is {state}; only failed, cancelled or skipped tasks are retried"
            )));
        }
        let target = requeue_state(&mut tx, task_id, &kind).await?;
        reset_for_retry(&mut tx, task_id, state, target, "retried by hand", now).await?;
        let edges = run_edges(&mut tx, task_id).await?;
        for dependant in dependants_of(&edges, task_id) {
            let (dstate,): (String,) = sqlx::query_as("SELECT state FROM tasks WHERE id = ?")
                .bind(dependant)
                .fetch_one(&mut *tx)
                .await?;
            let dstate = dstate.parse::<TaskState>().map_err(StoreError::Invalid)?;
            if matches!(dstate, TaskState::Skipped | TaskState::Cancelled) {
                reset_for_retry(
                    &mut tx,
                    dependant,
                    dstate,
                    TaskState::Queued,
                    "a dependency was retried",
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(target)
    }

    /// Pauses or resumes the whole queue (running tasks finish; nothing new starts).
    pub(crate) async fn set_queue_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.set_setting(PAUSED_KEY, &Value::Bool(paused)).await
    }

    /// Whether the queue is paused.
    pub(crate) async fn queue_paused(&self) -> Result<bool, StoreError> {
        Ok(self.setting(PAUSED_KEY).await?.and_then(|v| v.as_bool()) == Some(true))
    }

    /// Moves a waiting task just before `before` in the run order (taking its priority), or
    /// to the end of its priority when `before` is `None`; either id may be its first or last
    /// characters.
    pub(crate) async fn move_task(
        &self,
        task_id: &str,
        before: Option<&str>,
    ) -> Result<(), StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        let before = match before {
            Some(other) => Some(self.resolve_task_id(other).await?),
            None => None,
        };
        let before = before.as_deref();
        let mut tx = self.begin_write().await?;
        let waiting: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, priority FROM tasks WHERE state IN ('queued', 'ready')
             ORDER BY priority DESC, position",
        )
        .fetch_all(&mut *tx)
        .await?;
        let order = reorder(waiting, task_id, before).map_err(StoreError::Invalid)?;
        let (base,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM tasks")
            .fetch_one(&mut *tx)
            .await?;
        for (i, (id, p)) in order.iter().enumerate() {
            sqlx::query("UPDATE tasks SET position = ?, priority = ? WHERE id = ?")
                .bind(base + 1 + i as i64)
                .bind(p)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a line to a task's log.
    pub(crate) async fn add_task_log(
        &self,
        task_id: &str,
        level: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO task_logs (task_id, at, level, message) VALUES (?, ?, ?, ?)")
            .bind(task_id)
            .bind(now_ms())
            .bind(level)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A task by id or unique id prefix (at least 4 characters).
    pub(crate) async fn task(&self, id: &str) -> Result<TaskRecord, StoreError> {
        let id = self.resolve_task_id(id).await?;
        self.load_task(&id).await
    }

    /// A task by its whole id.
    async fn load_task(&self, id: &str) -> Result<TaskRecord, StoreError> {
        let row: TaskRow = sqlx::query_as(&format!("{TASK_SELECT} WHERE t.id = ?"))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    /// Resolves the first or the last characters of a task id (lists show the last 8) to
    /// one task id.
    pub(crate) async fn resolve_task_id(&self, prefix: &str) -> Result<String, StoreError> {
        let prefix = prefix.trim();
        if prefix.len() < 4 {
            return Err(StoreError::Invalid(format!(
                "`{prefix}` is too short for a task id; give at least 4 characters (see `baton tasks list`)"
            )));
        }
        let mut ids: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM tasks WHERE id >= ? AND id < ? || 'g' LIMIT 2")
                .bind(prefix)
                .bind(prefix)
                .fetch_all(&self.pool)
                .await?;
        ids.retain(|(i,)| i.starts_with(prefix));
        if ids.is_empty() {
            ids = sqlx::query_as("SELECT id FROM tasks WHERE id LIKE '%' || ? LIMIT 2")
                .bind(prefix)
                .fetch_all(&self.pool)
                .await?;
        }
        let ids: Vec<String> = ids.into_iter().map(|(i,)| i).collect();
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(StoreError::Invalid(format!(
                "no task matches `{prefix}`; list tasks with `baton tasks list`"
            ))),
            _ => Err(StoreError::Invalid(format!(
                "`{prefix}` matches several tasks; give more characters"
            ))),
        }
    }

    /// Tasks, newest first.
    pub(crate) async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        let mut sql = format!("{TASK_SELECT} WHERE 1 = 1");
        if !filter.states.is_empty() {
            let list: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND t.state IN ({})", list.join(", ")));
        }
        if filter.run_id.is_some() {
            sql.push_str(" AND t.run_id = ?");
        }
        if filter.run_id.is_some() {
            sql.push_str(" ORDER BY t.position");
        } else {
            sql.push_str(" ORDER BY t.created_at DESC, t.position DESC");
        }
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let mut query = sqlx::query_as::<_, TaskRow>(&sql);
        if let Some(run) = &filter.run_id {
            query = query.bind(run);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// A task's state changes, oldest first.
    pub(crate) async fn task_events(&self, task_id: &str) -> Result<Vec<TaskEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, task_id, at, from_state, to_state, attempt, worker, reason
             FROM task_events WHERE task_id = ? ORDER BY id",
        )
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every state change after event `after_id` (0 for all), oldest first: what
    /// `tasks watch` and progress streams follow.
    pub(crate) async fn task_events_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, task_id, at, from_state, to_state, attempt, worker, reason
             FROM task_events WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after_id)
        .bind(limit.max(1) as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A task's log lines after `after_id`, oldest first.
    pub(crate) async fn task_logs(
        &self,
        task_id: &str,
        after_id: i64,
    ) -> Result<Vec<TaskLog>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, task_id, at, level, message FROM task_logs
             WHERE task_id = ? AND id > ? ORDER BY id",
        )
        .bind(task_id)
        .bind(after_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The outputs of the steps of `task_id`'s run that have succeeded, by step.
    pub(crate) async fn run_outputs(
        &self,
        run_id: &str,
    ) -> Result<BTreeMap<String, Value>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT step, output FROM tasks WHERE run_id = ? AND state = 'succeeded' AND output IS NOT NULL",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(step, output)| Ok((step, json(&output, "task output")?)))
            .collect()
    }

    /// A run's parameters (what its steps are rendered over).
    pub(crate) async fn run_params(&self, run_id: &str) -> Result<Value, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT params FROM task_runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        let (params,) = row.ok_or_else(|| StoreError::Invalid(format!("no run `{run_id}`")))?;
        json(&params, "run parameters")
    }

    /// Runs, newest first, with their tasks counted by state.
    pub(crate) async fn runs(&self, limit: u32) -> Result<Vec<RunSummary>, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT r.id, r.name, r.template, r.params, r.origin, r.created_at,
                (SELECT json_group_object(state, n) FROM
                    (SELECT state, COUNT(*) AS n FROM tasks WHERE run_id = r.id GROUP BY state))
                    AS states
             FROM task_runs r ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
        )
        .bind(if limit == 0 { -1 } else { i64::from(limit) })
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RunSummary {
                    params: json(&r.params, "run parameters")?,
                    states: serde_json::from_str(&r.states).unwrap_or_default(),
                    id: r.id,
                    name: r.name,
                    template: r.template,
                    origin: r.origin,
                    created_ms: r.created_at,
                })
            })
            .collect()
    }

    /// How many tasks are in each state.
    pub(crate) async fn task_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// The resources of the unfinished tasks (one index scan per state).
    pub(crate) async fn waiting_resources(
        &self,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT resource FROM tasks WHERE state IN ('queued', 'ready', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// Stores a template version (replacing the same name and version).
    pub async fn save_template(
        &self,
        name: &str,
        version: i64,
        yaml: &str,
        builtin: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO task_templates (name, version, yaml, builtin, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(name, version) DO UPDATE SET yaml = excluded.yaml, builtin = excluded.builtin",
        )
        .bind(name)
        .bind(version)
        .bind(yaml)
        .bind(builtin)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A template: the given version, or the newest.
    pub async fn template(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<TemplateRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, version, yaml, builtin, created_at FROM task_templates
             WHERE name = ? AND (? IS NULL OR version = ?) ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .bind(version)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every template version, by name then version.
    pub async fn templates(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, version, yaml, builtin, created_at FROM task_templates ORDER BY name, version",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds a schedule.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_schedule(
        &self,
        name: &str,
        cron: &str,
        timezone: &str,
        template: &str,
        params: &Value,
        missed: &str,
        next_run_at: Option<i64>,
    ) -> Result<ScheduleRecord, StoreError> {
        let result = sqlx::query(
            "INSERT INTO task_schedules (name, cron, timezone, template, params, enabled, missed,
                next_run_at, created_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
        )
        .bind(name)
        .bind(cron)
        .bind(timezone)
        .bind(template)
        .bind(params.to_string())
        .bind(missed)
        .bind(next_run_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Invalid(format!(
                    "a schedule called `{name}` exists; remove it first or choose another name"
                )))
            }
            other => {
                other?;
            }
        }
        self.schedule(name).await
    }

    /// A schedule by name.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleRecord, StoreError> {
        sqlx::query_as(
            "SELECT id, name, cron, timezone, template, params, enabled, missed, next_run_at,
                last_run_at, last_run_id, created_at FROM task_schedules WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "no schedule `{name}`; list them with `baton schedules list`"
            ))
        })
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, name, cron, timezone, template, params, enabled, missed, next_run_at,
                last_run_at, last_run_id, created_at FROM task_schedules ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Enables (with its next time) or disables a schedule.
    pub async fn set_schedule_enabled(
        &self,
        name: &str,
        enabled: bool,
        next_run_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE task_schedules SET enabled = ?, next_run_at = ? WHERE name = ?")
                .bind(enabled)
                .bind(next_run_at)
                .bind(name)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!("no schedule `{name}`")));
        }
        Ok(())
    }

    /// Removes a schedule (the runs it made stay).
    pub async fn remove_schedule(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM task_schedules WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!("no schedule `{name}`")));
        }
        Ok(())
    }

    /// Moves a schedule from the time `expected_next` (which has come) to `next_run_at`.
    /// Only the first of several workers to do so for a time wins: `false` when another
    /// already took it.
    pub async fn advance_schedule(
        &self,
        id: i64,
        expected_next: i64,
        next_run_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE task_schedules SET next_run_at = ? WHERE id = ? AND next_run_at = ?",
        )
        .bind(next_run_at)
        .bind(id)
        .bind(expected_next)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the run a schedule made.
    pub async fn record_schedule_run(&self, id: i64, run_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE task_schedules SET last_run_at = ?, last_run_id = ? WHERE id = ?")
            .bind(now_ms())
            .bind(run_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// How running tasks lost their lease.
#[derive(Clone, Copy)]
enum LeaseLoss<'a> {
    /// The lease lapsed before this time (ms since the epoch).
    Expired(i64),
    /// The worker of this name started again.
    Restarted(&'a str),
}

/// Moves a task between states and records why.
async fn set_state(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    from: TaskState,
    to: TaskState,
    attempt: i64,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    let finished = to.is_terminal().then_some(now);
    sqlx::query(
        "UPDATE tasks SET state = ?, finished_at = COALESCE(?, finished_at),
            lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
            lease_until = CASE WHEN ? THEN NULL ELSE lease_until END
         WHERE id = ?",
    )
    .bind(to.as_str())
    .bind(finished)
    .bind(to != TaskState::Running && to != TaskState::Cancelled)
    .bind(to != TaskState::Running && to != TaskState::Cancelled)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    event(tx, task_id, Some(from), to, attempt, None, reason, now).await
}

/// The graph of the run `task_id` belongs to: task → the tasks it waits for.
async fn run_edges(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.task_id, d.depends_on FROM task_deps d JOIN tasks t ON t.id = d.task_id
         WHERE t.run_id = (SELECT run_id FROM tasks WHERE id = ?)",
    )
    .bind(task_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (task, need) in rows {
        edges.entry(task).or_default().push(need);
    }
    Ok(edges)
}

/// Gives the unfinished dependants of a task that ended in `outcome`'s wake their state.
async fn finish_dependants(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    finished: TaskState,
    reason: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let Some(outcome) = dependant_outcome(finished) else {
        return Ok(Vec::new());
    };
    let edges = run_edges(tx, task_id).await?;
    let mut changed = Vec::new();
    for dependant in dependants_of(&edges, task_id) {
        let (state, attempt): (String, i64) =
            sqlx::query_as("SELECT state, attempts FROM tasks WHERE id = ?")
                .bind(dependant)
                .fetch_one(&mut **tx)
                .await?;
        let state = state.parse::<TaskState>().map_err(StoreError::Invalid)?;
        if state.is_terminal() || state == TaskState::Running {
            continue;
        }
        set_state(tx, dependant, state, outcome, attempt, reason, now).await?;
        changed.push(dependant.to_owned());
    }
    Ok(changed)
}

/// Readies the dependants of a succeeded task whose dependencies have all succeeded.
async fn promote_dependants(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let ready: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT t.id, t.kind, t.attempts FROM task_deps d JOIN tasks t ON t.id = d.task_id
         WHERE d.depends_on = ? AND t.state = 'queued'
           AND NOT EXISTS (SELECT 1 FROM task_deps d2 JOIN tasks u ON u.id = d2.depends_on
                           WHERE d2.task_id = t.id AND u.state != 'succeeded')",
    )
    .bind(task_id)
    .fetch_all(&mut **tx)
    .await?;
    for (id, kind, attempt) in ready {
        let to = ready_state(&kind);
        let reason = if to == TaskState::WaitingApproval {
            "its dependencies succeeded; waits for a person's approval"
        } else {
            "its dependencies succeeded"
        };
        set_state(tx, &id, TaskState::Queued, to, attempt, reason, now).await?;
    }
    Ok(())
}

/// A failed attempt: back to ready after the backoff while attempts are left, else failed
/// with its dependants skipped.
#[allow(clippy::too_many_arguments)]
async fn after_failure(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    worker: Option<&str>,
    attempt: i64,
    max_attempts: i64,
    backoff_ms: i64,
    retryable: bool,
    reason: &str,
    error: &str,
    now: i64,
) -> Result<TaskState, StoreError> {
    if retryable && attempt < max_attempts {
        let delay = retry_delay_ms(attempt as u32, backoff_ms.max(0) as u64, MAX_BACKOFF_MS);
        sqlx::query(
            "UPDATE tasks SET state = 'ready', not_before = ?, error = ?, lease_owner = NULL,
                lease_until = NULL, progress = NULL WHERE id = ?",
        )
        .bind(now + delay as i64)
        .bind(error)
        .bind(task_id)
        .execute(&mut **tx)
        .await?;
        let reason = format!(
            "{reason}; attempt {} of {max_attempts} in {:.1} s",
            attempt + 1,
            delay as f64 / 1000.0
        );
        event(
            tx,
            task_id,
            Some(TaskState::Running),
            TaskState::Ready,
            attempt,
            worker,
            &reason,
            now,
        )
        .await?;
        return Ok(TaskState::Ready);
    }
    sqlx::query(
        "UPDATE tasks SET state = 'failed', error = ?, finished_at = ?, lease_owner = NULL,
            lease_until = NULL WHERE id = ?",
    )
    .bind(error)
    .bind(now)
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    let reason = if retryable {
        format!("{reason}; no attempts left ({attempt} of {max_attempts})")
    } else {
        format!("{reason}; not retried (retrying would fail the same way)")
    };
    event(
        tx,
        task_id,
        Some(TaskState::Running),
        TaskState::Failed,
        attempt,
        worker,
        &reason,
        now,
    )
    .await?;
    let (step,): (String,) = sqlx::query_as("SELECT step FROM tasks WHERE id = ?")
        .bind(task_id)
        .fetch_one(&mut **tx)
        .await?;
    finish_dependants(
        tx,
        task_id,
        TaskState::Failed,
        &format!("step {step} failed"),
        now,
    )
    .await?;
    Ok(TaskState::Failed)
}

/// Where a retried task goes: ready (or waiting for approval) when its dependencies have
/// succeeded, else queued.
async fn requeue_state(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    kind: &str,
) -> Result<TaskState, StoreError> {
    let (pending,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM task_deps d JOIN tasks u ON u.id = d.depends_on
         WHERE d.task_id = ? AND u.state != 'succeeded'",
    )
    .bind(task_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(if pending == 0 {
        ready_state(kind)
    } else {
        TaskState::Queued
    })
}

async fn reset_for_retry(
    tx: &mut Transaction<'_, Sqlite>,
    task_id: &str,
    from: TaskState,
    to: TaskState,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET state = ?, attempts = 0, error = NULL, output = NULL, not_before = NULL,
            finished_at = NULL, progress = NULL, checkpoint = NULL, lease_owner = NULL,
            lease_until = NULL WHERE id = ?",
    )
    .bind(to.as_str())
    .bind(task_id)
    .execute(&mut **tx)
    .await?;
    event(tx, task_id, Some(from), to, 0, None, reason, now).await
}

/// What Baton saw in a period, as text for a digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// The conversations and captures, oldest first, within the character limit.
    pub text: String,
    /// Messages included.
    pub messages: usize,
    /// Captures included.
    pub captures: usize,
    /// Whether older items were left out for the limit.
    pub truncated: bool,
}

impl Store {
    /// The messages (with their session's title) and OCR captures stored since `since_ms`,
    /// newest kept when the text would pass `max_chars`, returned oldest first.
    pub async fn activity_since(
        &self,
        since_ms: i64,
        max_chars: usize,
    ) -> Result<Activity, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT at, kind, text FROM (
                SELECT m.created_at AS at, 'message' AS kind,
                       '[' || s.title || '] ' || m.role || ': ' || m.content AS text
                  FROM messages m JOIN sessions s ON s.id = m.session_id
                 WHERE m.created_at >= ?1 AND m.role != 'system'
                UNION ALL
                SELECT created_at, 'capture', '[screen capture] ' || text
                  FROM captures WHERE created_at >= ?1 AND text != ''
             ) ORDER BY at DESC LIMIT 5000",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut kept: Vec<String> = Vec::new();
        let (mut chars, mut messages, mut captures, mut truncated) = (0usize, 0, 0, false);
        for (_, kind, text) in rows {
            let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let line: String = line.chars().take(600).collect();
            if chars + line.len() > max_chars {
                truncated = true;
                break;
            }
            chars += line.len() + 1;
            if kind == "message" {
                messages += 1;
            } else {
                captures += 1;
            }
            kept.push(line);
        }
        kept.reverse();
        Ok(Activity {
            text: kept.join("\n"),
            messages,
            captures,
            truncated,
        })
    }
}
