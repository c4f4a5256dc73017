//! The local API as other programs see it, against a real runtime whose worker runs a tiny
//! generated model; and Baton's own remote engine driving it as a real OpenAI-compatible
//! server (no fake peer in between).

#[path = "../../baton-runtime/tests/common/mod.rs"]
mod common;

use baton_core::{CancellationToken, ChatEvent, ChatMessage, ChatRequest, Engine, FinishReason};
use baton_remote::{ApiKey, EndpointConfig, RemoteEngine};
use baton_runtime::{AddEngine, ChatTurn};
use std::sync::Mutex;

#[tokio::test]
async fn the_remote_engine_streams_from_a_real_baton_server() {
    let t = common::runtime_with_tiny_model().await;
    let token = baton_api::new_token();
    let server = baton_api::serve(t.runtime.clone(), 0, token.clone())
        .await
        .unwrap();

    let mut config = EndpointConfig::new("local", server.base_url());
    config.api_key = Some(ApiKey::new(token.clone()));
    let engine = RemoteEngine::new(config).unwrap();
    let models = engine.list_models().await.unwrap();
    assert_eq!(models, vec!["auto", "tiny"]);

    let pieces = Mutex::new(Vec::new());
    let sink = |e: ChatEvent| {
        if let ChatEvent::Token { text } = e {
            pieces.lock().unwrap().push(text);
        }
    };
    let request = ChatRequest::new("local/tiny", vec![ChatMessage::user("hello there")]);
    let response = engine
        .chat(request, &sink, CancellationToken::new())
        .await
        .unwrap();
    let pieces = pieces.into_inner().unwrap();
    assert!(pieces.len() > 3, "streamed in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), response.content);
    assert_eq!(
        response.usage.completion_tokens, 24,
        "max_tokens of the serving runtime"
    );
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert!(response.usage.prompt_tokens > 0);

    // The orchestrator of another runtime uses it as a remote engine.
    let client =
        common::runtime_with_tiny_model_config(24, 512, "[secrets]\nstore = \"file\"\n").await;
    client
        .runtime
        .add_engine(AddEngine {
            name: "other".into(),
            base_url: server.base_url(),
            api_key: None,
            models: vec!["tiny".into()],
            ..AddEngine::default()
        })
        .await
        .expect_err("the server wants its token");
    std::env::set_var("BATON_SECRETS_PASSPHRASE", "pw");
    let err = client
        .runtime
        .add_engine(AddEngine {
            name: "other".into(),
            base_url: server.base_url(),
            api_key: Some(token.clone()),
            models: vec!["nope".into()],
            ..AddEngine::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not list model `nope`") && err.contains("tiny"),
        "{err}"
    );
    client
        .runtime
        .add_engine(AddEngine {
            name: "other".into(),
            base_url: server.base_url(),
            api_key: Some(token.clone()),
            models: vec!["tiny".into()],
            ..AddEngine::default()
        })
        .await
        .unwrap();
    let session = client.runtime.new_session("through http").await.unwrap();
    let outcome = client
        .runtime
        .send(
            ChatTurn {
                session: session.id,
                text: "hello over http".into(),
                model: Some("other/tiny".into()),
            },
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.assistant.model.as_deref(), Some("other/tiny"));
    assert_eq!(outcome.response.usage.completion_tokens, 24);
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_openai_style_errors() {
    let t = common::runtime_with_tiny_model().await;
    let token = baton_api::new_token();
    let server = baton_api::serve(t.runtime.clone(), 0, token.clone())
        .await
        .unwrap();
    let url = format!("{}/chat/completions", server.base_url());
    let http = reqwest::Client::new();

    let r = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("bearer token"));

    let huge = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "x".repeat(100 << 20)}]});
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limited to 2 MB"),
        "{body}"
    );
    let big = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "x".repeat(3 << 19)}]});
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "1.5 MB passes the HTTP limit but not the 1 MiB message limit"
    );

    let r = http
        .post(&url)
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a chat completion request"));

    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(
            &serde_json::json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"model": "tiny", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Not streamed: one JSON body. No model: routed ("auto").
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["usage"]["completion_tokens"], 24);
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());

    // The server keeps serving, and the runs are recorded.
    let stats = t.runtime.store().stats().await.unwrap();
    assert!(stats.models.iter().any(|m| m.key == "tiny" && m.ok == 1));
    let session = t.runtime.new_session("still fine").await.unwrap();
    t.runtime
        .send(
            ChatTurn {
                session: session.id,
                text: "hi".into(),
                model: None,
            },
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    server.stop().await;
}
