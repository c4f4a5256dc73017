//! `baton tasks`, `baton templates`, `baton schedules` and `baton worker`: the durable
//! task queue from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use baton_core::{CancellationToken, TaskState};
use baton_runtime::{NewSchedule, Runtime, TaskOptions, WorkerOptions};
use baton_store::{TaskFilter, TaskRecord};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::print_json;

/// `baton tasks …`
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Queue one task: `baton tasks add chat --set prompt="…"`, or `--input JSON`
    Add(AddArgs),
    /// List tasks, newest first
    List {
        /// Only these states (queued, ready, running, succeeded, failed, cancelled, waiting_approval, skipped)
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        /// Only this run's tasks
        #[arg(long)]
        run: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
    /// List workflow runs with their tasks counted by state
    Runs {
        /// At most this many
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a task: input, state, attempts, output and every state change with its reason
    Show {
        /// Task id (or its first characters)
        id: String,
    },
    /// Print a task's log lines
    Logs {
        /// Task id
        id: String,
        /// Keep printing new lines until the task finishes
        #[arg(long, short)]
        follow: bool,
    },
    /// Follow state changes as they happen (of one run or task, or of all)
    Watch {
        /// A run or task id; all when absent
        id: Option<String>,
    },
    /// Cancel a task (its running generation stops; its dependants are cancelled), or a whole run
    Cancel {
        /// Task or run id
        id: String,
        /// Why (recorded)
        #[arg(long, default_value = "cancelled by hand")]
        reason: String,
    },
    /// Run a failed, cancelled or skipped task again (its skipped dependants too)
    Retry {
        /// Task id
        id: String,
    },
    /// Approve a step waiting for approval, optionally with edited output
    Approve {
        /// Task id
        id: String,
        /// The text to pass on instead of the previous step's
        #[arg(long, conflicts_with = "edit_file")]
        edit: Option<String>,
        /// A file holding the text to pass on
        #[arg(long)]
        edit_file: Option<PathBuf>,
    },
    /// Reject a step waiting for approval (its dependants are skipped)
    Reject {
        /// Task id
        id: String,
        /// Why (recorded)
        #[arg(long, default_value = "rejected")]
        reason: String,
    },
    /// Pause the queue: running tasks finish, nothing new starts
    Pause,
    /// Resume the queue
    Resume,
    /// The workers sharing this queue and what each can run
    Workers,
    /// Move a waiting task before another one (taking its priority), or to the end of its priority
    Move {
        /// The task to move
        id: String,
        /// The task it goes before
        #[arg(long)]
        before: Option<String>,
    },
}

/// `baton tasks add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// chat, transcribe, speak, ocr, batch, collect, write, noop
    pub kind: String,
    /// The input as a JSON object
    #[arg(long)]
    pub input: Option<String>,
    /// An input field: key=value (numbers, true/false and JSON are read as such)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// How a task or run is queued.
#[derive(Debug, Args, Clone)]
pub struct QueueArgs {
    /// Higher runs first
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Finish by: 30m, 2h, 1d, or a date-time (2026-12-24T18:00:00Z)
    #[arg(long)]
    pub deadline: Option<String>,
    /// Attempts in all [default: tasks.attempts]
    #[arg(long)]
    pub attempts: Option<u32>,
    /// Seconds one attempt may run
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Run it here and wait for the result (a worker runs in this process meanwhile)
    #[arg(long)]
    pub wait: bool,
}

/// `baton templates …`
#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// List templates (the newest version of each)
    List {
        /// Every version
        #[arg(long)]
        all: bool,
    },
    /// Show a template's parameters and steps
    Show {
        /// name or name@version
        name: String,
        /// Print the YAML
        #[arg(long)]
        yaml: bool,
    },
    /// Check a YAML template without storing it
    Validate {
        /// The YAML file
        file: PathBuf,
    },
    /// Check and store a YAML template
    Import {
        /// The YAML file
        file: PathBuf,
    },
    /// Write a template's YAML to a file or stdout
    Export {
        /// name or name@version
        name: String,
        /// The file [default: stdout]
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Queue a run of a template
    Run {
        /// name or name@version
        name: String,
        /// A parameter: key=value (typed by the template's schema)
        #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Run it here and wait for the result
        #[arg(long)]
        wait: bool,
    },
}

/// `baton schedules …`
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules with their next times
    List,
    /// Add a schedule that runs a template
    Add {
        /// Its name
        name: String,
        /// Cron expression: minute hour day-of-month month day-of-week, e.g. "0 8 * * 1-5"
        #[arg(long)]
        cron: String,
        /// Template to run: name or name@version
        #[arg(long)]
        template: String,
        /// IANA time zone the expression is read in
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// A parameter: key=value
        #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Times missed while no worker ran: run-once (at start) or skip
        #[arg(long, default_value = "run-once")]
        missed: String,
    },
    /// Enable a schedule
    Enable {
        /// Its name
        name: String,
    },
    /// Disable a schedule
    Disable {
        /// Its name
        name: String,
    },
    /// Remove a schedule (its runs stay)
    Remove {
        /// Its name
        name: String,
    },
}

/// `baton worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Tasks at once [default: tasks.concurrency]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Run only tasks on these resources (chat:MODEL, chat:*, stt, tts, ocr, none) [default: all this machine has]
    #[arg(long, value_delimiter = ',')]
    pub resources: Vec<String>,
    /// The worker's name in leases and logs [default: host:pid]
    #[arg(long)]
    pub id: Option<String>,
    /// Stop when nothing is left to run
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Do not fire schedules
    #[arg(long)]
    pub no_schedules: bool,
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// Reads `key=value` pairs.
fn pairs(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .with_context(|| format!("`{p}` is not KEY=VALUE"))
        })
        .collect()
}

/// Parses a deadline: a duration from now (30m, 2h, 1d, 45s) or an RFC 3339 date-time.
fn deadline(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let t = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = number.parse().with_context(|| {
        format!("deadline `{text}`: use 30m, 2h, 1d or a date-time such as 2026-12-24T18:00:00Z")
    })?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => bail!("deadline `{text}`: the unit is s, m, h or d"),
    };
    Ok(chrono::Utc::now() + chrono::Duration::seconds(secs))
}

fn options(queue: &QueueArgs, origin: &str) -> anyhow::Result<TaskOptions> {
    Ok(TaskOptions {
        priority: queue.priority,
        deadline: queue.deadline.as_deref().map(deadline).transpose()?,
        attempts: queue.attempts,
        backoff_secs: None,
        timeout_secs: queue.timeout,
        origin: origin.into(),
    })
}

/// `baton tasks …`.
pub async fn tasks(cmd: TasksCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let store = runtime.queue();
    match cmd {
        TasksCommand::Add(args) => {
            let mut input: serde_json::Map<String, Value> = match &args.input {
                Some(text) => match serde_json::from_str(text).context("--input is not JSON")? {
                    Value::Object(map) => map,
                    _ => bail!("--input must be a JSON object"),
                },
                None => Default::default(),
            };
            for (key, value) in pairs(&args.set)? {
                let typed = serde_json::from_str::<Value>(&value)
                    .ok()
                    .filter(|v| !v.is_string())
                    .unwrap_or(Value::String(value));
                input.insert(key, typed);
            }
            let task = runtime
                .add_task(
                    &args.kind,
                    Value::Object(input),
                    &options(&args.queue, "cli")?,
                )
                .await?;
            if args.queue.wait {
                return wait_for(runtime, &task.run_id, json).await;
            }
            if json {
                return print_json(&task);
            }
            println!("queued {} {} ({})", task.kind, task.id, task.state);
            println!(
                "  run it with `baton worker`, follow it with `baton tasks watch {}`",
                short(&task.id)
            );
            Ok(())
        }
        TasksCommand::List { state, run, limit } => {
            let states = state
                .iter()
                .map(|s| s.parse::<TaskState>().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let tasks = store
                .tasks(&TaskFilter {
                    states,
                    run_id: run,
                    limit,
                })
                .await?;
            if json {
                return print_json(&tasks);
            }
            if store.queue_paused().await? {
                println!("The queue is paused: `baton tasks resume` starts it again.");
            }
            if tasks.is_empty() {
                println!(
                    "No tasks. Queue one with `baton tasks add` or `baton templates run NAME`."
                );
            }
            for t in &tasks {
                print_task_line(t);
            }
            Ok(())
        }
        TasksCommand::Runs { limit } => {
            let runs = store.runs(limit).await?;
            if json {
                return print_json(&runs);
            }
            if runs.is_empty() {
                println!("No runs yet.");
            }
            for r in runs {
                let counts: Vec<String> =
                    r.states.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!(
                    "{}  {:<16} {:<17} {}  {}",
                    short(&r.id),
                    r.state(),
                    r.template.as_deref().unwrap_or(&r.name),
                    time(r.created_ms),
                    counts.join(", ")
                );
            }
            Ok(())
        }
        TasksCommand::Show { id } => {
            let task = store.task(&id).await?;
            let events = store.task_events(&task.id).await?;
            if json {
                return print_json(&serde_json::json!({ "task": task, "events": events }));
            }
            println!(
                "{} · {} · step {} of run {} ({})",
                task.id,
                task.kind,
                task.step,
                short(&task.run_id),
                task.run_name
            );
            println!(
                "state:    {}{}",
                task.state,
                if task.deadline_missed {
                    " (deadline missed)"
                } else {
                    ""
                }
            );
            println!(
                "resource: {}  priority {}  attempts {}/{}",
                task.resource, task.priority, task.attempts, task.max_attempts
            );
            if let Some(d) = task.deadline_ms {
                println!("deadline: {}", time(d));
            }
            if !task.after.is_empty() {
                println!("after:    {}", task.after.join(", "));
            }
            println!("input:    {}", task.input);
            if let Some(e) = &task.error {
                println!("error:    {e}");
            }
            if let Some(o) = &task.output {
                println!("output:   {}", serde_json::to_string_pretty(o)?);
            }
            println!("history:");
            for e in events {
                println!(
                    "  {}  {:>16} → {:<16} #{} {}",
                    time(e.at),
                    e.from_state.as_deref().unwrap_or("-"),
                    e.to_state,
                    e.attempt,
                    e.reason
                );
            }
            Ok(())
        }
        TasksCommand::Logs { id, follow } => {
            let task = store.task(&id).await?;
            let mut after = 0;
            loop {
                for line in store.task_logs(&task.id, after).await? {
                    after = line.id;
                    println!("{} {:>5} {}", time(line.at), line.level, line.message);
                }
                if !follow || store.task(&task.id).await?.state.is_terminal() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        TasksCommand::Watch { id } => watch(runtime, id.as_deref(), json).await,
        TasksCommand::Cancel { id, reason } => {
            let cancelled = runtime.cancel_tasks(&id, &reason).await?;
            if json {
                return print_json(&cancelled);
            }
            println!("cancelled {} task(s)", cancelled.len());
            Ok(())
        }
        TasksCommand::Retry { id } => {
            let state = store.retry_task(&id).await?;
            runtime.wake_worker();
            println!("{id} is {state} again");
            Ok(())
        }
        TasksCommand::Approve {
            id,
            edit,
            edit_file,
        } => {
            let edited = match (edit, edit_file) {
                (Some(text), _) => Some(text),
                (None, Some(file)) => Some(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                ),
                (None, None) => None,
            };
            let edited = edited.map(|text| serde_json::json!({ "text": text }));
            let output = store.approve_task(&id, edited.as_ref(), "cli").await?;
            runtime.wake_worker();
            if json {
                return print_json(&output);
            }
            println!("approved {id}");
            Ok(())
        }
        TasksCommand::Reject { id, reason } => {
            store.reject_task(&id, &reason).await?;
            println!("rejected {id}");
            Ok(())
        }
        TasksCommand::Pause => {
            store.set_queue_paused(true).await?;
            println!("The queue is paused: running tasks finish, nothing new starts.");
            Ok(())
        }
        TasksCommand::Resume => {
            store.set_queue_paused(false).await?;
            runtime.wake_worker();
            println!("The queue runs again.");
            Ok(())
        }
        TasksCommand::Workers => {
            let workers = store.workers().await?;
            if json {
                return print_json(&workers);
            }
            println!("Queue: {}", store.location());
            if workers.is_empty() {
                println!("No worker has run on it yet. Start one with `baton worker`.");
            }
            let now = chrono::Utc::now().timestamp_millis();
            for w in &workers {
                let seen = (now - w.seen_ms).max(0) / 1000;
                let status = if w.alive(now) {
                    format!("alive, seen {seen} s ago")
                } else {
                    format!("gone, last seen {seen} s ago")
                };
                println!("{}  ({status})", w.name);
                println!("  runs: {}", w.resources.join(", "));
            }
            Ok(())
        }
        TasksCommand::Move { id, before } => {
            store.move_task(&id, before.as_deref()).await?;
            runtime.wake_worker();
            println!("moved {id}");
            Ok(())
        }
    }
}

fn print_task_line(t: &TaskRecord) {
    let progress = t
        .progress
        .filter(|_| t.state == TaskState::Running)
        .map(|p| format!(" {:.0}%", p * 100.0))
        .unwrap_or_default();
    let late = if t.deadline_missed { " LATE" } else { "" };
    println!(
        "{}  {:<16} {:<10} {:<14} {:<22} p{} #{}{}{}",
        short(&t.id),
        t.state.as_str(),
        t.kind,
        t.step,
        t.resource,
        t.priority,
        t.attempts,
        progress,
        late
    );
}

/// Prints state changes as they are stored; with an id, until that run or task is finished.
async fn watch(runtime: &Runtime, id: Option<&str>, json: bool) -> anyhow::Result<()> {
    let store = runtime.queue();
    let scope: Option<(bool, String)> = match id {
        None => None,
        Some(id) => match store.resolve_task_id(id).await {
            Ok(task) => Some((false, task)),
            Err(_) => {
                let runs = store.runs(0).await?;
                let run = runs
                    .into_iter()
                    .find(|r| r.id.starts_with(id) || r.id.ends_with(id))
                    .with_context(|| format!("no task or run matches `{id}`"))?;
                Some((true, run.id))
            }
        },
    };
    let mut after = 0;
    let mut steps: BTreeMap<String, String> = BTreeMap::new();
    loop {
        for e in store.task_events_since(after, 500).await? {
            after = e.id;
            let Ok(task) = store.task(&e.task_id).await else {
                continue;
            };
            let in_scope = match &scope {
                None => true,
                Some((true, run)) => &task.run_id == run,
                Some((false, id)) => &task.id == id,
            };
            if !in_scope {
                continue;
            }
            steps.insert(task.id.clone(), task.step.clone());
            if json {
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!(
                    "{}  {:<14} {:<16} {}",
                    time(e.at),
                    task.step,
                    e.to_state,
                    e.reason
                );
            }
        }
        if let Some((is_run, id)) = &scope {
            let tasks = if *is_run {
                store
                    .tasks(&TaskFilter {
                        run_id: Some(id.clone()),
                        ..TaskFilter::default()
                    })
                    .await?
            } else {
                vec![store.task(id).await?]
            };
            if tasks.iter().all(|t| t.state.is_terminal()) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a worker in this process until the run is finished, then prints its outputs.
async fn wait_for(runtime: &Runtime, run_id: &str, json: bool) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let worker = {
        let runtime = runtime.clone();
        let shutdown = shutdown.clone();
        let mut options = WorkerOptions::new(&runtime);
        options.schedules = false;
        tokio::spawn(async move { runtime.run_worker(options, shutdown).await })
    };
    let ctrl_c = super::CtrlC::watch();
    let stop = ctrl_c.token();
    let watched = tokio::select! {
        r = watch(runtime, Some(run_id), json) => r,
        _ = stop.cancelled() => Err(anyhow::anyhow!("stopped waiting; the run goes on in the queue (`baton worker` runs it)")),
    };
    shutdown.cancel();
    let _ = worker.await;
    watched?;
    let tasks = runtime
        .queue()
        .tasks(&TaskFilter {
            run_id: Some(run_id.to_owned()),
            ..TaskFilter::default()
        })
        .await?;
    if json {
        return print_json(&tasks);
    }
    for t in &tasks {
        if let Some(output) = &t.output {
            let text = output
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    output
                        .get("file")
                        .and_then(Value::as_str)
                        .map(|f| format!("→ {f}"))
                })
                .unwrap_or_else(|| output.to_string());
            println!("── {} ({})\n{}", t.step, t.kind, text.trim());
        } else {
            println!(
                "── {} ({}): {}{}",
                t.step,
                t.kind,
                t.state,
                t.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(bad) = tasks.iter().find(|t| {
        matches!(
            t.state,
            TaskState::Failed | TaskState::Cancelled | TaskState::Skipped
        )
    }) {
        bail!(
            "step {} {}{}",
            bad.step,
            bad.state,
            bad.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `baton templates …`.
pub async fn templates(cmd: TemplatesCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match cmd {
        TemplatesCommand::List { all } => {
            let list = runtime.templates(all).await?;
            if json {
                let docs: Vec<_> = list.iter().map(|t| t.doc()).collect();
                return print_json(&docs);
            }
            for t in list {
                println!(
                    "{:<22} {}",
                    t.key(),
                    t.doc()
                        .description
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(())
        }
        TemplatesCommand::Show { name, yaml } => {
            let t = runtime.template(&name).await?;
            if yaml {
                print!("{}", t.yaml());
                return Ok(());
            }
            if json {
                return print_json(
                    &serde_json::json!({ "template": t.doc(), "fields": t.fields() }),
                );
            }
            println!(
                "{} — {}",
                t.key(),
                t.doc()
                    .description
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            println!("parameters:");
            for f in t.fields() {
                let default = f
                    .default
                    .map(|d| format!(" [default: {d}]"))
                    .unwrap_or_default();
                let required = if f.required { " (required)" } else { "" };
                println!(
                    "  {:<12} {:<8}{required}{default}  {}",
                    f.name,
                    f.kind,
                    f.description.unwrap_or_default()
                );
            }
            println!("steps:");
            for s in &t.doc().steps {
                let after = if s.after.is_empty() {
                    String::new()
                } else {
                    format!(" after {}", s.after.join(", "))
                };
                println!("  {:<12} {}{after}", s.id, s.kind);
            }
            if let Some(cron) = &t.doc().suggested_cron {
                println!("suggested schedule: {cron}");
            }
            Ok(())
        }
        TemplatesCommand::Validate { file } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let t = baton_tasks::Template::parse(&yaml)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "{} is valid: {} with {} step(s)",
                file.display(),
                t.key(),
                t.doc().steps.len()
            );
            Ok(())
        }
        TemplatesCommand::Import { file } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let t = runtime
                .import_template(&yaml)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("imported {}", t.key());
            Ok(())
        }
        TemplatesCommand::Export { name, output } => {
            let t = runtime.template(&name).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, t.yaml())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("wrote {} to {}", t.key(), path.display());
                }
                None => print!("{}", t.yaml()),
            }
            Ok(())
        }
        TemplatesCommand::Run { name, params, wait } => {
            let template = runtime.template(&name).await?;
            let params = template.params_from_pairs(&pairs(&params)?)?;
            let run_id = runtime.run_template(&name, &params, "cli").await?;
            if wait {
                return wait_for(runtime, &run_id, json).await;
            }
            if json {
                return print_json(&serde_json::json!({ "run": run_id }));
            }
            println!("queued run {} of {}", run_id, template.key());
            println!(
                "  follow it with `baton tasks watch {}`; `baton worker` runs the queue",
                short(&run_id)
            );
            Ok(())
        }
    }
}

/// `baton schedules …`.
pub async fn schedules(cmd: SchedulesCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match cmd {
        SchedulesCommand::List => {
            let list = runtime.schedules().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("No schedules. Add one with `baton schedules add NAME --cron \"0 8 * * *\" --template daily-digest`.");
            }
            for s in list {
                let next: Vec<String> = s
                    .upcoming
                    .iter()
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%a %Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .collect();
                println!(
                    "{:<16} {:<8} {:<15} {:<10} {} ({})",
                    s.record.name,
                    if s.record.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    s.record.cron,
                    s.record.timezone,
                    s.record.template,
                    s.description
                );
                if !next.is_empty() {
                    println!("  next: {}", next.join(", "));
                }
            }
            Ok(())
        }
        SchedulesCommand::Add {
            name,
            cron,
            template,
            tz,
            params,
            missed,
        } => {
            let t = runtime.template(&template).await?;
            let params = t.params_from_pairs(&pairs(&params)?)?;
            let view = runtime
                .add_schedule(&NewSchedule {
                    name,
                    cron,
                    timezone: tz,
                    template,
                    params,
                    missed: missed.parse()?,
                })
                .await?;
            if json {
                return print_json(&view);
            }
            println!(
                "added {}: {} ({})",
                view.record.name, view.description, view.record.timezone
            );
            if let Some(next) = view.upcoming.first() {
                println!(
                    "  next run: {}",
                    next.with_timezone(&chrono::Local)
                        .format("%a %Y-%m-%d %H:%M")
                );
            }
            Ok(())
        }
        SchedulesCommand::Enable { name } => {
            runtime.set_schedule_enabled(&name, true).await?;
            println!("enabled {name}");
            Ok(())
        }
        SchedulesCommand::Disable { name } => {
            runtime.set_schedule_enabled(&name, false).await?;
            println!("disabled {name}");
            Ok(())
        }
        SchedulesCommand::Remove { name } => {
            runtime.store().remove_schedule(&name).await?;
            println!("removed {name}");
            Ok(())
        }
    }
}

/// `baton worker`: runs the queue until Ctrl-C (or until idle).
pub async fn worker(args: WorkerArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let mut options = WorkerOptions::new(runtime);
    if let Some(n) = args.concurrency {
        if n == 0 {
            bail!("--concurrency must be at least 1");
        }
        options.concurrency = n;
    }
    if !args.resources.is_empty() {
        options.resources = Some(args.resources);
    }
    if let Some(id) = args.id {
        options.id = id;
    }
    options.exit_when_idle = args.exit_when_idle;
    options.schedules = !args.no_schedules;
    let ctrl_c = super::CtrlC::watch();
    if !json {
        eprintln!(
            "worker {} runs up to {} task(s) at once from {}; Ctrl-C stops it (running tasks are taken up again later)",
            options.id,
            options.concurrency,
            runtime.queue().location()
        );
    }
    let report = runtime.run_worker(options, ctrl_c.token()).await?;
    if json {
        return print_json(&report);
    }
    eprintln!(
        "worker stopped: {} succeeded, {} failed attempt(s), {} taken over from stopped workers",
        report.succeeded, report.failed, report.recovered
    );
    Ok(())
}
