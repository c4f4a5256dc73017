//! Chat turns through the runtime with a real worker process and a tiny generated model.

mod common;

use baton_core::{CancellationToken, ChatEvent, FinishReason, Role};
use baton_runtime::{AddModel, ChatTurn, RuntimeError};
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_streams_tokens_stores_both_messages_and_reuses_the_prefix() {
    let t = common::runtime_with_tiny_model().await;
    let rt = &t.runtime;
    let session = rt.new_session("tiny chat").await.unwrap();
    let streamed = Arc::new(Mutex::new(String::new()));
    let sink = {
        let streamed = streamed.clone();
        move |e: ChatEvent| {
            if let ChatEvent::Token { text } = e {
                streamed.lock().unwrap().push_str(&text);
            }
        }
    };
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "hello there".into(),
        model: None,
    };
    let first = rt
        .send(turn, &sink, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        *streamed.lock().unwrap(),
        first.response.content,
        "streamed text is the answer"
    );
    assert!(first.response.usage.completion_tokens > 0);
    assert_eq!(first.assistant.model.as_deref(), Some("tiny"));

    let turn = ChatTurn {
        session: session.id.clone(),
        text: "and again".into(),
        model: None,
    };
    let second = rt
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        second.response.usage.cached_prompt_tokens > 0,
        "the second turn reuses the evaluated prefix: {:?}",
        second.response.usage
    );

    let messages = rt.store().messages(&session.id).await.unwrap();
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::User, Role::Assistant]
    );
    assert!(messages[1].completion_tokens.unwrap() > 0 && messages[1].latency_ms.is_some());
    assert_eq!(rt.store().run_count("tiny").await.unwrap(), 2);
    t.runtime.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_keeps_the_partial_answer() {
    // Long enough that the cancel always lands before the answer is complete.
    let t = common::runtime_with_tiny_model_and(1800, 2048).await;
    let rt = &t.runtime;
    let session = rt.new_session("cancel").await.unwrap();
    let cancel = CancellationToken::new();
    let sink = {
        let cancel = cancel.clone();
        move |e: ChatEvent| {
            if matches!(e, ChatEvent::Token { .. }) {
                cancel.cancel();
            }
        }
    };
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "tell me a long story".into(),
        model: None,
    };
    let outcome = rt.send(turn, &sink, cancel).await.unwrap();
    assert_eq!(outcome.response.finish_reason, FinishReason::Cancelled);
    assert!(outcome.response.usage.completion_tokens < 1800);
    assert_eq!(rt.store().messages(&session.id).await.unwrap().len(), 2);
    t.runtime.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_models_and_bad_input_get_clear_errors_and_lose_nothing() {
    let t = common::runtime_with_tiny_model().await;
    let rt = &t.runtime;
    let session = rt.new_session("errors").await.unwrap();

    // Unknown model: the user's message is kept, the error names the command to run.
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "hi".into(),
        model: Some("nope".into()),
    };
    let err = rt
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("baton models list"), "{err}");
    assert_eq!(rt.store().messages(&session.id).await.unwrap().len(), 1);

    // A 2 MiB message is refused before it is stored.
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "x".repeat(2 << 20),
        model: None,
    };
    let err = rt
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit is 1 MiB"), "{err}");
    assert_eq!(rt.store().messages(&session.id).await.unwrap().len(), 1);

    // Broken model files are refused by `add_model` with what is wrong.
    let dir = t.dir.path();
    let good = std::fs::read(common::tiny_model(dir, &[])).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.gguf", vec![], "empty"),
        (
            "notes.gguf",
            b"just some text, not a model".to_vec(),
            "GGUF",
        ),
        (
            "truncated.gguf",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = rt.add_model(&path, AddModel::default()).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Model(_)), "{err}");
        assert!(
            err.to_string()
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            "{name}: {err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file is left as it was"
        );
    }
    assert_eq!(
        rt.models().await.unwrap().len(),
        1,
        "only the good model is registered"
    );

    // A model file changed after registration fails verification.
    let v = rt.verify_model("tiny").await.unwrap();
    assert!(v.ok, "{}", v.detail);
    let path = rt.model("tiny").await.unwrap().path;
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let v = rt.verify_model("tiny").await.unwrap();
    assert!(!v.ok && v.detail.contains("changed"), "{}", v.detail);
    t.runtime.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_a_template_needs_one() {
    let t = common::runtime_with_tiny_model().await;
    let rt = &t.runtime;
    let base = common::tiny_model(t.dir.path(), &["--no-chat-template"]);
    rt.add_model(
        &base,
        AddModel {
            name: Some("base".into()),
            ..AddModel::default()
        },
    )
    .await
    .unwrap();
    let session = rt.new_session("base").await.unwrap();
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "hi".into(),
        model: Some("base".into()),
    };
    let err = rt
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("chat template"), "{err}");
    rt.add_model(
        &base,
        AddModel {
            name: Some("base".into()),
            chat_template: Some("chatml".into()),
            ..AddModel::default()
        },
    )
    .await
    .unwrap();
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "hi".into(),
        model: Some("base".into()),
    };
    let outcome = rt
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.response.usage.completion_tokens > 0);
    t.runtime.close().await;
}
