//! [`LocalLlmEngine`]: the [`Engine`] that runs GGUF models in supervised worker processes.
//!
//! One `baton-llm-worker` process per loaded model, started on first use. A model stays
//! loaded for [`LocalLlmConfig::keep_alive`] after its last request; when loading another
//! model would exceed [`LocalLlmConfig::memory_budget_bytes`], idle models are evicted,
//! least recently used first. A background task (when a tokio runtime exists at
//! construction) evicts expired models and pings workers, killing any that stop
//! answering. A worker that dies during a request turns into [`EngineError::Crashed`] for
//! the requests it was serving only; the next request starts a fresh worker.
//!
//! Each worker serves up to [`LocalLlmConfig::n_parallel`] requests at once (decoded
//! together, one batch per step, sharing one KV cache of the model's `n_ctx` tokens, so the
//! memory a model needs does not grow with it); further requests wait in the worker's
//! queue, under [`LocalLlmConfig::queue_timeout`] instead of the token timeout.

use crate::gguf;
use crate::gpu;
use crate::protocol::{ErrorKind, LoadedModel, WorkerEvent, WorkerRequest, WorkerStats};
use crate::worker::{Worker, WorkerFailure};
use async_trait::async_trait;
use baton_core::{
    CancellationToken, ChatEvent, ChatRequest, ChatResponse, Engine, EngineError, EngineHealth,
    EventSink, FinishReason, Usage,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::Instrument;

/// Environment variable naming the worker binary explicitly.
pub const WORKER_ENV: &str = "BATON_LLM_WORKER";
/// File name of the worker binary.
pub const WORKER_BINARY: &str = "baton-llm-worker";

/// Default of [`LocalLlmConfig::n_parallel`]: four requests at once per model. On a CPU,
/// decoding four sequences in one batch costs little more than one (the weights are read
/// once per step), so the aggregate speed grows with parallel requests while each request
/// slows down somewhat.
pub const DEFAULT_N_PARALLEL: u32 = 4;

/// How to run one model: what the caller's registry knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Path of the GGUF file.
    pub path: PathBuf,
    /// Context window in tokens (0: the model's own).
    pub n_ctx: u32,
    /// Chat template to use instead of the model's (a llama.cpp template name like
    /// `chatml`, or the template text).
    pub chat_template: Option<String>,
    /// Layers to offload to a GPU; `None` decides from free VRAM (0 without a GPU).
    pub n_gpu_layers: Option<u32>,
    /// Memory the model needs in bytes; `None` estimates it from the file.
    pub memory_bytes: Option<u64>,
}

impl ModelSpec {
    /// A spec with the given file and context and everything else automatic.
    pub fn new(path: impl Into<PathBuf>, n_ctx: u32) -> Self {
        Self {
            path: path.into(),
            n_ctx,
            chat_template: None,
            n_gpu_layers: None,
            memory_bytes: None,
        }
    }

    /// The same spec with a chat-template override.
    pub fn with_chat_template(mut self, template: impl Into<String>) -> Self {
        self.chat_template = Some(template.into());
        self
    }
}

/// Resolves model names to [`ModelSpec`]s (the registry lives elsewhere).
pub trait ModelResolver: Send + Sync {
    /// The spec of `model`, or `None` when no such model is registered.
    fn resolve(&self, model: &str) -> Option<ModelSpec>;
}

impl ModelResolver for HashMap<String, ModelSpec> {
    fn resolve(&self, model: &str) -> Option<ModelSpec> {
        self.get(model).cloned()
    }
}

impl ModelResolver for BTreeMap<String, ModelSpec> {
    fn resolve(&self, model: &str) -> Option<ModelSpec> {
        self.get(model).cloned()
    }
}

/// A [`ModelResolver`] made from a closure.
pub struct FnResolver<F>(pub F);

impl<F> ModelResolver for FnResolver<F>
where
    F: Fn(&str) -> Option<ModelSpec> + Send + Sync,
{
    fn resolve(&self, model: &str) -> Option<ModelSpec> {
        (self.0)(model)
    }
}

/// Settings of [`LocalLlmEngine`].
#[derive(Debug, Clone)]
pub struct LocalLlmConfig {
    /// Engine name in errors, logs and health (`local-llm`).
    pub engine_name: String,
    /// Worker binary; `None` searches (see [`find_worker`]).
    pub worker_path: Option<PathBuf>,
    /// How long an idle model stays loaded.
    pub keep_alive: Duration,
    /// Most memory all loaded models may take together; `None`: no limit.
    pub memory_budget_bytes: Option<u64>,
    /// How long a ping may take before the worker counts as hung.
    pub ping_timeout: Duration,
    /// How often the background task pings workers and evicts expired models.
    pub health_interval: Duration,
    /// Limit for starting a worker and loading a model.
    pub load_timeout: Duration,
    /// Longest silence (no token, no end) tolerated during a generation.
    pub token_timeout: Duration,
    /// How long to wait for a cancelled generation to end before killing the worker.
    pub cancel_grace: Duration,
    /// VRAM kept free when choosing GPU layers automatically.
    pub vram_reserve_bytes: u64,
    /// CPU threads per worker; `None`: half the available cores (at least 1). On small,
    /// busy machines fewer threads are faster (llama.cpp's threads spin while they wait).
    pub n_threads: Option<u32>,
    /// Chat requests one worker serves at once (default [`DEFAULT_N_PARALLEL`]; 1 serves
    /// them one after another; at most [`crate::protocol::MAX_PARALLEL`]). The requests
    /// share the model's KV cache of `n_ctx` tokens (each may use up to `n_ctx`) and are
    /// decoded together, one batch per step; further requests wait in the worker's queue.
    pub n_parallel: u32,
    /// Longest wait of a request in a worker's queue (all slots busy) before the worker
    /// counts as hung. [`LocalLlmConfig::token_timeout`] applies once a slot takes it.
    pub queue_timeout: Duration,
    /// Extra environment variables for worker processes (for example `BATON_LOG`,
    /// `CUDA_VISIBLE_DEVICES`).
    pub worker_env: Vec<(String, String)>,
}

impl Default for LocalLlmConfig {
    fn default() -> Self {
        Self {
            engine_name: "local-llm".into(),
            worker_path: None,
            keep_alive: Duration::from_secs(300),
            memory_budget_bytes: None,
            ping_timeout: Duration::from_secs(5),
            health_interval: Duration::from_secs(30),
            load_timeout: Duration::from_secs(120),
            token_timeout: Duration::from_secs(120),
            cancel_grace: Duration::from_secs(5),
            vram_reserve_bytes: 1 << 30,
            n_threads: None,
            n_parallel: DEFAULT_N_PARALLEL,
            queue_timeout: Duration::from_secs(600),
            worker_env: Vec::new(),
        }
    }
}

/// Locate the worker binary: `explicit`, else `$BATON_LLM_WORKER`, else next to the current
/// executable (or its parent directory, for test binaries in `target/*/deps`), else on
/// `PATH`.
pub fn find_worker(explicit: Option<&Path>, engine: &str) -> Result<PathBuf, EngineError> {
    let missing = |message: String| EngineError::Failed {
        engine: engine.to_owned(),
        message,
        retryable: false,
    };
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(missing(format!(
                "the LLM worker binary {} does not exist; build it with `cargo build -p baton-llm-worker`",
                path.display()
            )))
        };
    }
    if let Some(path) = std::env::var_os(WORKER_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(format!(
                "{WORKER_ENV} points at {}, which does not exist; fix or unset it",
                path.display()
            )))
        };
    }
    let name = format!("{WORKER_BINARY}{}", std::env::consts::EXE_SUFFIX);
    let mut looked = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let mut dirs = vec![dir.to_path_buf()];
            if dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(parent) = dir.parent() {
                    dirs.push(parent.to_path_buf());
                }
            }
            for dir in dirs {
                let candidate = dir.join(&name);
                if candidate.is_file() {
                    return Ok(candidate);
                }
                looked.push(dir.display().to_string());
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(missing(format!(
        "the LLM worker binary `{name}` was not found (looked in ${WORKER_ENV}, in {} and on PATH); build it with `cargo build -p baton-llm-worker` (or `make`) and keep it next to `baton`, or set {WORKER_ENV}",
        if looked.is_empty() { "the executable's directory".to_owned() } else { looked.join(", ") }
    )))
}

/// A loaded model, as [`LocalLlmEngine::loaded`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedModelStatus {
    /// Registry name.
    pub name: String,
    /// Worker process id.
    pub pid: u32,
    /// What the worker reported at load.
    pub info: LoadedModel,
    /// Memory accounted for it in bytes.
    pub memory_bytes: u64,
    /// Requests running now.
    pub active_requests: usize,
    /// Time since its last request ended (or since load).
    pub idle: Duration,
}

struct Entry {
    name: String,
    worker: Arc<Worker>,
    info: LoadedModel,
    memory_bytes: u64,
    active: AtomicUsize,
    last_used: StdMutex<Instant>,
}

impl Entry {
    fn idle(&self) -> Duration {
        if self.active.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

struct Inner {
    resolver: Arc<dyn ModelResolver>,
    config: LocalLlmConfig,
    models: Mutex<HashMap<String, Arc<Entry>>>,
    gpu: OnceLock<gpu::GpuReport>,
    next_id: AtomicU64,
}

/// The local LLM [`Engine`]: runs GGUF models in supervised `baton-llm-worker` processes.
///
/// Cheap to clone (all clones share the workers).
#[derive(Clone)]
pub struct LocalLlmEngine {
    inner: Arc<Inner>,
}

/// Decrements the active count and stamps `last_used` when a request ends.
struct ActiveGuard(Arc<Entry>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        *self.0.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends `cancel` to the worker if the chat future is dropped before its end.
struct CancelOnDrop {
    worker: Arc<Worker>,
    id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.worker.send(&WorkerRequest::Cancel {
                id: self.id.clone(),
            });
            self.worker.unregister(&self.id);
        }
    }
}

impl LocalLlmEngine {
    /// An engine resolving model names through `resolver`. Starts nothing yet; when called
    /// inside a tokio runtime it also starts the background keep-alive/health task.
    pub fn new(resolver: Arc<dyn ModelResolver>, config: LocalLlmConfig) -> Self {
        let inner = Arc::new(Inner {
            resolver,
            config,
            models: Mutex::new(HashMap::new()),
            gpu: OnceLock::new(),
            next_id: AtomicU64::new(1),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            handle.spawn(background(weak));
        }
        Self { inner }
    }

    /// The configuration.
    pub fn config(&self) -> &LocalLlmConfig {
        &self.inner.config
    }

    /// The worker binary this engine would start.
    pub fn worker_binary(&self) -> Result<PathBuf, EngineError> {
        find_worker(
            self.inner.config.worker_path.as_deref(),
            &self.inner.config.engine_name,
        )
    }

    /// Load `model` now (it is loaded on first use otherwise).
    pub async fn load(&self, model: &str) -> Result<LoadedModel, EngineError> {
        let entry = self.acquire(model).await?;
        let info = entry.info.clone();
        drop(ActiveGuard(entry));
        Ok(info)
    }

    /// Unload `model` and stop its worker; false when it was not loaded.
    pub async fn unload(&self, model: &str) -> bool {
        let entry = self.inner.models.lock().await.remove(model);
        match entry {
            Some(entry) => {
                entry.worker.shutdown(Duration::from_secs(2)).await;
                true
            }
            None => false,
        }
    }

    /// The models loaded now.
    pub async fn loaded(&self) -> Vec<LoadedModelStatus> {
        let models = self.inner.models.lock().await;
        let mut out: Vec<_> = models
            .values()
            .map(|e| LoadedModelStatus {
                name: e.name.clone(),
                pid: e.worker.pid,
                info: e.info.clone(),
                memory_bytes: e.memory_bytes,
                active_requests: e.active.load(Ordering::SeqCst),
                idle: e.idle(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Worker counters of a loaded model (`None` when not loaded or not answering).
    pub async fn stats(&self, model: &str) -> Option<WorkerStats> {
        let entry = self.inner.models.lock().await.get(model).cloned()?;
        let id = self.next_id("stats");
        match entry
            .worker
            .call(
                &id,
                &WorkerRequest::Stats { id: id.clone() },
                self.inner.config.ping_timeout,
            )
            .await
        {
            Ok(WorkerEvent::Stats { stats, .. }) => Some(stats),
            _ => None,
        }
    }

    /// Unload models idle longer than the keep-alive; returns how many.
    pub async fn evict_idle(&self) -> usize {
        evict_idle(&self.inner).await
    }

    /// Ping every worker; kill and forget those that are dead or do not answer. Returns the
    /// names of the models whose workers were dropped (they restart on next use).
    pub async fn check_workers(&self) -> Vec<String> {
        check_workers(&self.inner).await
    }

    /// Stop all workers.
    pub async fn shutdown(&self) {
        let entries: Vec<_> = self.inner.models.lock().await.drain().collect();
        for (_, entry) in entries {
            entry.worker.shutdown(Duration::from_secs(2)).await;
        }
    }

    /// What the GPU probe found (probed once, on first use).
    pub fn gpu_report(&self) -> &gpu::GpuReport {
        self.inner.gpu.get_or_init(gpu::probe)
    }

    fn next_id(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{}",
            self.inner.next_id.fetch_add(1, Ordering::SeqCst)
        )
    }

    fn crashed(&self, reason: String) -> EngineError {
        EngineError::Crashed {
            engine: self.inner.config.engine_name.clone(),
            reason,
        }
    }

    /// Forget `entry` (if it is still the one registered) and kill its worker.
    async fn discard(&self, entry: &Arc<Entry>) {
        let mut models = self.inner.models.lock().await;
        if models
            .get(&entry.name)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            models.remove(&entry.name);
        }
        drop(models);
        entry.worker.kill();
    }

    /// A loaded, live entry for `model`, with its active count incremented.
    async fn acquire(&self, model: &str) -> Result<Arc<Entry>, EngineError> {
        let config = &self.inner.config;
        let mut models = self.inner.models.lock().await;
        if let Some(entry) = models.get(model) {
            if entry.worker.is_alive() {
                entry.active.fetch_add(1, Ordering::SeqCst);
                return Ok(entry.clone());
            }
            tracing::warn!(model, pid = entry.worker.pid, "LLM worker died; restarting");
            models.remove(model);
        }

        let spec = self
            .inner
            .resolver
            .resolve(model)
            .ok_or_else(|| EngineError::ModelUnavailable {
                model: model.to_owned(),
                hint: "no local model of that name is registered; list models with `baton models` or fetch one with `baton models fetch`".into(),
            })?;
        if !spec.path.exists() {
            return Err(EngineError::ModelUnavailable {
                model: model.to_owned(),
                hint: format!(
                    "its file {} is missing; fetch it with `baton models fetch {model}`",
                    spec.path.display()
                ),
            });
        }
        let path = spec.path.clone();
        let info = tokio::task::spawn_blocking(move || gguf::inspect(path))
            .await
            .map_err(|e| EngineError::Failed {
                engine: config.engine_name.clone(),
                message: format!("model inspection failed: {e}"),
                retryable: false,
            })?
            .map_err(|e| EngineError::ModelInvalid {
                model: model.to_owned(),
                reason: e.to_string(),
            })?;
        let n_ctx_for_estimate = if spec.n_ctx > 0 {
            u64::from(spec.n_ctx)
        } else {
            info.context_length.unwrap_or(4096)
        };
        let need = spec
            .memory_bytes
            .unwrap_or_else(|| info.estimated_memory_bytes(n_ctx_for_estimate));

        if let Some(budget) = config.memory_budget_bytes {
            if need > budget {
                return Err(EngineError::Unavailable {
                    engine: config.engine_name.clone(),
                    reason: format!(
                        "model `{model}` needs about {} MiB but the memory budget is {} MiB; raise the budget or use a smaller model",
                        need >> 20,
                        budget >> 20
                    ),
                });
            }
            loop {
                let used: u64 = models.values().map(|e| e.memory_bytes).sum();
                if used + need <= budget {
                    break;
                }
                let victim = models
                    .values()
                    .filter(|e| e.active.load(Ordering::SeqCst) == 0)
                    .max_by_key(|e| e.idle())
                    .map(|e| e.name.clone());
                let Some(victim) = victim else {
                    return Err(EngineError::Unavailable {
                        engine: config.engine_name.clone(),
                        reason: format!(
                            "model `{model}` needs about {} MiB and the busy models use {} MiB of the {} MiB budget; retry when they finish",
                            need >> 20,
                            used >> 20,
                            budget >> 20
                        ),
                    });
                };
                if let Some(entry) = models.remove(&victim) {
                    tracing::info!(model = %victim, "evicting least recently used model to make room");
                    entry.worker.kill();
                }
            }
        }

        let n_gpu_layers = match spec.n_gpu_layers {
            Some(n) => n,
            None => {
                let report = self.gpu_report();
                gpu::choose_gpu_layers(
                    info.file_size,
                    info.block_count
                        .and_then(|b| u32::try_from(b).ok())
                        .unwrap_or(0),
                    report.best_free_bytes(),
                    config.vram_reserve_bytes,
                )
            }
        };

        let binary = self.worker_binary()?;
        let worker = Worker::spawn(&binary, &config.worker_env, config.load_timeout)
            .await
            .map_err(|reason| EngineError::Failed {
                engine: config.engine_name.clone(),
                message: reason,
                retryable: true,
            })?;
        let worker = Arc::new(worker);
        let id = self.next_id("load");
        let request = WorkerRequest::Load {
            id: id.clone(),
            path: spec.path.clone(),
            n_ctx: spec.n_ctx,
            n_gpu_layers,
            chat_template: spec.chat_template.clone(),
            n_threads: config.n_threads,
            n_parallel: config.n_parallel.clamp(1, crate::protocol::MAX_PARALLEL),
        };
        let loaded = match worker.call(&id, &request, config.load_timeout).await {
            Ok(WorkerEvent::Loaded { metadata, .. }) => metadata,
            Ok(other) => {
                worker.kill();
                return Err(EngineError::Failed {
                    engine: config.engine_name.clone(),
                    message: format!("unexpected answer to load: {other:?}"),
                    retryable: false,
                });
            }
            Err(WorkerFailure::Error(WorkerEvent::Error { message, .. })) => {
                worker.shutdown(Duration::from_secs(1)).await;
                return Err(EngineError::ModelInvalid {
                    model: model.to_owned(),
                    reason: message,
                });
            }
            Err(WorkerFailure::Error(other)) => {
                worker.kill();
                return Err(EngineError::ModelInvalid {
                    model: model.to_owned(),
                    reason: format!("{other:?}"),
                });
            }
            Err(WorkerFailure::Died(reason)) => {
                return Err(EngineError::ModelInvalid {
                    model: model.to_owned(),
                    reason: format!("the worker died while loading it: {reason}"),
                })
            }
            Err(WorkerFailure::Timeout) => {
                worker.kill();
                return Err(EngineError::Timeout {
                    engine: config.engine_name.clone(),
                    seconds: config.load_timeout.as_secs(),
                });
            }
        };
        tracing::info!(
            model,
            pid = worker.pid,
            load_ms = loaded.load_ms,
            n_ctx = loaded.n_ctx,
            n_parallel = loaded.n_parallel,
            "model loaded"
        );
        let entry = Arc::new(Entry {
            name: model.to_owned(),
            worker,
            info: loaded,
            memory_bytes: need,
            active: AtomicUsize::new(1),
            last_used: StdMutex::new(Instant::now()),
        });
        models.insert(model.to_owned(), entry.clone());
        Ok(entry)
    }

    async fn chat_inner(
        &self,
        request: ChatRequest,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError> {
        if request.messages.is_empty() {
            return Err(EngineError::InvalidRequest(
                "the conversation is empty; send at least one message".into(),
            ));
        }
        let start = Instant::now();
        let config = &self.inner.config;
        let entry = self.acquire(&request.model).await?;
        let _active = ActiveGuard(entry.clone());
        let worker = entry.worker.clone();
        on_event(ChatEvent::Started {
            model: request.model.clone(),
        });

        let id = request.id.0.clone();
        let mut events = worker.register(&id);
        let sent = worker.send(&WorkerRequest::Chat {
            id: id.clone(),
            messages: request.messages.clone(),
            params: request.params.clone(),
            session: request.session.as_ref().map(|s| s.0.clone()),
        });
        if !sent {
            self.discard(&entry).await;
            let reason = worker.exit_reason(Duration::from_secs(1)).await;
            return Err(self.crashed(reason));
        }
        let mut guard = CancelOnDrop {
            worker: worker.clone(),
            id: id.clone(),
            armed: true,
        };
        let mut text = String::new();
        let mut first_token_ms = None;
        let mut cancel_sent = false;
        let mut queued = false;
        loop {
            let limit = if cancel_sent {
                config.cancel_grace
            } else if queued {
                config.queue_timeout
            } else {
                config.token_timeout
            };
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled(), if !cancel_sent => {
                    tracing::debug!("cancelling generation");
                    worker.send(&WorkerRequest::Cancel { id: id.clone() });
                    cancel_sent = true;
                    continue;
                }
                next = tokio::time::timeout(limit, events.recv()) => next,
            };
            match next {
                Err(_) if cancel_sent => {
                    guard.armed = false;
                    if entry.active.load(Ordering::SeqCst) > 1 {
                        // Other requests are running on this worker: killing it would end
                        // them too. If it is really hung, their own timeouts catch it.
                        tracing::warn!(
                            pid = worker.pid,
                            "worker slow to cancel; left running for its other requests"
                        );
                        worker.unregister(&id);
                    } else {
                        tracing::warn!(pid = worker.pid, "worker ignored cancel; killing it");
                        self.discard(&entry).await;
                    }
                    return Ok(self.response(
                        &request,
                        text,
                        Usage::default(),
                        FinishReason::Cancelled,
                        first_token_ms,
                        start,
                    ));
                }
                Err(_) => {
                    tracing::warn!(
                        pid = worker.pid,
                        queued,
                        "worker silent for {} s; killing it",
                        limit.as_secs()
                    );
                    guard.armed = false;
                    self.discard(&entry).await;
                    return Err(EngineError::Timeout {
                        engine: config.engine_name.clone(),
                        seconds: limit.as_secs(),
                    });
                }
                Ok(None) => {
                    guard.armed = false;
                    self.discard(&entry).await;
                    let reason = worker.exit_reason(Duration::from_secs(2)).await;
                    tracing::warn!(pid = worker.pid, %reason, "LLM worker crashed during a request");
                    return Err(self.crashed(reason));
                }
                Ok(Some(event)) => match event {
                    WorkerEvent::Queued { position, .. } => {
                        tracing::info!(position, "every slot of the worker is busy; queued");
                        queued = true;
                    }
                    WorkerEvent::Admitted { .. } => {
                        tracing::debug!("admitted into a worker slot");
                        queued = false;
                    }
                    WorkerEvent::Token { text: piece, .. } => {
                        queued = false;
                        first_token_ms.get_or_insert_with(|| start.elapsed().as_millis() as u64);
                        text.push_str(&piece);
                        on_event(ChatEvent::Token { text: piece });
                    }
                    WorkerEvent::Notice { message, .. } => {
                        queued = false;
                        on_event(ChatEvent::Notice { message });
                    }
                    WorkerEvent::Done {
                        text: full,
                        usage,
                        finish_reason,
                        ..
                    } => {
                        guard.armed = false;
                        let usage_out = Usage {
                            prompt_tokens: usage.prompt_tokens,
                            cached_prompt_tokens: usage.cached_prompt_tokens,
                            completion_tokens: usage.completion_tokens,
                        };
                        tracing::info!(
                            prompt_tokens = usage.prompt_tokens,
                            cached_prompt_tokens = usage.cached_prompt_tokens,
                            completion_tokens = usage.completion_tokens,
                            prompt_eval_ms = usage.prompt_eval_ms,
                            gen_ms = usage.gen_ms,
                            ?finish_reason,
                            "chat done"
                        );
                        let content = if full.is_empty() { text } else { full };
                        return Ok(self.response(
                            &request,
                            content,
                            usage_out,
                            finish_reason,
                            first_token_ms,
                            start,
                        ));
                    }
                    WorkerEvent::Error { kind, message, .. } => {
                        guard.armed = false;
                        return Err(self.map_error(&request.model, kind, message));
                    }
                    other => tracing::debug!(?other, "ignored worker event"),
                },
            }
        }
    }

    fn response(
        &self,
        request: &ChatRequest,
        content: String,
        usage: Usage,
        finish_reason: FinishReason,
        first_token_ms: Option<u64>,
        start: Instant,
    ) -> ChatResponse {
        ChatResponse {
            model: request.model.clone(),
            content,
            usage,
            finish_reason,
            first_token_ms,
            total_ms: start.elapsed().as_millis() as u64,
            cost_usd: Some(0.0),
        }
    }

    fn map_error(&self, model: &str, kind: ErrorKind, message: String) -> EngineError {
        let engine = self.inner.config.engine_name.clone();
        match kind {
            ErrorKind::NoChatTemplate | ErrorKind::ModelLoad => EngineError::ModelInvalid {
                model: model.to_owned(),
                reason: message,
            },
            ErrorKind::ContextOverflow | ErrorKind::BadRequest => {
                EngineError::InvalidRequest(message)
            }
            ErrorKind::NoModel | ErrorKind::VersionMismatch => EngineError::Failed {
                engine,
                message,
                retryable: true,
            },
            ErrorKind::Internal => EngineError::Failed {
                engine,
                message,
                retryable: false,
            },
        }
    }
}

#[async_trait]
impl Engine for LocalLlmEngine {
    fn name(&self) -> &str {
        &self.inner.config.engine_name
    }

    async fn chat(
        &self,
        request: ChatRequest,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError> {
        let span = tracing::info_span!(
            "llm_chat",
            request_id = %request.id,
            model = %request.model,
            session = request.session.as_ref().map(|s| s.0.as_str()).unwrap_or("")
        );
        self.chat_inner(request, on_event, cancel)
            .instrument(span)
            .await
    }

    async fn health(&self) -> Result<EngineHealth, EngineError> {
        let start = Instant::now();
        let binary = self.worker_binary()?;
        let entries: Vec<_> = self.inner.models.lock().await.values().cloned().collect();
        let mut parts = Vec::new();
        for entry in &entries {
            let id = self.next_id("ping");
            let ok = matches!(
                entry
                    .worker
                    .call(
                        &id,
                        &WorkerRequest::Ping { id: id.clone() },
                        self.inner.config.ping_timeout
                    )
                    .await,
                Ok(WorkerEvent::Pong { .. })
            );
            if !ok {
                self.discard(entry).await;
            }
            parts.push(format!(
                "{} (pid {}, {})",
                entry.name,
                entry.worker.pid,
                if ok {
                    "ok"
                } else {
                    "not answering; restarted on next use"
                }
            ));
        }
        let detail = if parts.is_empty() {
            format!("no model loaded; worker {}", binary.display())
        } else {
            format!("loaded: {}", parts.join(", "))
        };
        Ok(EngineHealth {
            ready: true,
            latency_ms: start.elapsed().as_millis() as u64,
            detail,
        })
    }
}

async fn evict_idle(inner: &Inner) -> usize {
    let keep_alive = inner.config.keep_alive;
    let expired: Vec<Arc<Entry>> = {
        let mut models = inner.models.lock().await;
        let names: Vec<String> = models
            .values()
            .filter(|e| e.active.load(Ordering::SeqCst) == 0 && e.idle() >= keep_alive)
            .map(|e| e.name.clone())
            .collect();
        names.iter().filter_map(|n| models.remove(n)).collect()
    };
    for entry in &expired {
        tracing::info!(model = %entry.name, "keep-alive expired; unloading");
        entry.worker.shutdown(Duration::from_secs(2)).await;
    }
    expired.len()
}

async fn check_workers(inner: &Inner) -> Vec<String> {
    let entries: Vec<_> = inner.models.lock().await.values().cloned().collect();
    let mut dropped = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let id = format!(
            "health-{n}-{}",
            inner.next_id.fetch_add(1, Ordering::SeqCst)
        );
        let ok = entry.worker.is_alive()
            && matches!(
                entry
                    .worker
                    .call(
                        &id,
                        &WorkerRequest::Ping { id: id.clone() },
                        inner.config.ping_timeout
                    )
                    .await,
                Ok(WorkerEvent::Pong { .. })
            );
        if !ok {
            tracing::warn!(model = %entry.name, pid = entry.worker.pid, "LLM worker dead or not answering; dropping it");
            let mut models = inner.models.lock().await;
            if models
                .get(&entry.name)
                .is_some_and(|e| Arc::ptr_eq(e, entry))
            {
                models.remove(&entry.name);
            }
            drop(models);
            entry.worker.kill();
            dropped.push(entry.name.clone());
        }
    }
    dropped
}

async fn background(inner: Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(i) => i
            .config
            .health_interval
            .min(i.config.keep_alive)
            .max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        evict_idle(&inner).await;
        check_workers(&inner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_worker_binary_is_named() {
        let err = find_worker(
            Some(Path::new("/nonexistent/baton-llm-worker")),
            "local-llm",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/baton-llm-worker"), "{text}");
        assert!(text.contains("cargo build -p baton-llm-worker"), "{text}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn unknown_models_and_missing_files_are_clear() {
        let mut map = HashMap::new();
        map.insert(
            "gone".to_owned(),
            ModelSpec::new("/nonexistent/model.gguf", 512),
        );
        let engine = LocalLlmEngine::new(Arc::new(map), LocalLlmConfig::default());
        let sink = |_: ChatEvent| {};
        let err = engine
            .chat(
                ChatRequest::new("nope", vec![baton_core::ChatMessage::user("hi")]),
                &sink,
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::ModelUnavailable { .. }), "{err}");
        let err = engine
            .chat(
                ChatRequest::new("gone", vec![baton_core::ChatMessage::user("hi")]),
                &sink,
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("baton models fetch"), "{err}");
        let err = engine
            .chat(
                ChatRequest::new("gone", vec![]),
                &sink,
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::InvalidRequest(_)));
    }

    #[tokio::test]
    async fn invalid_model_files_are_rejected_before_starting_a_worker() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.gguf");
        std::fs::write(&empty, b"").unwrap();
        let mut map = BTreeMap::new();
        map.insert("empty".to_owned(), ModelSpec::new(&empty, 512));
        let config = LocalLlmConfig {
            worker_path: Some("/nonexistent/worker".into()),
            ..LocalLlmConfig::default()
        };
        let engine = LocalLlmEngine::new(Arc::new(map), config);
        let err = engine.load("empty").await.unwrap_err();
        assert!(matches!(err, EngineError::ModelInvalid { .. }), "{err}");
        assert!(err.to_string().contains("0 bytes"), "{err}");
    }
}
