//! Baton's task queue on a Redis server, so `baton worker` processes on several machines
//! share one queue (`[queue] url = "redis://…"` or `baton worker --queue redis://…`).
//!
//! The queue is the same as the embedded one ([`baton_store::TaskQueue`]): the same
//! records, the same transitions (worked out in memory by [`graph`] with the functions of
//! `baton_core::tasks`), the same error texts. Redis holds it as plain keys under a
//! prefix, and every change is one optimistic transaction (`WATCH` the task documents it
//! read, `MULTI … EXEC`; a change that raced another worker's is worked out again), so no
//! lock or cluster protocol of Baton's own is involved:
//!
//! - `P:task:ID` — a task (JSON: its record and the ids it waits for); `P:task:ID:events`
//!   and `P:task:ID:logs` — its history and log lines (lists).
//! - `P:run:ID` — a run's name, parameters and task ids; `P:runs` — runs by creation time.
//! - `P:task-ids` — every task id (sorted set, for prefixes and listings).
//! - `P:ready` — ready tasks as the scheduler sees them (hash); `P:running` — leased
//!   tasks (set), so lapsed leases are found without reading every task; `P:queued` —
//!   tasks waiting for dependencies, by resource (hash).
//! - `P:events` — every state change by id (sorted set), what `tasks watch` follows.
//! - `P:paused`, `P:workers` — the pause switch and the workers' advertisements.

#![warn(missing_docs)]

mod graph;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use baton_core::tasks::{check_graph, dependants_of, reorder, ReadyTask, TaskState};
use baton_store::{
    NewRun, RunSummary, StoreError, TaskEvent, TaskFilter, TaskLog, TaskQueue, TaskRecord,
    WorkerInfo, MAX_BACKOFF_MS,
};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graph::{ready_state, RunMeta, RunView, StoredTask};

/// How often a change that raced other workers is worked out again before giving up.
const MAX_TRANSACTION_TRIES: usize = 200;
/// Keys read per `MGET`.
const CHUNK: usize = 500;

/// The task queue on a Redis server.
pub struct RedisQueue {
    client: redis::Client,
    prefix: String,
    location: String,
    /// For reads and writes that need no transaction.
    shared: MultiplexedConnection,
    /// Connections used by one transaction at a time (`WATCH` belongs to a connection).
    idle: tokio::sync::Mutex<Vec<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A ready task's entry in `P:ready`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReadyEntry {
    priority: i64,
    deadline_ms: Option<i64>,
    position: i64,
    resource: String,
    memory_mb: u64,
    not_before_ms: Option<i64>,
}

/// A log line in `P:task:ID:logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredLog {
    at: i64,
    level: String,
    message: String,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid(message.into())
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Queue(format!("the queue holds a damaged {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("queue documents serialise")
}

/// A record as people see it: a deadline passed by an unfinished task counts as missed.
fn as_read(mut record: TaskRecord, now: i64) -> TaskRecord {
    if !record.state.is_terminal() && record.deadline_ms.is_some_and(|d| d < now) {
        record.deadline_missed = true;
    }
    record
}

/// How running tasks lost their lease.
#[derive(Clone, Copy)]
enum LeaseLoss<'a> {
    Expired(i64),
    Restarted(&'a str),
}

impl RedisQueue {
    /// Connects to the Redis server at `url` (`redis://HOST:PORT/DB`) and keeps the queue
    /// under `prefix` (several queues may share one server).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let location = url.to_owned();
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Queue(format!(
                "`{url}` is not a Redis address ({e}); write it as redis://HOST:PORT/DB"
            ))
        })?;
        let shared = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| unreachable(&location, &e))?;
        Ok(Self {
            client,
            prefix: prefix.trim_end_matches(':').to_owned(),
            location,
            shared,
            idle: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }
    fn task_key(&self, id: &str) -> String {
        self.key(&format!("task:{id}"))
    }
    fn run_key(&self, id: &str) -> String {
        self.key(&format!("run:{id}"))
    }
    fn err(&self, e: redis::RedisError) -> StoreError {
        unreachable(&self.location, &e)
    }
    fn con(&self) -> MultiplexedConnection {
        self.shared.clone()
    }

    /// A connection for one transaction.
    async fn exclusive(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(con) = self.idle.lock().await.pop() {
            return Ok(con);
        }
        self.client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| self.err(e))
    }

    async fn give_back(&self, con: MultiplexedConnection) {
        let mut idle = self.idle.lock().await;
        if idle.len() < 16 {
            idle.push(con);
        }
    }

    /// Watches `keys` on `con` until its next `EXEC` or `UNWATCH`.
    async fn watch(
        &self,
        con: &mut MultiplexedConnection,
        keys: impl redis::ToRedisArgs,
    ) -> Result<(), StoreError> {
        redis::cmd("WATCH")
            .arg(keys)
            .query_async::<()>(con)
            .await
            .map_err(|e| self.err(e))
    }

    /// Forgets what `con` watches (a change that writes nothing).
    async fn unwatch(&self, con: &mut MultiplexedConnection) -> Result<(), StoreError> {
        redis::cmd("UNWATCH")
            .query_async::<()>(con)
            .await
            .map_err(|e| self.err(e))
    }

    /// Reads task documents by id (missing ones left out), in the order given.
    async fn load_tasks(
        &self,
        con: &mut MultiplexedConnection,
        ids: &[String],
    ) -> Result<Vec<StoredTask>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|id| self.task_key(id)).collect();
            let texts: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(con)
                .await
                .map_err(|e| self.err(e))?;
            for text in texts.into_iter().flatten() {
                out.push(decode::<StoredTask>(&text, "task")?);
            }
        }
        Ok(out)
    }

    async fn load_run(
        &self,
        con: &mut MultiplexedConnection,
        run_id: &str,
    ) -> Result<Option<RunMeta>, StoreError> {
        let text: Option<String> = con
            .get(self.run_key(run_id))
            .await
            .map_err(|e| self.err(e))?;
        text.map(|t| decode(&t, "run")).transpose()
    }

    /// Works out one change over a task (and, with `whole_run`, every task of its run) and
    /// commits it in one transaction that fails if any of those tasks changed meanwhile;
    /// then it is worked out again from what is stored now. `change` sees the tasks as
    /// they are and edits them; nothing is written when it changes nothing or errs.
    async fn transact<T>(
        &self,
        task_id: &str,
        whole_run: bool,
        mut change: impl FnMut(&mut RunView) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_TRANSACTION_TRIES {
            let mut con = self.exclusive().await?;
            match self
                .try_transact(&mut con, task_id, whole_run, &mut change)
                .await
            {
                Ok(Some(out)) => {
                    self.give_back(con).await;
                    return Ok(out);
                }
                Ok(None) => self.give_back(con).await, // raced: again
                Err(e) => {
                    // The connection may still watch keys: drop it.
                    return Err(e);
                }
            }
        }
        Err(StoreError::Queue(format!(
            "task {task_id} changed under {MAX_TRANSACTION_TRIES} tries in a row; try again"
        )))
    }

    async fn try_transact<T>(
        &self,
        con: &mut MultiplexedConnection,
        task_id: &str,
        whole_run: bool,
        change: &mut impl FnMut(&mut RunView) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let key = self.task_key(task_id);
        self.watch(con, &key).await?;
        let text: Option<String> = con.get(&key).await.map_err(|e| self.err(e))?;
        let Some(text) = text else {
            self.unwatch(con).await?;
            return Err(graph::missing(task_id));
        };
        let this: StoredTask = decode(&text, "task")?;
        let mut tasks = vec![this];
        if whole_run {
            let run = self
                .load_run(con, &tasks[0].record.run_id)
                .await?
                .ok_or_else(|| StoreError::Queue(format!("task {task_id}'s run is missing")))?;
            let others: Vec<String> = run.tasks.into_iter().filter(|t| t != task_id).collect();
            if !others.is_empty() {
                let keys: Vec<String> = others.iter().map(|id| self.task_key(id)).collect();
                for chunk in keys.chunks(CHUNK) {
                    self.watch(con, chunk).await?;
                }
                tasks.extend(self.load_tasks(con, &others).await?);
            }
        }
        let mut view = RunView::new(tasks, now_ms());
        let out = match change(&mut view) {
            Ok(out) => out,
            Err(e) => {
                self.unwatch(con).await?;
                return Err(e);
            }
        };
        if view.changed.is_empty() && view.events.is_empty() {
            self.unwatch(con).await?;
            return Ok(Some(out));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.write_changes(con, &mut pipe, &view).await?;
        let result: redis::Value = pipe.query_async(con).await.map_err(|e| self.err(e))?;
        Ok((!matches!(result, redis::Value::Nil)).then_some(out))
    }

    /// Adds to `pipe` the writes of a worked-out change: the changed task documents, the
    /// ready and running indexes that follow from their states, and the events.
    async fn write_changes(
        &self,
        con: &mut MultiplexedConnection,
        pipe: &mut redis::Pipeline,
        view: &RunView,
    ) -> Result<(), StoreError> {
        for id in &view.changed {
            let task = &view.tasks[id];
            pipe.set(self.task_key(id), encode(task)).ignore();
            self.index(pipe, &task.record);
        }
        if view.events.is_empty() {
            return Ok(());
        }
        // Event ids are taken before the transaction; one that does not commit leaves a
        // gap, which readers do not mind.
        let last: i64 = con
            .incr(self.key("event-seq"), view.events.len() as i64)
            .await
            .map_err(|e| self.err(e))?;
        let first = last - view.events.len() as i64 + 1;
        for (offset, pending) in view.events.iter().enumerate() {
            let event = TaskEvent {
                id: first + offset as i64,
                task_id: pending.task_id.clone(),
                at: view.now,
                from_state: pending.from.map(|s| s.as_str().to_owned()),
                to_state: pending.to.as_str().to_owned(),
                attempt: pending.attempt,
                worker: pending.worker.clone(),
                reason: pending.reason.clone(),
            };
            let text = encode(&event);
            pipe.rpush(self.key(&format!("task:{}:events", event.task_id)), &text)
                .ignore();
            pipe.zadd(self.key("events"), &text, event.id).ignore();
        }
        Ok(())
    }

    /// The index entries a task's state calls for.
    fn index(&self, pipe: &mut redis::Pipeline, task: &TaskRecord) {
        if task.state == TaskState::Ready {
            let entry = ReadyEntry {
                priority: task.priority,
                deadline_ms: task.deadline_ms,
                position: task.position,
                resource: task.resource.clone(),
                memory_mb: task.memory_mb.max(0) as u64,
                not_before_ms: task.not_before_ms,
            };
            pipe.hset(self.key("ready"), &task.id, encode(&entry))
                .ignore();
        } else {
            pipe.hdel(self.key("ready"), &task.id).ignore();
        }
        if task.state == TaskState::Running {
            pipe.sadd(self.key("running"), &task.id).ignore();
        } else {
            pipe.srem(self.key("running"), &task.id).ignore();
        }
        // What waits for its dependencies, by resource (a worker exits when idle by it).
        if task.state == TaskState::Queued {
            pipe.hset(self.key("queued"), &task.id, &task.resource)
                .ignore();
        } else {
            pipe.hdel(self.key("queued"), &task.id).ignore();
        }
    }

    /// Changes a task with `change` (given the time) and records its progress, only while
    /// it runs under `worker`'s lease; `false` when it does not.
    async fn update_held(
        &self,
        task_id: &str,
        worker: &str,
        progress: Option<f64>,
        change: impl Fn(&mut TaskRecord, i64),
    ) -> Result<bool, StoreError> {
        self.transact(task_id, false, |view| {
            if !view.held_by(task_id, worker) {
                return Ok(false);
            }
            let now = view.now;
            let task = view.edit(task_id)?;
            change(task, now);
            if let Some(p) = progress {
                task.progress = Some(p.clamp(0.0, 1.0));
            }
            Ok(true)
        })
        .await
    }

    async fn all_task_ids(&self) -> Result<Vec<String>, StoreError> {
        self.con()
            .zrange(self.key("task-ids"), 0, -1)
            .await
            .map_err(|e| self.err(e))
    }

    async fn take_back(&self, loss: LeaseLoss<'_>) -> Result<Vec<(String, TaskState)>, StoreError> {
        let running: Vec<String> = self
            .con()
            .smembers(self.key("running"))
            .await
            .map_err(|e| self.err(e))?;
        let mut moved = Vec::new();
        for id in running {
            let outcome = self
                .transact(&id, true, |view| {
                    let task = view.get(&id)?;
                    let lost = task.state == TaskState::Running
                        && match loss {
                            LeaseLoss::Expired(at) => task.lease_until_ms.is_some_and(|u| u < at),
                            LeaseLoss::Restarted(worker) => {
                                task.lease_owner.as_deref() == Some(worker)
                            }
                        };
                    if !lost {
                        return Ok(None);
                    }
                    let owner = task
                        .lease_owner
                        .clone()
                        .unwrap_or_else(|| "a worker".into());
                    let attempt = task.attempts;
                    let (error, backoff) = match loss {
                        LeaseLoss::Expired(_) => (
                            format!("{owner} stopped during attempt {attempt} (its lease expired)"),
                            task.backoff_ms,
                        ),
                        // Lost, not failed: no backoff.
                        LeaseLoss::Restarted(_) => {
                            (format!("{owner} restarted during attempt {attempt}"), 0)
                        }
                    };
                    let state = view.after_failure(&id, None, backoff, true, &error, &error)?;
                    Ok(Some(state))
                })
                .await;
            match outcome {
                Ok(Some(state)) => moved.push((id, state)),
                Ok(None) => {}
                // Gone since the set was read (a damaged entry aside): nothing to take back.
                Err(StoreError::Invalid(_)) => {
                    let _: () = self
                        .con()
                        .srem(self.key("running"), &id)
                        .await
                        .map_err(|e| self.err(e))?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }
}

fn unreachable(location: &str, e: &redis::RedisError) -> StoreError {
    StoreError::Queue(format!(
        "the task queue at {location} cannot be used: {e}. Start redis-server there, or \
         set [queue] url = \"\" in the config to use the embedded queue"
    ))
}

#[async_trait]
impl TaskQueue for RedisQueue {
    fn location(&self) -> String {
        format!("{} (prefix {})", self.location, self.prefix)
    }

    async fn create_run(&self, run: &NewRun) -> Result<(String, Vec<String>), StoreError> {
        if run.tasks.is_empty() {
            return Err(invalid("a run needs at least one step"));
        }
        let graph: Vec<(String, Vec<String>)> = run
            .tasks
            .iter()
            .map(|t| (t.step.clone(), t.after.clone()))
            .collect();
        let order = check_graph(&graph).map_err(|e| invalid(e.to_string()))?;
        let run_id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut con = self.con();
        let last: i64 = con
            .incr(self.key("position"), run.tasks.len() as i64)
            .await
            .map_err(|e| self.err(e))?;
        let first_position = last - run.tasks.len() as i64 + 1;
        let mut ids: BTreeMap<&str, String> = BTreeMap::new();
        let mut in_order = vec![String::new(); run.tasks.len()];
        let mut stored = Vec::new();
        let mut view = RunView::new([], now);
        for (offset, index) in order.into_iter().enumerate() {
            let task = &run.tasks[index];
            let id = uuid::Uuid::now_v7().to_string();
            let position = first_position + offset as i64;
            let state = if task.after.is_empty() {
                ready_state(&task.kind)
            } else {
                TaskState::Queued
            };
            let mut after = task.after.clone();
            after.sort();
            let record = TaskRecord {
                id: id.clone(),
                run_id: run_id.clone(),
                run_name: run.name.clone(),
                step: task.step.clone(),
                kind: task.kind.clone(),
                input: task.input.clone(),
                resource: task.resource.clone(),
                memory_mb: task.memory_mb as i64,
                priority: task.priority,
                deadline_ms: task.deadline_ms,
                position,
                state,
                attempts: 0,
                max_attempts: task.max_attempts.max(1) as i64,
                backoff_ms: task.backoff_ms.min(MAX_BACKOFF_MS) as i64,
                timeout_ms: task.timeout_ms.map(|t| t as i64),
                not_before_ms: None,
                lease_owner: None,
                lease_until_ms: None,
                progress: None,
                checkpoint: None,
                output: None,
                error: None,
                deadline_missed: false,
                created_ms: now,
                started_ms: None,
                finished_ms: None,
                after,
            };
            let deps = task.after.iter().map(|s| ids[s.as_str()].clone()).collect();
            let reason = match state {
                TaskState::Queued => format!("added; waits for {}", task.after.join(", ")),
                TaskState::WaitingApproval => "added; waits for a person's approval".into(),
                _ => "added; ready to run".into(),
            };
            view.event(&id, None, state, 0, None, &reason);
            ids.insert(&task.step, id.clone());
            in_order[index] = id.clone();
            stored.push(StoredTask { record, deps });
        }
        let meta = RunMeta {
            id: run_id.clone(),
            name: run.name.clone(),
            template: run.template.clone(),
            params: run.params.clone(),
            origin: run.origin.clone(),
            created_ms: now,
            tasks: stored.iter().map(|t| t.record.id.clone()).collect(),
        };
        view.changed = stored.iter().map(|t| t.record.id.clone()).collect();
        view.tasks = stored
            .into_iter()
            .map(|t| (t.record.id.clone(), t))
            .collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.set(self.run_key(&run_id), encode(&meta)).ignore();
        pipe.zadd(self.key("runs"), &run_id, now).ignore();
        for id in &meta.tasks {
            pipe.zadd(self.key("task-ids"), id, 0).ignore();
        }
        self.write_changes(&mut con, &mut pipe, &view).await?;
        let _: redis::Value = pipe.query_async(&mut con).await.map_err(|e| self.err(e))?;
        Ok((run_id, in_order))
    }

    async fn ready_tasks(&self) -> Result<Vec<ReadyTask>, StoreError> {
        if self.queue_paused().await? {
            return Ok(Vec::new());
        }
        let entries: BTreeMap<String, String> = self
            .con()
            .hgetall(self.key("ready"))
            .await
            .map_err(|e| self.err(e))?;
        let now = now_ms();
        let mut out = Vec::new();
        for (id, text) in entries {
            let entry: ReadyEntry = decode(&text, "ready entry")?;
            if entry.not_before_ms.is_some_and(|at| at > now) {
                continue;
            }
            out.push(ReadyTask {
                id,
                priority: entry.priority,
                deadline_ms: entry.deadline_ms,
                position: entry.position,
                resource: entry.resource,
                memory_mb: entry.memory_mb,
            });
        }
        out.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.position.cmp(&b.position))
        });
        out.truncate(500);
        Ok(out)
    }

    async fn next_retry_at(&self) -> Result<Option<i64>, StoreError> {
        let entries: Vec<String> = self
            .con()
            .hvals(self.key("ready"))
            .await
            .map_err(|e| self.err(e))?;
        let now = now_ms();
        let mut next: Option<i64> = None;
        for text in entries {
            let entry: ReadyEntry = decode(&text, "ready entry")?;
            if let Some(at) = entry.not_before_ms.filter(|at| *at > now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(next)
    }

    async fn claim_task(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let claimed = self
            .transact(task_id, false, |view| {
                let now = view.now;
                let task = view.get(task_id)?;
                if task.state != TaskState::Ready || task.not_before_ms.is_some_and(|t| t > now) {
                    return Ok(None);
                }
                let task = view.edit(task_id)?;
                task.state = TaskState::Running;
                task.attempts += 1;
                task.lease_owner = Some(worker.to_owned());
                task.lease_until_ms = Some(now + lease_ms as i64);
                task.started_ms.get_or_insert(now);
                task.not_before_ms = None;
                task.progress = None;
                let attempt = task.attempts;
                let record = task.clone();
                view.event(
                    task_id,
                    Some(TaskState::Ready),
                    TaskState::Running,
                    attempt,
                    Some(worker),
                    &format!("attempt {attempt} started on {worker}"),
                );
                Ok(Some(record))
            })
            .await;
        match claimed {
            // Gone (a run removed under it): another worker's business, not this one's.
            Err(StoreError::Invalid(_)) => Ok(None),
            other => other,
        }
    }

    async fn renew_lease(
        &self,
        task_id: &str,
        worker: &str,
        lease_ms: u64,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        self.update_held(task_id, worker, progress, |task, now| {
            task.lease_until_ms = Some(now + lease_ms as i64);
        })
        .await
    }

    async fn save_checkpoint(
        &self,
        task_id: &str,
        worker: &str,
        checkpoint: &Value,
        progress: Option<f64>,
    ) -> Result<bool, StoreError> {
        self.update_held(task_id, worker, progress, |task, _| {
            task.checkpoint = Some(checkpoint.clone());
        })
        .await
    }

    async fn complete_task(
        &self,
        task_id: &str,
        worker: &str,
        output: &Value,
    ) -> Result<bool, StoreError> {
        self.transact(task_id, true, |view| {
            if !view.held_by(task_id, worker) {
                return Ok(false);
            }
            let now = view.now;
            let task = view.edit(task_id)?;
            task.state = TaskState::Succeeded;
            task.output = Some(output.clone());
            task.error = None;
            task.finished_ms = Some(now);
            task.lease_owner = None;
            task.lease_until_ms = None;
            task.progress = Some(1.0);
            task.deadline_missed = task.deadline_ms.is_some_and(|d| d < now);
            let reason = match task.deadline_ms {
                Some(d) if d < now => format!(
                    "succeeded {} s after its deadline",
                    (now - d).div_euclid(1000)
                ),
                _ => "succeeded".into(),
            };
            let attempt = task.attempts;
            view.event(
                task_id,
                Some(TaskState::Running),
                TaskState::Succeeded,
                attempt,
                Some(worker),
                &reason,
            );
            view.promote_dependants(task_id)?;
            Ok(true)
        })
        .await
    }

    async fn fail_task(
        &self,
        task_id: &str,
        worker: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Option<TaskState>, StoreError> {
        self.transact(task_id, true, |view| {
            if !view.held_by(task_id, worker) {
                return Ok(None);
            }
            let attempt = view.get(task_id)?.attempts;
            let backoff = view.get(task_id)?.backoff_ms;
            view.after_failure(
                task_id,
                Some(worker),
                backoff,
                retryable,
                &format!("attempt {attempt} failed: {error}"),
                error,
            )
            .map(Some)
        })
        .await
    }

    async fn recover_expired_leases(&self) -> Result<Vec<(String, TaskState)>, StoreError> {
        self.take_back(LeaseLoss::Expired(now_ms())).await
    }

    async fn release_worker_leases(
        &self,
        worker: &str,
    ) -> Result<Vec<(String, TaskState)>, StoreError> {
        self.take_back(LeaseLoss::Restarted(worker)).await
    }

    async fn cancel_task(&self, task_id: &str, reason: &str) -> Result<Vec<String>, StoreError> {
        self.transact(task_id, true, |view| {
            let task = view.get(task_id)?;
            let (state, step, attempt) = (task.state, task.step.clone(), task.attempts);
            if state.is_terminal() {
                return Err(invalid(format!(
                    "task {step} is already {state}; nothing to cancel"
                )));
            }
            view.set_state(task_id, state, TaskState::Cancelled, attempt, reason)?;
            let mut cancelled = vec![task_id.to_owned()];
            cancelled.extend(view.finish_dependants(
                task_id,
                TaskState::Cancelled,
                &format!("step {step} was cancelled"),
            )?);
            Ok(cancelled)
        })
        .await
    }

    async fn cancel_run(&self, run_id: &str, reason: &str) -> Result<Vec<String>, StoreError> {
        let tasks = self
            .tasks(&TaskFilter {
                run_id: Some(run_id.to_owned()),
                ..TaskFilter::default()
            })
            .await?;
        let mut cancelled = Vec::new();
        for task in tasks.iter().filter(|t| !t.state.is_terminal()) {
            match self.cancel_task(&task.id, reason).await {
                Ok(list) => cancelled.extend(list),
                Err(StoreError::Invalid(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    async fn approve_task(
        &self,
        task_id: &str,
        edited: Option<&Value>,
        by: &str,
    ) -> Result<Value, StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        self.transact(task_id, true, |view| {
            let task = view.get(task_id)?;
            if task.state != TaskState::WaitingApproval {
                return Err(invalid(format!(
                    "task `{task_id}` is not waiting for approval"
                )));
            }
            let output = edited
                .cloned()
                .unwrap_or_else(|| view.approval_output(task_id));
            let now = view.now;
            let task = view.edit(task_id)?;
            task.state = TaskState::Succeeded;
            task.output = Some(output.clone());
            task.finished_ms = Some(now);
            let attempt = task.attempts;
            let reason = if edited.is_some() {
                format!("approved with edits by {by}")
            } else {
                format!("approved by {by}")
            };
            view.event(
                task_id,
                Some(TaskState::WaitingApproval),
                TaskState::Succeeded,
                attempt,
                None,
                &reason,
            );
            view.promote_dependants(task_id)?;
            Ok(output)
        })
        .await
    }

    async fn reject_task(&self, task_id: &str, reason: &str) -> Result<(), StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        self.transact(task_id, true, |view| {
            let task = view.get(task_id)?;
            if task.state != TaskState::WaitingApproval {
                return Err(invalid(format!(
                    "task `{task_id}` is not waiting for approval"
                )));
            }
            let (step, attempt) = (task.step.clone(), task.attempts);
            let why = format!("rejected: {reason}");
            view.edit(task_id)?.error = Some(why.clone());
            view.set_state(
                task_id,
                TaskState::WaitingApproval,
                TaskState::Failed,
                attempt,
                &why,
            )?;
            view.finish_dependants(
                task_id,
                TaskState::Skipped,
                &format!("step {step} was rejected"),
            )?;
            Ok(())
        })
        .await
    }

    async fn retry_task(&self, task_id: &str) -> Result<TaskState, StoreError> {
        let task_id = &self.resolve_task_id(task_id).await?;
        self.transact(task_id, true, |view| {
            let state = view.get(task_id)?.state;
            if !matches!(
                state,
                TaskState::Failed | TaskState::Cancelled | TaskState::Skipped
            ) {
                return Err(invalid(format!(
                    "task `{task_id}` is {state}; only failed, cancelled or skipped tasks are retried"
                )));
            }
            let target = view.requeue_state(task_id);
            view.reset_for_retry(task_id, state, target, "retried by hand")?;
            let edges = view.edges();
            let dependants: Vec<String> = dependants_of(&edges, task_id)
                .into_iter()
                .map(str::to_owned)
                .collect();
            for dependant in dependants {
                let dstate = view.get(&dependant)?.state;
                if matches!(dstate, TaskState::Skipped | TaskState::Cancelled) {
                    view.reset_for_retry(
                        &dependant,
                        dstate,
                        TaskState::Queued,
                        "a dependency was retried",
                    )?;
                }
            }
            Ok(target)
        })
        .await
    }

    async fn set_queue_paused(&self, paused: bool) -> Result<(), StoreError> {
        let mut con = self.con();
        let key = self.key("paused");
        let result: redis::RedisResult<()> = if paused {
            con.set(key, "1").await
        } else {
            con.del(key).await
        };
        result.map_err(|e| self.err(e))
    }

    async fn queue_paused(&self) -> Result<bool, StoreError> {
        self.con()
            .exists(self.key("paused"))
            .await
            .map_err(|e| self.err(e))
    }

    async fn move_task(&self, task_id: &str, before: Option<&str>) -> Result<(), StoreError> {
        let task_id = self.resolve_task_id(task_id).await?;
        let before = match before {
            Some(other) => Some(self.resolve_task_id(other).await?),
            None => None,
        };
        for _ in 0..MAX_TRANSACTION_TRIES {
            let mut con = self.exclusive().await?;
            let ids = self.all_task_ids().await?;
            let keys: Vec<String> = ids.iter().map(|id| self.task_key(id)).collect();
            for chunk in keys.chunks(CHUNK) {
                self.watch(&mut con, chunk).await?;
            }
            let mut waiting: Vec<StoredTask> = self
                .load_tasks(&mut con, &ids)
                .await?
                .into_iter()
                .filter(|t| matches!(t.record.state, TaskState::Queued | TaskState::Ready))
                .collect();
            waiting.sort_by(|a, b| {
                b.record
                    .priority
                    .cmp(&a.record.priority)
                    .then(a.record.position.cmp(&b.record.position))
            });
            let order: Vec<(String, i64)> = waiting
                .iter()
                .map(|t| (t.record.id.clone(), t.record.priority))
                .collect();
            let order = match reorder(order, &task_id, before.as_deref()).map_err(invalid) {
                Ok(order) => order,
                Err(e) => {
                    self.unwatch(&mut con).await?;
                    return Err(e);
                }
            };
            let last: i64 = con
                .incr(self.key("position"), order.len() as i64)
                .await
                .map_err(|e| self.err(e))?;
            let base = last - order.len() as i64;
            let mut view = RunView::new(waiting, now_ms());
            for (i, (id, priority)) in order.iter().enumerate() {
                let task = view.edit(id)?;
                task.position = base + 1 + i as i64;
                task.priority = *priority;
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.write_changes(&mut con, &mut pipe, &view).await?;
            let result: redis::Value = pipe.query_async(&mut con).await.map_err(|e| self.err(e))?;
            self.give_back(con).await;
            if !matches!(result, redis::Value::Nil) {
                return Ok(());
            }
        }
        Err(StoreError::Queue(
            "the queue kept changing while tasks were reordered; try again".into(),
        ))
    }

    async fn add_task_log(
        &self,
        task_id: &str,
        level: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let line = StoredLog {
            at: now_ms(),
            level: level.to_owned(),
            message: message.to_owned(),
        };
        let _: i64 = self
            .con()
            .rpush(self.key(&format!("task:{task_id}:logs")), encode(&line))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn task(&self, id: &str) -> Result<TaskRecord, StoreError> {
        let id = self.resolve_task_id(id).await?;
        let mut con = self.con();
        let task = self
            .load_tasks(&mut con, std::slice::from_ref(&id))
            .await?
            .pop()
            .ok_or_else(|| invalid(format!("no task `{id}`")))?;
        Ok(as_read(task.record, now_ms()))
    }

    async fn resolve_task_id(&self, prefix: &str) -> Result<String, StoreError> {
        let prefix = prefix.trim();
        if prefix.len() < 4 {
            return Err(invalid(format!(
                "`{prefix}` is too short for a task id; give at least 4 characters (see `baton tasks list`)"
            )));
        }
        let mut ids: Vec<String> = self
            .con()
            .zrangebylex_limit(
                self.key("task-ids"),
                format!("[{prefix}"),
                format!("({prefix}g"),
                0,
                2,
            )
            .await
            .map_err(|e| self.err(e))?;
        ids.retain(|i| i.starts_with(prefix));
        if ids.is_empty() {
            ids = self
                .all_task_ids()
                .await?
                .into_iter()
                .filter(|i| i.ends_with(prefix))
                .take(2)
                .collect();
        }
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(invalid(format!(
                "no task matches `{prefix}`; list tasks with `baton tasks list`"
            ))),
            _ => Err(invalid(format!(
                "`{prefix}` matches several tasks; give more characters"
            ))),
        }
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, StoreError> {
        let mut con = self.con();
        let ids = match &filter.run_id {
            Some(run) => match self.load_run(&mut con, run).await? {
                Some(meta) => meta.tasks,
                None => Vec::new(),
            },
            None => self.all_task_ids().await?,
        };
        let now = now_ms();
        let mut out: Vec<TaskRecord> = self
            .load_tasks(&mut con, &ids)
            .await?
            .into_iter()
            .map(|t| as_read(t.record, now))
            .filter(|t| filter.states.is_empty() || filter.states.contains(&t.state))
            .collect();
        if filter.run_id.is_some() {
            out.sort_by_key(|t| t.position);
        } else {
            out.sort_by(|a, b| {
                b.created_ms
                    .cmp(&a.created_ms)
                    .then(b.position.cmp(&a.position))
            });
        }
        if filter.limit > 0 {
            out.truncate(filter.limit as usize);
        }
        Ok(out)
    }

    async fn task_events(&self, task_id: &str) -> Result<Vec<TaskEvent>, StoreError> {
        let texts: Vec<String> = self
            .con()
            .lrange(self.key(&format!("task:{task_id}:events")), 0, -1)
            .await
            .map_err(|e| self.err(e))?;
        texts.iter().map(|t| decode(t, "task event")).collect()
    }

    async fn task_events_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<TaskEvent>, StoreError> {
        let texts: Vec<String> = self
            .con()
            .zrangebyscore_limit(
                self.key("events"),
                format!("({after_id}"),
                "+inf",
                0,
                limit.max(1) as isize,
            )
            .await
            .map_err(|e| self.err(e))?;
        texts.iter().map(|t| decode(t, "task event")).collect()
    }

    async fn task_logs(&self, task_id: &str, after_id: i64) -> Result<Vec<TaskLog>, StoreError> {
        let start = after_id.max(0);
        let texts: Vec<String> = self
            .con()
            .lrange(
                self.key(&format!("task:{task_id}:logs")),
                start as isize,
                -1,
            )
            .await
            .map_err(|e| self.err(e))?;
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let line: StoredLog = decode(text, "log line")?;
                Ok(TaskLog {
                    id: start + 1 + i as i64,
                    task_id: task_id.to_owned(),
                    at: line.at,
                    level: line.level,
                    message: line.message,
                })
            })
            .collect()
    }

    async fn run_outputs(&self, run_id: &str) -> Result<BTreeMap<String, Value>, StoreError> {
        let tasks = self
            .tasks(&TaskFilter {
                run_id: Some(run_id.to_owned()),
                ..TaskFilter::default()
            })
            .await?;
        Ok(tasks
            .into_iter()
            .filter(|t| t.state == TaskState::Succeeded)
            .filter_map(|t| Some((t.step, t.output?)))
            .collect())
    }

    async fn run_params(&self, run_id: &str) -> Result<Value, StoreError> {
        let meta = self
            .load_run(&mut self.con(), run_id)
            .await?
            .ok_or_else(|| invalid(format!("no run `{run_id}`")))?;
        Ok(meta.params)
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunSummary>, StoreError> {
        let stop = if limit == 0 { -1 } else { limit as isize - 1 };
        let ids: Vec<String> = self
            .con()
            .zrevrange(self.key("runs"), 0, stop)
            .await
            .map_err(|e| self.err(e))?;
        let mut con = self.con();
        let mut out = Vec::new();
        for id in ids {
            let Some(meta) = self.load_run(&mut con, &id).await? else {
                continue;
            };
            let mut states: BTreeMap<String, i64> = BTreeMap::new();
            for task in self.load_tasks(&mut con, &meta.tasks).await? {
                *states
                    .entry(task.record.state.as_str().to_owned())
                    .or_default() += 1;
            }
            out.push(RunSummary {
                id: meta.id,
                name: meta.name,
                template: meta.template,
                params: meta.params,
                origin: meta.origin,
                created_ms: meta.created_ms,
                states,
            });
        }
        Ok(out)
    }

    async fn task_counts(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let ids = self.all_task_ids().await?;
        let mut counts = BTreeMap::new();
        for task in self.load_tasks(&mut self.con(), &ids).await? {
            *counts
                .entry(task.record.state.as_str().to_owned())
                .or_default() += 1;
        }
        Ok(counts)
    }

    async fn waiting_resources(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut con = self.con();
        let queued: Vec<String> = con
            .hvals(self.key("queued"))
            .await
            .map_err(|e| self.err(e))?;
        let mut out: BTreeSet<String> = queued.into_iter().collect();
        let ready: Vec<String> = con
            .hvals(self.key("ready"))
            .await
            .map_err(|e| self.err(e))?;
        for text in ready {
            out.insert(decode::<ReadyEntry>(&text, "ready entry")?.resource);
        }
        let running: Vec<String> = con
            .smembers(self.key("running"))
            .await
            .map_err(|e| self.err(e))?;
        for task in self.load_tasks(&mut con, &running).await? {
            if task.record.state == TaskState::Running {
                out.insert(task.record.resource);
            }
        }
        Ok(out)
    }

    async fn advertise_worker(
        &self,
        worker: &str,
        resources: &[String],
        ttl_ms: u64,
    ) -> Result<(), StoreError> {
        let info = WorkerInfo {
            name: worker.to_owned(),
            resources: resources.to_vec(),
            seen_ms: now_ms(),
            ttl_ms: ttl_ms as i64,
        };
        let _: () = self
            .con()
            .hset(self.key("workers"), worker, encode(&info))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let entries: BTreeMap<String, String> = self
            .con()
            .hgetall(self.key("workers"))
            .await
            .map_err(|e| self.err(e))?;
        entries.values().map(|t| decode(t, "worker")).collect()
    }
}

/// A private `redis-server` (the Debian package) on a free loopback port, for tests and
/// `baton bench tasks`: appends every write to its log (`appendonly yes`) in `dir`, and
/// is stopped when dropped.
pub struct RedisServer {
    child: std::process::Child,
    url: String,
}

impl RedisServer {
    /// Starts one with its files in `dir` and waits until it answers `PING` (10 s at most).
    pub async fn start(dir: &std::path::Path) -> Result<Self, StoreError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| StoreError::Queue(format!("no free port for redis-server: {e}")))?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                StoreError::Queue(format!(
                    "cannot start redis-server ({e}); install it with `apt-get install redis-server`"
                ))
            })?;
        let mut server = Self {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        };
        let client = redis::Client::open(server.url.as_str())
            .map_err(|e| StoreError::Queue(e.to_string()))?;
        let started = std::time::Instant::now();
        loop {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut con)
                    .await
                    .is_ok()
                {
                    return Ok(server);
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(StoreError::Queue(format!(
                    "redis-server exited at start ({status})"
                )));
            }
            if started.elapsed() > std::time::Duration::from_secs(10) {
                return Err(StoreError::Queue(
                    "redis-server did not answer within 10 s".into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Its address, `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
