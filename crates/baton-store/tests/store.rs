//! Store behaviour against real SQLite files in temporary directories.

use baton_core::Role;
use baton_store::{ModelRun, NewMessage, RunStatus, Store, StoreError, DATABASE_FILE};
use std::path::Path;

fn digest(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

#[tokio::test]
async fn sessions_messages_and_search_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let session_id;
    {
        let store = Store::open_in(dir.path()).await.unwrap();
        let session = store.create_session("Trip planning").await.unwrap();
        session_id = session.id.clone();
        store
            .append_message(
                &session.id,
                NewMessage::new(Role::User, "Which museums open on Mondays in Lisbon?"),
            )
            .await
            .unwrap();
        let mut answer = NewMessage::new(Role::Assistant, "The Gulbenkian is closed on Tuesdays.");
        answer.model = Some("tiny".into());
        answer.completion_tokens = Some(9);
        store.append_message(&session.id, answer).await.unwrap();
        let other = store.create_session("Recipes").await.unwrap();
        store
            .append_message(
                &other.id,
                NewMessage::new(Role::User, "A soup with lentils"),
            )
            .await
            .unwrap();
        store.close().await;
    }
    let store = Store::open_in(dir.path()).await.unwrap();
    let sessions = store.list_sessions(10).await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].session.title, "Recipes", "most recent first");
    assert_eq!(sessions[1].message_count, 2);
    assert_eq!(sessions[1].session.model.as_deref(), Some("tiny"));

    let messages = store.messages(&session_id).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].completion_tokens, Some(9));

    // Porter stemming: "museum" finds "museums".
    let hits = store.search_messages("museum", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].session_id, session_id);
    assert!(hits[0].snippet.contains("[museums]"), "{}", hits[0].snippet);
    // Diacritics are folded and words are matched case-insensitively.
    assert_eq!(store.search_messages("LISBÓN", 10).await.unwrap().len(), 1);
    // FTS operators and punctuation in user input are taken literally, not as syntax.
    assert!(store
        .search_messages("NOT (\"", 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.search_messages("lent*", 10).await.unwrap().len(), 1);
    assert!(matches!(
        store.search_messages("  ", 10).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store.integrity_check().await.unwrap(),
        vec!["ok".to_string()]
    );
}

#[tokio::test]
async fn rename_delete_and_prefix_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let a = store.create_session("first").await.unwrap();
    store
        .append_message(&a.id, NewMessage::new(Role::User, "searchable words"))
        .await
        .unwrap();
    let found = store.find_session(&a.id.0[..30]).await.unwrap();
    assert_eq!(found.id, a.id);
    let found = store
        .find_session(&a.id.0[a.id.0.len() - 8..])
        .await
        .unwrap();
    assert_eq!(found.id, a.id, "lists show the last 8 characters");
    let renamed = store.rename_session(&a.id, "  renamed  ").await.unwrap();
    assert_eq!(renamed.title, "renamed");
    assert!(matches!(
        store.rename_session(&a.id, " ").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.find_session("zzz").await,
        Err(StoreError::SessionNotFound(_))
    ));
    // An id prefix shared by two sessions is ambiguous (v7 ids share their time prefix).
    let b = store.create_session("second").await.unwrap();
    let common: usize =
        a.id.0
            .chars()
            .zip(b.id.0.chars())
            .take_while(|(x, y)| x == y)
            .count();
    assert!(matches!(
        store.find_session(&a.id.0[..common.min(4)]).await,
        Err(StoreError::AmbiguousSession { .. })
    ));
    store.delete_session(&a.id).await.unwrap();
    assert!(store.messages(&a.id).await.unwrap().is_empty());
    assert!(
        store
            .search_messages("searchable", 10)
            .await
            .unwrap()
            .is_empty(),
        "FTS row removed with the message"
    );
    assert!(matches!(
        store.delete_session(&a.id).await,
        Err(StoreError::SessionNotFound(_))
    ));
    let err = store
        .append_message(&a.id, NewMessage::new(Role::User, "orphan"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SessionNotFound(_)), "{err}");
}

#[tokio::test]
async fn runs_and_settings_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let run = ModelRun {
        request_id: baton_core::RequestId::new(),
        session_id: None,
        model: "tiny".into(),
        engine: "local-llm".into(),
        task: "chat".into(),
        status: RunStatus::Ok,
        error: None,
        prompt_tokens: Some(12),
        cached_prompt_tokens: Some(4),
        completion_tokens: Some(20),
        first_token_ms: Some(15),
        total_ms: Some(120),
        cost_usd: None,
        mode: "single".into(),
        step: "answer".into(),
    };
    store.record_run(&run).await.unwrap();
    assert_eq!(store.run_count("tiny").await.unwrap(), 1);
    assert_eq!(store.setting("theme").await.unwrap(), None);
    store
        .set_setting("theme", &serde_json::json!("dark"))
        .await
        .unwrap();
    store
        .set_setting("theme", &serde_json::json!("light"))
        .await
        .unwrap();
    assert_eq!(
        store.setting("theme").await.unwrap(),
        Some(serde_json::json!("light"))
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE);
    std::fs::write(&path, b"these are my notes, not a database\n".repeat(100)).unwrap();
    let before = digest(&path);
    let err = Store::open_in(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("--data-dir"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert_eq!(digest(&path), before);
    assert!(!dir.path().join(format!("{DATABASE_FILE}-wal")).exists());
}

#[tokio::test]
async fn a_damaged_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_in(dir.path()).await.unwrap();
        let s = store.create_session("precious").await.unwrap();
        store
            .append_message(&s.id, NewMessage::new(Role::User, "keep me"))
            .await
            .unwrap();
        store.close().await;
    }
    let path = dir.path().join(DATABASE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    // Keep SQLite's 100-byte header, scribble over the schema page.
    for (i, b) in bytes.iter_mut().enumerate().take(4096).skip(100) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = Store::open_in(dir.path()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(digest(&path), bytes, "the damaged file is not rewritten");
}

#[tokio::test]
async fn an_unusable_data_dir_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    // A data directory below a regular file can never be created, even by root.
    let err = Store::open_in(&file.join("baton")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unwritable { .. }), "{err}");
    assert!(err.to_string().contains("BATON_DATA_DIR"));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[tokio::test]
async fn models_are_registered_updated_and_removed() {
    use baton_core::{ModelFormat, TaskKind};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let mut record = baton_store::ModelRecord {
        name: "tiny".into(),
        path: "/models/tiny.gguf".into(),
        format: ModelFormat::Gguf,
        tasks: vec![TaskKind::Chat],
        architecture: Some("llama".into()),
        parameters: Some(1000),
        context_length: Some(256),
        quantization: Some("F32".into()),
        has_chat_template: true,
        chat_template_override: None,
        file_size: 1234,
        sha256: "ab".repeat(32),
        source: Some("generated".into()),
        license: None,
        enabled: true,
        added_at: chrono::Utc::now(),
        verified_at: chrono::Utc::now(),
    };
    store.upsert_model(&record).await.unwrap();
    record.file_size = 999;
    record.source = None;
    store.upsert_model(&record).await.unwrap();
    let models = store.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].file_size, 999);
    assert_eq!(
        models[0].source.as_deref(),
        Some("generated"),
        "known source kept"
    );
    assert_eq!(models[0].tasks, vec![TaskKind::Chat]);
    assert!(store.model("tiny").await.unwrap().is_some());
    assert!(store.remove_model("tiny").await.unwrap());
    assert!(!store.remove_model("tiny").await.unwrap());
}

#[tokio::test]
async fn captures_are_stored_searchable_and_deletable() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let store = Store::open_in(dir.path()).await.unwrap();
        let capture = store
            .add_capture(&baton_store::NewCapture {
                source: "region".into(),
                width: 320,
                height: 80,
                image_path: Some("/tmp/x.png".into()),
                text: "Invoice total 1,234.56\nDue on Mondays".into(),
                words: serde_json::json!([{"text": "Invoice"}]),
                elements: serde_json::json!([]),
            })
            .await
            .unwrap();
        id = capture.id;
        store
            .add_capture(&baton_store::NewCapture {
                source: "screen".into(),
                width: 10,
                height: 10,
                image_path: None,
                text: "something else".into(),
                words: serde_json::json!([]),
                elements: serde_json::json!([]),
            })
            .await
            .unwrap();
        store.close().await;
    }
    let store = Store::open_in(dir.path()).await.unwrap();
    let list = store.list_captures(10).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].id, id, "newest first");
    let hits = store.search_captures("invoices", 10).await.unwrap();
    assert_eq!(hits.len(), 1, "stemmed search finds the capture");
    assert!(hits[0].excerpt.contains("[Invoice]"), "{}", hits[0].excerpt);
    let full = store.capture(id).await.unwrap();
    assert_eq!(full.words[0]["text"], "Invoice");
    assert_eq!((full.width, full.height), (320, 80));
    store.delete_capture(id).await.unwrap();
    assert!(store
        .search_captures("invoice", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.capture(id).await.is_err());
    assert!(store.search_captures("  ", 10).await.is_err());
}

#[tokio::test]
async fn stats_ratings_engines_and_decisions() {
    use baton_core::routing::{Domain, RoutingDecision};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let session = store.create_session("s").await.unwrap();
    let run = |model: &str, mode: &str, status: RunStatus, ms: i64| ModelRun {
        request_id: baton_core::RequestId::new(),
        session_id: Some(session.id.clone()),
        model: model.into(),
        engine: "e".into(),
        task: "chat".into(),
        status,
        error: None,
        prompt_tokens: Some(10),
        cached_prompt_tokens: Some(0),
        completion_tokens: Some(11),
        first_token_ms: Some(100),
        total_ms: Some(ms),
        cost_usd: Some(0.001),
        mode: mode.into(),
        step: "answer".into(),
    };
    for ms in [1100, 1200, 1300] {
        store
            .record_run(&run("a", "single", RunStatus::Ok, ms))
            .await
            .unwrap();
    }
    store
        .record_run(&run("a", "fanout", RunStatus::Error, 50))
        .await
        .unwrap();
    store
        .record_run(&run("b", "fanout", RunStatus::Cancelled, 50))
        .await
        .unwrap();
    let answer = store
        .append_message(
            &session.id,
            NewMessage {
                model: Some("a".into()),
                mode: Some("single".into()),
                ..NewMessage::new(Role::Assistant, "hi")
            },
        )
        .await
        .unwrap();
    let decision = RoutingDecision {
        model: "a".into(),
        domain: Domain::General,
        reasons: vec!["highest score".into()],
        ranked: vec![],
        fallbacks: vec![],
        canary_of: None,
    };
    let id = store
        .record_decision(
            &baton_core::RequestId::new(),
            Some(&session.id),
            "single",
            &decision,
        )
        .await
        .unwrap();
    store.link_decision(id, answer.id, "a").await.unwrap();
    assert_eq!(
        store.decision_reasons(answer.id).await.unwrap(),
        Some(vec!["highest score".to_owned()])
    );
    store.rate_message(answer.id, Some(1)).await.unwrap();
    assert!(store.rate_message(answer.id, Some(5)).await.is_err());
    let user = store
        .append_message(&session.id, NewMessage::new(Role::User, "q"))
        .await
        .unwrap();
    assert!(
        store.rate_message(user.id, Some(1)).await.is_err(),
        "only answers are rated"
    );
    assert_eq!(
        store.messages(&session.id).await.unwrap()[0].rating,
        Some(1)
    );

    let stats = store.stats().await.unwrap();
    let a = stats.models.iter().find(|m| m.key == "a").unwrap();
    assert_eq!((a.runs, a.ok, a.errors, a.thumbs_up), (4, 3, 1, 1));
    assert_eq!(a.success_rate, 0.75);
    assert_eq!(a.p50_ms, Some(1200.0));
    let mean = (10_000.0 / 1000.0 + 10_000.0 / 1100.0 + 10_000.0 / 1200.0) / 3.0;
    assert!((a.tokens_per_second.unwrap() - mean).abs() < 1e-9);
    let fanout = stats.modes.iter().find(|m| m.key == "fanout").unwrap();
    assert_eq!((fanout.runs, fanout.errors), (2, 1));
    assert_eq!(
        (stats.decisions, stats.routed_rated, stats.routed_up),
        (1, 1, 1)
    );
    let histories = store.model_histories(50).await.unwrap();
    assert_eq!(histories["a"].runs, 4);
    assert_eq!(histories["a"].rating, 1.0);
    assert!(
        !histories.contains_key("b"),
        "cancelled runs say nothing about quality"
    );

    let engine = baton_store::EngineRecord {
        name: "ollama".into(),
        base_url: "http://127.0.0.1:11434/v1".into(),
        models: vec!["llama3".into()],
        input_usd_per_mtok: 0.0,
        output_usd_per_mtok: 0.0,
        key_store: "none".into(),
        enabled: true,
        added_at: chrono::Utc::now(),
    };
    store.upsert_engine(&engine).await.unwrap();
    store.upsert_engine(&engine).await.unwrap();
    assert_eq!(store.engines().await.unwrap()[0].models, vec!["llama3"]);
    assert!(store.remove_engine("ollama").await.unwrap());
    assert!(!store.remove_engine("ollama").await.unwrap());
}

#[tokio::test]
async fn eval_results_summarise_per_domain_and_feed_routing() {
    use baton_store::EvalResult;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let result = |run_id, item: &str, domain: &str, model: &str, passed| EvalResult {
        run_id,
        set_name: "general".into(),
        item_id: item.into(),
        domain: domain.into(),
        model: model.into(),
        mode: "single".into(),
        answered_by: Some(model.into()),
        passed,
        detail: String::new(),
        answer: "Canberra".into(),
        error: None,
        latency_ms: 100,
        completion_tokens: Some(3),
        tokens_per_second: Some(20.0),
        cost_usd: None,
    };
    let first = store
        .create_eval_run(&["general".into()], &["a/single".into()], "2 cores")
        .await
        .unwrap();
    for (item, domain, passed) in [
        ("q1", "general", true),
        ("q2", "general", false),
        ("q3", "math", true),
    ] {
        store
            .add_eval_result(&result(first, item, domain, "a", passed))
            .await
            .unwrap();
    }
    store.finish_eval_run(first, "done").await.unwrap();
    // A later run re-measures q2: the latest result counts.
    let second = store
        .create_eval_run(&["general".into()], &["a/single".into()], "2 cores")
        .await
        .unwrap();
    store
        .add_eval_result(&result(second, "q2", "general", "a", true))
        .await
        .unwrap();
    store.finish_eval_run(second, "done").await.unwrap();

    let runs = store.eval_runs(10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!((runs[1].results, runs[1].status.as_str()), (3, "done"));
    assert_eq!(store.eval_results(first).await.unwrap().len(), 3);
    let scores = store.eval_scores().await.unwrap();
    let general = scores.iter().find(|s| s.domain == "general").unwrap();
    assert_eq!((general.passed, general.total), (2, 2));
    let all = scores.iter().find(|s| s.domain == "all").unwrap();
    assert_eq!((all.passed, all.total), (3, 3));
    let quality = store.domain_quality().await.unwrap();
    assert_eq!(quality[&("a".to_owned(), "math".to_owned())].total, 1);
    // Results go with their run.
    sqlx_delete_run(&store, first).await;
    assert_eq!(store.eval_runs(10).await.unwrap().len(), 1);
}

async fn sqlx_delete_run(store: &Store, id: i64) {
    store.delete_eval_run(id).await.unwrap();
    assert!(store.eval_results(id).await.unwrap().is_empty());
}
