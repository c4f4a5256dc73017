//! `baton bench tasks`: the task queue's overhead. No-op tasks through the real queue and
//! worker (enqueue → done throughput; dispatch latency from "added" to "running"), beside a
//! plain loop that does the same database work (the same three committed writes per task
//! on a SQLite file opened the same way) without any queue logic.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use baton_core::{CancellationToken, TaskState};
use baton_runtime::{Paths, Runtime, TaskOptions, WorkerOptions};
use baton_store::TaskFilter;
use clap::Args;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::print_json;

/// Arguments of `baton bench tasks`.
#[derive(Debug, Args)]
pub struct BenchTasksArgs {
    /// No-op tasks for the throughput run
    #[arg(long, default_value_t = 500)]
    pub tasks: u32,
    /// Tasks added one at a time to time their dispatch
    #[arg(long, default_value_t = 100)]
    pub samples: u32,
    /// Tasks the worker runs at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// The `p`-th percentile (0..=100) of sorted values, 0 when there are none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    baton_store::percentile(sorted, p / 100.0).unwrap_or(0.0)
}

/// `baton bench tasks`.
pub async fn run(args: BenchTasksArgs, json: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("config.toml"),
        state_dir: dir.path().join("state"),
        models_dir: dir.path().join("models"),
    };
    let runtime = Runtime::open(paths).await?;
    let store = runtime.store().clone();
    let noop = || json!({ "sleep_ms": 0 });
    let options = TaskOptions {
        origin: "bench".into(),
        ..TaskOptions::default()
    };

    // Throughput: enqueue N, then let the worker drain them.
    let started = Instant::now();
    for _ in 0..args.tasks {
        runtime.add_task("noop", noop(), &options).await?;
    }
    let enqueue = started.elapsed();
    let shutdown = CancellationToken::new();
    let mut worker_options = WorkerOptions::new(&runtime);
    worker_options.concurrency = args.concurrency;
    worker_options.schedules = false;
    worker_options.exit_when_idle = true;
    let drained = Instant::now();
    runtime
        .run_worker(worker_options.clone(), shutdown.clone())
        .await?;
    let drain = drained.elapsed();
    let done = store
        .tasks(&TaskFilter {
            states: vec![TaskState::Succeeded],
            ..TaskFilter::default()
        })
        .await?
        .len();
    anyhow::ensure!(
        done == args.tasks as usize,
        "only {done} of {} tasks succeeded",
        args.tasks
    );
    let queue_rate = f64::from(args.tasks) / (enqueue + drain).as_secs_f64();

    // Dispatch latency: one task at a time into an idle, waiting worker.
    worker_options.exit_when_idle = false;
    let worker = {
        let runtime = runtime.clone();
        let shutdown = shutdown.clone();
        let options = worker_options.clone();
        tokio::spawn(async move { runtime.run_worker(options, shutdown).await })
    };
    let mut latencies = Vec::with_capacity(args.samples as usize);
    for _ in 0..args.samples {
        let task = runtime.add_task("noop", noop(), &options).await?;
        let added = Instant::now();
        // Wait for the worker's claim: the task's first "running" change.
        loop {
            let t = store.task(&task.id).await?;
            if t.state != TaskState::Ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            if added.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("the worker did not take a task within 30 s");
            }
        }
        let events = store.task_events(&task.id).await?;
        let running = events
            .iter()
            .find(|e| e.to_state == "running")
            .context("a running event")?;
        latencies.push((running.at - task.created_ms) as f64);
        // Let it finish before the next sample.
        while !store.task(&task.id).await?.state.is_terminal() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    shutdown.cancel();
    worker.await??;
    latencies.sort_by(f64::total_cmp);
    runtime.close().await;

    // The reference: the same committed writes per task, in a plain loop.
    let (ref_rate, ref_claim) = reference(dir.path(), args.tasks).await?;

    let report = json!({
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "queue": {
            "enqueue_per_s": f64::from(args.tasks) / enqueue.as_secs_f64(),
            "throughput_per_s": queue_rate,
            "dispatch_p50_ms": percentile(&latencies, 50.0),
            "dispatch_p95_ms": percentile(&latencies, 95.0),
        },
        "plain_loop": {
            "throughput_per_s": ref_rate,
            "claim_p50_ms": percentile(&ref_claim, 50.0),
            "claim_p95_ms": percentile(&ref_claim, 95.0),
        },
        "throughput_ratio": queue_rate / ref_rate,
    });
    if json {
        return print_json(&report);
    }
    println!(
        "SQLite queue, {} no-op tasks, worker concurrency {}:",
        args.tasks, args.concurrency
    );
    println!(
        "  queue:      {:>7.0} tasks/s enqueue→done ({:.0}/s enqueue); dispatch p50 {:.1} ms, p95 {:.1} ms",
        queue_rate,
        f64::from(args.tasks) / enqueue.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0)
    );
    println!(
        "  plain loop: {:>7.0} tasks/s (same three commits per task); one claim commit p50 {:.2} ms, p95 {:.2} ms",
        ref_rate,
        percentile(&ref_claim, 50.0),
        percentile(&ref_claim, 95.0)
    );
    println!(
        "  queue / plain loop throughput: {:.2}",
        queue_rate / ref_rate
    );
    Ok(())
}

/// A plain loop: per task, one committed insert (with its event), one committed claim and
/// one committed completion, on a SQLite file with the store's settings.
async fn reference(dir: &std::path::Path, tasks: u32) -> anyhow::Result<(f64, Vec<f64>)> {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("plain.sqlite"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT NOT NULL, input TEXT, output TEXT)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE TABLE e (id INTEGER PRIMARY KEY, task INTEGER, state TEXT, reason TEXT)")
        .execute(&pool)
        .await?;
    let mut claims = Vec::with_capacity(tasks as usize);
    let started = Instant::now();
    for i in 0..i64::from(tasks) {
        let mut tx = pool.begin().await?;
        sqlx::query("INSERT INTO t (id, state, input) VALUES (?, 'ready', '{}')")
            .bind(i)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO e (task, state, reason) VALUES (?, 'ready', 'added')")
            .bind(i)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let claim = Instant::now();
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE t SET state = 'running' WHERE id = ? AND state = 'ready'")
            .bind(i)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO e (task, state, reason) VALUES (?, 'running', 'started')")
            .bind(i)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        claims.push(claim.elapsed().as_secs_f64() * 1000.0);
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE t SET state = 'done', output = '{}' WHERE id = ? AND state = 'running'",
        )
        .bind(i)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO e (task, state, reason) VALUES (?, 'done', 'succeeded')")
            .bind(i)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let rate = f64::from(tasks) / started.elapsed().as_secs_f64();
    pool.close().await;
    claims.sort_by(f64::total_cmp);
    Ok((rate, claims))
}
