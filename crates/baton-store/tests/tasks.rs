//! The task queue's state machine on a real SQLite file: dependencies, claims by competing
//! workers, retries with backoff, lost leases, cancellation and failure cascades,
//! approvals, retries by hand, reordering and pausing.

use baton_core::TaskState;
use baton_store::TaskQueue as _;
use baton_store::{NewRun, NewTask, Store, TaskFilter};
use serde_json::json;

fn task(step: &str, after: &[&str]) -> NewTask {
    NewTask {
        step: step.into(),
        kind: "noop".into(),
        input: json!({}),
        resource: "none".into(),
        memory_mb: 0,
        priority: 0,
        deadline_ms: None,
        max_attempts: 2,
        backoff_ms: 0,
        timeout_ms: None,
        after: after.iter().map(|s| s.to_string()).collect(),
    }
}

fn run(tasks: Vec<NewTask>) -> NewRun {
    NewRun {
        name: "test".into(),
        template: None,
        params: json!({}),
        origin: "test".into(),
        tasks,
    }
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    (dir, store)
}

async fn state(store: &Store, id: &str) -> TaskState {
    store.task(id).await.unwrap().state
}

#[tokio::test]
async fn dependencies_run_in_order_and_outputs_flow() {
    let (_dir, store) = open().await;
    let (run_id, ids) = store
        .create_run(&run(vec![
            task("a", &[]),
            task("b", &["a"]),
            task("c", &["a", "b"]),
        ]))
        .await
        .unwrap();
    assert_eq!(state(&store, &ids[0]).await, TaskState::Ready);
    assert_eq!(state(&store, &ids[1]).await, TaskState::Queued);
    let ready: Vec<String> = store
        .ready_tasks()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ready, [ids[0].clone()]);

    let claimed = store
        .claim_task(&ids[0], "w1", 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempts, 1);
    // A second worker cannot take the same task.
    assert!(store
        .claim_task(&ids[0], "w2", 10_000)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .complete_task(&ids[0], "w1", &json!({"text": "A"}))
        .await
        .unwrap());
    assert_eq!(state(&store, &ids[1]).await, TaskState::Ready);
    assert_eq!(
        state(&store, &ids[2]).await,
        TaskState::Queued,
        "c still waits for b"
    );
    store
        .claim_task(&ids[1], "w1", 10_000)
        .await
        .unwrap()
        .unwrap();
    store
        .complete_task(&ids[1], "w1", &json!({"text": "B"}))
        .await
        .unwrap();
    assert_eq!(state(&store, &ids[2]).await, TaskState::Ready);
    let outputs = store.run_outputs(&run_id).await.unwrap();
    assert_eq!(outputs["a"], json!({"text": "A"}));
    let c = store.task(&ids[2]).await.unwrap();
    assert_eq!(c.after, ["a", "b"]);
    let events = store.task_events(&ids[0]).await.unwrap();
    let moves: Vec<&str> = events.iter().map(|e| e.to_state.as_str()).collect();
    assert_eq!(moves, ["ready", "running", "succeeded"]);
    assert!(events[1].reason.contains("attempt 1 started on w1"));
}

#[tokio::test]
async fn a_cycle_is_refused_naming_it() {
    let (_dir, store) = open().await;
    let err = store
        .create_run(&run(vec![task("a", &["b"]), task("b", &["a"])]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cycle: a → b → a"), "{err}");
    assert!(
        store
            .tasks(&TaskFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing was queued"
    );
}

#[tokio::test]
async fn failures_retry_then_fail_and_skip_dependants() {
    let (_dir, store) = open().await;
    let (_, ids) = store
        .create_run(&run(vec![
            task("a", &[]),
            task("b", &["a"]),
            task("c", &["b"]),
        ]))
        .await
        .unwrap();
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    let s = store
        .fail_task(&ids[0], "w", "engine down", true)
        .await
        .unwrap();
    assert_eq!(s, Some(TaskState::Ready), "one attempt left");
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    let s = store
        .fail_task(&ids[0], "w", "engine down", true)
        .await
        .unwrap();
    assert_eq!(s, Some(TaskState::Failed));
    assert_eq!(state(&store, &ids[1]).await, TaskState::Skipped);
    assert_eq!(state(&store, &ids[2]).await, TaskState::Skipped);
    let events = store.task_events(&ids[2]).await.unwrap();
    assert!(events.last().unwrap().reason.contains("step a failed"));
    let a = store.task_events(&ids[0]).await.unwrap();
    assert!(a.iter().any(|e| e
        .reason
        .contains("attempt 1 failed: engine down; attempt 2 of 2")));

    // Retried by hand: the task and its skipped dependants come back.
    assert_eq!(store.retry_task(&ids[0]).await.unwrap(), TaskState::Ready);
    assert_eq!(state(&store, &ids[1]).await, TaskState::Queued);
    assert_eq!(store.task(&ids[0]).await.unwrap().attempts, 0);
}

#[tokio::test]
async fn a_not_retryable_error_fails_at_once() {
    let (_dir, store) = open().await;
    let (_, ids) = store.create_run(&run(vec![task("a", &[])])).await.unwrap();
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    let s = store
        .fail_task(&ids[0], "w", "no such file", false)
        .await
        .unwrap();
    assert_eq!(s, Some(TaskState::Failed));
}

#[tokio::test]
async fn backoff_holds_a_retry_back() {
    let (_dir, store) = open().await;
    let mut slow = task("a", &[]);
    slow.backoff_ms = 60_000;
    let (_, ids) = store.create_run(&run(vec![slow])).await.unwrap();
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    store.fail_task(&ids[0], "w", "busy", true).await.unwrap();
    assert!(
        store.ready_tasks().await.unwrap().is_empty(),
        "waits for its backoff"
    );
    assert!(store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .is_none());
    assert!(store.next_retry_at().await.unwrap().is_some());
}

#[tokio::test]
async fn an_expired_lease_is_taken_back_and_recorded() {
    let (_dir, store) = open().await;
    let (_, ids) = store.create_run(&run(vec![task("a", &[])])).await.unwrap();
    store
        .claim_task(&ids[0], "dead-worker", 1)
        .await
        .unwrap()
        .unwrap();
    // The lease of 1 ms lapses at once; a renewal by the dead worker would have kept it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let moved = loop {
        let moved = store.recover_expired_leases().await.unwrap();
        if !moved.is_empty() || std::time::Instant::now() > deadline {
            break moved;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(moved, [(ids[0].clone(), TaskState::Ready)]);
    assert!(!store
        .renew_lease(&ids[0], "dead-worker", 10_000, None)
        .await
        .unwrap());
    assert!(
        !store
            .complete_task(&ids[0], "dead-worker", &json!(1))
            .await
            .unwrap(),
        "a late result is dropped"
    );
    let events = store.task_events(&ids[0]).await.unwrap();
    assert!(events
        .last()
        .unwrap()
        .reason
        .contains("dead-worker stopped during attempt 1"));
    let again = store
        .claim_task(&ids[0], "w2", 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 2);
}

#[tokio::test]
async fn a_restarted_worker_takes_its_own_tasks_back_at_once() {
    let (_dir, store) = open().await;
    let (_, ids) = store
        .create_run(&run(vec![task("a", &[]), task("b", &[])]))
        .await
        .unwrap();
    store
        .claim_task(&ids[0], "me", 600_000)
        .await
        .unwrap()
        .unwrap();
    store
        .claim_task(&ids[1], "other", 600_000)
        .await
        .unwrap()
        .unwrap();
    let moved = store.release_worker_leases("me").await.unwrap();
    assert_eq!(moved, [(ids[0].clone(), TaskState::Ready)]);
    assert_eq!(state(&store, &ids[1]).await, TaskState::Running);
}

#[tokio::test]
async fn cancelling_cascades_and_stops_the_running_worker() {
    let (_dir, store) = open().await;
    let (run_id, ids) = store
        .create_run(&run(vec![
            task("a", &[]),
            task("b", &["a"]),
            task("x", &[]),
        ]))
        .await
        .unwrap();
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    let cancelled = store.cancel_task(&ids[0], "not needed").await.unwrap();
    assert_eq!(cancelled, [ids[0].clone(), ids[1].clone()]);
    assert!(
        !store.renew_lease(&ids[0], "w", 10_000, None).await.unwrap(),
        "the worker learns it"
    );
    assert!(store
        .task_events(&ids[1])
        .await
        .unwrap()
        .last()
        .unwrap()
        .reason
        .contains("step a was cancelled"));
    assert_eq!(state(&store, &ids[2]).await, TaskState::Ready);
    store.cancel_run(&run_id, "stop").await.unwrap();
    assert_eq!(state(&store, &ids[2]).await, TaskState::Cancelled);
    assert!(store.cancel_task(&ids[2], "again").await.is_err());
}

#[tokio::test]
async fn approvals_pass_on_edit_or_reject() {
    let (_dir, store) = open().await;
    let mut approve = task("ok", &["draft"]);
    approve.kind = "approval".into();
    approve.resource = "person".into();
    let (_, ids) = store
        .create_run(&run(vec![
            task("draft", &[]),
            approve,
            task("send", &["ok"]),
        ]))
        .await
        .unwrap();
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    store
        .complete_task(&ids[0], "w", &json!({"text": "Dear Sam"}))
        .await
        .unwrap();
    assert_eq!(state(&store, &ids[1]).await, TaskState::WaitingApproval);
    let out = store
        .approve_task(&ids[1], Some(&json!({"text": "Dear Sam, thanks"})), "test")
        .await
        .unwrap();
    assert_eq!(out["text"], "Dear Sam, thanks");
    assert_eq!(state(&store, &ids[2]).await, TaskState::Ready);
    assert!(
        store.approve_task(&ids[1], None, "test").await.is_err(),
        "not waiting any more"
    );

    let mut approve = task("ok", &["draft"]);
    approve.kind = "approval".into();
    let (_, ids) = store
        .create_run(&run(vec![
            task("draft", &[]),
            approve,
            task("send", &["ok"]),
        ]))
        .await
        .unwrap();
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    store
        .complete_task(&ids[0], "w", &json!({"text": "x"}))
        .await
        .unwrap();
    store.reject_task(&ids[1], "wrong tone").await.unwrap();
    assert_eq!(state(&store, &ids[1]).await, TaskState::Failed);
    assert_eq!(state(&store, &ids[2]).await, TaskState::Skipped);
    assert_eq!(
        store.task(&ids[1]).await.unwrap().error.as_deref(),
        Some("rejected: wrong tone")
    );
}

#[tokio::test]
async fn order_priority_deadline_reorder_and_pause() {
    let (_dir, store) = open().await;
    let mut urgent = task("urgent", &[]);
    urgent.priority = 5;
    let mut due = task("due", &[]);
    due.deadline_ms = Some(1);
    let (_, ids) = store
        .create_run(&run(vec![task("first", &[]), urgent, due]))
        .await
        .unwrap();
    let order = |tasks: Vec<baton_core::tasks::ReadyTask>| {
        let mut tasks = tasks;
        baton_core::tasks::order_ready(&mut tasks);
        tasks.into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    let ready = store.ready_tasks().await.unwrap();
    assert_eq!(
        order(ready),
        [ids[1].clone(), ids[2].clone(), ids[0].clone()]
    );
    assert!(
        store.task(&ids[2]).await.unwrap().deadline_missed,
        "a passed deadline shows"
    );

    // Moved before the urgent one, `first` takes its priority and goes first.
    store.move_task(&ids[0], Some(&ids[1])).await.unwrap();
    let ready = store.ready_tasks().await.unwrap();
    assert_eq!(order(ready)[0], ids[0]);

    store.set_queue_paused(true).await.unwrap();
    assert!(store.ready_tasks().await.unwrap().is_empty());
    store.set_queue_paused(false).await.unwrap();
    assert_eq!(store.ready_tasks().await.unwrap().len(), 3);
}

#[tokio::test]
async fn ids_resolve_by_prefix() {
    let (_dir, store) = open().await;
    let (_, ids) = store.create_run(&run(vec![task("a", &[])])).await.unwrap();
    let t = store.task(&ids[0][..13]).await.unwrap();
    assert_eq!(t.id, ids[0]);
    assert!(store
        .task("abc")
        .await
        .unwrap_err()
        .to_string()
        .contains("at least 4"));
    assert!(store
        .task("ffffffff")
        .await
        .unwrap_err()
        .to_string()
        .contains("no task matches"));
}
