//! The task queue driven through the real `baton` binary: a 200-task workflow survives 50
//! SIGKILLs of its worker, three workers share a Redis queue (one killed mid-task), bad templates, parameters, schedules and models are refused
//! before anything is queued, and a 50 MB CSV batch is streamed, not loaded.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use baton_core::TaskState;
use baton_queue_redis::{RedisQueue, RedisServer};
use baton_store::{Store, TaskFilter, TaskQueue};
use rand::Rng;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        // The shortest lease: a worker killed under another name is replaced quickly.
        std::fs::write(env.config(), "[tasks]\nlease_secs = 5\nconcurrency = 4\n").unwrap();
        env
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(args)
            .env("BATON_DATA_DIR", self.data())
            .env("BATON_CONFIG", self.config())
            .env("BATON_MODELS_DIR", self.dir.path().join("models"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run baton")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "baton {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "baton {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn worker(&self, id: &str, extra: &[&str]) -> Child {
        let mut args = vec!["worker", "--id", id];
        args.extend_from_slice(extra);
        self.command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start worker")
    }
}

/// A workflow of `n` noop steps in ten chains (step i waits for step i-10).
fn chain_template(n: usize, sleep_ms: u64) -> String {
    let mut yaml = String::from("name: chains\nversion: 1\ndescription: ten chains of noop steps\nretry: { attempts: 100, backoff_secs: 0 }\nsteps:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: s{i}\n    kind: noop\n    input: {{ sleep_ms: {sleep_ms} }}\n"
        ));
        if i >= 10 {
            yaml.push_str(&format!("    after: [s{}]\n", i - 10));
        }
    }
    yaml
}

async fn store(env: &Env) -> Store {
    Store::open_in(&env.data()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_survives_fifty_kills_of_its_worker() {
    let env = Env::new();
    let template = env.write("chains.yaml", &chain_template(200, 120));
    env.ok(&["templates", "import", template.to_str().unwrap()]);
    let out = env.ok(&["--json", "templates", "run", "chains"]);
    let run_id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = store(&env).await;
    let filter = TaskFilter {
        run_id: Some(run_id.clone()),
        ..TaskFilter::default()
    };
    let mut rng = rand::thread_rng();
    let mut killed_mid_run = 0;
    for _ in 0..50 {
        let mut worker = env.worker("durable", &[]);
        // Wait until this worker has started something (or the run is done), then kill it
        // a random while later: mid-task, mid-commit, or while it starts the next.
        let before = running_events(&store).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while running_events(&store).await == before
            && !all_done(&store, &filter).await
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
        if !all_done(&store, &filter).await {
            killed_mid_run += 1;
        }
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
    }
    // The run finishes after the last restart.
    let status = env
        .command(&["worker", "--id", "durable", "--exit-when-idle"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let tasks = store.tasks(&filter).await.unwrap();
    assert_eq!(tasks.len(), 200);
    let mut retries = 0;
    for task in &tasks {
        assert_eq!(
            task.state,
            TaskState::Succeeded,
            "{} ended {}",
            task.step,
            task.state
        );
        let events = store.task_events(&task.id).await.unwrap();
        let succeeded: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.to_state == "succeeded")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            succeeded,
            [events.len() - 1],
            "{}: succeeded once, last: {events:?}",
            task.step
        );
        let starts = events.iter().filter(|e| e.to_state == "running").count() as i64;
        assert_eq!(
            starts, task.attempts,
            "{}: every attempt is recorded",
            task.step
        );
        // Every lost attempt is recorded with why it was taken back.
        for pair in events.windows(2) {
            if pair[0].to_state == "running" && pair[1].to_state != "succeeded" {
                assert_eq!(pair[1].to_state, "ready");
                assert!(
                    pair[1].reason.contains("restarted during attempt")
                        || pair[1].reason.contains("stopped during attempt"),
                    "{}",
                    pair[1].reason
                );
                retries += 1;
            }
        }
    }
    assert_eq!(store.integrity_check().await.unwrap(), ["ok"]);
    println!("50 kills ({killed_mid_run} while the run was unfinished): 200/200 tasks succeeded once each, {retries} lost attempts recorded and retried");
    assert!(
        killed_mid_run >= 25,
        "only {killed_mid_run} kills landed mid-run"
    );
    assert!(retries > 0, "no kill interrupted a task");
}

async fn running_events(store: &Store) -> usize {
    store
        .task_events_since(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.to_state == "running")
        .count()
}

async fn all_done(store: &Store, filter: &TaskFilter) -> bool {
    store
        .tasks(filter)
        .await
        .unwrap()
        .iter()
        .all(|t| t.state.is_terminal())
}

#[test]
fn bad_input_is_refused_before_anything_is_queued() {
    let env = Env::new();
    let broken = env.write(
        "broken.yaml",
        "name: broken\nversion: 1\nsteps:\n  - id: a\n    kind: noop\n     input: {}\n",
    );
    let err = env.err(&["templates", "validate", broken.to_str().unwrap()]);
    assert!(err.contains("line 6, column"), "{err}");

    let cycle = env.write(
        "cycle.yaml",
        "name: cycle\nversion: 1\nsteps:\n  - {id: a, kind: noop, after: [c]}\n  - {id: b, kind: noop, after: [a]}\n  - {id: c, kind: noop, after: [b]}\n",
    );
    let err = env.err(&["templates", "import", cycle.to_str().unwrap()]);
    assert!(err.contains("cycle: "), "{err}");
    assert!(err.contains("a → b → c → a"), "{err}");

    let err = env.err(&[
        "templates",
        "run",
        "read-aloud",
        "--param",
        "file=x.txt",
        "--param",
        "speed=2",
    ]);
    assert!(
        err.contains("`speed` is not a parameter of read-aloud@1; it takes: file, out"),
        "{err}"
    );
    let err = env.err(&["templates", "run", "read-aloud"]);
    assert!(err.contains("\"file\" is a required property"), "{err}");
    let err = env.err(&[
        "templates",
        "run",
        "batch-prompt",
        "-p",
        "file=a.csv",
        "-p",
        "prompt=x",
        "-p",
        "concurrency=lots",
    ]);
    assert!(err.contains("`concurrency` is a whole number"), "{err}");

    let err = env.err(&[
        "tasks",
        "add",
        "chat",
        "--set",
        "prompt=hi",
        "--set",
        "model=llama-9000",
    ]);
    assert!(
        err.contains(
            "`llama-9000`, which is not installed; fetch it with `baton models fetch llama-9000`"
        ),
        "{err}"
    );
    let err = env.err(&["tasks", "add", "chat", "--set", "promt=hi"]);
    assert!(err.contains("unknown field `promt`"), "{err}");

    let err = env.err(&[
        "schedules",
        "add",
        "morning",
        "--cron",
        "0 8 * *",
        "--template",
        "daily-digest",
    ]);
    assert!(
        err.contains("has 4 field(s); a cron expression has 5"),
        "{err}"
    );
    let err = env.err(&[
        "schedules",
        "add",
        "morning",
        "--cron",
        "0 8 * * *",
        "--tz",
        "Mars/Base",
        "--template",
        "daily-digest",
    ]);
    assert!(err.contains("not a time zone"), "{err}");

    let list = env.ok(&["tasks", "list"]);
    assert!(list.contains("No tasks"), "nothing was queued: {list}");
}

#[test]
fn schedules_show_their_next_times() {
    let env = Env::new();
    let out = env.ok(&[
        "schedules",
        "add",
        "weekday-digest",
        "--cron",
        "0 8 * * 1-5",
        "--tz",
        "Europe/Berlin",
        "--template",
        "daily-digest",
        "-p",
        "hours=12",
    ]);
    assert!(out.contains("added weekday-digest"), "{out}");
    let list = env.ok(&["schedules", "list"]);
    assert!(
        list.contains("0 8 * * 1-5") && list.contains("next: "),
        "{list}"
    );
    env.ok(&["schedules", "disable", "weekday-digest"]);
    assert!(env.ok(&["schedules", "list"]).contains("disabled"));
    env.ok(&["schedules", "remove", "weekday-digest"]);
}

/// The peak resident memory of a process, read while it runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs a noop batch over `csv` with a worker and returns the worker's peak memory in KiB.
fn batch_peak(env: &Env, csv: &Path, out: &str) -> (u64, String) {
    let input = serde_json::json!({
        "over": csv, "out": out, "concurrency": 4,
        "step": { "kind": "noop", "input": {} }
    });
    let added = env.ok(&[
        "--json",
        "tasks",
        "add",
        "batch",
        "--input",
        &input.to_string(),
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&added).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut worker = env
        .command(&["worker", "--exit-when-idle", "--id", "batch"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = worker.id();
    let mut peak = 0;
    loop {
        if let Some(rss) = peak_rss_kib(pid) {
            peak = peak.max(rss);
        }
        if let Some(status) = worker.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = env.ok(&["--json", "tasks", "show", &id]);
    (peak, shown)
}

#[test]
fn a_fifty_megabyte_csv_is_streamed() {
    let env = Env::new();
    let small = env.write("small.csv", "id,text\n1,hello\n2,world\n");
    let (small_peak, _) = batch_peak(&env, &small, "small.jsonl");

    let big = env.dir.path().join("big.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    writeln!(file, "id,text").unwrap();
    let filler = "x".repeat(1000);
    let mut rows = 0;
    while file.get_ref().metadata().unwrap().len() < 50 << 20 {
        for _ in 0..1000 {
            writeln!(file, "{rows},{filler}").unwrap();
            rows += 1;
        }
        file.flush().unwrap();
    }
    drop(file);
    let (big_peak, shown) = batch_peak(&env, &big, "big.csv");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let output = &shown["task"]["output"];
    assert_eq!(output["items"], rows, "{shown}");
    assert_eq!(output["failed"], 0);
    let results = output["file"].as_str().unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(results).unwrap(),
    ))
    .count();
    assert_eq!(lines, rows + 1, "a header and one line per row");
    println!(
        "batch over a {} MB CSV ({rows} rows): worker peak {} MiB, {} MiB for a 2-row CSV",
        std::fs::metadata(&big).unwrap().len() >> 20,
        big_peak >> 10,
        small_peak >> 10
    );
    assert!(
        big_peak < small_peak + 30 * 1024,
        "the worker grew by {} MiB for a 50 MB file",
        (big_peak - small_peak) >> 10
    );
}

/// The ids of the tasks `worker` holds now.
async fn held_by(queue: &dyn TaskQueue, filter: &TaskFilter, worker: &str) -> Vec<String> {
    queue
        .tasks(filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.state == TaskState::Running && t.lease_owner.as_deref() == Some(worker))
        .map(|t| t.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_a_redis_queue_and_a_killed_one_loses_nothing() {
    let env = Env::new();
    let server_dir = env.dir.path().join("redis");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = RedisServer::start(&server_dir).await.unwrap();
    let url = server.url();
    let template = env.write("chains.yaml", &chain_template(300, 150));
    env.ok(&["templates", "import", template.to_str().unwrap()]);
    let out = env.ok(&["--queue", url, "--json", "templates", "run", "chains"]);
    let run_id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    // One task only the first worker can run: speech (the others run `none` only).
    let wav = env.dir.path().join("spoken.wav");
    let out = env.ok(&[
        "--queue",
        url,
        "--json",
        "tasks",
        "add",
        "speak",
        "--set",
        "text=Three workers share one queue.",
        "--set",
        &format!("out={}", wav.display()),
    ]);
    let speak_id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let queue = RedisQueue::connect(url, "baton").await.unwrap();
    // Nothing of this queue is in the local store.
    assert!(store(&env)
        .await
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .is_empty());

    let mut w1 = env.worker("w1", &["--queue", url, "--exit-when-idle"]);
    let mut w2 = env.worker("w2", &["--queue", url, "--resources", "none"]);
    let mut w3 = env.worker(
        "w3",
        &["--queue", url, "--resources", "none", "--exit-when-idle"],
    );
    let filter = TaskFilter {
        run_id: Some(run_id.clone()),
        ..TaskFilter::default()
    };
    // Kill w2 once it has done some work, while it holds tasks.
    let deadline = Instant::now() + Duration::from_secs(120);
    let held = loop {
        let done_by_w2 = queue
            .task_events_since(0, 100_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.to_state == "succeeded" && e.worker.as_deref() == Some("w2"))
            .count();
        let held = held_by(&queue, &filter, "w2").await;
        if done_by_w2 >= 5 && !held.is_empty() {
            break held;
        }
        assert!(Instant::now() < deadline, "w2 never took a task");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    w2.kill().unwrap(); // SIGKILL
    w2.wait().unwrap();
    // w1 and w3 finish the run (w2's tasks once its lease lapses) and exit when idle.
    assert!(w1.wait().unwrap().success());
    assert!(w3.wait().unwrap().success());

    let tasks = queue.tasks(&filter).await.unwrap();
    assert_eq!(tasks.len(), 300);
    let mut by_worker: std::collections::BTreeMap<String, usize> = Default::default();
    let mut taken_back = 0;
    for task in &tasks {
        assert_eq!(
            task.state,
            TaskState::Succeeded,
            "{} ended {}",
            task.step,
            task.state
        );
        let events = queue.task_events(&task.id).await.unwrap();
        let succeeded: Vec<_> = events
            .iter()
            .filter(|e| e.to_state == "succeeded")
            .collect();
        assert_eq!(
            succeeded.len(),
            1,
            "{}: succeeded once: {events:?}",
            task.step
        );
        assert_eq!(events.last().unwrap().to_state, "succeeded");
        let starts = events.iter().filter(|e| e.to_state == "running").count() as i64;
        assert_eq!(
            starts, task.attempts,
            "{}: every attempt recorded",
            task.step
        );
        *by_worker
            .entry(succeeded[0].worker.clone().unwrap_or_default())
            .or_default() += 1;
        if task.attempts == 1 {
            continue;
        }
        // Only a task w2 held when it was killed ran twice, and why is recorded. (Read
        // from the history: w2 may take another task between the look and the kill.)
        let first_start = events.iter().find(|e| e.to_state == "running").unwrap();
        assert!(
            first_start.worker.as_deref() == Some("w2"),
            "{} ran {} times",
            task.step,
            task.attempts
        );
        assert_eq!(task.attempts, 2);
        assert!(
            events.iter().any(|e| e
                .reason
                .starts_with("w2 stopped during attempt 1 (its lease expired)")),
            "{events:?}"
        );
        assert_ne!(succeeded[0].worker.as_deref(), Some("w2"));
        taken_back += 1;
    }
    assert!(taken_back >= 1, "the kill interrupted none of {held:?}");
    for name in ["w1", "w2", "w3"] {
        assert!(
            by_worker.get(name).copied().unwrap_or(0) > 0,
            "{by_worker:?}"
        );
    }

    // The speech task went to the one worker that can run it.
    let speak = queue.task(&speak_id).await.unwrap();
    assert_eq!(speak.state, TaskState::Succeeded, "{:?}", speak.error);
    let events = queue.task_events(&speak_id).await.unwrap();
    let started = events.iter().find(|e| e.to_state == "running").unwrap();
    assert_eq!(started.worker.as_deref(), Some("w1"));
    assert!(std::fs::metadata(&wav).unwrap().len() > 10_000);
    let workers = queue.workers().await.unwrap();
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["w1", "w2", "w3"]);
    assert!(workers[0].resources.contains(&"tts".to_owned()));
    assert_eq!(workers[1].resources, ["none"]);
    println!(
        "300 tasks on Redis: each succeeded once ({by_worker:?}); w2 killed holding {}, {taken_back} taken back after its lease",
        held.len()
    );
}
