//! The Redis queue behaves as the embedded one: the same scenario (dependencies, competing
//! claims, retries with backoff, a failure cascade, lost leases, cancellation, approvals,
//! retries by hand, reordering, pausing, logs, id prefixes, a refused cycle) runs through
//! the `TaskQueue` interface on a real SQLite file and on a real `redis-server`, and both
//! leave the same trace: every task's state changes with their reasons.

use baton_core::TaskState;
use baton_queue_redis::{RedisQueue, RedisServer};
use baton_store::{NewRun, NewTask, Store, StoreError, TaskFilter, TaskQueue};
use serde_json::json;

fn task(step: &str, kind: &str, after: &[&str]) -> NewTask {
    NewTask {
        step: step.into(),
        kind: kind.into(),
        input: json!({ "step": step }),
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

fn run(name: &str, tasks: Vec<NewTask>) -> NewRun {
    NewRun {
        name: name.into(),
        template: None,
        params: json!({ "who": name }),
        origin: "test".into(),
        tasks,
    }
}

/// Ready task ids in the scheduler's order.
async fn ready(q: &dyn TaskQueue) -> Vec<String> {
    let mut ready = q.ready_tasks().await.unwrap();
    baton_core::tasks::order_ready(&mut ready);
    ready.into_iter().map(|t| t.id).collect()
}

async fn state(q: &dyn TaskQueue, id: &str) -> TaskState {
    q.task(id).await.unwrap().state
}

/// Runs the scenario and returns its trace, with ids replaced by step names.
async fn scenario(q: &dyn TaskQueue) -> Vec<String> {
    let mut names = std::collections::BTreeMap::new();
    // 1. A diamond with an approval: a → (b, gate) → c.
    let (run1, ids) = q
        .create_run(&run(
            "diamond",
            vec![
                task("a", "noop", &[]),
                task("b", "noop", &["a"]),
                task("gate", "approval", &["a"]),
                task("c", "noop", &["b", "gate"]),
            ],
        ))
        .await
        .unwrap();
    for (id, step) in ids.iter().zip(["a", "b", "gate", "c"]) {
        names.insert(id.clone(), step.to_owned());
    }
    let [a, b, gate, c] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    assert_eq!(ready(q).await, std::slice::from_ref(a));
    // Two workers race for `a`: one wins.
    let first = q.claim_task(a, "w1", 60_000).await.unwrap();
    let second = q.claim_task(a, "w2", 60_000).await.unwrap();
    assert!(first.is_some() && second.is_none());
    assert!(q.renew_lease(a, "w1", 60_000, Some(0.5)).await.unwrap());
    assert!(!q.renew_lease(a, "w2", 60_000, None).await.unwrap());
    assert_eq!(q.task(a).await.unwrap().progress, Some(0.5));
    q.add_task_log(a, "info", "halfway").await.unwrap();
    q.add_task_log(a, "warn", "almost").await.unwrap();
    assert!(q.complete_task(a, "w1", &json!("A")).await.unwrap());
    assert!(!q.complete_task(a, "w1", &json!("again")).await.unwrap());
    assert_eq!(state(q, b).await, TaskState::Ready);
    assert_eq!(state(q, gate).await, TaskState::WaitingApproval);
    assert_eq!(state(q, c).await, TaskState::Queued);
    assert_eq!(q.run_outputs(&run1).await.unwrap()["a"], json!("A"));
    assert_eq!(
        q.run_params(&run1).await.unwrap(),
        json!({ "who": "diamond" })
    );
    // `b` fails once (retried at once: no backoff), then succeeds.
    q.claim_task(b, "w1", 60_000).await.unwrap().unwrap();
    assert_eq!(
        q.fail_task(b, "w1", "flaky", true).await.unwrap(),
        Some(TaskState::Ready)
    );
    q.claim_task(b, "w2", 60_000).await.unwrap().unwrap();
    q.save_checkpoint(b, "w2", &json!({ "done": 3 }), Some(0.3))
        .await
        .unwrap();
    assert_eq!(
        q.task(b).await.unwrap().checkpoint,
        Some(json!({ "done": 3 }))
    );
    assert!(q.complete_task(b, "w2", &json!("B")).await.unwrap());
    // The approval passes `a`'s output on, edited.
    let approved = q
        .approve_task(
            &gate[gate.len() - 12..],
            Some(&json!("A, edited")),
            "tester",
        )
        .await
        .unwrap();
    assert_eq!(approved, json!("A, edited"));
    assert_eq!(state(q, c).await, TaskState::Ready);
    // `c`'s worker dies: its lease lapses and the lost attempt is recorded.
    q.claim_task(c, "w3", 1).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await; // the 1 ms lease lapses
    let lost = q.recover_expired_leases().await.unwrap();
    assert_eq!(lost, [(c.clone(), TaskState::Ready)]);
    q.claim_task(c, "w3", 60_000).await.unwrap().unwrap();
    // w3 restarts under the same name: its task is taken back at once; no attempts left.
    let released = q.release_worker_leases("w3").await.unwrap();
    assert_eq!(released, [(c.clone(), TaskState::Failed)]);
    // Retried by hand: attempts start over.
    let suffix = &c[c.len() - 8..];
    assert_eq!(q.retry_task(suffix).await.unwrap(), TaskState::Ready);
    q.claim_task(c, "w1", 60_000).await.unwrap().unwrap();
    assert!(q.complete_task(c, "w1", &json!("C")).await.unwrap());

    // 2. A chain that fails for good, cascades, is retried by hand, then cancelled.
    let (run2, ids) = q
        .create_run(&run(
            "chain",
            vec![
                task("x", "noop", &[]),
                task("y", "noop", &["x"]),
                task("z", "noop", &["y"]),
            ],
        ))
        .await
        .unwrap();
    for (id, step) in ids.iter().zip(["x", "y", "z"]) {
        names.insert(id.clone(), step.to_owned());
    }
    let [x, y, z] = [&ids[0], &ids[1], &ids[2]];
    q.claim_task(x, "w1", 60_000).await.unwrap().unwrap();
    assert_eq!(
        q.fail_task(x, "w1", "bad input", false).await.unwrap(),
        Some(TaskState::Failed)
    );
    assert_eq!(state(q, y).await, TaskState::Skipped);
    assert_eq!(state(q, z).await, TaskState::Skipped);
    assert_eq!(q.retry_task(x).await.unwrap(), TaskState::Ready);
    assert_eq!(state(q, y).await, TaskState::Queued);
    let mut cancelled = q.cancel_run(&run2, "not needed").await.unwrap();
    cancelled.sort();
    let mut all = vec![x.clone(), y.clone(), z.clone()];
    all.sort();
    assert_eq!(cancelled, all);
    let again = q.cancel_task(x, "twice").await.unwrap_err();
    assert!(again.to_string().contains("already cancelled"), "{again}");

    // 3. Order, reordering, pausing, a rejected approval.
    let mut solo = Vec::new();
    for (name, priority) in [("p0", 0), ("p5", 5), ("q0", 0)] {
        let mut t = task(name, "noop", &[]);
        t.priority = priority;
        let (_, ids) = q.create_run(&run(name, vec![t])).await.unwrap();
        names.insert(ids[0].clone(), name.to_owned());
        solo.push(ids[0].clone());
    }
    assert_eq!(
        ready(q).await,
        [solo[1].clone(), solo[0].clone(), solo[2].clone()]
    );
    q.move_task(&solo[2], Some(&solo[1])).await.unwrap();
    assert_eq!(
        ready(q).await,
        [solo[2].clone(), solo[1].clone(), solo[0].clone()]
    );
    q.set_queue_paused(true).await.unwrap();
    assert!(q.queue_paused().await.unwrap());
    assert!(q.ready_tasks().await.unwrap().is_empty());
    q.set_queue_paused(false).await.unwrap();
    assert_eq!(ready(q).await.len(), 3);
    let mut waits = task("waits", "noop", &["first"]);
    waits.resource = "stt".into();
    let (_, ids) = q
        .create_run(&run("pending", vec![task("first", "noop", &[]), waits]))
        .await
        .unwrap();
    names.insert(ids[0].clone(), "first".into());
    names.insert(ids[1].clone(), "waits".into());
    let waiting = q.waiting_resources().await.unwrap();
    assert_eq!(waiting.into_iter().collect::<Vec<_>>(), ["none", "stt"]);
    let (_, ids) = q
        .create_run(&run(
            "review",
            vec![
                task("draft", "noop", &[]),
                task("ok", "approval", &["draft"]),
                task("send", "noop", &["ok"]),
            ],
        ))
        .await
        .unwrap();
    for (id, step) in ids.iter().zip(["draft", "ok", "send"]) {
        names.insert(id.clone(), step.to_owned());
    }
    q.claim_task(&ids[0], "w1", 60_000).await.unwrap().unwrap();
    q.complete_task(&ids[0], "w1", &json!("text"))
        .await
        .unwrap();
    q.reject_task(&ids[1], "too long").await.unwrap();
    assert_eq!(state(q, &ids[2]).await, TaskState::Skipped);
    let not_waiting = q.approve_task(&ids[1], None, "tester").await.unwrap_err();
    assert!(not_waiting.to_string().contains("not waiting for approval"));

    // 4. Refusals.
    let cycle = q
        .create_run(&run(
            "loop",
            vec![task("p", "noop", &["q"]), task("q", "noop", &["p"])],
        ))
        .await
        .unwrap_err();
    assert!(matches!(cycle, StoreError::Invalid(_)), "{cycle}");
    assert!(q
        .task("abc")
        .await
        .unwrap_err()
        .to_string()
        .contains("too short"));
    assert!(q
        .task("zzzzzzzz")
        .await
        .unwrap_err()
        .to_string()
        .contains("no task matches"));

    // The trace: every task's changes with reasons, logs, counts and runs.
    let mut trace = Vec::new();
    let mut tasks = q.tasks(&TaskFilter::default()).await.unwrap();
    tasks.sort_by_key(|t| names[&t.id].clone());
    for task in &tasks {
        let step = &names[&task.id];
        trace.push(format!(
            "{step} {} attempts {} output {:?} error {:?}",
            task.state, task.attempts, task.output, task.error
        ));
        for e in q.task_events(&task.id).await.unwrap() {
            trace.push(format!(
                "  {:?} → {} #{} {:?}: {}",
                e.from_state, e.to_state, e.attempt, e.worker, e.reason
            ));
        }
    }
    for line in q.task_logs(a, 0).await.unwrap() {
        trace.push(format!("log {} {} {}", line.id, line.level, line.message));
    }
    assert_eq!(q.task_logs(a, 1).await.unwrap().len(), 1);
    trace.push(format!("counts {:?}", q.task_counts().await.unwrap()));
    trace.push(format!(
        "waiting {:?}",
        q.waiting_resources().await.unwrap()
    ));
    for r in q.runs(0).await.unwrap() {
        trace.push(format!("run {} {} {:?}", r.name, r.state(), r.states));
    }
    let since = q.task_events_since(0, 5).await.unwrap();
    assert_eq!(since.len(), 5);
    assert!(since.windows(2).all(|w| w[0].id < w[1].id));
    trace
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_queue_leaves_the_same_trace_as_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(&dir.path().join("data")).await.unwrap();
    let embedded = scenario(&store).await;

    std::fs::create_dir_all(dir.path().join("redis")).unwrap();
    let server = RedisServer::start(&dir.path().join("redis")).await.unwrap();
    let redis = RedisQueue::connect(server.url(), "parity").await.unwrap();
    let shared = scenario(&redis).await;
    for (i, (e, r)) in embedded.iter().zip(&shared).enumerate() {
        assert_eq!(e, r, "line {i} differs");
    }
    assert_eq!(embedded.len(), shared.len());
    assert!(embedded.len() > 60, "{}", embedded.len());

    // Workers advertise what they run, on both.
    for q in [&store as &dyn TaskQueue, &redis] {
        q.advertise_worker("gpu-box", &["chat:qwen".into(), "stt".into()], 15_000)
            .await
            .unwrap();
        let workers = q.workers().await.unwrap();
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].resources, ["chat:qwen", "stt"]);
        assert!(workers[0].alive(workers[0].seen_ms));
    }
}

#[tokio::test]
async fn an_unreachable_server_is_explained() {
    let err = RedisQueue::connect("redis://127.0.0.1:1/0", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot be used") && err.contains("redis-server"),
        "{err}"
    );
    let err = RedisQueue::connect("http://example", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a Redis address"), "{err}");
}
