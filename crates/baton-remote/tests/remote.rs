//! RemoteEngine against real HTTP on 127.0.0.1: a scripted peer injects the faults.

use baton_core::{
    CancellationToken, ChatEvent, ChatMessage, ChatRequest, Engine, EngineError, FinishReason,
};
use baton_remote::test_peer::{Behaviour, TestPeer};
use baton_remote::{ApiKey, EndpointConfig, RemoteEngine, Timeouts};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn pieces(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn engine(peer: &TestPeer) -> RemoteEngine {
    let mut config = EndpointConfig::new("peer", peer.base_url.clone());
    config.api_key = Some(ApiKey::new("sk-test-123"));
    config.input_usd_per_mtok = 1.0;
    config.output_usd_per_mtok = 2.0;
    config.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        // Short enough for the hang test, long enough for a peer on a busy machine.
        first_token: Duration::from_millis(1500),
        idle: Duration::from_millis(1500),
        health: Duration::from_secs(2),
    };
    config.max_retries = 2;
    RemoteEngine::new(config).unwrap()
}

async fn ask(engine: &RemoteEngine) -> (Result<baton_core::ChatResponse, EngineError>, String) {
    let seen = Mutex::new(String::new());
    let sink = |e: ChatEvent| {
        if let ChatEvent::Token { text } = e {
            seen.lock().unwrap().push_str(&text);
        }
    };
    let request = ChatRequest::new("peer/peer-model", vec![ChatMessage::user("hi")]);
    let result = engine.chat(request, &sink, CancellationToken::new()).await;
    let text = seen.lock().unwrap().clone();
    (result, text)
}

#[tokio::test]
async fn streams_tokens_with_usage_cost_and_the_key() {
    let peer = TestPeer::start(Behaviour::Stream(pieces(&[
        "The capital",
        " is",
        " Paris.",
    ])))
    .await;
    let engine = engine(&peer);
    let (result, streamed) = ask(&engine).await;
    let response = result.unwrap();
    assert_eq!(response.content, "The capital is Paris.");
    assert_eq!(streamed, response.content);
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage.prompt_tokens, 11);
    assert_eq!(response.usage.completion_tokens, 3);
    let cost = response.cost_usd.unwrap();
    assert!((cost - (11.0 + 6.0) / 1e6).abs() < 1e-12, "{cost}");
    let got = peer.received();
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer sk-test-123"));
    assert!(got[0].line.starts_with("POST /v1/chat/completions"));
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["model"], "peer-model");
    assert_eq!(body["stream"], true);
    let health = engine.health().await.unwrap();
    assert!(health.ready && health.detail.contains("peer-model"));
}

#[tokio::test]
async fn retries_server_errors_then_answers() {
    let peer = TestPeer::start(Behaviour::Stream(pieces(&["ok"]))).await;
    let boom = Behaviour::Status(500, vec![], r#"{"error":{"message":"boom"}}"#.into());
    peer.push([boom.clone(), boom]);
    let (result, _) = ask(&engine(&peer)).await;
    assert_eq!(result.unwrap().content, "ok");
    assert_eq!(peer.received().len(), 3);
}

#[tokio::test]
async fn gives_up_after_the_retries_with_the_servers_message() {
    let peer = TestPeer::start(Behaviour::Status(
        503,
        vec![],
        r#"{"error":{"message":"overloaded"}}"#.into(),
    ))
    .await;
    let (result, _) = ask(&engine(&peer)).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("HTTP 503: overloaded"), "{err}");
    assert_eq!(peer.received().len(), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn does_not_retry_a_refused_key_and_says_what_to_do() {
    let peer = TestPeer::start(Behaviour::Status(
        401,
        vec![],
        r#"{"error":{"message":"bad key"}}"#.into(),
    ))
    .await;
    let (result, _) = ask(&engine(&peer)).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("refused the API key") && err.contains("baton engines add peer"),
        "{err}"
    );
    assert!(
        !err.contains("sk-test-123"),
        "the key leaked into an error: {err}"
    );
    assert_eq!(peer.received().len(), 1);
    peer.set_default(Behaviour::Status(404, vec![], "no such model".into()));
    let err = ask(&engine(&peer)).await.0.unwrap_err();
    assert!(matches!(err, EngineError::ModelUnavailable { .. }), "{err}");
}

#[tokio::test]
async fn waits_as_long_as_the_rate_limit_asks() {
    let peer = TestPeer::start(Behaviour::Stream(pieces(&["ok"]))).await;
    peer.push([Behaviour::Status(
        429,
        vec![("retry-after".into(), "1".into())],
        "{}".into(),
    )]);
    let started = Instant::now();
    let (result, _) = ask(&engine(&peer)).await;
    assert_eq!(result.unwrap().content, "ok");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A wait beyond the cap is reported at once instead of blocking the user.
    peer.push([Behaviour::Status(
        429,
        vec![("retry-after".into(), "3600".into())],
        "{}".into(),
    )]);
    let started = Instant::now();
    let err = ask(&engine(&peer)).await.0.unwrap_err().to_string();
    assert!(
        err.contains("rate limited") && err.contains("retry in 3600 s"),
        "{err}"
    );
    // Not the hour the engine asked for (a generous bound for a busy machine).
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_hanging_engine_times_out() {
    let peer = TestPeer::start(Behaviour::Hang).await;
    let started = Instant::now();
    let (result, _) = ask(&engine(&peer)).await;
    assert!(
        matches!(result, Err(EngineError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(peer.received().len(), 3);
    // Three attempts with their first-token timeouts, not a hang.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_stream_dropped_mid_answer_is_an_error_and_not_replayed() {
    let peer = TestPeer::start(Behaviour::Drop(pieces(&["half", " an"]))).await;
    let (result, streamed) = ask(&engine(&peer)).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("dropped mid-answer"), "{err}");
    assert_eq!(streamed, "half an");
    assert_eq!(
        peer.received().len(),
        1,
        "tokens reached the user: no silent retry"
    );

    // Dropped before any token: retried.
    peer.push([Behaviour::Drop(vec![])]);
    peer.set_default(Behaviour::Stream(pieces(&["whole"])));
    assert_eq!(ask(&engine(&peer)).await.0.unwrap().content, "whole");
}

#[tokio::test]
async fn cancellation_keeps_the_partial_answer() {
    let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    let peer = TestPeer::start(Behaviour::Slow(words, Duration::from_millis(40))).await;
    let engine = engine(&peer);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let sink = move |e: ChatEvent| {
        if matches!(e, ChatEvent::Token { .. }) {
            trigger.cancel();
        }
    };
    let request = ChatRequest::new("peer/peer-model", vec![ChatMessage::user("hi")]);
    let response = engine.chat(request, &sink, cancel).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::Cancelled);
    assert_eq!(response.content, "w0 ");
}

#[tokio::test]
async fn a_server_that_is_not_running_is_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let mut config = EndpointConfig::new("gone", url);
    config.max_retries = 0;
    let engine = RemoteEngine::new(config).unwrap();
    let request = ChatRequest::new("gone/x", vec![ChatMessage::user("hi")]);
    let err = engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("could not connect") && err.contains("baton engines test gone"),
        "{err}"
    );
}

#[tokio::test]
async fn the_requests_sampling_reaches_the_endpoint() {
    let peer = TestPeer::start(Behaviour::Stream(pieces(&["{}"]))).await;
    let engine = engine(&peer);
    let mut request = ChatRequest::new("peer/peer-model", vec![ChatMessage::user("hi")]);
    request.params = baton_core::SamplingParams {
        temperature: 0.0,
        top_p: 0.9,
        max_tokens: 5,
        stop: vec!["\n\n".into(), "END".into()],
        seed: Some(7),
        presence_penalty: 1.0,
        frequency_penalty: 0.5,
        format: Some(baton_core::OutputFormat::JsonSchema {
            name: "point".into(),
            schema: serde_json::json!({"type": "object", "required": ["x"]}),
        }),
        ..baton_core::SamplingParams::default()
    };
    engine
        .chat(request.clone(), &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&peer.received()[0].body).unwrap();
    assert_eq!(body["max_tokens"], 5);
    assert_eq!(body["temperature"], 0.0);
    assert!(
        (body["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6,
        "{body}"
    );
    assert_eq!(body["stop"], serde_json::json!(["\n\n", "END"]));
    assert_eq!(body["seed"], 7);
    assert_eq!(body["presence_penalty"], 1.0);
    assert_eq!(body["frequency_penalty"], 0.5);
    assert_eq!(
        body["response_format"],
        serde_json::json!({"type": "json_schema", "json_schema": {
            "name": "point", "schema": {"type": "object", "required": ["x"]}, "strict": true}})
    );
    assert_eq!(body["stream_options"]["include_usage"], true);

    // A grammar has no OpenAI form: the request goes without it.
    request.params.format = Some(baton_core::OutputFormat::Grammar {
        grammar: "root ::= \"{}\"".into(),
    });
    engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&peer.received()[1].body).unwrap();
    assert!(body.get("response_format").is_none(), "{body}");
    assert_eq!(body["max_tokens"], 5);
}
