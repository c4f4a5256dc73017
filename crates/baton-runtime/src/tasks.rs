//! Tasks and workflows as front ends see them: add tasks and template runs (checked before
//! anything is queued), templates (built-in, imported, exported), schedules, and the
//! queue's controls. The worker that runs tasks is [`crate::worker`].

use std::path::PathBuf;

use baton_store::{NewRun, NewTask, ScheduleRecord, StoreError, TaskRecord};
use baton_tasks::{
    resource_of, split_key, CronSchedule, MissedRuns, TaskError, TaskSpec, Template,
    BUILTIN_TEMPLATES,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Runtime, RuntimeError};

impl From<TaskError> for RuntimeError {
    fn from(e: TaskError) -> Self {
        RuntimeError::Task(e.to_string())
    }
}

/// How a single task is queued.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// Higher runs first.
    pub priority: i64,
    /// Finish by then.
    pub deadline: Option<DateTime<Utc>>,
    /// Attempts in all (the config's when `None`).
    pub attempts: Option<u32>,
    /// First wait between attempts, seconds (the config's when `None`).
    pub backoff_secs: Option<f64>,
    /// Time limit of one attempt, seconds.
    pub timeout_secs: Option<u64>,
    /// Who adds it: `cli`, `app`, `api`.
    pub origin: String,
}

/// A schedule to add.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// Its name.
    pub name: String,
    /// A cron expression.
    pub cron: String,
    /// An IANA time zone.
    pub timezone: String,
    /// `name` or `name@version`.
    pub template: String,
    /// Parameters.
    pub params: Value,
    /// What to do with missed times.
    pub missed: MissedRuns,
}

/// A schedule with its next times, for lists.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleView {
    /// The stored schedule.
    #[serde(flatten)]
    pub record: ScheduleRecord,
    /// The expression in words.
    pub description: String,
    /// The next three times.
    pub upcoming: Vec<DateTime<Utc>>,
}

impl Runtime {
    /// Wakes this process's worker (a task was added or changed).
    pub fn wake_worker(&self) {
        self.task_wakeup.notify_waiters();
        self.task_wakeup.notify_one();
    }

    /// Where relative output paths of the run `run_id` go.
    pub fn run_output_dir(&self, run_id: &str) -> PathBuf {
        let base = if self.config.tasks.output_dir.trim().is_empty() {
            self.paths.data_dir.join("outputs")
        } else {
            PathBuf::from(self.config.tasks.output_dir.trim())
        };
        // UUID v7 ids share their time prefix; the tail tells runs apart.
        let short: String = run_id
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        base.join(format!("run-{short}"))
    }

    /// Stores the built-in templates that are missing (a changed built-in at the same
    /// version is refreshed). Done once per runtime: template lookups call it.
    pub async fn install_builtin_templates(&self) -> Result<(), RuntimeError> {
        self.builtins_installed
            .get_or_try_init(|| self.store_builtin_templates())
            .await
            .map(|_| ())
    }

    async fn store_builtin_templates(&self) -> Result<(), RuntimeError> {
        for (_, yaml) in BUILTIN_TEMPLATES {
            let template = Template::parse(yaml)?;
            let doc = template.doc();
            let stored = self
                .store
                .template(&doc.name, Some(i64::from(doc.version)))
                .await?;
            if stored.as_ref().map(|s| s.yaml.as_str()) != Some(*yaml) {
                self.store
                    .save_template(&doc.name, i64::from(doc.version), yaml, true)
                    .await?;
            }
        }
        Ok(())
    }

    /// A stored template by `name` or `name@version` (the newest version without one).
    pub async fn template(&self, key: &str) -> Result<Template, RuntimeError> {
        self.install_builtin_templates().await?;
        let (name, version) = split_key(key)?;
        let record = self.store.template(name, version).await?.ok_or_else(|| {
            RuntimeError::Task(format!(
                "no template `{key}`; list them with `baton templates list` or import one with `baton templates import FILE`"
            ))
        })?;
        Ok(Template::parse(&record.yaml)?)
    }

    /// Every stored template (the newest version of each, unless `all_versions`).
    pub async fn templates(&self, all_versions: bool) -> Result<Vec<Template>, RuntimeError> {
        self.install_builtin_templates().await?;
        let mut out: Vec<Template> = Vec::new();
        for record in self.store.templates().await? {
            let template = Template::parse(&record.yaml)?;
            if !all_versions {
                if let Some(last) = out.last() {
                    if last.doc().name == template.doc().name {
                        out.pop();
                    }
                }
            }
            out.push(template);
        }
        Ok(out)
    }

    /// Validates and stores a template. The same name and version with different text is
    /// refused: give it a new version.
    pub async fn import_template(&self, yaml: &str) -> Result<Template, RuntimeError> {
        let template = Template::parse(yaml)?;
        let doc = template.doc();
        if let Some(existing) = self
            .store
            .template(&doc.name, Some(i64::from(doc.version)))
            .await?
        {
            if existing.yaml != yaml {
                return Err(RuntimeError::Task(format!(
                    "{} exists with different steps; raise `version` to keep both",
                    template.key()
                )));
            }
        }
        self.store
            .save_template(&doc.name, i64::from(doc.version), yaml, false)
            .await?;
        Ok(template)
    }

    /// Checks that every task of `run` can run here (its model or engine is installed) and
    /// fills in the memory its model needs. A missing model is refused with the command
    /// that fetches it.
    pub async fn check_run(&self, run: &mut NewRun) -> Result<(), RuntimeError> {
        let names = self.model_names().await?;
        for task in &mut run.tasks {
            let resource = task.resource.clone();
            let model = match resource.strip_prefix("chat:") {
                Some("auto") => Some(self.default_model()),
                Some(model) => {
                    if !names.iter().any(|n| n == model) {
                        return Err(RuntimeError::Task(format!(
                            "step `{}` needs the chat model `{model}`, which is not installed; fetch it with `baton models fetch {model}` (or add a remote engine), or choose another model",
                            task.step
                        )));
                    }
                    Some(model.to_owned())
                }
                None => None,
            };
            if resource == "stt" {
                let stt = &self.config.voice.stt_model;
                if self.store.model(stt).await?.is_none() {
                    return Err(RuntimeError::Task(format!(
                        "step `{}` transcribes audio but the speech model `{stt}` is not installed; fetch it with `baton models fetch {stt}`",
                        task.step
                    )));
                }
            }
            if let Some(model) = model {
                if let Some(record) = self.store.model(&model).await? {
                    // Weights plus the context and working buffers, roughly.
                    task.memory_mb = (record.file_size.max(0) as u64 >> 20) * 5 / 4 + 100;
                }
            }
        }
        Ok(())
    }

    /// Queues one task of `kind` with `input`. The input is checked against its kind now
    /// (templates in it are checked when it runs).
    pub async fn add_task(
        &self,
        kind: &str,
        input: Value,
        options: &TaskOptions,
    ) -> Result<TaskRecord, RuntimeError> {
        TaskSpec::check_written(kind, &input)?;
        let t = &self.config.tasks;
        let backoff = options.backoff_secs.unwrap_or(t.backoff_secs);
        let mut run = NewRun {
            name: kind.to_owned(),
            template: None,
            params: Value::Object(Default::default()),
            origin: options.origin.clone(),
            tasks: vec![NewTask {
                step: kind.to_owned(),
                kind: kind.to_owned(),
                resource: resource_of(kind, &input),
                input,
                memory_mb: 0,
                priority: options.priority,
                deadline_ms: options.deadline.map(|d| d.timestamp_millis()),
                max_attempts: options.attempts.unwrap_or(t.attempts),
                backoff_ms: (backoff * 1000.0) as u64,
                timeout_ms: options.timeout_secs.map(|s| s * 1000),
                after: Vec::new(),
            }],
        };
        self.check_run(&mut run).await?;
        let (_, ids) = self.queue.create_run(&run).await?;
        self.wake_worker();
        Ok(self.queue.task(&ids[0]).await?)
    }

    /// Queues a run of a template with `params` (checked against its schema first; unknown
    /// or mistyped parameters are refused before anything is queued). Returns the run id.
    pub async fn run_template(
        &self,
        key: &str,
        params: &Value,
        origin: &str,
    ) -> Result<String, RuntimeError> {
        let template = self.template(key).await?;
        let mut run = template.instantiate(params, origin, Utc::now().timestamp_millis())?;
        let t = &self.config.tasks;
        for (task, step) in run.tasks.iter_mut().zip(&template.doc().steps) {
            if step.retry.or(template.doc().retry).is_none() {
                task.max_attempts = t.attempts;
                task.backoff_ms = (t.backoff_secs * 1000.0) as u64;
            }
        }
        self.check_run(&mut run).await?;
        let (run_id, _) = self.queue.create_run(&run).await?;
        self.wake_worker();
        Ok(run_id)
    }

    /// Cancels a task (and its dependants) or, given a run id, the whole run.
    pub async fn cancel_tasks(&self, id: &str, reason: &str) -> Result<Vec<String>, RuntimeError> {
        let cancelled = match self.queue.resolve_task_id(id).await {
            Ok(task) => self.queue.cancel_task(&task, reason).await?,
            Err(_) => {
                let runs = self.queue.runs(0).await?;
                let matches: Vec<_> = runs
                    .iter()
                    .filter(|r| r.id.starts_with(id) || r.id.ends_with(id))
                    .collect();
                match matches.as_slice() {
                    [run] => self.queue.cancel_run(&run.id, reason).await?,
                    [] => {
                        return Err(StoreError::Invalid(format!(
                            "no task or run matches `{id}`; see `baton tasks list`"
                        ))
                        .into())
                    }
                    _ => {
                        return Err(StoreError::Invalid(format!(
                            "`{id}` matches several runs; give more characters"
                        ))
                        .into())
                    }
                }
            }
        };
        self.wake_worker();
        Ok(cancelled)
    }

    /// Adds a schedule after checking its expression, zone, template and parameters.
    pub async fn add_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleView, RuntimeError> {
        let cron = CronSchedule::parse(&schedule.cron, &schedule.timezone)?;
        let template = self.template(&schedule.template).await?;
        let mut run = template.instantiate(&schedule.params, "schedule", 0)?;
        self.check_run(&mut run).await?;
        let next = cron.next_after(Utc::now()).map(|t| t.timestamp_millis());
        let record = self
            .store
            .add_schedule(
                &schedule.name,
                &schedule.cron,
                &schedule.timezone,
                &schedule.template,
                &schedule.params,
                schedule.missed.as_str(),
                next,
            )
            .await?;
        self.wake_worker();
        Ok(Self::schedule_view(record))
    }

    fn schedule_view(record: ScheduleRecord) -> ScheduleView {
        let (description, upcoming) = match CronSchedule::parse(&record.cron, &record.timezone) {
            Ok(cron) => (
                cron.describe(),
                if record.enabled {
                    cron.upcoming(Utc::now(), 3)
                } else {
                    Vec::new()
                },
            ),
            Err(e) => (e.to_string(), Vec::new()),
        };
        ScheduleView {
            record,
            description,
            upcoming,
        }
    }

    /// Every schedule with its next times.
    pub async fn schedules(&self) -> Result<Vec<ScheduleView>, RuntimeError> {
        Ok(self
            .store
            .schedules()
            .await?
            .into_iter()
            .map(Self::schedule_view)
            .collect())
    }

    /// Enables or disables a schedule (enabling computes its next time from now).
    pub async fn set_schedule_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<(), RuntimeError> {
        let record = self.store.schedule(name).await?;
        let next = if enabled {
            CronSchedule::parse(&record.cron, &record.timezone)?
                .next_after(Utc::now())
                .map(|t| t.timestamp_millis())
        } else {
            None
        };
        self.store.set_schedule_enabled(name, enabled, next).await?;
        self.wake_worker();
        Ok(())
    }

    /// Makes the runs of schedules whose time has come (once per time, even with several
    /// workers). Returns the run ids made.
    pub async fn fire_due_schedules(&self) -> Result<Vec<String>, RuntimeError> {
        let now = Utc::now();
        let mut made = Vec::new();
        for record in self.store.schedules().await? {
            let Some(due_ms) = record.next_run_at.filter(|_| record.enabled) else {
                continue;
            };
            if due_ms > now.timestamp_millis() {
                continue;
            }
            let due = DateTime::from_timestamp_millis(due_ms).unwrap_or(now);
            let cron = match CronSchedule::parse(&record.cron, &record.timezone) {
                Ok(cron) => cron,
                Err(e) => {
                    tracing::warn!(schedule = %record.name, error = %e, "schedule disabled");
                    self.store
                        .set_schedule_enabled(&record.name, false, None)
                        .await?;
                    continue;
                }
            };
            let missed: MissedRuns = record.missed.parse()?;
            let (run, next) = baton_tasks::schedule::fire(&cron, missed, due, now, 60_000);
            let next_ms = next.map(|t| t.timestamp_millis());
            // Claim this time first, so two workers never both make its run.
            if !self
                .store
                .advance_schedule(record.id, due_ms, next_ms)
                .await?
            {
                continue;
            }
            if !run {
                tracing::info!(schedule = %record.name, "missed time skipped");
                continue;
            }
            let params: Value = serde_json::from_str(&record.params).unwrap_or_default();
            match self
                .run_template(
                    &record.template,
                    &params,
                    &format!("schedule:{}", record.name),
                )
                .await
            {
                Ok(run_id) => {
                    self.store.record_schedule_run(record.id, &run_id).await?;
                    made.push(run_id);
                }
                Err(e) => {
                    tracing::warn!(schedule = %record.name, error = %e, "schedule could not start its run")
                }
            }
        }
        Ok(made)
    }
}
