//! The task worker: takes ready tasks from the queue in the scheduler's order, admits them
//! against engine limits, open circuit breakers and the memory budget, runs each kind on
//! the runtime's engines under a lease it renews, and records the outcome. The app and
//! `baton serve` embed one; `baton worker` runs one headless. Several workers (threads or
//! processes) share one queue: claims and outcomes are conditional updates.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_core::tasks::{pick_next, Admission, ReadyTask};
use baton_core::{
    CancellationToken, ChatMessage, OrchestrationEvent, OutputFormat, SamplingOverrides,
};
use baton_store::TaskRecord;
use baton_tasks::kinds::{
    BatchInput, ChatInput, CollectInput, NoopInput, OcrInput, SpeakInput, TranscribeInput,
    WriteInput,
};
use baton_tasks::{render_task, TaskSpec};
use futures::StreamExt as _;
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;

use crate::orchestrate::{AnswerOptions, Mode};
use crate::{Runtime, RuntimeError};

/// How often a worker says it is alive and what it runs.
const ADVERTISE_EVERY: Duration = Duration::from_secs(5);

/// The largest text file a `speak` task reads.
const MAX_SPEAK_BYTES: u64 = 1 << 20;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Its name in leases and events (host and process id by default).
    pub id: String,
    /// Tasks at once.
    pub concurrency: usize,
    /// What it runs: `None` for everything this machine has; else resource names
    /// (`chat:MODEL`, `chat:*`, `stt`, `tts`, `ocr`, `none`).
    pub resources: Option<Vec<String>>,
    /// Whether it fires schedules.
    pub schedules: bool,
    /// Stop when nothing is left to run (approvals aside).
    pub exit_when_idle: bool,
}

impl WorkerOptions {
    /// The defaults for this runtime's config.
    pub fn new(runtime: &Runtime) -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            id: format!("{host}:{}", std::process::id()),
            concurrency: runtime.config.tasks.concurrency,
            resources: None,
            schedules: true,
            exit_when_idle: false,
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkerReport {
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Attempts that failed (retried or not).
    pub failed: u64,
    /// Tasks taken back from dead workers.
    pub recovered: u64,
}

/// What one attempt ended with.
enum Outcome {
    Done(Value),
    Failed {
        error: String,
        retryable: bool,
    },
    /// The task was cancelled or its lease lost: nothing to record.
    Abandoned,
}

/// Errors of one attempt.
struct AttemptError {
    message: String,
    retryable: bool,
}

impl AttemptError {
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<RuntimeError> for AttemptError {
    fn from(e: RuntimeError) -> Self {
        let retryable = match &e {
            RuntimeError::Engine(engine) => engine.is_retryable(),
            RuntimeError::Store(_) => true,
            RuntimeError::Speech(s) => !matches!(
                s,
                baton_core::SpeechError::InvalidAudio(_) | baton_core::SpeechError::Model(_)
            ),
            _ => false,
        };
        Self {
            message: e.to_string(),
            retryable,
        }
    }
}

type AttemptResult = Result<Value, AttemptError>;

/// A running task as admission sees it.
struct Slot {
    resource: String,
    memory_mb: u64,
}

impl Runtime {
    /// The resources this machine can run tasks on: every chat model it has (local or
    /// remote, and `auto`), speech recognition when its model is installed, speech, OCR and
    /// tasks without a model.
    pub async fn task_resources(&self) -> Result<Vec<String>, RuntimeError> {
        let mut out: Vec<String> = vec!["chat:auto".into()];
        out.extend(
            self.model_names()
                .await?
                .into_iter()
                .map(|m| format!("chat:{m}")),
        );
        if self
            .store
            .model(&self.config.voice.stt_model)
            .await?
            .is_some()
        {
            out.push("stt".into());
        }
        out.extend(["tts".into(), "ocr".into(), "none".into()]);
        Ok(out)
    }

    /// Why a resource may not take work now (an open circuit breaker), if so.
    fn resource_blocked(&self, resource: &str) -> Option<String> {
        let model = resource.strip_prefix("chat:")?;
        let (engine, _) = model.split_once('/')?;
        let key = format!("remote:{engine}");
        (!self.breakers.available(&key))
            .then(|| format!("{engine}'s circuit breaker is open; the task waits"))
    }

    /// Runs the queue until `shutdown` (or, with `exit_when_idle`, until nothing is left).
    /// Running tasks are abandoned on shutdown: their leases lapse and another worker (or
    /// this one's next start) takes them up again, the lost attempt recorded.
    pub async fn run_worker(
        &self,
        options: WorkerOptions,
        shutdown: CancellationToken,
    ) -> Result<WorkerReport, RuntimeError> {
        // A span entered across awaits would leak into whatever else runs on the thread.
        let span = tracing::info_span!("worker", id = %options.id);
        tracing::Instrument::instrument(self.worker_loop(options, shutdown), span).await
    }

    async fn worker_loop(
        &self,
        options: WorkerOptions,
        shutdown: CancellationToken,
    ) -> Result<WorkerReport, RuntimeError> {
        self.install_builtin_templates().await?;
        let mut report = WorkerReport::default();
        // Tasks this worker's name held when it stopped died with it: take them back now
        // rather than after their leases lapse.
        report.recovered += self.queue.release_worker_leases(&options.id).await?.len() as u64;
        let lease_ms = self.config.tasks.lease_secs * 1000;
        let mut running: HashMap<String, Slot> = HashMap::new();
        let mut join: JoinSet<(String, Outcome)> = JoinSet::new();
        let mut tokens: HashMap<String, CancellationToken> = HashMap::new();
        let llm_parallel = self.config.llm.parallel.max(1) as usize;
        let mut last_housekeeping = std::time::Instant::now() - Duration::from_secs(1);
        let mut resources: Vec<String> = Vec::new();
        let mut last_advertised: Option<std::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Lapsed leases and due schedules are looked at twice a second at most; the
            // queue itself after every change.
            if last_housekeeping.elapsed() >= Duration::from_millis(500) {
                last_housekeeping = std::time::Instant::now();
                report.recovered += self.queue.recover_expired_leases().await?.len() as u64;
                if options.schedules {
                    if let Err(e) = self.fire_due_schedules().await {
                        tracing::warn!(error = %e, "schedules could not fire");
                    }
                }
                resources = match &options.resources {
                    Some(list) => list.clone(),
                    None => self.task_resources().await?,
                };
                // Other workers and people see who shares the queue and what each runs.
                if last_advertised.is_none_or(|at| at.elapsed() >= ADVERTISE_EVERY) {
                    last_advertised = Some(std::time::Instant::now());
                    let ttl = 3 * ADVERTISE_EVERY.as_millis() as u64;
                    if let Err(e) = self
                        .queue
                        .advertise_worker(&options.id, &resources, ttl)
                        .await
                    {
                        tracing::warn!(error = %e, "could not advertise this worker");
                    }
                }
            }
            // Start what admission allows, from one look at the ready tasks.
            let mut ready: Vec<ReadyTask> = if running.len() < options.concurrency {
                self.queue
                    .ready_tasks()
                    .await?
                    .into_iter()
                    .filter(|t| serves(&resources, &t.resource))
                    .collect()
            } else {
                Vec::new()
            };
            while running.len() < options.concurrency && !ready.is_empty() {
                let admission = self.admission(&running, &ready, llm_parallel, options.concurrency);
                let Some(index) = pick_next(&ready, &admission) else {
                    break;
                };
                let chosen = ready.swap_remove(index);
                let Some(task) = self
                    .queue
                    .claim_task(&chosen.id, &options.id, lease_ms)
                    .await?
                else {
                    continue; // another worker took it
                };
                tracing::info!(task = %task.id, step = %task.step, kind = %task.kind, attempt = task.attempts, "task started");
                running.insert(
                    task.id.clone(),
                    Slot {
                        resource: task.resource.clone(),
                        memory_mb: task.memory_mb.max(0) as u64,
                    },
                );
                let cancel = CancellationToken::new();
                tokens.insert(task.id.clone(), cancel.clone());
                let runtime = self.clone();
                let worker = options.id.clone();
                let span = tracing::info_span!("task", id = %task.id, step = %task.step, kind = %task.kind);
                join.spawn(tracing::Instrument::instrument(
                    async move {
                        let id = task.id.clone();
                        let outcome = runtime.attempt(task, &worker, lease_ms, cancel).await;
                        (id, outcome)
                    },
                    span,
                ));
            }
            if options.exit_when_idle && running.is_empty() && self.queue_idle(&resources).await? {
                break;
            }
            let wait = self.next_wakeup().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.task_wakeup.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(done) = join.join_next(), if !join.is_empty() => {
                    let mut done = Some(done);
                    // Record every attempt that has ended before looking at the queue again.
                    while let Some(result) = done {
                        let (id, outcome) = result
                            .map_err(|e| RuntimeError::Task(format!("a task panicked: {e}")))?;
                        running.remove(&id);
                        tokens.remove(&id);
                        self.record(&id, &options.id, outcome, &mut report).await?;
                        done = join.try_join_next();
                    }
                }
            }
        }
        // Shutting down: stop running tasks; their leases lapse and they are taken up again.
        for token in tokens.values() {
            token.cancel();
        }
        join.abort_all();
        while join.join_next().await.is_some() {}
        Ok(report)
    }

    async fn record(
        &self,
        id: &str,
        worker: &str,
        outcome: Outcome,
        report: &mut WorkerReport,
    ) -> Result<(), RuntimeError> {
        match outcome {
            Outcome::Done(output) => {
                if self.queue.complete_task(id, worker, &output).await? {
                    report.succeeded += 1;
                    self.memory_changed();
                    tracing::info!(task = %id, "task succeeded");
                }
            }
            Outcome::Failed { error, retryable } => {
                report.failed += 1;
                let state = self.queue.fail_task(id, worker, &error, retryable).await?;
                tracing::warn!(task = %id, error = %error, ?state, "task attempt failed");
            }
            Outcome::Abandoned => {}
        }
        Ok(())
    }

    fn admission(
        &self,
        running: &HashMap<String, Slot>,
        ready: &[ReadyTask],
        llm_parallel: usize,
        concurrency: usize,
    ) -> Admission {
        let mut admission = Admission {
            default_limit: concurrency,
            memory_budget_mb: self.llm_memory_budget_mb(),
            ..Admission::default()
        };
        for resource in ["stt", "tts", "ocr"] {
            admission.limits.insert(resource.into(), 1);
        }
        let mut loaded_memory: HashMap<&str, u64> = HashMap::new();
        for slot in running.values() {
            *admission.running.entry(slot.resource.clone()).or_default() += 1;
            loaded_memory.insert(&slot.resource, slot.memory_mb);
            admission.loaded.insert(slot.resource.clone());
        }
        admission.memory_in_use_mb = loaded_memory.values().sum();
        for task in ready {
            if task.resource.starts_with("chat:") {
                admission.limits.insert(task.resource.clone(), llm_parallel);
            }
            if let Some(why) = self.resource_blocked(&task.resource) {
                admission.blocked.insert(task.resource.clone(), why);
            }
        }
        admission
    }

    /// The memory local models may use, in MB: the RAM budget, plus the free VRAM of the
    /// best GPU the probe found (less the reserve the engine keeps) where models are
    /// offloaded.
    fn llm_memory_budget_mb(&self) -> u64 {
        let config = crate::models::llm_config(&self.config);
        admission_budget_mb(
            config.memory_budget_bytes,
            self.gpu_report().best_free_bytes(),
            config.vram_reserve_bytes,
        )
    }

    /// Whether nothing this worker could run is queued, ready or running.
    async fn queue_idle(&self, resources: &[String]) -> Result<bool, RuntimeError> {
        let waiting = self.queue.waiting_resources().await?;
        Ok(!waiting.iter().any(|r| serves(resources, r)))
    }

    /// How long to sleep when nothing wakes the worker: until the next retry, but at most
    /// a second (other processes add tasks without waking this one).
    async fn next_wakeup(&self) -> Duration {
        let now = chrono::Utc::now().timestamp_millis();
        let retry = self.queue.next_retry_at().await.ok().flatten();
        let ms = retry.map_or(1000, |at| (at - now).clamp(10, 1000));
        Duration::from_millis(ms as u64)
    }

    /// One attempt of a task: renders its input, runs it under its lease (renewed every
    /// third of it; a lost lease or a cancellation stops the work) and its time limit.
    async fn attempt(
        &self,
        task: TaskRecord,
        worker: &str,
        lease_ms: u64,
        cancel: CancellationToken,
    ) -> Outcome {
        let progress = Arc::new(AtomicU64::new(f64::NAN.to_bits()));
        let heartbeat = {
            let store = self.queue.clone();
            let id = task.id.clone();
            let worker = worker.to_owned();
            let cancel = cancel.clone();
            let progress = progress.clone();
            async move {
                let every = Duration::from_millis((lease_ms / 3).max(100));
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(every) => {}
                    }
                    let p = f64::from_bits(progress.load(Ordering::Relaxed));
                    match store
                        .renew_lease(&id, &worker, lease_ms, p.is_finite().then_some(p))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!(task = %id, "task cancelled or lease lost; stopping it");
                            cancel.cancel();
                            return;
                        }
                        Err(e) => tracing::warn!(task = %id, error = %e, "lease renewal failed"),
                    }
                }
            }
        };
        let limit = task
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.max(1) as u64))
            .unwrap_or(Duration::MAX);
        let work = self.run_task(&task, worker, cancel.clone(), progress);
        let result = tokio::select! {
            r = tokio::time::timeout(limit, work) => r,
            _ = heartbeat => {
                // The heartbeat only returns on cancellation.
                return Outcome::Abandoned;
            }
        };
        let cancelled = cancel.is_cancelled();
        cancel.cancel();
        match result {
            _ if cancelled => Outcome::Abandoned,
            Ok(Ok(output)) => Outcome::Done(output),
            Ok(Err(e)) => Outcome::Failed {
                error: e.message,
                retryable: e.retryable,
            },
            Err(_) => Outcome::Failed {
                error: format!(
                    "the attempt ran past its time limit of {} s",
                    limit.as_secs()
                ),
                retryable: true,
            },
        }
    }

    /// The context a run's inputs are rendered over: its parameters and the outputs of its
    /// succeeded steps.
    async fn render_context(&self, run_id: &str) -> Result<Value, RuntimeError> {
        let params = self.queue.run_params(run_id).await?;
        let outputs = self.queue.run_outputs(run_id).await?;
        let steps: Map<String, Value> = outputs
            .into_iter()
            .map(|(step, output)| (step, json!({ "output": output })))
            .collect();
        Ok(json!({ "params": params, "steps": steps }))
    }

    async fn run_task(
        &self,
        task: &TaskRecord,
        worker: &str,
        cancel: CancellationToken,
        progress: Arc<AtomicU64>,
    ) -> AttemptResult {
        let context = self.render_context(&task.run_id).await?;
        let (_, spec) = render_task(
            &task.kind,
            &task.input,
            &context,
            &format!("step `{}`", task.step),
        )
        .map_err(|e| AttemptError::fatal(e.to_string()))?;
        let out_dir = self.run_output_dir(&task.run_id);
        match spec {
            TaskSpec::Batch(batch) => {
                self.run_batch(task, worker, &batch, &context, &out_dir, cancel, progress)
                    .await
            }
            other => self.run_spec(other, &out_dir, cancel).await,
        }
    }

    /// Runs one non-batch task.
    async fn run_spec(
        &self,
        spec: TaskSpec,
        out_dir: &Path,
        cancel: CancellationToken,
    ) -> AttemptResult {
        match spec {
            TaskSpec::Chat(chat) => self.run_chat(chat, cancel).await,
            TaskSpec::Transcribe(t) => self.run_transcribe(t).await,
            TaskSpec::Speak(s) => self.run_speak(s, out_dir).await,
            TaskSpec::Ocr(o) => run_ocr(o).await,
            TaskSpec::Collect(c) => self.run_collect(c).await,
            TaskSpec::Write(w) => write_output(w, out_dir).await,
            TaskSpec::Noop(n) => run_noop(n, cancel).await,
            TaskSpec::Approval(_) => Err(AttemptError::fatal(
                "an approval step waits for a person; it is not run by a worker",
            )),
            TaskSpec::Batch(_) => Err(AttemptError::fatal("a batch cannot run inside a batch")),
        }
    }

    async fn run_chat(&self, chat: ChatInput, cancel: CancellationToken) -> AttemptResult {
        let mut messages = Vec::new();
        if let Some(system) = chat.system.as_deref().filter(|s| !s.trim().is_empty()) {
            messages.push(ChatMessage::system(system));
        } else if !self.config.chat.system_prompt.trim().is_empty() {
            messages.push(ChatMessage::system(&self.config.chat.system_prompt));
        }
        messages.push(ChatMessage::user(&chat.prompt));
        let mut sampling = SamplingOverrides {
            max_tokens: chat.max_tokens,
            temperature: chat.temperature,
            ..SamplingOverrides::default()
        };
        if let Some(schema) = &chat.json_schema {
            sampling.format = Some(OutputFormat::JsonSchema {
                name: "answer".into(),
                schema: schema.clone(),
            });
        }
        if let Some(models) = &chat.compare {
            return self
                .run_compare(&chat, models, messages, sampling, cancel)
                .await;
        }
        let mode: Mode = chat
            .mode
            .as_deref()
            .unwrap_or("single")
            .parse()
            .map_err(AttemptError::fatal)?;
        let options = AnswerOptions {
            model: chat.model.filter(|m| m != "auto" && !m.is_empty()),
            mode,
            sampling,
        };
        let steps = std::sync::Mutex::new(Vec::new());
        let on_progress = |event: OrchestrationEvent| {
            if let OrchestrationEvent::StepDone {
                role,
                model,
                round,
                text,
                ok,
                ms,
                score,
            } = event
            {
                steps.lock().expect("steps lock").push(json!({
                    "role": role, "model": model, "round": round, "text": text,
                    "ok": ok, "ms": ms, "score": score,
                }));
            }
        };
        let answer = self
            .answer_once(&options, messages, &|_| {}, &on_progress, cancel)
            .await?;
        let r = answer.response;
        let mut output = json!({
            "text": r.content.trim(),
            "model": r.model,
            "mode": mode.to_string(),
            "completion_tokens": r.usage.completion_tokens,
            "ms": r.total_ms,
        });
        let steps = steps.into_inner().expect("steps lock");
        if mode != Mode::Single && !steps.is_empty() {
            output["steps"] = Value::Array(steps);
        }
        Ok(output)
    }

    /// Asks each model, then has the judge rate each answer 0-10; the best-rated answer is
    /// the output's text.
    async fn run_compare(
        &self,
        chat: &ChatInput,
        models: &[String],
        messages: Vec<ChatMessage>,
        sampling: SamplingOverrides,
        cancel: CancellationToken,
    ) -> AttemptResult {
        let judge = match chat.judge.as_deref() {
            None | Some("auto") | Some("") => self.default_model(),
            Some(j) => j.to_owned(),
        };
        let mut answers = Map::new();
        let mut scores = Map::new();
        let mut best: Option<(f64, String, String)> = None;
        for model in models {
            let options = AnswerOptions {
                model: Some(model.clone()),
                mode: Mode::Single,
                sampling: sampling.clone(),
            };
            let text = match self
                .answer_once(&options, messages.clone(), &|_| {}, &|_| {}, cancel.clone())
                .await
            {
                Ok(answer) => answer.response.content.trim().to_owned(),
                Err(e) => {
                    answers.insert(model.clone(), Value::String(format!("(failed: {e})")));
                    scores.insert(model.clone(), Value::Null);
                    continue;
                }
            };
            let score = self
                .score(&judge, &chat.prompt, &text, cancel.clone())
                .await;
            if best
                .as_ref()
                .is_none_or(|(s, _, _)| score.unwrap_or(-1.0) > *s)
            {
                best = Some((score.unwrap_or(-1.0), model.clone(), text.clone()));
            }
            answers.insert(model.clone(), Value::String(text));
            scores.insert(model.clone(), score.map_or(Value::Null, |s| json!(s)));
        }
        let Some((_, model, text)) = best else {
            return Err(AttemptError {
                message: "none of the compared models answered".into(),
                retryable: true,
            });
        };
        Ok(
            json!({ "text": text, "model": model, "judge": judge, "answers": answers, "scores": scores }),
        )
    }

    async fn run_transcribe(&self, t: TranscribeInput) -> AttemptResult {
        let path = PathBuf::from(&t.file);
        if !path.is_file() {
            return Err(AttemptError::fatal(format!(
                "{} does not exist or is not a file",
                path.display()
            )));
        }
        let language = t.language.filter(|l| !l.trim().is_empty());
        let transcript = self
            .transcribe_file(&path, t.model.as_deref(), language)
            .await?;
        Ok(json!({
            "text": transcript.text.trim(),
            "language": transcript.language,
            "segments": transcript.segments.len(),
            "file": t.file,
        }))
    }

    async fn run_speak(&self, s: SpeakInput, out_dir: &Path) -> AttemptResult {
        let text = match (&s.text, &s.text_file) {
            (Some(text), _) => text.clone(),
            (None, Some(file)) => {
                let meta = tokio::fs::metadata(file)
                    .await
                    .map_err(|e| AttemptError::fatal(format!("cannot read {file}: {e}")))?;
                if meta.len() > MAX_SPEAK_BYTES {
                    return Err(AttemptError::fatal(format!(
                        "{file} holds {} KiB of text; a speak task reads at most 1 MiB: split it",
                        meta.len() >> 10
                    )));
                }
                let bytes = tokio::fs::read(file)
                    .await
                    .map_err(|e| AttemptError::fatal(format!("cannot read {file}: {e}")))?;
                String::from_utf8(bytes)
                    .map_err(|_| AttemptError::fatal(format!("{file} is not UTF-8 text")))?
            }
            (None, None) => String::new(),
        };
        let spoken = strip_markdown(&text);
        let audio = self.speak(&spoken).await?;
        let path = resolve_output(out_dir, &s.out).map_err(AttemptError::fatal)?;
        let seconds = audio.samples.len() as f64 / f64::from(audio.sample_rate.max(1));
        let target = path.clone();
        tokio::task::spawn_blocking(move || baton_tts::write_wav(&target, &audio))
            .await
            .map_err(|e| AttemptError::fatal(e.to_string()))?
            .map_err(|e| AttemptError::fatal(e.to_string()))?;
        Ok(
            json!({ "file": path.display().to_string(), "seconds": (seconds * 10.0).round() / 10.0 }),
        )
    }

    async fn run_collect(&self, c: CollectInput) -> AttemptResult {
        let hours = c.hours.unwrap_or(24).clamp(1, 24 * 31);
        let to = chrono::Utc::now();
        let from = to - chrono::Duration::hours(i64::from(hours));
        let activity = self
            .store
            .activity_since(from.timestamp_millis(), c.max_chars.unwrap_or(12_000))
            .await
            .map_err(RuntimeError::from)?;
        Ok(json!({
            "text": if activity.text.is_empty() { "(nothing was recorded in this period)".to_owned() } else { activity.text },
            "messages": activity.messages,
            "captures": activity.captures,
            "truncated": activity.truncated,
            "from": from.format("%Y-%m-%d %H:%M UTC").to_string(),
            "to": to.format("%Y-%m-%d %H:%M UTC").to_string(),
        }))
    }

    /// Runs a batch: items streamed from the file (never all in memory), up to
    /// `concurrency` at once, results appended in item order. A checkpoint (items done and
    /// the results file's length) is saved as it goes, so a retried batch continues where
    /// the last attempt's checkpoint was instead of starting over.
    #[allow(clippy::too_many_arguments)]
    async fn run_batch(
        &self,
        task: &TaskRecord,
        worker: &str,
        batch: &BatchInput,
        context: &Value,
        out_dir: &Path,
        cancel: CancellationToken,
        progress: Arc<AtomicU64>,
    ) -> AttemptResult {
        let format = baton_tasks::batch_format(&batch.out)
            .map_err(|e| AttemptError::fatal(e.to_string()))?;
        let out_path = resolve_output(out_dir, &batch.out).map_err(AttemptError::fatal)?;
        let items = crate::batch::Items::open(&batch.over).map_err(AttemptError::fatal)?;
        let total = items.total_hint();
        let checkpoint = task.checkpoint.clone().unwrap_or(Value::Null);
        let mut done = checkpoint["done"].as_u64().unwrap_or(0);
        let mut failed = checkpoint["failed"].as_u64().unwrap_or(0);
        let mut columns: Vec<String> = checkpoint["columns"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let out_len = checkpoint["out_bytes"].as_u64().unwrap_or(0);
        let mut out =
            crate::batch::open_results(&out_path, out_len).map_err(AttemptError::fatal)?;
        let limit = batch.limit.unwrap_or(u64::MAX);
        let concurrency = batch.concurrency.unwrap_or(2).max(1) as usize;
        let skip = done;
        let step = batch.step.clone();
        let items = items
            .skip(skip as usize)
            .take(limit.saturating_sub(skip) as usize)
            .enumerate()
            .map(|(i, item)| (skip + i as u64, item));
        let mut results = futures::stream::iter(items)
            .map(|(index, item)| {
                let step = step.clone();
                let cancel = cancel.clone();
                async move {
                    let result = match item {
                        Ok(item) => {
                            self.run_item(&step, &item, index, context, out_dir, cancel)
                                .await
                        }
                        Err(e) => (Value::Null, Err(AttemptError::fatal(e))),
                    };
                    (index, result)
                }
            })
            .buffered(concurrency);
        let mut last_save = std::time::Instant::now();
        while let Some((index, (item, result))) = results.next().await {
            if cancel.is_cancelled() {
                return Err(AttemptError::fatal("cancelled"));
            }
            let (output, error) = match result {
                Ok(output) => (output, None),
                Err(e) => {
                    failed += 1;
                    (Value::Null, Some(e.message))
                }
            };
            let row = crate::batch::row(index, &item, &output, error.as_deref());
            if columns.is_empty() {
                columns = row.iter().map(|(k, _)| k.clone()).collect();
                crate::batch::write_header(&mut out, format, &columns)
                    .map_err(AttemptError::fatal)?;
            }
            crate::batch::write_row(&mut out, format, &columns, &row)
                .map_err(AttemptError::fatal)?;
            done = index + 1;
            let p = total
                .map(|t| done as f64 / t.max(1) as f64)
                .unwrap_or(f64::NAN);
            progress.store(p.to_bits(), Ordering::Relaxed);
            if last_save.elapsed() >= Duration::from_millis(500) {
                self.save_batch_checkpoint(task, worker, &mut out, done, failed, &columns, p)
                    .await?;
                last_save = std::time::Instant::now();
            }
        }
        self.save_batch_checkpoint(task, worker, &mut out, done, failed, &columns, 1.0)
            .await?;
        if done > 0 && failed == done {
            return Err(AttemptError::fatal(format!(
                "every one of the {done} items failed; see {} for the errors",
                out_path.display()
            )));
        }
        Ok(json!({ "file": out_path.display().to_string(), "items": done, "failed": failed }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn save_batch_checkpoint(
        &self,
        task: &TaskRecord,
        worker: &str,
        out: &mut std::fs::File,
        done: u64,
        failed: u64,
        columns: &[String],
        progress: f64,
    ) -> Result<(), AttemptError> {
        out.flush()
            .map_err(|e| AttemptError::fatal(e.to_string()))?;
        out.sync_data()
            .map_err(|e| AttemptError::fatal(e.to_string()))?;
        let len = out
            .metadata()
            .map_err(|e| AttemptError::fatal(e.to_string()))?
            .len();
        let checkpoint =
            json!({ "done": done, "failed": failed, "columns": columns, "out_bytes": len });
        self.queue
            .save_checkpoint(
                &task.id,
                worker,
                &checkpoint,
                progress.is_finite().then_some(progress),
            )
            .await
            .map_err(|e| AttemptError::from(RuntimeError::from(e)))?;
        Ok(())
    }

    async fn run_item(
        &self,
        step: &baton_tasks::kinds::StepSpec,
        item: &Value,
        index: u64,
        context: &Value,
        out_dir: &Path,
        cancel: CancellationToken,
    ) -> (Value, AttemptResult) {
        let mut ctx = context.clone();
        ctx["item"] = crate::batch::item_fields(item);
        ctx["index"] = json!(index);
        let rendered = render_task(
            &step.kind,
            &step.input,
            &ctx,
            &format!("item {}", index + 1),
        );
        let result = match rendered {
            Ok((_, spec)) => Box::pin(self.run_spec(spec, out_dir, cancel)).await,
            Err(e) => Err(AttemptError::fatal(e.to_string())),
        };
        (item.clone(), result)
    }
}

/// The memory budget admission holds local models to, in MB: `ram_budget` (none: no
/// limit) plus what a GPU with `gpu_free` bytes free takes after `vram_reserve`.
fn admission_budget_mb(ram_budget: Option<u64>, gpu_free: u64, vram_reserve: u64) -> u64 {
    match ram_budget {
        None => 0,
        Some(ram) => (ram + gpu_free.saturating_sub(vram_reserve)) >> 20,
    }
}

/// Whether a worker with `resources` runs tasks on `resource`.
fn serves(resources: &[String], resource: &str) -> bool {
    resources
        .iter()
        .any(|r| r == resource || (r == "chat:*" && resource.starts_with("chat:")))
}

/// An output path: absolute as given, relative under the run's folder (created).
fn resolve_output(out_dir: &Path, path: &str) -> Result<PathBuf, String> {
    if path.trim().is_empty() {
        return Err("the output path is empty".into());
    }
    let path = Path::new(path);
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "{}: a relative output path may not leave the run's folder (no `..`)",
                path.display()
            ));
        }
        out_dir.join(path)
    };
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    Ok(full)
}

/// Writes a file whole or not at all (a temporary file renamed into place).
async fn write_output(w: WriteInput, out_dir: &Path) -> AttemptResult {
    let path = resolve_output(out_dir, &w.path).map_err(AttemptError::fatal)?;
    let target = path.clone();
    let bytes = w.content.len();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let dir = target.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(w.content.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map(|_| ()).map_err(|e| e.error)
    })
    .await
    .map_err(|e| AttemptError::fatal(e.to_string()))?
    .map_err(|e| AttemptError::fatal(format!("cannot write {}: {e}", path.display())))?;
    Ok(json!({ "file": path.display().to_string(), "bytes": bytes }))
}

async fn run_ocr(o: OcrInput) -> AttemptResult {
    tokio::task::spawn_blocking(move || -> AttemptResult {
        let (image, source) = match (&o.image, &o.region) {
            (Some(path), _) => (
                baton_vision::load_image(Path::new(path), &baton_vision::Limits::default())
                    .map_err(|e| AttemptError::fatal(e.to_string()))?,
                path.clone(),
            ),
            (None, Some(region)) => {
                let parsed: baton_vision::Region = region
                    .parse()
                    .map_err(|e: baton_core::VisionError| AttemptError::fatal(e.to_string()))?;
                (
                    baton_vision::capture_region(parsed).map_err(|e| AttemptError {
                        message: e.to_string(),
                        retryable: true,
                    })?,
                    format!("region {region}"),
                )
            }
            (None, None) => return Err(AttemptError::fatal("ocr needs `image` or `region`")),
        };
        let analysis = baton_vision::analyze(&image, &baton_core::OcrOptions::default())
            .map_err(|e| AttemptError::fatal(e.to_string()))?;
        let mut output = json!({
            "text": analysis.ocr.text,
            "lines": analysis.ocr.lines.len(),
            "source": source,
            "width": image.width,
            "height": image.height,
        });
        if o.elements {
            output["elements"] = serde_json::to_value(&analysis.elements).unwrap_or_default();
        }
        Ok(output)
    })
    .await
    .map_err(|e| AttemptError::fatal(e.to_string()))?
}

async fn run_noop(n: NoopInput, cancel: CancellationToken) -> AttemptResult {
    if n.sleep_ms > 0 {
        tokio::select! {
            _ = cancel.cancelled() => return Err(AttemptError::fatal("cancelled")),
            _ = tokio::time::sleep(Duration::from_millis(n.sleep_ms)) => {}
        }
    }
    Ok(json!({ "slept_ms": n.sleep_ms }))
}

/// Text to read aloud: Markdown marks and code blocks removed.
fn strip_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let line = line
            .trim_start_matches(['#', '>', ' '])
            .trim_start_matches("- ");
        out.push_str(&line.replace(['*', '_', '`'], ""));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admission_budget_adds_free_vram_beyond_the_reserve() {
        const MIB: u64 = 1 << 20;
        // No GPU: the RAM budget alone.
        assert_eq!(admission_budget_mb(Some(8192 * MIB), 0, 1024 * MIB), 8192);
        // A GPU with 24 GiB free, 1 GiB kept back.
        assert_eq!(
            admission_budget_mb(Some(8192 * MIB), 24_576 * MIB, 1024 * MIB),
            8192 + 23_552
        );
        // Less free VRAM than the reserve adds nothing; no budget means no limit.
        assert_eq!(
            admission_budget_mb(Some(100 * MIB), 512 * MIB, 1024 * MIB),
            100
        );
        assert_eq!(admission_budget_mb(None, 24_576 * MIB, 0), 0);
    }

    #[test]
    fn outputs_stay_in_the_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = resolve_output(dir.path(), "a/b.txt").unwrap();
        assert!(p.starts_with(dir.path()));
        assert!(resolve_output(dir.path(), "../x").is_err());
        assert!(resolve_output(dir.path(), " ").is_err());
    }

    #[test]
    fn resources_match_wildcards() {
        let r = vec!["chat:*".to_owned(), "none".to_owned()];
        assert!(serves(&r, "chat:qwen"));
        assert!(serves(&r, "none"));
        assert!(!serves(&r, "stt"));
    }

    #[test]
    fn markdown_is_not_read_aloud() {
        let t = strip_markdown("# Title\n\nSome **bold** text.\n```\ncode\n```\n- item");
        assert_eq!(t, "Title\n\nSome bold text.\nitem\n");
    }
}
