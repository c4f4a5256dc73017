//! What the shell keeps between calls: the runtime (or why it failed to open), running
//! generations' cancellation tokens, quick actions waiting for the window, shortcut errors,
//! voice input and reading aloud, and what keeps memory current (the indexer, the
//! document watcher).

use crate::dto::{AppAction, AppError, Preferences};
use baton_core::CancellationToken;
use baton_runtime::{Paths, Runtime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The settings key under which the UI preferences are stored.
pub const PREFERENCES_KEY: &str = "app.preferences";
/// The settings key under which the window geometry is stored.
pub const GEOMETRY_KEY: &str = "app.window";
/// The settings key that records "Decide later" on the first-start model choice.
pub const MODEL_CHOICE_KEY: &str = "app.model_choice";

/// Shared state of the desktop shell.
pub struct AppState {
    paths: Paths,
    runtime: Result<Runtime, AppError>,
    generations: Mutex<HashMap<String, CancellationToken>>,
    pending: Mutex<Vec<AppAction>>,
    shortcut_errors: Mutex<Vec<String>>,
    tray: Mutex<bool>,
    started: Instant,
    interactive: AtomicBool,
    pending_shot: Mutex<Option<crate::capture::PendingShot>>,
    voice: crate::voice::VoiceState,
    memory: Mutex<Option<crate::memory::MemoryTasks>>,
}

impl AppState {
    /// State around a runtime, or around the error that kept it from opening.
    pub fn new(paths: Paths, runtime: Result<Runtime, AppError>) -> Self {
        Self {
            paths,
            runtime,
            generations: Mutex::default(),
            pending: Mutex::default(),
            shortcut_errors: Mutex::default(),
            tray: Mutex::new(false),
            started: Instant::now(),
            interactive: AtomicBool::new(false),
            pending_shot: Mutex::default(),
            voice: crate::voice::VoiceState::default(),
            memory: Mutex::default(),
        }
    }

    /// Keeps the memory indexer and the document watcher running (until [`Self::stop_memory`]).
    pub fn set_memory(&self, tasks: crate::memory::MemoryTasks) {
        *self.memory.lock().expect("memory lock") = Some(tasks);
    }

    /// A folder was added to memory: the watcher starts watching it.
    pub fn memory_roots_changed(&self) {
        if let Some(tasks) = &*self.memory.lock().expect("memory lock") {
            tasks.roots_changed();
        }
    }

    /// Stops the memory indexer and the document watcher (on quit).
    pub fn stop_memory(&self) {
        self.memory.lock().expect("memory lock").take();
    }

    /// Logs, once, how long the window took to become interactive.
    pub fn mark_interactive(&self) {
        if !self.interactive.swap(true, Ordering::SeqCst) {
            tracing::info!(
                ms = self.started.elapsed().as_millis() as u64,
                "window interactive"
            );
        }
    }

    /// The screenshot waiting for a region selection, if any.
    pub fn pending_shot(&self) -> std::sync::MutexGuard<'_, Option<crate::capture::PendingShot>> {
        self.pending_shot.lock().expect("pending shot lock")
    }

    /// Listening and reading aloud.
    pub fn voice(&self) -> &crate::voice::VoiceState {
        &self.voice
    }

    /// Where files live.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The runtime (a cheap clone), or the startup error.
    pub fn runtime(&self) -> Result<Runtime, AppError> {
        self.runtime.clone()
    }

    /// Registers a generation for `session`; refuses a second one in the same session.
    pub fn begin(&self, session: &str) -> Result<CancellationToken, AppError> {
        let mut map = self.generations.lock().expect("generations lock");
        if map.contains_key(session) {
            return Err(AppError::new(
                "busy",
                "an answer is still being generated in this chat; stop it or wait for it",
            ));
        }
        let token = CancellationToken::new();
        map.insert(session.to_owned(), token.clone());
        Ok(token)
    }

    /// Forgets the generation of `session`.
    pub fn finish(&self, session: &str) {
        self.generations
            .lock()
            .expect("generations lock")
            .remove(session);
    }

    /// Cancels the generation of `session`; false when none runs.
    pub fn cancel(&self, session: &str) -> bool {
        match self
            .generations
            .lock()
            .expect("generations lock")
            .get(session)
        {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether a job registered under `key` runs.
    pub fn running(&self, key: &str) -> bool {
        self.generations
            .lock()
            .expect("generations lock")
            .contains_key(key)
    }

    /// Cancels every running generation (on quit).
    pub fn cancel_all(&self) {
        for token in self.generations.lock().expect("generations lock").values() {
            token.cancel();
        }
    }

    /// Keeps an action for the window to take when it starts listening.
    pub fn push_pending(&self, action: AppAction) {
        self.pending.lock().expect("pending lock").push(action);
    }

    /// Takes the actions kept for the window.
    pub fn take_pending(&self) -> Vec<AppAction> {
        std::mem::take(&mut *self.pending.lock().expect("pending lock"))
    }

    /// Records the shortcuts that failed to register.
    pub fn set_shortcut_errors(&self, errors: Vec<String>) {
        *self.shortcut_errors.lock().expect("shortcut lock") = errors;
    }

    /// Shortcuts that failed to register.
    pub fn shortcut_errors(&self) -> Vec<String> {
        self.shortcut_errors.lock().expect("shortcut lock").clone()
    }

    /// Records whether a tray icon exists.
    pub fn set_tray(&self, tray: bool) {
        *self.tray.lock().expect("tray lock") = tray;
    }

    /// Whether a tray icon exists.
    pub fn tray(&self) -> bool {
        *self.tray.lock().expect("tray lock")
    }

    /// The saved preferences (defaults when none are saved or the runtime is not open).
    pub async fn preferences(&self) -> Result<Preferences, AppError> {
        let Ok(rt) = self.runtime() else {
            return Ok(Preferences::default());
        };
        Ok(rt
            .store()
            .setting(PREFERENCES_KEY)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }

    /// Saves the preferences.
    pub async fn save_preferences(&self, preferences: &Preferences) -> Result<(), AppError> {
        let rt = self.runtime()?;
        let value = serde_json::to_value(preferences)
            .map_err(|e| AppError::new("invalid", e.to_string()))?;
        Ok(rt.store().set_setting(PREFERENCES_KEY, &value).await?)
    }
}
