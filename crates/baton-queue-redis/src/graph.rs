//! A run's tasks held in memory while one change is worked out: the same transitions as
//! the embedded queue's SQL (`baton-store/src/tasks.rs`), decided by the same functions of
//! `baton_core::tasks`, on documents that the caller then writes back in one Redis
//! transaction. Pure: no I/O, so every transition is tested without a server.

use std::collections::{BTreeMap, BTreeSet};

use baton_core::tasks::{dependant_outcome, dependants_of, retry_delay_ms, TaskState};
use baton_store::{StoreError, TaskRecord, MAX_BACKOFF_MS};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task as stored in Redis: its record and the ids of the tasks it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredTask {
    pub record: TaskRecord,
    pub deps: Vec<String>,
}

/// A run as stored in Redis (its tasks are separate documents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunMeta {
    pub id: String,
    pub name: String,
    pub template: Option<String>,
    pub params: Value,
    pub origin: String,
    pub created_ms: i64,
    /// Its task ids, in step order.
    pub tasks: Vec<String>,
}

/// A state change to record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingEvent {
    pub task_id: String,
    pub from: Option<TaskState>,
    pub to: TaskState,
    pub attempt: i64,
    pub worker: Option<String>,
    pub reason: String,
}

/// The state a task enters when its dependencies have succeeded.
pub(crate) fn ready_state(kind: &str) -> TaskState {
    if kind == "approval" {
        TaskState::WaitingApproval
    } else {
        TaskState::Ready
    }
}

/// One change in progress over a run's tasks (or over one task, for the changes that
/// touch nothing else).
#[derive(Debug)]
pub(crate) struct RunView {
    pub tasks: BTreeMap<String, StoredTask>,
    /// The tasks changed so far: written back when the change commits.
    pub changed: BTreeSet<String>,
    pub events: Vec<PendingEvent>,
    pub now: i64,
}

/// The error for a task id that is not in the queue.
pub(crate) fn missing(id: &str) -> StoreError {
    StoreError::Invalid(format!(
        "no task `{id}`; list tasks with `baton tasks list`"
    ))
}

impl RunView {
    pub fn new(tasks: impl IntoIterator<Item = StoredTask>, now: i64) -> Self {
        Self {
            tasks: tasks
                .into_iter()
                .map(|t| (t.record.id.clone(), t))
                .collect(),
            changed: BTreeSet::new(),
            events: Vec::new(),
            now,
        }
    }

    pub fn get(&self, id: &str) -> Result<&TaskRecord, StoreError> {
        self.tasks
            .get(id)
            .map(|t| &t.record)
            .ok_or_else(|| missing(id))
    }

    /// The record of `id`, marked as changed.
    pub fn edit(&mut self, id: &str) -> Result<&mut TaskRecord, StoreError> {
        let task = self.tasks.get_mut(id).ok_or_else(|| missing(id))?;
        self.changed.insert(id.to_owned());
        Ok(&mut task.record)
    }

    pub fn event(
        &mut self,
        task_id: &str,
        from: Option<TaskState>,
        to: TaskState,
        attempt: i64,
        worker: Option<&str>,
        reason: &str,
    ) {
        self.events.push(PendingEvent {
            task_id: task_id.to_owned(),
            from,
            to,
            attempt,
            worker: worker.map(str::to_owned),
            reason: reason.to_owned(),
        });
    }

    /// Moves a task between states and records why (as the store's `set_state`).
    pub fn set_state(
        &mut self,
        id: &str,
        from: TaskState,
        to: TaskState,
        attempt: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = self.now;
        let task = self.edit(id)?;
        task.state = to;
        if to.is_terminal() {
            task.finished_ms = Some(now);
        }
        if to != TaskState::Running && to != TaskState::Cancelled {
            task.lease_owner = None;
            task.lease_until_ms = None;
        }
        self.event(id, Some(from), to, attempt, None, reason);
        Ok(())
    }

    /// The run's graph: task → the tasks it waits for.
    pub fn edges(&self) -> BTreeMap<String, Vec<String>> {
        self.tasks
            .iter()
            .filter(|(_, t)| !t.deps.is_empty())
            .map(|(id, t)| (id.clone(), t.deps.clone()))
            .collect()
    }

    fn deps_succeeded(&self, id: &str) -> bool {
        self.tasks[id].deps.iter().all(|d| {
            self.tasks
                .get(d)
                .is_some_and(|t| t.record.state == TaskState::Succeeded)
        })
    }

    /// Readies the queued dependants of `id` whose dependencies have all succeeded.
    pub fn promote_dependants(&mut self, id: &str) -> Result<(), StoreError> {
        let candidates: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.record.state == TaskState::Queued && t.deps.iter().any(|d| d == id))
            .map(|(tid, _)| tid.clone())
            .collect();
        for tid in candidates {
            if !self.deps_succeeded(&tid) {
                continue;
            }
            let (kind, attempt) = {
                let t = &self.tasks[&tid].record;
                (t.kind.clone(), t.attempts)
            };
            let to = ready_state(&kind);
            let reason = if to == TaskState::WaitingApproval {
                "its dependencies succeeded; waits for a person's approval"
            } else {
                "its dependencies succeeded"
            };
            self.set_state(&tid, TaskState::Queued, to, attempt, reason)?;
        }
        Ok(())
    }

    /// Gives the unfinished dependants of a task that ended as `finished` their state.
    pub fn finish_dependants(
        &mut self,
        id: &str,
        finished: TaskState,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let Some(outcome) = dependant_outcome(finished) else {
            return Ok(Vec::new());
        };
        let edges = self.edges();
        let mut changed = Vec::new();
        for dependant in dependants_of(&edges, id) {
            let (state, attempt) = {
                let t = self.get(dependant)?;
                (t.state, t.attempts)
            };
            if state.is_terminal() || state == TaskState::Running {
                continue;
            }
            self.set_state(dependant, state, outcome, attempt, reason)?;
            changed.push(dependant.to_owned());
        }
        Ok(changed)
    }

    /// A failed attempt of a running task: ready again after `backoff` (doubled per
    /// attempt) while attempts are left, else failed with its dependants skipped.
    pub fn after_failure(
        &mut self,
        id: &str,
        worker: Option<&str>,
        backoff: i64,
        retryable: bool,
        reason: &str,
        error: &str,
    ) -> Result<TaskState, StoreError> {
        let now = self.now;
        let (attempt, max_attempts, step) = {
            let t = self.get(id)?;
            (t.attempts, t.max_attempts, t.step.clone())
        };
        let task = self.edit(id)?;
        task.error = Some(error.to_owned());
        task.lease_owner = None;
        task.lease_until_ms = None;
        if retryable && attempt < max_attempts {
            let delay = retry_delay_ms(attempt as u32, backoff.max(0) as u64, MAX_BACKOFF_MS);
            task.state = TaskState::Ready;
            task.not_before_ms = Some(now + delay as i64);
            task.progress = None;
            let reason = format!(
                "{reason}; attempt {} of {max_attempts} in {:.1} s",
                attempt + 1,
                delay as f64 / 1000.0
            );
            self.event(
                id,
                Some(TaskState::Running),
                TaskState::Ready,
                attempt,
                worker,
                &reason,
            );
            return Ok(TaskState::Ready);
        }
        task.state = TaskState::Failed;
        task.finished_ms = Some(now);
        let reason = if retryable {
            format!("{reason}; no attempts left ({attempt} of {max_attempts})")
        } else {
            format!("{reason}; not retried (retrying would fail the same way)")
        };
        self.event(
            id,
            Some(TaskState::Running),
            TaskState::Failed,
            attempt,
            worker,
            &reason,
        );
        self.finish_dependants(id, TaskState::Failed, &format!("step {step} failed"))?;
        Ok(TaskState::Failed)
    }

    /// Where a retried task goes: ready (or waiting for approval) when its dependencies
    /// have succeeded, else queued.
    pub fn requeue_state(&self, id: &str) -> TaskState {
        if self.deps_succeeded(id) {
            ready_state(&self.tasks[id].record.kind)
        } else {
            TaskState::Queued
        }
    }

    /// Starts a task over (attempts, output and checkpoint cleared) in state `to`.
    pub fn reset_for_retry(
        &mut self,
        id: &str,
        from: TaskState,
        to: TaskState,
        reason: &str,
    ) -> Result<(), StoreError> {
        let task = self.edit(id)?;
        task.state = to;
        task.attempts = 0;
        task.error = None;
        task.output = None;
        task.not_before_ms = None;
        task.finished_ms = None;
        task.progress = None;
        task.checkpoint = None;
        task.lease_owner = None;
        task.lease_until_ms = None;
        self.event(id, Some(from), to, 0, None, reason);
        Ok(())
    }

    /// Whether `id` is running under `worker`.
    pub fn held_by(&self, id: &str, worker: &str) -> bool {
        self.tasks.get(id).is_some_and(|t| {
            t.record.state == TaskState::Running && t.record.lease_owner.as_deref() == Some(worker)
        })
    }

    /// What an approval step's output is without edits: its one dependency's output as
    /// is, or several as an object by step.
    pub fn approval_output(&self, id: &str) -> Value {
        let mut deps: Vec<&TaskRecord> = self.tasks[id]
            .deps
            .iter()
            .filter_map(|d| self.tasks.get(d).map(|t| &t.record))
            .collect();
        deps.sort_by_key(|t| t.position);
        if let [one] = deps.as_slice() {
            return one.output.clone().unwrap_or(Value::Null);
        }
        Value::Object(
            deps.into_iter()
                .map(|t| (t.step.clone(), t.output.clone().unwrap_or(Value::Null)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, step: &str, kind: &str, state: TaskState, deps: &[&str]) -> StoredTask {
        StoredTask {
            record: TaskRecord {
                id: id.into(),
                run_id: "run".into(),
                run_name: "run".into(),
                step: step.into(),
                kind: kind.into(),
                input: Value::Null,
                resource: "none".into(),
                memory_mb: 0,
                priority: 0,
                deadline_ms: None,
                position: 0,
                state,
                attempts: 0,
                max_attempts: 2,
                backoff_ms: 1000,
                timeout_ms: None,
                not_before_ms: None,
                lease_owner: None,
                lease_until_ms: None,
                progress: None,
                checkpoint: None,
                output: None,
                error: None,
                deadline_missed: false,
                created_ms: 0,
                started_ms: None,
                finished_ms: None,
                after: Vec::new(),
            },
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn chain() -> RunView {
        RunView::new(
            [
                task("a", "a", "noop", TaskState::Running, &[]),
                task("b", "b", "approval", TaskState::Queued, &["a"]),
                task("c", "c", "noop", TaskState::Queued, &["b"]),
            ],
            10_000,
        )
    }

    #[test]
    fn success_promotes_only_dependants_whose_needs_all_succeeded() {
        let mut view = chain();
        view.edit("a").unwrap().state = TaskState::Succeeded;
        view.promote_dependants("a").unwrap();
        assert_eq!(view.get("b").unwrap().state, TaskState::WaitingApproval);
        assert_eq!(view.get("c").unwrap().state, TaskState::Queued);
    }

    #[test]
    fn a_failure_retries_with_backoff_then_skips_every_dependant() {
        let mut view = chain();
        view.edit("a").unwrap().attempts = 1;
        let state = view
            .after_failure("a", Some("w"), 1000, true, "boom", "boom")
            .unwrap();
        assert_eq!(state, TaskState::Ready);
        assert_eq!(view.get("a").unwrap().not_before_ms, Some(11_000));
        view.edit("a").unwrap().state = TaskState::Running;
        view.edit("a").unwrap().attempts = 2;
        let state = view
            .after_failure("a", Some("w"), 1000, true, "boom", "boom")
            .unwrap();
        assert_eq!(state, TaskState::Failed);
        assert_eq!(view.get("b").unwrap().state, TaskState::Skipped);
        assert_eq!(view.get("c").unwrap().state, TaskState::Skipped);
        assert!(view.events.last().unwrap().reason.contains("step a failed"));
    }

    #[test]
    fn retry_requeues_behind_unfinished_dependencies() {
        let mut view = chain();
        assert_eq!(view.requeue_state("b"), TaskState::Queued);
        view.edit("a").unwrap().state = TaskState::Succeeded;
        assert_eq!(view.requeue_state("b"), TaskState::WaitingApproval);
        assert_eq!(view.requeue_state("a"), TaskState::Ready);
    }

    #[test]
    fn approval_output_is_the_single_dependency_output() {
        let mut view = chain();
        view.edit("a").unwrap().output = Some(Value::String("draft".into()));
        assert_eq!(view.approval_output("b"), Value::String("draft".into()));
    }
}
