//! Remote engines as the runtime manages them (`baton engines add|list|remove|test`), and
//! the circuit breakers every engine call goes through.
//!
//! Keys go to the [`KeyStore`] (OS keyring or the opted-in encrypted file), the rest of an
//! engine's record to SQLite. A remote model is addressed as `ENGINE/MODEL`.

use crate::{Runtime, RuntimeError};
use baton_core::{BreakerState, CircuitBreaker, EngineError, EngineHealth};
use baton_remote::{ApiKey, EndpointConfig, KeyStore, RemoteEngine, Timeouts};
use baton_store::EngineRecord;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Remote models by full name (`ENGINE/MODEL`).
pub(crate) type RemoteMap = Arc<RwLock<HashMap<String, Arc<RemoteEngine>>>>;

/// Circuit breakers by engine key, with the clock they are read against.
#[derive(Clone)]
pub(crate) struct Breakers {
    epoch: Instant,
    policy: baton_core::BreakerPolicy,
    map: Arc<Mutex<HashMap<String, CircuitBreaker>>>,
}

impl Breakers {
    pub(crate) fn new(policy: baton_core::BreakerPolicy) -> Self {
        Self {
            epoch: Instant::now(),
            policy,
            map: Arc::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn with<T>(&self, key: &str, f: impl FnOnce(&mut CircuitBreaker, u64) -> T) -> T {
        let now = self.now_ms();
        let mut map = self.map.lock().expect("breaker lock");
        let breaker = map
            .entry(key.to_owned())
            .or_insert_with(|| CircuitBreaker::new(self.policy));
        f(breaker, now)
    }

    /// Asks the breaker of `key` for permission; `Err` carries the seconds until a probe.
    pub(crate) fn acquire(&self, key: &str) -> Result<(), u64> {
        self.with(key, |b, now| b.try_acquire(now))
            .map_err(|r| r.retry_in_ms.div_ceil(1000))
    }

    pub(crate) fn success(&self, key: &str) {
        self.with(key, |b, now| b.record_success(now));
    }

    pub(crate) fn failure(&self, key: &str) {
        self.with(key, |b, now| b.record_failure(now));
    }

    /// Whether `key` would take a request now (read-only: it does not start a probe).
    pub(crate) fn available(&self, key: &str) -> bool {
        self.with(key, |b, now| {
            !matches!(b.state(now), BreakerState::Open { .. })
        })
    }

    pub(crate) fn snapshot(&self, key: &str) -> (BreakerState, f64) {
        self.with(key, |b, now| (b.state(now), b.failure_rate()))
    }
}

/// Options of [`Runtime::add_engine`].
#[derive(Debug, Clone, Default)]
pub struct AddEngine {
    /// Name; its models become `NAME/MODEL`.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// API key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// Models to use; empty means every model the endpoint lists.
    pub models: Vec<String>,
    /// US dollars per million prompt tokens.
    pub input_usd_per_mtok: f64,
    /// US dollars per million generated tokens.
    pub output_usd_per_mtok: f64,
}

/// An engine with its live health.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    /// The stored record.
    pub record: EngineRecord,
    /// Its circuit breaker: `closed`, `open` or `half-open`.
    pub breaker: String,
    /// Failure rate over the breaker's window.
    pub failure_rate: f64,
}

impl Runtime {
    /// The key store the config selects.
    pub fn key_store(&self) -> KeyStore {
        if self.config.secrets.store == "file" {
            KeyStore::encrypted_file(
                self.paths.data_dir.join("keys.bin"),
                std::env::var("BATON_SECRETS_PASSPHRASE").ok(),
            )
        } else {
            KeyStore::keyring()
        }
    }

    fn endpoint(&self, record: &EngineRecord, key: Option<ApiKey>) -> EndpointConfig {
        let r = &self.config.reliability;
        let mut config = EndpointConfig::new(&record.name, &record.base_url);
        config.api_key = key;
        config.input_usd_per_mtok = record.input_usd_per_mtok;
        config.output_usd_per_mtok = record.output_usd_per_mtok;
        config.timeouts = Timeouts {
            connect: Duration::from_secs(r.connect_timeout_secs),
            first_token: Duration::from_secs(r.first_token_timeout_secs),
            idle: Duration::from_secs(r.idle_timeout_secs),
            health: Duration::from_secs(r.connect_timeout_secs.max(5)),
        };
        config.max_retries = r.max_retries;
        config
    }

    fn install_engine(
        &self,
        record: &EngineRecord,
        key: Option<ApiKey>,
    ) -> Result<(), EngineError> {
        let engine = Arc::new(RemoteEngine::new(self.endpoint(record, key))?);
        let mut remotes = self.remotes.write().expect("remote lock");
        remotes.retain(|_, e| e.config().name != record.name);
        if record.enabled {
            for model in &record.models {
                remotes.insert(format!("{}/{model}", record.name), engine.clone());
            }
        }
        Ok(())
    }

    /// Registers the stored remote engines (at start-up). An engine whose key cannot be
    /// read is still registered; its requests then fail with the key store's message.
    pub(crate) async fn load_engines(&self) -> Result<(), RuntimeError> {
        for record in self.store.engines().await? {
            let key = if record.key_store == "none" {
                None
            } else {
                match self.key_store().get(&record.name) {
                    Ok(key) => key,
                    Err(e) => {
                        tracing::warn!(engine = %record.name, error = %e, "API key unavailable");
                        None
                    }
                }
            };
            self.install_engine(&record, key)?;
        }
        Ok(())
    }

    /// Adds (or replaces) a remote engine: checks that it answers, lists its models, stores
    /// the key in the key store and the rest in SQLite. Nothing is saved when a check fails.
    pub async fn add_engine(&self, add: AddEngine) -> Result<EngineRecord, RuntimeError> {
        let name = add.name.trim();
        if name.is_empty()
            || name.contains('/')
            || name.chars().any(char::is_whitespace)
            || self.specs.read().expect("spec lock").contains_key(name)
        {
            return Err(RuntimeError::Model(format!(
                "`{name}` cannot name an engine: use a short name without spaces or `/` that is not a local model's name"
            )));
        }
        if !(add.base_url.starts_with("http://") || add.base_url.starts_with("https://")) {
            return Err(RuntimeError::Model(format!(
                "`{}` is not an http(s) URL; give the API's base URL, e.g. http://127.0.0.1:11434/v1",
                add.base_url
            )));
        }
        let key = add
            .api_key
            .filter(|k| !k.trim().is_empty())
            .map(|k| ApiKey::new(k.trim()));
        let mut record = EngineRecord {
            name: name.to_owned(),
            base_url: add.base_url.trim_end_matches('/').to_owned(),
            models: add.models,
            input_usd_per_mtok: add.input_usd_per_mtok,
            output_usd_per_mtok: add.output_usd_per_mtok,
            key_store: "none".into(),
            enabled: true,
            added_at: chrono::Utc::now(),
        };
        let probe = RemoteEngine::new(self.endpoint(&record, key.clone()))?;
        let listed = probe.list_models().await?;
        if record.models.is_empty() {
            record.models = listed;
        } else if let Some(missing) = record.models.iter().find(|m| !listed.contains(m)) {
            return Err(RuntimeError::Model(format!(
                "{} does not list model `{missing}`; it serves: {}",
                record.base_url,
                listed.join(", ")
            )));
        }
        if record.models.is_empty() {
            return Err(RuntimeError::Model(format!(
                "{} lists no models; load one on the server first",
                record.base_url
            )));
        }
        if let Some(key) = &key {
            let store = self.key_store();
            store
                .set(name, key)
                .map_err(|e| RuntimeError::Model(e.to_string()))?;
            record.key_store = match store.kind() {
                baton_remote::KeyStoreKind::Keyring => "keyring".into(),
                baton_remote::KeyStoreKind::EncryptedFile => "file".into(),
            };
        }
        self.store.upsert_engine(&record).await?;
        self.install_engine(&record, key)?;
        Ok(record)
    }

    /// Removes a remote engine and its key. Returns whether it existed.
    pub async fn remove_engine(&self, name: &str) -> Result<bool, RuntimeError> {
        let existed = self.store.remove_engine(name).await?;
        if existed {
            if let Err(e) = self.key_store().delete(name) {
                tracing::warn!(engine = %name, error = %e, "could not delete the API key");
            }
            self.remotes
                .write()
                .expect("remote lock")
                .retain(|_, e| e.config().name != name);
        }
        Ok(existed)
    }

    /// Every remote engine with its breaker state.
    pub async fn engine_statuses(&self) -> Result<Vec<EngineStatus>, RuntimeError> {
        Ok(self
            .store
            .engines()
            .await?
            .into_iter()
            .map(|record| {
                let (state, failure_rate) =
                    self.breakers.snapshot(&format!("remote:{}", record.name));
                EngineStatus {
                    record,
                    breaker: state.name().to_owned(),
                    failure_rate,
                }
            })
            .collect())
    }

    /// Checks that a remote engine answers and lists its models; the outcome counts toward
    /// its circuit breaker.
    pub async fn test_engine(&self, name: &str) -> Result<EngineHealth, RuntimeError> {
        let engine = self
            .remotes
            .read()
            .expect("remote lock")
            .values()
            .find(|e| e.config().name == name)
            .cloned()
            .ok_or_else(|| {
                RuntimeError::Model(format!(
                    "there is no engine `{name}`; see `baton engines list`"
                ))
            })?;
        let key = format!("remote:{name}");
        match baton_core::Engine::health(engine.as_ref()).await {
            Ok(health) => {
                self.breakers.success(&key);
                Ok(health)
            }
            Err(e) => {
                self.breakers.failure(&key);
                Err(e.into())
            }
        }
    }
}
