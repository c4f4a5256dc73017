//! `baton bench tasks`: the task queue's overhead. No-op tasks through the real queue and
//! worker (enqueue → done throughput; dispatch latency from "added" to "running"), beside a
//! plain loop that does the same database work without any queue logic: on SQLite the same
//! three committed writes per task on a file opened the same way; on Redis (a private
//! `redis-server`, or `--redis URL`) three transactions per task.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use baton_core::{CancellationToken, TaskState};
use baton_queue_redis::RedisServer;
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
    /// The same on Redis: `auto` starts a private redis-server when it is installed, a
    /// URL uses that server (under a prefix of its own), `none` skips it
    #[arg(long, default_value = "auto", value_name = "auto|URL|none")]
    pub redis: String,
}

/// The `p`-th percentile (0..=100) of sorted values, 0 when there are none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    baton_store::percentile(sorted, p / 100.0).unwrap_or(0.0)
}

/// What one queue did.
struct QueueFigures {
    enqueue_per_s: f64,
    throughput_per_s: f64,
    /// Dispatch latencies (added → running), ms, sorted.
    latencies: Vec<f64>,
}

/// `baton bench tasks`.
pub async fn run(args: BenchTasksArgs, json: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let paths = |name: &str| Paths {
        data_dir: dir.path().join(name).join("data"),
        config_file: dir.path().join(name).join("config.toml"),
        state_dir: dir.path().join(name).join("state"),
        models_dir: dir.path().join(name).join("models"),
    };
    let runtime = Runtime::open(paths("sqlite")).await?;
    let sqlite = measure(&runtime, &args).await?;
    runtime.close().await;
    // The reference: the same committed writes per task, in a plain loop.
    let (ref_rate, ref_claim) = reference(dir.path(), args.tasks).await?;
    let mut report = json!({
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "sqlite": figures_json(&sqlite, ref_rate, &ref_claim),
    });

    // The same on Redis: a private redis-server unless one is named.
    let server_dir = dir.path().join("redis");
    std::fs::create_dir_all(&server_dir)?;
    let (_server, url) = match args.redis.as_str() {
        "none" => (None, None),
        "auto" => match RedisServer::start(&server_dir).await {
            Ok(server) => {
                let url = server.url().to_owned();
                (Some(server), Some(url))
            }
            Err(e) => {
                eprintln!("Redis skipped: {e}");
                (None, None)
            }
        },
        url => (None, Some(url.to_owned())),
    };
    let mut redis_figures = None;
    if let Some(url) = &url {
        let mut runtime = Runtime::open(paths("redis")).await?;
        runtime.use_queue(url).await?;
        let figures = measure(&runtime, &args).await?;
        runtime.close().await;
        let (rate, claims) = redis_reference(url, args.tasks).await?;
        report["redis"] = figures_json(&figures, rate, &claims);
        redis_figures = Some((figures, rate, claims));
    }
    if json {
        return print_json(&report);
    }
    println!(
        "{} no-op tasks, worker concurrency {}:",
        args.tasks, args.concurrency
    );
    print_figures(
        "SQLite",
        &sqlite,
        ref_rate,
        &ref_claim,
        "three commits per task",
    );
    if let Some((figures, rate, claims)) = &redis_figures {
        print_figures(
            "Redis",
            figures,
            *rate,
            claims,
            "three MULTI/EXEC per task, the claim under WATCH",
        );
    }
    Ok(())
}

fn figures_json(queue: &QueueFigures, ref_rate: f64, ref_claim: &[f64]) -> serde_json::Value {
    json!({
        "queue": {
            "enqueue_per_s": queue.enqueue_per_s,
            "throughput_per_s": queue.throughput_per_s,
            "dispatch_p50_ms": percentile(&queue.latencies, 50.0),
            "dispatch_p95_ms": percentile(&queue.latencies, 95.0),
        },
        "plain_loop": {
            "throughput_per_s": ref_rate,
            "claim_p50_ms": percentile(ref_claim, 50.0),
            "claim_p95_ms": percentile(ref_claim, 95.0),
        },
        "throughput_ratio": queue.throughput_per_s / ref_rate,
    })
}

fn print_figures(name: &str, queue: &QueueFigures, ref_rate: f64, ref_claim: &[f64], work: &str) {
    println!("{name}:");
    println!(
        "  queue:      {:>7.0} tasks/s enqueue→done ({:.0}/s enqueue); dispatch p50 {:.1} ms, p95 {:.1} ms",
        queue.throughput_per_s,
        queue.enqueue_per_s,
        percentile(&queue.latencies, 50.0),
        percentile(&queue.latencies, 95.0)
    );
    println!(
        "  plain loop: {:>7.0} tasks/s ({work}); one claim p50 {:.2} ms, p95 {:.2} ms",
        ref_rate,
        percentile(ref_claim, 50.0),
        percentile(ref_claim, 95.0)
    );
    println!(
        "  queue / plain loop throughput: {:.2}",
        queue.throughput_per_s / ref_rate
    );
}

/// No-op tasks through `runtime`'s queue and a worker: throughput, then dispatch latency.
async fn measure(runtime: &Runtime, args: &BenchTasksArgs) -> anyhow::Result<QueueFigures> {
    let queue = runtime.queue();
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
    let mut worker_options = WorkerOptions::new(runtime);
    worker_options.concurrency = args.concurrency;
    worker_options.schedules = false;
    worker_options.exit_when_idle = true;
    let drained = Instant::now();
    runtime
        .run_worker(worker_options.clone(), shutdown.clone())
        .await?;
    let drain = drained.elapsed();
    let done = queue
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
    let throughput_per_s = f64::from(args.tasks) / (enqueue + drain).as_secs_f64();

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
            let t = queue.task(&task.id).await?;
            if t.state != TaskState::Ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            if added.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("the worker did not take a task within 30 s");
            }
        }
        let events = queue.task_events(&task.id).await?;
        let running = events
            .iter()
            .find(|e| e.to_state == "running")
            .context("a running event")?;
        latencies.push((running.at - task.created_ms) as f64);
        // Let it finish before the next sample.
        while !queue.task(&task.id).await?.state.is_terminal() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    shutdown.cancel();
    worker.await??;
    latencies.sort_by(f64::total_cmp);
    Ok(QueueFigures {
        enqueue_per_s: f64::from(args.tasks) / enqueue.as_secs_f64(),
        throughput_per_s,
        latencies,
    })
}

/// A plain loop on Redis: per task, one transaction that stores it with its event, a
/// claim (WATCH, read, MULTI write with its event) and a completion the same way.
async fn redis_reference(url: &str, tasks: u32) -> anyhow::Result<(f64, Vec<f64>)> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut claims = Vec::with_capacity(tasks as usize);
    let started = Instant::now();
    for i in 0..tasks {
        let key = format!("plain:task:{i}");
        let _: redis::Value = redis::pipe()
            .atomic()
            .set(&key, r#"{"state":"ready","input":{}}"#)
            .rpush("plain:events", "ready added")
            .query_async(&mut con)
            .await?;
        let claim = Instant::now();
        for (from, to) in [("ready", "running"), ("running", "done")] {
            let _: () = redis::cmd("WATCH").arg(&key).query_async(&mut con).await?;
            let text: String = redis::cmd("GET").arg(&key).query_async(&mut con).await?;
            anyhow::ensure!(text.contains(from), "the plain loop lost its task");
            let _: redis::Value = redis::pipe()
                .atomic()
                .set(&key, text.replace(from, to))
                .rpush("plain:events", to)
                .query_async(&mut con)
                .await?;
            if to == "running" {
                claims.push(claim.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let rate = f64::from(tasks) / started.elapsed().as_secs_f64();
    claims.sort_by(f64::total_cmp);
    Ok((rate, claims))
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
