//! The desktop around the window: tray menu, global shortcuts, quick actions, window
//! geometry and close-to-tray.

use crate::dto::{AppAction, Shortcuts};
use crate::state::{AppState, GEOMETRY_KEY};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, PhysicalPosition, PhysicalSize, WebviewWindow, WindowEvent};
use tauri_specta::Event;

/// The label of the chat window.
pub const MAIN: &str = "main";

/// The tray's "Pause task queue" item, relabelled when the queue is paused or resumed.
static PAUSE_ITEM: std::sync::OnceLock<MenuItem<tauri::Wry>> = std::sync::OnceLock::new();

/// A quick action named on the command line, in the tray menu or bound to a shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Show and focus the window.
    Show,
    /// Show or hide the window.
    Toggle,
    /// Start a new chat.
    NewChat,
    /// Start a new chat about the clipboard's text.
    AskClipboard,
    /// Focus the search box.
    Search,
    /// Capture the screen and read a region of it (OCR).
    OcrRegion,
    /// Listen to the microphone until the end of what is said, for the composer (again:
    /// stop listening).
    PushToTalk,
    /// Show the Tasks view.
    Tasks,
    /// Pause the task queue, or resume it.
    PauseQueue,
    /// Quit Baton.
    Quit,
}

fn main_window(app: &AppHandle) -> Option<WebviewWindow> {
    app.get_webview_window(MAIN)
}

/// Shows, unminimises and focuses the chat window.
pub fn show(app: &AppHandle) {
    if let Some(w) = main_window(app) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Sends `action` to the window, or keeps it until the window asks (first launch).
fn deliver(app: &AppHandle, action: AppAction) {
    show(app);
    let state = app.state::<AppState>();
    state.push_pending(action.clone());
    // The window takes pending actions when it starts; a running window also gets the
    // event and then takes (and drops) the duplicate from the queue.
    if let Err(e) = action.emit(app) {
        tracing::warn!(error = %e, "could not send an action to the window");
    }
}

/// Performs a quick action.
pub fn perform(app: &AppHandle, action: Action) {
    tracing::info!(?action, "quick action");
    match action {
        Action::Show => show(app),
        Action::Toggle => match main_window(app) {
            Some(w) if w.is_visible().unwrap_or(false) => {
                let _ = w.hide();
            }
            _ => show(app),
        },
        Action::NewChat => deliver(app, AppAction::NewChat),
        Action::Search => deliver(app, AppAction::Search),
        Action::AskClipboard => {
            use tauri_plugin_clipboard_manager::ClipboardExt;
            let text = app.clipboard().read_text().unwrap_or_default();
            deliver(app, AppAction::AskClipboard { text });
        }
        Action::OcrRegion => crate::capture::begin(app),
        Action::PushToTalk => {
            if !app.state::<AppState>().voice().stop_listening() {
                deliver(app, AppAction::Listen);
            }
        }
        Action::Tasks => deliver(app, AppAction::ShowTasks),
        Action::PauseQueue => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let state = app.state::<AppState>();
                let Ok(rt) = state.runtime() else { return };
                let paused = rt.queue().queue_paused().await.unwrap_or(false);
                if let Err(e) = rt.queue().set_queue_paused(!paused).await {
                    tracing::warn!(error = %e, "cannot pause or resume the queue");
                    return;
                }
                rt.wake_worker();
                if let Some(item) = PAUSE_ITEM.get() {
                    let _ = item.set_text(if paused {
                        "Pause task queue"
                    } else {
                        "Resume task queue"
                    });
                }
                deliver(&app, AppAction::ShowTasks);
            });
        }
        Action::Quit => app.exit(0),
    }
}

/// Builds the tray icon and its menu. Linux trays send no click events (and menus have no
/// key hold), so every action is a menu item, and "Push to talk" listens until the end of
/// what is said.
pub fn build_tray(app: &AppHandle) -> tauri::Result<()> {
    let items = [
        MenuItem::with_id(app, "new-chat", "New chat", true, None::<&str>)?,
        MenuItem::with_id(
            app,
            "ask-clipboard",
            "Ask about clipboard",
            true,
            None::<&str>,
        )?,
        MenuItem::with_id(app, "ocr-region", "OCR a screen region", true, None::<&str>)?,
        MenuItem::with_id(app, "push-to-talk", "Push to talk", true, None::<&str>)?,
        MenuItem::with_id(app, "tasks", "Tasks", true, None::<&str>)?,
        MenuItem::with_id(app, "pause-queue", "Pause task queue", true, None::<&str>)?,
    ];
    let _ = PAUSE_ITEM.set(items[5].clone());
    let toggle = MenuItem::with_id(app, "toggle", "Show/Hide Baton", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Baton", true, None::<&str>)?;
    let sep1 = PredefinedMenuItem::separator(app)?;
    let sep2 = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[
            &items[0], &items[1], &items[2], &items[3], &items[4], &items[5], &sep1, &toggle,
            &sep2, &quit,
        ],
    )?;
    let icon = tauri::image::Image::from_bytes(include_bytes!("../../icons/tray.png"))?;
    TrayIconBuilder::with_id("baton")
        .icon(icon)
        .tooltip("Baton")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            let action = match event.id().as_ref() {
                "new-chat" => Action::NewChat,
                "ask-clipboard" => Action::AskClipboard,
                "ocr-region" => Action::OcrRegion,
                "push-to-talk" => Action::PushToTalk,
                "tasks" => Action::Tasks,
                "pause-queue" => Action::PauseQueue,
                "toggle" => Action::Toggle,
                "quit" => Action::Quit,
                _ => return,
            };
            perform(app, action);
        })
        .build(app)?;
    Ok(())
}

/// Runs a shortcut's work elsewhere: handlers are called on the hot-key thread, and
/// (un)registering a shortcut on the main thread waits for that thread, so a handler that
/// waited for the main thread (showing the window does) could deadlock with a
/// preferences save.
fn off_the_hotkey_thread(app: &AppHandle, work: impl FnOnce(AppHandle) + Send + 'static) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move { work(app) });
}

/// (Re)registers the global shortcuts; failures are recorded for the settings page, which
/// also names the `baton-app --action` fallback.
pub fn apply_shortcuts(app: &AppHandle, shortcuts: &Shortcuts) {
    use tauri_plugin_global_shortcut::{GlobalShortcutExt, ShortcutState};
    let gs = app.global_shortcut();
    let _ = gs.unregister_all();
    let mut errors = Vec::new();
    for (accel, action, label) in [
        (&shortcuts.show_window, Action::Show, "Show window"),
        (&shortcuts.new_chat, Action::NewChat, "New chat"),
        (&shortcuts.ocr_region, Action::OcrRegion, "OCR a region"),
    ] {
        if accel.trim().is_empty() {
            continue;
        }
        let result = gs.on_shortcut(accel.as_str(), move |app, _shortcut, event| {
            if event.state == ShortcutState::Pressed {
                off_the_hotkey_thread(app, move |app| perform(&app, action));
            }
        });
        if let Err(e) = result {
            errors.push(format!("{label} ({accel}): {e}"));
        }
    }
    // Push to talk listens while the keys are held.
    let accel = &shortcuts.push_to_talk;
    if !accel.trim().is_empty() {
        let result = gs.on_shortcut(accel.as_str(), |app, _shortcut, event| {
            crate::voice::push_to_talk(app, event.state == ShortcutState::Pressed);
        });
        if let Err(e) = result {
            errors.push(format!("Push to talk ({accel}): {e}"));
        }
    }
    if !errors.is_empty() {
        tracing::warn!(?errors, "some global shortcuts are not available");
    }
    app.state::<AppState>().set_shortcut_errors(errors);
}

/// The window's size and position, remembered across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Geometry {
    x: i32,
    y: i32,
    width: u32,
    height: u32,
    maximized: bool,
}

/// Puts the window where it was last time (when that still fits a monitor).
pub async fn restore_geometry(window: &WebviewWindow) {
    let state = window.state::<AppState>();
    let Ok(rt) = state.runtime() else { return };
    let Ok(Some(value)) = rt.store().setting(GEOMETRY_KEY).await else {
        return;
    };
    let Ok(g) = serde_json::from_value::<Geometry>(value) else {
        return;
    };
    if g.width < 200 || g.height < 200 {
        return;
    }
    let _ = window.set_size(PhysicalSize::new(g.width, g.height));
    let on_screen = window
        .available_monitors()
        .unwrap_or_default()
        .iter()
        .any(|m| {
            let (p, s) = (m.position(), m.size());
            g.x >= p.x - 50
                && g.y >= p.y - 50
                && g.x < p.x + s.width as i32 - 100
                && g.y < p.y + s.height as i32 - 100
        });
    if on_screen {
        let _ = window.set_position(PhysicalPosition::new(g.x, g.y));
    }
    if g.maximized {
        let _ = window.maximize();
    }
}

static GEOMETRY_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Saves the geometry half a second after the last move or resize.
fn schedule_geometry_save(window: &WebviewWindow) {
    let generation = GEOMETRY_GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    let window = window.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if GEOMETRY_GENERATION.load(Ordering::SeqCst) == generation {
            save_geometry(&window).await;
        }
    });
}

async fn save_geometry(window: &WebviewWindow) {
    if window.is_minimized().unwrap_or(false) || !window.is_visible().unwrap_or(false) {
        return;
    }
    let maximized = window.is_maximized().unwrap_or(false);
    let (Ok(pos), Ok(size)) = (window.outer_position(), window.inner_size()) else {
        return;
    };
    let g = Geometry {
        x: pos.x,
        y: pos.y,
        width: size.width,
        height: size.height,
        maximized,
    };
    let state = window.state::<AppState>();
    if let Ok(rt) = state.runtime() {
        // Keep the normal size while maximised, so un-maximising after a restart works.
        let value = if maximized {
            match rt.store().setting(GEOMETRY_KEY).await {
                Ok(Some(old)) => serde_json::from_value::<Geometry>(old)
                    .map(|o| Geometry { maximized, ..o })
                    .unwrap_or(g),
                _ => g,
            }
        } else {
            g
        };
        if let Ok(json) = serde_json::to_value(value) {
            if let Err(e) = rt.store().set_setting(GEOMETRY_KEY, &json).await {
                tracing::warn!(error = %e, "could not save the window geometry");
            }
        }
    }
}

/// Window events: remember geometry; closing hides to the tray when there is one.
pub fn on_window_event(window: &tauri::Window, event: &WindowEvent) {
    if window.label() == crate::capture::SELECT {
        if let WindowEvent::Destroyed = event {
            crate::capture::selection_closed(window.app_handle());
        }
        return;
    }
    if window.label() != MAIN {
        return;
    }
    let Some(webview) = window.app_handle().get_webview_window(window.label()) else {
        return;
    };
    match event {
        WindowEvent::Moved(_) | WindowEvent::Resized(_) => schedule_geometry_save(&webview),
        WindowEvent::CloseRequested { api, .. } if window.state::<AppState>().tray() => {
            api.prevent_close();
            tauri::async_runtime::block_on(save_geometry(&webview));
            let _ = window.hide();
        }
        _ => {}
    }
}
