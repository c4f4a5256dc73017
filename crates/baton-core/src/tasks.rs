//! Tasks and workflows: the state machine, workflow graphs and the scheduling decisions
//! (which ready task runs next under priorities, deadlines, engine limits and the memory
//! budget; what a failure or a cancellation does to dependants; when a retry may run).
//!
//! Everything here is pure: the queue backends (`baton-store` on SQLite, `baton-tasks` on
//! Redis) store and load, and ask these functions what to do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a task is in its life.
///
/// `queued` → `ready` (its dependencies succeeded) → `running` → `succeeded` / `failed` /
/// `cancelled`; an approval step waits in `waiting_approval` instead of running; a task
/// whose dependency failed is `skipped`. A failed attempt with retries left goes back to
/// `ready` after its backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its dependencies.
    Queued,
    /// May run as soon as a worker admits it.
    Ready,
    /// A worker holds its lease and runs it.
    Running,
    /// Finished with an output.
    Succeeded,
    /// Finished without an output, retries used up (or not retryable).
    Failed,
    /// Stopped by a person or because a dependency was cancelled.
    Cancelled,
    /// An approval step waiting for a person.
    WaitingApproval,
    /// Not run because a dependency failed.
    Skipped,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 8] = [
        TaskState::Queued,
        TaskState::Ready,
        TaskState::Running,
        TaskState::WaitingApproval,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::Skipped,
    ];

    /// The stored name (`waiting_approval`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::WaitingApproval => "waiting_approval",
            TaskState::Skipped => "skipped",
        }
    }

    /// Whether the task is finished for good (until retried by hand).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled | TaskState::Skipped
        )
    }

    /// Whether a move from `self` to `to` is allowed.
    pub fn can_become(self, to: TaskState) -> bool {
        use TaskState::*;
        match (self, to) {
            (Queued, Ready | WaitingApproval | Cancelled | Skipped) => true,
            (Ready, Running | WaitingApproval | Cancelled | Skipped | Failed) => true,
            // A lost lease or a failed attempt with retries left goes back to ready.
            (Running, Succeeded | Failed | Cancelled | Ready) => true,
            (WaitingApproval, Succeeded | Failed | Cancelled) => true,
            // Retried by hand.
            (Failed | Cancelled | Skipped, Queued | Ready | WaitingApproval) => true,
            _ => false,
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

/// Why a workflow's steps do not form a graph that can run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Two steps share an id.
    #[error("two steps are called `{0}`: give each step its own id")]
    DuplicateStep(String),
    /// A step waits for a step that does not exist.
    #[error("step `{step}` waits for `{missing}`, which is not a step of this workflow")]
    UnknownDependency {
        /// The step that names it.
        step: String,
        /// The name that matches no step.
        missing: String,
    },
    /// The steps wait for each other in a circle.
    #[error("the steps wait for each other in a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
}

/// Checks a workflow's steps (`(id, the ids it waits for)`) and returns them in an order
/// that runs every step after its dependencies (stable: ties keep the written order).
pub fn check_graph(steps: &[(String, Vec<String>)]) -> Result<Vec<usize>, GraphError> {
    let mut index = HashMap::new();
    for (i, (id, _)) in steps.iter().enumerate() {
        if index.insert(id.as_str(), i).is_some() {
            return Err(GraphError::DuplicateStep(id.clone()));
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
    for (id, needs) in steps {
        let mut list = Vec::new();
        for need in needs {
            let Some(&j) = index.get(need.as_str()) else {
                return Err(GraphError::UnknownDependency {
                    step: id.clone(),
                    missing: need.clone(),
                });
            };
            list.push(j);
        }
        deps.push(list);
    }
    // Depth-first search with colours; the grey path is the cycle when one closes.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    for start in 0..steps.len() {
        if colour[start] != Colour::White {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if *next < deps[node].len() {
                let dep = deps[node][*next];
                *next += 1;
                match colour[dep] {
                    Colour::White => {
                        colour[dep] = Colour::Grey;
                        stack.push((dep, 0));
                    }
                    Colour::Grey => {
                        let from = stack
                            .iter()
                            .position(|&(n, _)| n == dep)
                            .expect("a grey node is on the stack");
                        // The stack runs from a step to what it waits for; a cycle reads
                        // better in the order things would happen, from the step written
                        // first.
                        let mut nodes: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        nodes.reverse();
                        let first = (0..nodes.len())
                            .min_by_key(|&i| nodes[i])
                            .expect("a cycle has a node");
                        nodes.rotate_left(first);
                        nodes.push(nodes[0]);
                        return Err(GraphError::Cycle(
                            nodes.into_iter().map(|n| steps[n].0.clone()).collect(),
                        ));
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// Every task that depends on `root`, directly or through others (not `root` itself).
/// `edges` maps a task to the tasks it waits for.
pub fn dependants_of<'a>(edges: &'a BTreeMap<String, Vec<String>>, root: &str) -> Vec<&'a str> {
    let mut reverse: HashMap<&str, Vec<&str>> = HashMap::new();
    for (task, needs) in edges {
        for need in needs {
            reverse
                .entry(need.as_str())
                .or_default()
                .push(task.as_str());
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(node) = todo.pop() {
        for &next in reverse.get(node).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(next) {
                out.push(next);
                todo.push(next);
            }
        }
    }
    out.sort_unstable();
    out
}

/// What happens to a finished task's dependants that have not run.
pub fn dependant_outcome(finished: TaskState) -> Option<TaskState> {
    match finished {
        TaskState::Failed | TaskState::Skipped => Some(TaskState::Skipped),
        TaskState::Cancelled => Some(TaskState::Cancelled),
        _ => None,
    }
}

/// How long a task waits before attempt `attempt + 1` after its `attempt`-th failure:
/// `base_ms · 2^(attempt-1)`, capped at `max_ms`.
pub fn retry_delay_ms(attempt: u32, base_ms: u64, max_ms: u64) -> u64 {
    let shift = attempt.saturating_sub(1).min(32);
    base_ms.saturating_mul(1u64 << shift).min(max_ms)
}

/// The waiting tasks `(id, priority)` in run order after moving `task_id` just before
/// `before` (taking its priority), or to the end of its own priority when `before` is
/// `None`. An error says which task is not waiting.
pub fn reorder(
    mut order: Vec<(String, i64)>,
    task_id: &str,
    before: Option<&str>,
) -> Result<Vec<(String, i64)>, String> {
    let Some(from) = order.iter().position(|(id, _)| id == task_id) else {
        return Err(format!(
            "task `{task_id}` is not waiting in the queue; only queued or ready tasks move"
        ));
    };
    let (moved, mut priority) = order.remove(from);
    let at = match before {
        Some(other) => {
            let Some(at) = order.iter().position(|(id, _)| id == other) else {
                return Err(format!("task `{other}` is not waiting in the queue"));
            };
            priority = order[at].1;
            at
        }
        None => order
            .iter()
            .rposition(|(_, p)| *p >= priority)
            .map_or(0, |i| i + 1),
    };
    order.insert(at, (moved, priority));
    Ok(order)
}

/// A ready task as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyTask {
    /// The task's id.
    pub id: String,
    /// Higher runs first.
    pub priority: i64,
    /// When it should be done (ms since the epoch); earlier first within a priority.
    pub deadline_ms: Option<i64>,
    /// The order set by hand (and by creation) within the same priority and deadline.
    pub position: i64,
    /// What it runs on: `chat:MODEL`, `chat:auto`, `stt`, `tts`, `ocr`, `none`.
    pub resource: String,
    /// Memory the resource needs when it is not loaded yet, in MB.
    pub memory_mb: u64,
}

/// The state of the worker's resources when a task is picked.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    /// How many tasks run on a resource at once (`resource` → limit); missing → `default_limit`.
    pub limits: HashMap<String, usize>,
    /// Limit for resources without their own.
    pub default_limit: usize,
    /// How many tasks run now, per resource.
    pub running: HashMap<String, usize>,
    /// Resources that may not take work now (an open circuit breaker, a rate limit), with why.
    pub blocked: HashMap<String, String>,
    /// Memory the worker may use for models, in MB (0: no budget).
    pub memory_budget_mb: u64,
    /// Memory held by the models of running tasks, in MB.
    pub memory_in_use_mb: u64,
    /// Resources whose model is loaded already (they need no more memory).
    pub loaded: HashSet<String>,
}

impl Admission {
    /// Why `task` cannot start now, or `None` when it can.
    pub fn refusal(&self, task: &ReadyTask) -> Option<String> {
        if let Some(why) = self.blocked.get(&task.resource) {
            return Some(why.clone());
        }
        let limit = self
            .limits
            .get(&task.resource)
            .copied()
            .unwrap_or(self.default_limit.max(1));
        let running = self.running.get(&task.resource).copied().unwrap_or(0);
        if running >= limit {
            return Some(format!(
                "{} already runs {running} task(s) (limit {limit})",
                task.resource
            ));
        }
        let needs = if self.loaded.contains(&task.resource) {
            0
        } else {
            task.memory_mb
        };
        // A model larger than the whole budget still runs alone, or it would never run.
        if self.memory_budget_mb > 0
            && needs > 0
            && self.memory_in_use_mb > 0
            && self.memory_in_use_mb + needs > self.memory_budget_mb
        {
            return Some(format!(
                "{} needs {needs} MB; {} of {} MB are in use",
                task.resource, self.memory_in_use_mb, self.memory_budget_mb
            ));
        }
        None
    }
}

/// Sorts ready tasks into the order they should run: priority (high first), then the
/// earliest deadline (none last), then position.
pub fn order_ready(tasks: &mut [ReadyTask]) {
    tasks.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| match (a.deadline_ms, b.deadline_ms) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.position.cmp(&b.position))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// Picks the first task, in run order, that `admission` lets start. Tasks that cannot
/// start are passed over (they wait; their retries are not spent).
pub fn pick_next(tasks: &[ReadyTask], admission: &Admission) -> Option<usize> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    let mut sorted = tasks.to_vec();
    order_ready(&mut sorted);
    order.sort_by_key(|&i| {
        sorted
            .iter()
            .position(|t| t.id == tasks[i].id)
            .unwrap_or(usize::MAX)
    });
    order
        .into_iter()
        .find(|&i| admission.refusal(&tasks[i]).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(id, needs)| {
                (
                    id.to_string(),
                    needs.iter().map(|n| n.to_string()).collect(),
                )
            })
            .collect()
    }

    fn ready(id: &str, priority: i64, deadline: Option<i64>, position: i64) -> ReadyTask {
        ReadyTask {
            id: id.into(),
            priority,
            deadline_ms: deadline,
            position,
            resource: "none".into(),
            memory_mb: 0,
        }
    }

    #[test]
    fn graph_order_runs_dependencies_first() {
        let s = steps(&[("c", &["a", "b"]), ("a", &[]), ("b", &["a"])]);
        let order = check_graph(&s).unwrap();
        let names: Vec<&str> = order.iter().map(|&i| s[i].0.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn graph_errors_name_the_problem() {
        let s = steps(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]);
        let err = check_graph(&s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the steps wait for each other in a cycle: a → b → c → a"
        );
        let s = steps(&[("a", &["a"])]);
        assert_eq!(
            check_graph(&s).unwrap_err(),
            GraphError::Cycle(vec!["a".into(), "a".into()])
        );
        let s = steps(&[("a", &["zz"])]);
        assert!(check_graph(&s)
            .unwrap_err()
            .to_string()
            .contains("`a` waits for `zz`"));
        let s = steps(&[("a", &[]), ("a", &[])]);
        assert_eq!(
            check_graph(&s).unwrap_err(),
            GraphError::DuplicateStep("a".into())
        );
    }

    #[test]
    fn dependants_are_transitive() {
        let mut edges = BTreeMap::new();
        edges.insert("b".to_string(), vec!["a".to_string()]);
        edges.insert("c".to_string(), vec!["b".to_string()]);
        edges.insert("d".to_string(), vec!["x".to_string()]);
        assert_eq!(dependants_of(&edges, "a"), ["b", "c"]);
        assert!(dependants_of(&edges, "c").is_empty());
    }

    #[test]
    fn states_round_trip_and_guard_moves() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
        }
        assert!(TaskState::Running.can_become(TaskState::Succeeded));
        assert!(!TaskState::Succeeded.can_become(TaskState::Running));
        assert!(!TaskState::Queued.can_become(TaskState::Running));
        assert_eq!(
            dependant_outcome(TaskState::Failed),
            Some(TaskState::Skipped)
        );
        assert_eq!(
            dependant_outcome(TaskState::Cancelled),
            Some(TaskState::Cancelled)
        );
    }

    #[test]
    fn retry_delay_doubles_up_to_a_cap() {
        assert_eq!(retry_delay_ms(1, 1000, 60_000), 1000);
        assert_eq!(retry_delay_ms(3, 1000, 60_000), 4000);
        assert_eq!(retry_delay_ms(30, 1000, 60_000), 60_000);
        assert_eq!(retry_delay_ms(u32::MAX, u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn priority_then_deadline_then_position() {
        let tasks = vec![
            ready("low", 0, None, 1),
            ready("late", 5, Some(2000), 2),
            ready("soon", 5, Some(1000), 3),
            ready("nodeadline", 5, None, 0),
        ];
        let mut sorted = tasks.clone();
        order_ready(&mut sorted);
        let ids: Vec<&str> = sorted.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["soon", "late", "nodeadline", "low"]);
        assert_eq!(pick_next(&tasks, &Admission::default()), Some(2));
    }

    #[test]
    fn admission_passes_over_busy_blocked_and_too_big() {
        let mut big = ready("big", 9, None, 0);
        big.resource = "chat:big".into();
        big.memory_mb = 4000;
        let mut remote = ready("remote", 8, None, 1);
        remote.resource = "chat:remote".into();
        let mut busy = ready("busy", 7, None, 2);
        busy.resource = "stt".into();
        let fine = ready("fine", 0, None, 3);
        let tasks = vec![big.clone(), remote, busy, fine];
        let mut admission = Admission {
            default_limit: 1,
            memory_budget_mb: 6000,
            memory_in_use_mb: 3000,
            ..Admission::default()
        };
        admission
            .blocked
            .insert("chat:remote".into(), "circuit open".into());
        admission.running.insert("stt".into(), 1);
        assert_eq!(pick_next(&tasks, &admission), Some(3));
        assert!(admission.refusal(&big).unwrap().contains("needs 4000 MB"));
        // Loaded already: no more memory needed.
        admission.loaded.insert("chat:big".into());
        assert_eq!(pick_next(&tasks, &admission), Some(0));
        // Alone, a model over the budget still runs.
        admission.loaded.clear();
        admission.memory_in_use_mb = 0;
        big.memory_mb = 10_000;
        assert!(admission.refusal(&big).is_none());
    }
}
