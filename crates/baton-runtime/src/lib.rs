//! Baton's runtime: the one service every front end (CLI, desktop app, HTTP API) uses.
//!
//! It resolves where files live ([`Paths`]), loads the validated [`Config`], opens the
//! [`Store`], and (as engines land) wires engines, supervisors and the scheduler. Front ends
//! hold a [`Runtime`] and never touch engines or SQL directly.
#![warn(missing_docs)]

mod batch;
pub mod chat;
pub mod config;
mod context;
pub mod documents;
pub mod engines;
pub mod eval;
pub mod fetch;
pub mod fit;
pub mod memory;
pub mod models;
pub mod orchestrate;
pub mod paths;
pub mod tasks;
pub mod voice;
pub mod worker;

pub use chat::{ChatTurn, TurnOutcome, MAX_MESSAGE_BYTES};
pub use config::{Config, ConfigError, DEFAULT_CONFIG_TOML};
pub use documents::{DocWatcher, IndexReport};
pub use engines::{AddEngine, EngineStatus};
pub use eval::{EvalPlan, EvalProgress, EvalReport, EvalTarget};
pub use fetch::{manifest, FetchProgress, FetchStage, ManifestModel};
pub use fit::{Machine, ModelFit};
pub use memory::{MemoryHit, MemorySettings, SearchFilter, SearchMode};
pub use models::{AddModel, Verification};
pub use orchestrate::{Answer, AnswerOptions, Mode, ProgressSink};
pub use paths::Paths;
pub use tasks::{NewSchedule, ScheduleView, TaskOptions};
pub use voice::{ListenOptions, VoiceEvent};
pub use worker::{WorkerOptions, WorkerReport};

use baton_core::{Engine, EngineError, Role, SessionId};
use baton_store::{Message, NewMessage, Session, Store, StoreError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use thiserror::Error;

/// Errors from the runtime.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An engine failed or refused the request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A model file or registry entry is unusable.
    #[error("{0}")]
    Model(String),
    /// Speech recognition or synthesis failed.
    #[error(transparent)]
    Speech(#[from] baton_core::SpeechError),
    /// A task, template, parameter or schedule is not valid.
    #[error("{0}")]
    Task(String),
}

/// The running service: paths, config, store and engines. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    paths: Paths,
    config: Config,
    store: Store,
    /// The task queue: the store itself, or a shared Redis server (`[queue] url`).
    queue: Arc<dyn baton_store::TaskQueue>,
    engines: Arc<RwLock<HashMap<String, Arc<dyn Engine>>>>,
    specs: models::SpecMap,
    llm: baton_llm::LocalLlmEngine,
    remotes: engines::RemoteMap,
    breakers: engines::Breakers,
    stt: Arc<tokio::sync::Mutex<HashMap<String, baton_stt::SttEngine>>>,
    tts: Arc<tokio::sync::Mutex<Option<baton_tts::VoiceChoice>>>,
    /// The chat model used when none is chosen (see [`Runtime::default_model`]).
    default_model: Arc<RwLock<String>>,
    /// Wakes this process's task worker when a task is added or changes.
    task_wakeup: Arc<tokio::sync::Notify>,
    /// Set once the built-in templates are in the store.
    builtins_installed: Arc<tokio::sync::OnceCell<()>>,
    /// The embedding model, loaded on first use.
    embedder: Arc<tokio::sync::OnceCell<Arc<baton_memory::Embedder>>>,
    /// Wakes the memory indexer when new text is stored.
    memory_wakeup: Arc<tokio::sync::Notify>,
}

/// The embedded queue (the store) for an empty `url`, else the Redis server there.
async fn open_queue(
    store: &Store,
    url: &str,
    prefix: &str,
) -> Result<Arc<dyn baton_store::TaskQueue>, RuntimeError> {
    if url.is_empty() {
        return Ok(Arc::new(store.clone()));
    }
    Ok(Arc::new(
        baton_queue_redis::RedisQueue::connect(url, prefix).await?,
    ))
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("paths", &self.paths)
            .field("store", &self.store)
            .field("queue", &self.queue.location())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Opens the runtime for the given paths: loads the config, then opens the store.
    pub async fn open(paths: Paths) -> Result<Self, RuntimeError> {
        let config = Config::load(&paths.config_file)?;
        let store = Store::open_in(&paths.data_dir).await?;
        let queue = open_queue(&store, &config.queue.url, &config.queue.prefix).await?;
        let specs: models::SpecMap = Arc::default();
        let resolver = {
            let specs = specs.clone();
            baton_llm::FnResolver(move |name: &str| {
                specs.read().expect("spec lock").get(name).cloned()
            })
        };
        let llm = baton_llm::LocalLlmEngine::new(Arc::new(resolver), models::llm_config(&config));
        let breakers = engines::Breakers::new(config.reliability.breaker());
        let runtime = Self {
            paths,
            config,
            store,
            queue,
            engines: Arc::default(),
            specs,
            llm,
            remotes: Arc::default(),
            breakers,
            stt: Arc::default(),
            tts: Arc::default(),
            default_model: Arc::default(),
            task_wakeup: Arc::default(),
            builtins_installed: Arc::default(),
            embedder: Arc::default(),
            memory_wakeup: Arc::default(),
        };
        runtime.load_model_specs().await?;
        runtime.load_engines().await?;
        Ok(runtime)
    }

    /// Convenience: resolves paths from overrides (see [`Paths::resolve`]) and opens.
    pub async fn open_with(
        data_dir: Option<&Path>,
        config_file: Option<&Path>,
    ) -> Result<Self, RuntimeError> {
        Self::open(Paths::resolve(data_dir, config_file)).await
    }

    /// Where files live.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The validated config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store, for reads and session management.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The task queue every front end and worker uses.
    pub fn queue(&self) -> &dyn baton_store::TaskQueue {
        self.queue.as_ref()
    }

    /// Uses the queue at `url` instead of the config's (`--queue`): empty for the embedded
    /// one, else `redis://HOST:PORT/DB`.
    pub async fn use_queue(&mut self, url: &str) -> Result<(), RuntimeError> {
        if !url.is_empty() && !url.starts_with("redis://") {
            return Err(RuntimeError::Task(format!(
                "`{url}` is not a queue address; give redis://HOST:PORT/DB, or nothing for the embedded queue"
            )));
        }
        self.queue = open_queue(&self.store, url, &self.config.queue.prefix).await?;
        Ok(())
    }

    /// Creates a session.
    pub async fn new_session(&self, title: &str) -> Result<Session, RuntimeError> {
        Ok(self.store.create_session(title).await?)
    }

    /// Adds a message written outside a model turn (an import, a note, a pasted answer).
    /// Durable when this returns.
    pub async fn add_message(
        &self,
        session: &SessionId,
        role: Role,
        content: &str,
    ) -> Result<Message, RuntimeError> {
        if content.trim().is_empty() {
            return Err(StoreError::Invalid("a message cannot be empty".into()).into());
        }
        let message = self
            .store
            .append_message(session, NewMessage::new(role, content))
            .await?;
        self.memory_changed();
        Ok(message)
    }

    /// Makes `engine` answer requests for `model`.
    pub fn register_engine(&self, model: &str, engine: Arc<dyn Engine>) {
        self.engines
            .write()
            .expect("engine map lock")
            .insert(model.to_owned(), engine);
    }

    /// The engine that serves `model`: the local LLM engine for registered GGUF models, the
    /// remote engine for `ENGINE/MODEL` names, otherwise an engine registered with
    /// [`Runtime::register_engine`].
    pub fn engine_for(&self, model: &str) -> Result<Arc<dyn Engine>, EngineError> {
        if self.specs.read().expect("spec lock").contains_key(model) {
            return Ok(Arc::new(self.llm.clone()));
        }
        if let Some(remote) = self.remotes.read().expect("remote lock").get(model) {
            return Ok(remote.clone());
        }
        self.engines
            .read()
            .expect("engine map lock")
            .get(model)
            .cloned()
            .ok_or_else(|| EngineError::ModelUnavailable {
                model: model.to_owned(),
                hint: "it is not registered; see `baton models list`, or fetch the default models with `make run`".into(),
            })
    }

    /// Stops worker processes and closes the store cleanly.
    pub async fn close(self) {
        self.llm.shutdown().await;
        for engine in self.stt.lock().await.values() {
            engine.shutdown().await;
        }
        self.store.close().await;
    }
}
