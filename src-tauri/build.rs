//! Tauri's build step. The UI is built by `npm run build` in `../ui`; when it has not been
//! built yet, a placeholder page that says how to build it keeps `cargo build` working and
//! the window from ever being blank.

fn main() {
    let dist = std::path::Path::new("../ui/dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(dist).expect("create ui/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Baton</title></head>\
             <body style=\"font-family:sans-serif;padding:3em\"><h1>Baton's UI is not built</h1>\
             <p>Run <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>, then \
             rebuild the app.</p></body></html>",
        )
        .expect("write the placeholder page");
    }
    println!("cargo:rerun-if-changed=../ui/dist");
    let commands = &[
        "app_status",
        "list_sessions",
        "create_session",
        "rename_session",
        "delete_session",
        "session_messages",
        "send_message",
        "regenerate",
        "stop_generation",
        "rate_message",
        "get_stats",
        "list_engines",
        "add_engine",
        "test_engine",
        "remove_engine",
        "list_models",
        "add_model",
        "fetchable_models",
        "fetch_model",
        "cancel_fetch",
        "verify_model",
        "remove_model",
        "model_choice",
        "choose_model",
        "defer_model_choice",
        "eval_scores",
        "eval_runs",
        "start_eval",
        "cancel_eval",
        "get_preferences",
        "set_preferences",
        "copy_text",
        "take_pending_actions",
        "start_capture",
        "pending_capture",
        "show_selection",
        "cancel_capture",
        "finish_capture",
        "list_captures",
        "get_capture",
        "delete_capture",
        "start_listening",
        "stop_listening",
        "read_aloud",
        "stop_reading",
        "task_queue",
        "run_tasks",
        "task_detail",
        "task_templates",
        "start_template",
        "cancel_task",
        "retry_task",
        "approve_task",
        "reject_task",
        "move_task",
        "set_queue_paused",
        "task_schedules",
        "memory_status",
        "set_memory_settings",
        "backfill_memory",
        "cancel_backfill",
        "search_memory",
        "doc_roots",
        "root_documents",
        "add_documents",
        "reindex_documents",
        "remove_documents",
        "set_session_memory",
        "session_summary",
    ];
    // Every app command gets an `allow-…` permission; the window's capability grants them
    // through the `allow-app-commands` set (permissions/app.toml) and nothing else.
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri-build");
}
