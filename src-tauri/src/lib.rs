//! Baton's desktop app: a thin Tauri 2 shell over `baton-runtime`.
//!
//! Commands ([`commands`]) translate between the web UI in `ui/` and the runtime; answers
//! stream through Tauri channels. The types the UI sees ([`dto`]) generate
//! `ui/src/bindings.ts` through `tauri-specta`, and a test fails when that file is stale.
//! The [`shell`] adds the tray menu, global shortcuts, single instance, close to tray and
//! remembered window geometry; [`voice`] listens for the composer and reads aloud.
//! [`engines`] manages remote engines (Settings → Engines), [`choice`] the chat model choice
//! (the first-start dialog and Settings → Models), [`eval`] evaluation runs and scores
//! (Statistics), [`memory`] memory (Settings → Memory, search over everything stored, a
//! session's memory switch and summary). No business logic lives here.
#![warn(missing_docs)]

pub mod capture;
pub mod choice;
pub mod commands;
pub mod dto;
pub mod engines;
pub mod eval;
pub mod memory;
pub mod shell;
pub mod state;
pub mod tasks;
pub mod voice;

use clap::Parser;
use shell::Action;
use state::AppState;
use std::path::PathBuf;
use tauri::Manager;

/// Command-line arguments of `baton-app`. A second launch forwards them to the running
/// instance, so `baton-app --action new-chat` works where global shortcuts do not.
#[derive(Debug, Clone, Parser)]
#[command(name = "baton-app", version, about = "Baton's desktop app")]
pub struct Args {
    /// A quick action for the running instance (or this one, when none runs).
    #[arg(long, value_enum)]
    pub action: Option<Action>,
    /// The data directory (database); also `BATON_DATA_DIR`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The config file; also `BATON_CONFIG`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start hidden (in the tray).
    #[arg(long)]
    pub hidden: bool,
}

/// The typed command and event list shared by the app and the bindings generator.
pub fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(tauri_specta::collect_commands![
            commands::app_status,
            commands::list_sessions,
            commands::create_session,
            commands::rename_session,
            commands::delete_session,
            commands::session_messages,
            commands::send_message,
            commands::regenerate,
            commands::stop_generation,
            commands::rate_message,
            commands::get_stats,
            commands::list_engines,
            engines::add_engine,
            engines::test_engine,
            engines::remove_engine,
            commands::list_models,
            commands::add_model,
            commands::fetchable_models,
            commands::fetch_model,
            commands::cancel_fetch,
            commands::verify_model,
            commands::remove_model,
            choice::model_choice,
            choice::choose_model,
            choice::defer_model_choice,
            eval::eval_scores,
            eval::eval_runs,
            eval::start_eval,
            eval::cancel_eval,
            commands::get_preferences,
            commands::set_preferences,
            commands::copy_text,
            commands::take_pending_actions,
            capture::start_capture,
            capture::pending_capture,
            capture::show_selection,
            capture::cancel_capture,
            capture::finish_capture,
            capture::list_captures,
            capture::get_capture,
            capture::delete_capture,
            voice::start_listening,
            voice::stop_listening,
            voice::read_aloud,
            voice::stop_reading,
            tasks::task_queue,
            tasks::run_tasks,
            tasks::task_detail,
            tasks::task_templates,
            tasks::start_template,
            tasks::cancel_task,
            tasks::retry_task,
            tasks::approve_task,
            tasks::reject_task,
            tasks::move_task,
            tasks::set_queue_paused,
            tasks::task_schedules,
            memory::memory_status,
            memory::set_memory_settings,
            memory::backfill_memory,
            memory::cancel_backfill,
            memory::search_memory,
            memory::doc_roots,
            memory::root_documents,
            memory::add_documents,
            memory::reindex_documents,
            memory::remove_documents,
            memory::set_session_memory,
            memory::session_summary,
        ])
        .events(tauri_specta::collect_events![
            dto::AppAction,
            dto::VoiceInput,
            dto::ReadAloud,
            tasks::TasksChanged
        ])
}

/// The TypeScript bindings for the UI, as `ui/src/bindings.ts` must contain them.
pub fn typescript_bindings() -> String {
    let ts = specta_typescript::Typescript::default()
        .header("// Generated from src-tauri by `cargo test -p baton-app` (BATON_UPDATE_BINDINGS=1). Do not edit.\n// @ts-nocheck\n");
    specta_builder()
        .export_str(ts)
        .expect("the command types export to TypeScript")
}

/// Opens the runtime (recording why when it fails) and runs the app until it quits.
pub fn run(args: Args) {
    let paths = baton_runtime::Paths::resolve(args.data_dir.as_deref(), args.config.as_deref());
    let started = std::time::Instant::now();
    let runtime = tauri::async_runtime::block_on(baton_runtime::Runtime::open(paths.clone()))
        .map_err(|e| dto::AppError::new("startup", e.to_string()));
    match &runtime {
        Ok(_) => tracing::info!(ms = started.elapsed().as_millis() as u64, "runtime open"),
        Err(e) => tracing::error!(error = %e.message, "the runtime did not open"),
    }
    // The app runs the task queue while it is open, under a fixed name: a restarted app
    // takes back at once the tasks it was running when it stopped.
    let worker_stop = baton_core::CancellationToken::new();
    let watched = runtime.as_ref().ok().cloned();
    if let Ok(rt) = &runtime {
        let rt = rt.clone();
        let stop = worker_stop.clone();
        tauri::async_runtime::spawn(async move {
            let mut options = baton_runtime::WorkerOptions::new(&rt);
            let host = options
                .id
                .split(':')
                .next()
                .unwrap_or("localhost")
                .to_owned();
            options.id = format!("app@{host}");
            if let Err(e) = rt.run_worker(options, stop).await {
                tracing::error!(error = %e, "the task worker stopped");
            }
        });
    }
    let worker_stop_watch = worker_stop.clone();
    let builder = specta_builder();
    let first_action = args.action;
    let hidden = args.hidden;

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            let action = Args::try_parse_from(argv)
                .ok()
                .and_then(|a| a.action)
                .unwrap_or(Action::Show);
            shell::perform(app, action);
        }))
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_global_shortcut::Builder::new().build())
        .manage(AppState::new(paths, runtime))
        .invoke_handler(builder.invoke_handler())
        .on_window_event(shell::on_window_event)
        .setup(move |app| {
            builder.mount_events(app);
            let handle = app.handle().clone();
            if let Some(rt) = watched.clone() {
                tasks::watch(handle.clone(), rt.clone(), worker_stop_watch.clone());
                // Here, not before the builder: a second instance (which only forwards its
                // action) never gets this far. New text is embedded as it is stored; added
                // folders are watched and re-read.
                app.state::<AppState>().set_memory(memory::start(&rt));
            }
            // A tray needs a session bus on Linux; without one, closing the window quits.
            let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
                || !cfg!(target_os = "linux");
            if bus {
                match shell::build_tray(&handle) {
                    Ok(()) => app.state::<AppState>().set_tray(true),
                    Err(e) => tracing::warn!(error = %e, "no tray icon"),
                }
            }
            let prefs = tauri::async_runtime::block_on(app.state::<AppState>().preferences())
                .unwrap_or_default();
            shell::apply_shortcuts(&handle, &prefs.shortcuts);
            if let Some(window) = app.get_webview_window(shell::MAIN) {
                tauri::async_runtime::block_on(shell::restore_geometry(&window));
                if !hidden {
                    window.show()?;
                    window.set_focus()?;
                }
            }
            if let Some(action) = first_action {
                shell::perform(&handle, action);
            }
            tracing::info!(ms = started.elapsed().as_millis() as u64, "window shown");
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("the Tauri app builds from tauri.conf.json");

    app.run(move |app, event| {
        if let tauri::RunEvent::Exit = event {
            worker_stop.cancel();
            let state = app.state::<AppState>();
            state.cancel_all();
            state.stop_memory();
            state.voice().stop_listening();
            state.voice().stop_reading();
            if let Ok(rt) = state.runtime() {
                tauri::async_runtime::block_on(rt.close());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UI's bindings are generated from these types; a stale file fails here.
    /// `BATON_UPDATE_BINDINGS=1 cargo test -p baton-app` rewrites it.
    #[test]
    fn ui_bindings_are_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
        let fresh = typescript_bindings();
        if std::env::var_os("BATON_UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == fresh,
            "ui/src/bindings.ts is stale: run `BATON_UPDATE_BINDINGS=1 cargo test -p baton-app`"
        );
    }

    #[test]
    fn actions_parse_from_a_forwarded_command_line() {
        let args = Args::try_parse_from(["baton-app", "--action", "new-chat"]).unwrap();
        assert_eq!(args.action, Some(Action::NewChat));
        let args = Args::try_parse_from(["baton-app", "--action", "ask-clipboard"]).unwrap();
        assert_eq!(args.action, Some(Action::AskClipboard));
        assert!(Args::try_parse_from(["baton-app", "--action", "dance"]).is_err());
    }

    #[test]
    fn preferences_default_when_fields_are_missing() {
        let p: dto::Preferences = serde_json::from_str(r#"{"theme":"dark"}"#).unwrap();
        assert_eq!(p.theme, dto::ThemeChoice::Dark);
        assert_eq!(p.shortcuts, dto::Shortcuts::default());
        assert_eq!(p.model, None);
    }

    #[test]
    fn api_keys_from_the_engine_form_are_not_in_debug_output() {
        let engine: dto::NewEngine = serde_json::from_str(
            r#"{"name":"lab","baseUrl":"http://h/v1","apiKey":"sk-secret","models":[],
                "inputUsdPerMtok":0.15,"outputUsdPerMtok":0.6}"#,
        )
        .unwrap();
        let text = format!("{engine:?}");
        assert!(!text.contains("sk-secret"), "{text}");
        assert!(
            text.contains("<redacted>") && text.contains("lab"),
            "{text}"
        );
    }

    /// The window's capability grants only what `permissions/app.toml` lists: every
    /// command the UI can call must be there (or in the selection window's set).
    #[test]
    fn every_command_is_granted() {
        let granted = include_str!("../permissions/app.toml");
        let build = include_str!("../build.rs");
        let bindings = typescript_bindings();
        let commands: Vec<&str> = bindings
            .split("TAURI_INVOKE(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(commands.len() > 30, "{commands:?}");
        for command in commands {
            let permission = format!("\"allow-{}\"", command.replace('_', "-"));
            assert!(
                granted.contains(&permission),
                "{command} is not granted in permissions/app.toml"
            );
            assert!(
                build.contains(&format!("\"{command}\"")),
                "{command} is not listed in build.rs"
            );
        }
    }

    #[test]
    fn generations_are_cancelled_per_session() {
        let state = AppState::new(
            baton_runtime::Paths::resolve(None, None),
            Err(dto::AppError::new("startup", "x")),
        );
        let token = state.begin("a").unwrap();
        assert!(state.begin("a").is_err(), "one generation per chat");
        assert!(!state.cancel("b"));
        assert!(state.cancel("a"));
        assert!(token.is_cancelled());
        state.finish("a");
        assert!(state.begin("a").is_ok());
    }
}
