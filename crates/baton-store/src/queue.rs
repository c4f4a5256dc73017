//! The task queue as an interface: what the worker, the CLI, the API and the app call to
//! add, take, run, watch and steer tasks. The embedded queue is the [`Store`] itself
//! (SQLite, the default); `baton-queue-redis` puts the same queue on a Redis server so
//! workers on several machines share it. Templates, schedules and the activity a digest
//! reads stay in each machine's own store.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use baton_core::tasks::{ReadyTask, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::open::Store;
use crate::tasks::{NewRun, RunSummary, TaskEvent, TaskFilter, TaskLog, TaskRecord};
use crate::time::now_ms;

/// A worker that shares the queue, as it last advertised itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Its name (host and process id by default).
    pub name: String,
    /// What it can run (`chat:MODEL`, `stt`, `tts`, `ocr`, `none`).
    pub resources: Vec<String>,
    /// When it last said so, ms since the epoch.
    pub seen_ms: i64,
    /// How long its word holds; it is gone when `seen_ms + ttl_ms` has passed.
    pub ttl_ms: i64,
}

impl WorkerInfo {
    /// Whether it advertised itself recently enough to count as alive.
    pub fn alive(&self, now_ms: i64) -> bool {
        self.seen_ms + self.ttl_ms >= now_ms
    }
}

/// The durable task queue. Every change checks the state it expects, so workers in
/// several processes (and, on Redis, several machines) share one queue: a claim either
/// matched or another worker has the task. Ids given by a person may be the first or last
/// characters of a task id where a method says so.
#[async_trait]
pub trait TaskQueue: Send + Sync + std::fmt::Debug {
    /// Where the queue lives, for people (`sqlite:PATH`, `redis://HOST:PORT/DB`).
    fn location(&self) -> String;
    /// Adds a run and its tasks at once; steps without dependencies are ready. A cycle is
    /// refused, naming it. Returns the run id and the task ids in step order.
    async fn create_run(&self, run: &NewRun) -> Result<(String, Vec<String>), StoreError>;
    /// Ready tasks whose backoff has passed (empty while the queue is paused).
    async fn ready_tasks(&self) -> Result<Vec<ReadyTask>, StoreError>;
    /// When the next backed-off ready task may run, if one waits.
    async fn next_retry_at(&self) -> Result<Option<i64>, StoreError>;
    /// Takes a ready task for `worker` with a lease; `None` when another worker was first.
    async fn claim_task(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
    ) -> Result<Option<TaskRecord>, StoreError>;
    /// Renews a lease and records progress; `false` when the task is no longer this
    /// worker's (cancelled, or its lease was taken back): stop its work.
    async fn renew_lease(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
        progress: Option<f64>,
    ) -> Result<bool, StoreError>;
    /// Stores where a resumable task got to, under the worker's lease.
    async fn save_checkpoint(
        &self,
        task_id: &str,
        worker: &str,
        checkpoint: &Value,
        progress: Option<f64>,
    ) -> Result<bool, StoreError>;
    /// Marks the worker's task succeeded and readies dependants whose dependencies all
    /// succeeded; `false` when it was not this worker's any more.
    async fn complete_task(
        &self,
        task_id: &str,
        worker: &str,
        output: &Value,
    ) -> Result<bool, StoreError>;
    /// Records a failed attempt: ready again after the backoff while attempts are left and
    /// the error is retryable, else failed with its dependants skipped.
    async fn fail_task(
        &self,
        task_id: &str,
        worker: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Option<TaskState>, StoreError>;
    /// Takes back running tasks whose lease lapsed (the lost attempt is recorded).
    async fn recover_expired_leases(&self) -> Result<Vec<(String, TaskState)>, StoreError>;
    /// Takes back at once the running tasks leased to `worker` (it restarted).
    async fn release_worker_leases(
        &self,
        worker: &str,
    ) -> Result<Vec<(String, TaskState)>, StoreError>;
    /// Cancels an unfinished task and its unfinished dependants; returns the ids.
    async fn cancel_task(&self, task_id: &str, reason: &str) -> Result<Vec<String>, StoreError>;
    /// Cancels every unfinished task of a run.
    async fn cancel_run(&self, run_id: &str, reason: &str) -> Result<Vec<String>, StoreError>;
    /// Approves a step waiting for a person (id or its first/last characters), with its
    /// output `edited` or else its dependencies' outputs; returns the output.
    async fn approve_task(
        &self,
        task_id: &str,
        edited: Option<&Value>,
        by: &str,
    ) -> Result<Value, StoreError>;
    /// Rejects a step waiting for a person: it fails and its dependants are skipped.
    async fn reject_task(&self, task_id: &str, reason: &str) -> Result<(), StoreError>;
    /// Runs a failed, cancelled or skipped task again, with its skipped dependants.
    async fn retry_task(&self, task_id: &str) -> Result<TaskState, StoreError>;
    /// Pauses or resumes the whole queue.
    async fn set_queue_paused(&self, paused: bool) -> Result<(), StoreError>;
    /// Whether the queue is paused.
    async fn queue_paused(&self) -> Result<bool, StoreError>;
    /// Moves a waiting task before another (taking its priority), or to the end of its
    /// priority.
    async fn move_task(&self, task_id: &str, before: Option<&str>) -> Result<(), StoreError>;
    /// Writes a line to a task's log.
    async fn add_task_log(
        &self,
        task_id: &str,
        level: &str,
        message: &str,
    ) -> Result<(), StoreError>;
    /// A task by id or its first/last characters.
    async fn task(&self, id: &str) -> Result<TaskRecord, StoreError>;
    /// Resolves the first or last characters of a task id to one id.
    async fn resolve_task_id(&self, prefix: &str) -> Result<String, StoreError>;
    /// Tasks, newest first (in run order with a run filter).
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError>;
    /// A task's state changes, oldest first.
    async fn task_events(&self, task_id: &str) -> Result<Vec<TaskEvent>, StoreError>;
    /// Every state change after event `after_id`, oldest first.
    async fn task_events_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>, StoreError>;
    /// A task's log lines after `after_id`, oldest first.
    async fn task_logs(&self, task_id: &str, after_id: i64) -> Result<Vec<TaskLog>, StoreError>;
    /// The outputs of a run's succeeded steps, by step.
    async fn run_outputs(&self, run_id: &str) -> Result<BTreeMap<String, Value>, StoreError>;
    /// A run's parameters.
    async fn run_params(&self, run_id: &str) -> Result<Value, StoreError>;
    /// Runs, newest first, with their tasks counted by state (0: all).
    async fn runs(&self, limit: u32) -> Result<Vec<RunSummary>, StoreError>;
    /// How many tasks are in each state.
    async fn task_counts(&self) -> Result<BTreeMap<String, i64>, StoreError>;
    /// The resources of the tasks not finished yet (queued, ready or running): a worker
    /// with none of them has nothing left to do.
    async fn waiting_resources(&self) -> Result<BTreeSet<String>, StoreError>;
    /// Says that `worker` is alive and what it can run, for `ttl_ms`.
    async fn advertise_worker(
        &self,
        worker: &str,
        resources: &[String],
        ttl_ms: u64,
    ) -> Result<(), StoreError>;
    /// The workers that advertised themselves, alive or lately gone, by name.
    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError>;
}

/// The settings key a worker advertises itself under on the embedded queue.
const WORKER_KEY: &str = "tasks.workers";

#[async_trait]
impl TaskQueue for Store {
    fn location(&self) -> String {
        format!("sqlite:{}", self.path().display())
    }
    async fn create_run(&self, run: &NewRun) -> Result<(String, Vec<String>), StoreError> {
        Store::create_run(self, run).await
    }
    async fn ready_tasks(&self) -> Result<Vec<ReadyTask>, StoreError> {
        Store::ready_tasks(self).await
    }
    async fn next_retry_at(&self) -> Result<Option<i64>, StoreError> {
        Store::next_retry_at(self).await
    }
    async fn claim_task(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        Store::claim_task(self, task_id, worker, lease_ms).await
    }
    async fn renew_lease(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        Store::renew_lease(self, task_id, worker, lease_ms, progress).await
    }
    async fn save_checkpoint(
        &self,
        task_id: &str,
        worker: &str,
        checkpoint: &Value,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        Store::save_checkpoint(self, task_id, worker, checkpoint, progress).await
    }
    async fn complete_task(
        &self,
        task_id: &str,
        worker: &str,
        output: &Value,
    ) -> Result<bool, StoreError> {
        Store::complete_task(self, task_id, worker, output).await
    }
    async fn fail_task(
        &self,
        task_id: &str,
        worker: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Option<TaskState>, StoreError> {
        Store::fail_task(self, task_id, worker, error, retryable).await
    }
    async fn recover_expired_leases(&self) -> Result<Vec<(String, TaskState)>, StoreError> {
        Store::recover_expired_leases(self).await
    }
    async fn release_worker_leases(
        &self,
        worker: &str,
    ) -> Result<Vec<(String, TaskState)>, StoreError> {
        Store::release_worker_leases(self, worker).await
    }
    async fn cancel_task(&self, task_id: &str, reason: &str) -> Result<Vec<String>, StoreError> {
        Store::cancel_task(self, task_id, reason).await
    }
    async fn cancel_run(&self, run_id: &str, reason: &str) -> Result<Vec<String>, StoreError> {
        Store::cancel_run(self, run_id, reason).await
    }
    async fn approve_task(
        &self,
        task_id: &str,
        edited: Option<&Value>,
        by: &str,
    ) -> Result<Value, StoreError> {
        Store::approve_task(self, task_id, edited, by).await
    }
    async fn reject_task(&self, task_id: &str, reason: &str) -> Result<(), StoreError> {
        Store::reject_task(self, task_id, reason).await
    }
    async fn retry_task(&self, task_id: &str) -> Result<TaskState, StoreError> {
        Store::retry_task(self, task_id).await
    }
    async fn set_queue_paused(&self, paused: bool) -> Result<(), StoreError> {
        Store::set_queue_paused(self, paused).await
    }
    async fn queue_paused(&self) -> Result<bool, StoreError> {
        Store::queue_paused(self).await
    }
    async fn move_task(&self, task_id: &str, before: Option<&str>) -> Result<(), StoreError> {
        Store::move_task(self, task_id, before).await
    }
    async fn add_task_log(
        &self,
        task_id: &str,
        level: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        Store::add_task_log(self, task_id, level, message).await
    }
    async fn task(&self, id: &str) -> Result<TaskRecord, StoreError> {
        Store::task(self, id).await
    }
    async fn resolve_task_id(&self, prefix: &str) -> Result<String, StoreError> {
        Store::resolve_task_id(self, prefix).await
    }
    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        Store::tasks(self, filter).await
    }
    async fn task_events(&self, task_id: &str) -> Result<Vec<TaskEvent>, StoreError> {
        Store::task_events(self, task_id).await
    }
    async fn task_events_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>, StoreError> {
        Store::task_events_since(self, after_id, limit).await
    }
    async fn task_logs(&self, task_id: &str, after_id: i64) -> Result<Vec<TaskLog>, StoreError> {
        Store::task_logs(self, task_id, after_id).await
    }
    async fn run_outputs(&self, run_id: &str) -> Result<BTreeMap<String, Value>, StoreError> {
        Store::run_outputs(self, run_id).await
    }
    async fn run_params(&self, run_id: &str) -> Result<Value, StoreError> {
        Store::run_params(self, run_id).await
    }
    async fn runs(&self, limit: u32) -> Result<Vec<RunSummary>, StoreError> {
        Store::runs(self, limit).await
    }
    async fn task_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        Store::task_counts(self).await
    }
    async fn waiting_resources(&self) -> Result<BTreeSet<String>, StoreError> {
        Store::waiting_resources(self).await
    }
    async fn advertise_worker(
        &self,
        worker: &str,
        resources: &[String],
        ttl_ms: u64,
    ) -> Result<(), StoreError> {
        // A small map in one setting: a handful of local workers, rewritten every few
        // seconds; entries long gone are dropped as it is written.
        let now = now_ms();
        let mut all = self.workers().await?;
        all.retain(|w| w.name != worker && w.alive(now - 3_600_000));
        all.push(WorkerInfo {
            name: worker.to_owned(),
            resources: resources.to_vec(),
            seen_ms: now,
            ttl_ms: ttl_ms as i64,
        });
        let value = serde_json::to_value(&all)
            .map_err(|e| StoreError::Invalid(format!("worker list: {e}")))?;
        self.set_setting(WORKER_KEY, &value).await
    }
    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let mut list: Vec<WorkerInfo> = match self.setting(WORKER_KEY).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_default(),
            None => Vec::new(),
        };
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }
}
