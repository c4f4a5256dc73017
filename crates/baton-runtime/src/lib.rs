//! Baton's runtime: the one service every front end (CLI, desktop app, HTTP API) uses.
//!
//! It resolves where files live ([`Paths`]), loads the validated [`Config`], opens the
//! [`Store`], and (as engines land) wires engines, supervisors and the scheduler. Front ends
//! hold a [`Runtime`] and never touch engines or SQL directly.
#![warn(missing_docs)]

pub mod config;
pub mod paths;

pub use config::{Config, ConfigError, DEFAULT_CONFIG_TOML};
pub use paths::Paths;

use baton_core::{Role, SessionId};
use baton_store::{Message, NewMessage, Session, Store, StoreError};
use std::path::Path;
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
}

/// The running service: paths, config and store.
#[derive(Debug, Clone)]
pub struct Runtime {
    paths: Paths,
    config: Config,
    store: Store,
}

impl Runtime {
    /// Opens the runtime for the given paths: loads the config, then opens the store.
    pub async fn open(paths: Paths) -> Result<Self, RuntimeError> {
        let config = Config::load(&paths.config_file)?;
        let store = Store::open_in(&paths.data_dir).await?;
        Ok(Self {
            paths,
            config,
            store,
        })
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
        Ok(self
            .store
            .append_message(session, NewMessage::new(role, content))
            .await?)
    }

    /// Closes the store cleanly.
    pub async fn close(self) {
        self.store.close().await;
    }
}
