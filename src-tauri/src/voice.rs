//! Voice in the window: listening for the composer (the mic button, the push-to-talk
//! shortcut, the tray's "Push to talk") with the level and partial text sent to the
//! window as [`VoiceInput`] events, and reading aloud (a message's "Read aloud", or each
//! answer as it streams when auto-speak is on) announced with [`ReadAloud`] events.

use crate::dto::{AppError, ReadAloud, VoiceInput};
use crate::state::AppState;
use baton_core::CancellationToken;
use baton_runtime::{ListenOptions, VoiceEvent};
use baton_tts::{Player, Reader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::{AppHandle, Manager, State};
use tauri_specta::Event;

type Res<T> = Result<T, AppError>;

/// A key release that is followed by a press within this time is the same hold.
const RELEASE_DEBOUNCE: Duration = Duration::from_millis(120);

/// What the shell keeps for voice: the listening in progress and the reading in progress.
#[derive(Default)]
pub struct VoiceState {
    next: AtomicU64,
    listening: Mutex<Option<(u64, CancellationToken)>>,
    reading: Mutex<Option<(u64, Arc<Reader>)>>,
    /// Bumped at every push-to-talk press and release (debounces releases).
    push_to_talk: AtomicU64,
}

impl VoiceState {
    fn id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether the microphone is being listened to.
    pub fn is_listening(&self) -> bool {
        self.listening.lock().expect("voice lock").is_some()
    }

    /// Stops listening (an utterance in progress is finished first); false when none ran.
    pub fn stop_listening(&self) -> bool {
        match self.listening.lock().expect("voice lock").as_ref() {
            Some((_, cancel)) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops reading aloud; false when nothing was being read.
    pub fn stop_reading(&self) -> bool {
        match self.reading.lock().expect("voice lock").take() {
            Some((_, reader)) => {
                reader.stop();
                true
            }
            None => false,
        }
    }
}

fn emit<E: Event + serde::Serialize + Clone>(app: &AppHandle, event: E) {
    if let Err(e) = event.emit(app) {
        tracing::debug!(error = %e, "the window did not get a voice event");
    }
}

/// Starts listening for the composer, unless it already listens. `hold`: until
/// [`VoiceState::stop_listening`] (push to talk); otherwise until the end of the first
/// utterance. Reading aloud stops first, so Baton does not hear itself.
pub fn listen(app: &AppHandle, hold: bool) -> Res<()> {
    let state = app.state::<AppState>();
    let rt = state.runtime()?;
    let voice = state.voice();
    let cancel = CancellationToken::new();
    let id = voice.id();
    {
        let mut listening = voice.listening.lock().expect("voice lock");
        if listening.is_some() {
            return Ok(());
        }
        *listening = Some((id, cancel.clone()));
    }
    voice.stop_reading();
    emit(app, VoiceInput::Starting { hold });
    let app = app.clone();
    let span = tracing::info_span!("listen", id, hold);
    let task = async move {
        let options = ListenOptions {
            utterances: if hold { 0 } else { 1 },
            partials: true,
            ..ListenOptions::default()
        };
        let on_event = |event: VoiceEvent| {
            let event = match event {
                VoiceEvent::Listening(device) => VoiceInput::Listening { device },
                VoiceEvent::Level(level) => VoiceInput::Level { level },
                VoiceEvent::SpeechStarted => VoiceInput::SpeechStarted,
                VoiceEvent::Partial(text) => VoiceInput::Partial { text },
                VoiceEvent::Final(t) => {
                    tracing::info!(chars = t.text.len(), "heard an utterance");
                    VoiceInput::Final { text: t.text }
                }
            };
            emit(&app, event);
        };
        let result = rt.listen(options, &on_event, cancel).await;
        let state = app.state::<AppState>();
        let voice = state.voice();
        {
            let mut listening = voice.listening.lock().expect("voice lock");
            if listening
                .as_ref()
                .is_some_and(|(current, _)| *current == id)
            {
                *listening = None;
            }
        }
        let error = result.err().map(|e| {
            tracing::warn!(error = %e, "listening failed");
            AppError::from(e)
        });
        emit(&app, VoiceInput::Ended { error });
    };
    tauri::async_runtime::spawn(tracing::Instrument::instrument(task, span));
    Ok(())
}

/// Opens the default audio output, for one reading: a new reading follows the output the
/// desktop uses now (headphones plugged in, a restarted sound server).
async fn open_output() -> Res<Arc<Player>> {
    let opened = tauri::async_runtime::spawn_blocking(Player::new)
        .await
        .map_err(|e| AppError::new("noDevice", format!("cannot open the audio output: {e}")))?;
    opened.map(Arc::new).map_err(|e| {
        AppError::new(
            "noDevice",
            format!("cannot play audio: {e}. Check that a sound server (PipeWire or PulseAudio) runs and an output device is connected."),
        )
    })
}

/// Starts reading aloud with the configured voice (Piper, or espeak-ng when it is
/// missing), cutting whatever was being read. Returns the reader: push text into it
/// (`message_id` `None`: an answer as it streams) and finish it.
pub async fn start_reading(app: &AppHandle, message_id: Option<f64>) -> Res<Arc<Reader>> {
    let state = app.state::<AppState>();
    let rt = state.runtime()?;
    let choice = rt.voice().await?;
    let player = open_output().await?;
    let voice = state.voice();
    voice.stop_reading();
    let id = voice.id();
    let errors = {
        let app = app.clone();
        move |e: baton_tts::TtsError| {
            tracing::warn!(error = %e, "a sentence was not read aloud");
            emit(
                &app,
                ReadAloud {
                    message_id,
                    playing: true,
                    voice: None,
                    error: Some(e.to_string()),
                },
            );
        }
    };
    let reader = Arc::new(Reader::start(choice.voice, player, errors));
    *voice.reading.lock().expect("voice lock") = Some((id, reader.clone()));
    emit(
        app,
        ReadAloud {
            message_id,
            playing: true,
            voice: Some(choice.notice),
            error: None,
        },
    );
    // Announce the end, unless another reading took over (it announces itself).
    let waiting = reader.clone();
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        waiting.wait();
        let state = app.state::<AppState>();
        let voice = state.voice();
        let mut reading = voice.reading.lock().expect("voice lock");
        let current = reading.as_ref().is_some_and(|(r, _)| *r == id);
        let stopped = waiting.is_stopped();
        if current {
            *reading = None;
        }
        if current || stopped {
            drop(reading);
            emit(
                &app,
                ReadAloud {
                    message_id,
                    playing: false,
                    voice: None,
                    error: None,
                },
            );
        }
    });
    Ok(reader)
}

/// Push to talk: a press starts listening (and shows the window), a release stops it.
/// X11 repeats keys while they are held; a release followed at once by a press is ignored.
/// Called on the hot-key thread: nothing here waits for the main thread (registering a
/// shortcut there waits for the hot-key thread), so showing the window is sent off.
pub fn push_to_talk(app: &AppHandle, pressed: bool) {
    tracing::debug!(pressed, "push to talk");
    let generation = app
        .state::<AppState>()
        .voice()
        .push_to_talk
        .fetch_add(1, Ordering::SeqCst)
        + 1;
    if pressed {
        if !app.state::<AppState>().voice().is_listening() {
            if let Err(e) = listen(app, true) {
                emit(app, VoiceInput::Ended { error: Some(e) });
            }
            let app = app.clone();
            tauri::async_runtime::spawn(async move { crate::shell::show(&app) });
        }
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(RELEASE_DEBOUNCE).await;
        let state = app.state::<AppState>();
        let voice = state.voice();
        if voice.push_to_talk.load(Ordering::SeqCst) == generation {
            voice.stop_listening();
        }
    });
}

/// Listens to the microphone for the composer: `hold` until `stop_listening`, else until
/// the end of the first utterance. Progress arrives as `VoiceInput` events.
#[tauri::command]
#[specta::specta]
pub fn start_listening(app: AppHandle, hold: bool) -> Res<()> {
    listen(&app, hold)
}

/// Stops listening; the utterance in progress is still transcribed. False when none ran.
#[tauri::command]
#[specta::specta]
pub fn stop_listening(state: State<'_, AppState>) -> bool {
    state.voice().stop_listening()
}

/// Reads `text` aloud (a message's "Read aloud"), cutting whatever was being read.
/// Progress arrives as `ReadAloud` events.
#[tauri::command]
#[specta::specta]
pub async fn read_aloud(app: AppHandle, text: String, message_id: Option<f64>) -> Res<()> {
    if text.trim().is_empty() {
        return Err(AppError::new("invalid", "there is no text to read aloud"));
    }
    let reader = start_reading(&app, message_id).await?;
    reader.push(&text);
    reader.finish();
    Ok(())
}

/// Stops reading aloud; false when nothing was being read.
#[tauri::command]
#[specta::specta]
pub fn stop_reading(state: State<'_, AppState>) -> bool {
    state.voice().stop_reading()
}
