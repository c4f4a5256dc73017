//! `baton_llm::LocalLlmEngine` (the supervisor) driving the real worker binary.
//!
//! These tests live in the worker crate because `CARGO_BIN_EXE_baton-llm-worker` is only
//! set for the worker package's own tests; the engine gets the path through
//! `LocalLlmConfig::worker_path`.

mod common;

use baton_core::{
    CancellationToken, ChatEvent, ChatMessage, ChatRequest, Engine, EngineError, FinishReason,
    SessionId,
};
use baton_llm::{LocalLlmConfig, LocalLlmEngine, ModelSpec};
use common::{models, WORKER};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn engine_with(extra: &[(&str, ModelSpec)], config: LocalLlmConfig) -> LocalLlmEngine {
    let mut map: HashMap<String, ModelSpec> = HashMap::new();
    map.insert("tiny".into(), ModelSpec::new(&models().chat, 1024));
    map.insert(
        "tiny-base".into(),
        ModelSpec::new(&models().no_template, 512),
    );
    for (name, spec) in extra {
        map.insert((*name).into(), spec.clone());
    }
    LocalLlmEngine::new(
        Arc::new(map),
        LocalLlmConfig {
            worker_path: Some(WORKER.into()),
            ..config
        },
    )
}

fn engine() -> LocalLlmEngine {
    engine_with(&[], LocalLlmConfig::default())
}

/// An engine whose workers sleep 5 ms per token, so generations can be interrupted.
fn slow_engine() -> LocalLlmEngine {
    engine_with(
        &[],
        LocalLlmConfig {
            worker_env: vec![("BATON_LLM_WORKER_TEST_DELAY_MS".into(), "5".into())],
            ..LocalLlmConfig::default()
        },
    )
}

fn request(model: &str, messages: Vec<ChatMessage>, max_tokens: u32) -> ChatRequest {
    let mut request = ChatRequest::new(model, messages);
    request.params.temperature = 0.0;
    request.params.max_tokens = max_tokens;
    request
}

#[derive(Default, Clone)]
struct Collected(Arc<Mutex<Vec<ChatEvent>>>);

impl Collected {
    fn sink(&self) -> impl Fn(ChatEvent) + Send + Sync + '_ {
        move |e| self.0.lock().unwrap().push(e)
    }
    fn tokens(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Token { text } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn streams_tokens_through_the_engine() {
    let engine = engine();
    let events = Collected::default();
    let response = engine
        .chat(
            request("tiny", vec![ChatMessage::user("hello")], 20),
            &events.sink(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.usage.completion_tokens, 20);
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(events.tokens().concat(), response.content);
    assert!(events.tokens().len() >= 2);
    assert!(matches!(
        events.0.lock().unwrap()[0],
        ChatEvent::Started { .. }
    ));
    assert!(response.first_token_ms.is_some());
    let loaded = engine.loaded().await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].info.n_ctx, 1024);
    let health = engine.health().await.unwrap();
    assert!(health.ready && health.detail.contains("tiny"), "{health:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn session_turns_report_cached_prompt_tokens() {
    let engine = engine();
    let session = SessionId::new();
    let mut conversation = vec![ChatMessage::user("what is the capital of france")];
    let mut first = request("tiny", conversation.clone(), 12);
    first.session = Some(session.clone());
    let sink = |_: ChatEvent| {};
    let r1 = engine
        .chat(first, &sink, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r1.usage.cached_prompt_tokens, 0);
    conversation.push(ChatMessage::assistant(r1.content.clone()));
    conversation.push(ChatMessage::user("and of germany"));
    let mut second = request("tiny", conversation, 12);
    second.session = Some(session);
    let r2 = engine
        .chat(second, &sink, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        r2.usage.cached_prompt_tokens >= r1.usage.prompt_tokens - 1,
        "{:?} then {:?}",
        r1.usage,
        r2.usage
    );
    let stats = engine.stats("tiny").await.unwrap();
    assert_eq!(stats.requests, 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn cancellation_token_stops_generation() {
    let engine = slow_engine();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let sink = move |e: ChatEvent| {
        if matches!(e, ChatEvent::Token { .. }) {
            trigger.cancel();
        }
    };
    let response = engine
        .chat(
            request("tiny", vec![ChatMessage::user("go on forever")], 900),
            &sink,
            cancel,
        )
        .await
        .unwrap();
    assert_eq!(response.finish_reason, FinishReason::Cancelled);
    assert!(
        response.usage.completion_tokens < 900,
        "{:?}",
        response.usage
    );
    // The same worker serves the next request.
    let pid = engine.loaded().await[0].pid;
    let next = engine
        .chat(
            request("tiny", vec![ChatMessage::user("hi")], 3),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(next.usage.completion_tokens, 3);
    assert_eq!(engine.loaded().await[0].pid, pid);
    engine.shutdown().await;
}

#[tokio::test]
async fn killed_worker_fails_only_its_request_and_restarts() {
    let engine = slow_engine();
    engine.load("tiny").await.unwrap();
    let pid = engine.loaded().await[0].pid;
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = killed.clone();
    let sink = move |e: ChatEvent| {
        if matches!(e, ChatEvent::Token { .. })
            && !flag.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let status = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    };
    let err = engine
        .chat(
            request("tiny", vec![ChatMessage::user("long story")], 900),
            &sink,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(killed.load(std::sync::atomic::Ordering::SeqCst));
    match &err {
        EngineError::Crashed { reason, .. } => {
            assert!(reason.contains("signal 9"), "{reason}")
        }
        other => panic!("expected Crashed, got {other:?}"),
    }
    assert!(err.is_retryable());
    // The next request gets a fresh worker.
    let response = engine
        .chat(
            request("tiny", vec![ChatMessage::user("again")], 4),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.usage.completion_tokens, 4);
    let new_pid = engine.loaded().await[0].pid;
    assert_ne!(new_pid, pid);
    engine.shutdown().await;
}

#[tokio::test]
async fn broken_models_and_missing_templates_are_clear_errors() {
    let dir = &models().dir;
    let truncated = dir.join("engine-truncated.gguf");
    let bytes = std::fs::read(&models().chat).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let engine = engine_with(
        &[("cut", ModelSpec::new(&truncated, 256))],
        LocalLlmConfig::default(),
    );
    let err = engine
        .chat(
            request("cut", vec![ChatMessage::user("hi")], 4),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ModelInvalid { .. }), "{err}");
    assert!(err.to_string().contains("truncated at byte"), "{err}");

    let err = engine
        .chat(
            request("tiny-base", vec![ChatMessage::user("hi")], 4),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("has no chat template; pass --chat-template"),
        "{err}"
    );
    // The engine keeps working.
    let ok = engine
        .chat(
            request("tiny", vec![ChatMessage::user("hi")], 2),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(ok.usage.completion_tokens, 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn memory_budget_evicts_the_least_recently_used_model() {
    let spec = |n: u64| ModelSpec {
        memory_bytes: Some(n),
        ..ModelSpec::new(&models().chat, 256)
    };
    let engine = engine_with(
        &[("a", spec(40)), ("b", spec(40)), ("c", spec(40))],
        LocalLlmConfig {
            memory_budget_bytes: Some(100),
            ..LocalLlmConfig::default()
        },
    );
    engine.load("a").await.unwrap();
    engine.load("b").await.unwrap();
    let names =
        |v: Vec<baton_llm::LoadedModelStatus>| v.into_iter().map(|m| m.name).collect::<Vec<_>>();
    assert_eq!(names(engine.loaded().await), ["a", "b"]);
    // Use `a` so that `b` is the least recently used.
    tokio::time::sleep(Duration::from_millis(20)).await;
    engine
        .chat(
            request("a", vec![ChatMessage::user("hi")], 1),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap();
    engine.load("c").await.unwrap();
    assert_eq!(names(engine.loaded().await), ["a", "c"]);

    let err = engine_with(
        &[("big", spec(1000))],
        LocalLlmConfig {
            memory_budget_bytes: Some(100),
            ..LocalLlmConfig::default()
        },
    )
    .load("big")
    .await
    .unwrap_err();
    assert!(err.to_string().contains("memory budget"), "{err}");
    engine.shutdown().await;
}

#[tokio::test]
async fn idle_models_are_unloaded_after_keep_alive_and_dead_workers_dropped() {
    let engine = engine_with(
        &[],
        LocalLlmConfig {
            keep_alive: Duration::from_secs(2),
            health_interval: Duration::from_secs(3600),
            ..LocalLlmConfig::default()
        },
    );
    engine.load("tiny").await.unwrap();
    assert_eq!(engine.evict_idle().await, 0);
    // The background task (period = keep-alive) unloads it.
    let started = std::time::Instant::now();
    while !engine.loaded().await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the idle model was not unloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    engine.shutdown().await;

    let engine = self::engine();
    engine.load("tiny").await.unwrap();
    let pid = engine.loaded().await[0].pid;
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    // The health check finds the dead worker once the kernel has ended it.
    let started = std::time::Instant::now();
    let dropped = loop {
        let dropped = engine.check_workers().await;
        if !dropped.is_empty() {
            break dropped;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the killed worker was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dropped, ["tiny"]);
    assert!(engine.loaded().await.is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn missing_worker_binary_is_a_clear_error() {
    let mut map = HashMap::new();
    map.insert("tiny".to_owned(), ModelSpec::new(&models().chat, 256));
    let engine = LocalLlmEngine::new(
        Arc::new(map),
        LocalLlmConfig {
            worker_path: Some("/nowhere/baton-llm-worker".into()),
            ..LocalLlmConfig::default()
        },
    );
    let err = engine.load("tiny").await.unwrap_err();
    assert!(
        err.to_string().contains("/nowhere/baton-llm-worker"),
        "{err}"
    );
    assert!(engine.health().await.is_err());
}

#[tokio::test]
async fn concurrent_chats_share_one_worker() {
    let engine = engine();
    let prompts = ["hello", "what is the capital of france", "water", "paris"];
    let sink = |_: ChatEvent| {};
    let chats = prompts.map(|p| {
        engine.chat(
            request("tiny", vec![ChatMessage::user(p)], 24),
            &sink,
            CancellationToken::new(),
        )
    });
    let [a, b, c, d] = chats;
    let (a, b, c, d) = tokio::join!(a, b, c, d);
    for response in [a, b, c, d] {
        let response = response.unwrap();
        assert_eq!(response.usage.completion_tokens, 24);
        assert_eq!(response.finish_reason, FinishReason::Length);
    }
    let loaded = engine.loaded().await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].info.n_parallel, baton_llm::DEFAULT_N_PARALLEL);
    let stats = engine.stats("tiny").await.unwrap();
    assert_eq!((stats.requests, stats.tokens_generated), (4, 96));
    engine.shutdown().await;
}

/// A request queued behind a long one waits longer than the token timeout without the
/// worker being taken for hung: the queue has its own limit.
#[tokio::test]
async fn queued_requests_wait_beyond_the_token_timeout() {
    let engine = engine_with(
        &[],
        LocalLlmConfig {
            n_parallel: 1,
            token_timeout: Duration::from_millis(1500),
            worker_env: vec![("BATON_LLM_WORKER_TEST_DELAY_MS".into(), "10".into())],
            ..LocalLlmConfig::default()
        },
    );
    engine.load("tiny").await.unwrap();
    let pid = engine.loaded().await[0].pid;
    let sink = |_: ChatEvent| {};
    let long = engine.chat(
        request("tiny", vec![ChatMessage::user("a long story")], 300),
        &sink,
        CancellationToken::new(),
    );
    let short = async {
        // Let the long one start first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        engine
            .chat(
                request("tiny", vec![ChatMessage::user("hi")], 4),
                &sink,
                CancellationToken::new(),
            )
            .await
    };
    let (long, short) = tokio::join!(long, short);
    let (long, short) = (long.unwrap(), short.unwrap());
    assert_eq!(long.usage.completion_tokens, 300);
    assert_eq!(short.usage.completion_tokens, 4);
    assert!(
        short.total_ms > 1500,
        "the short request did not wait: {short:?}"
    );
    assert_eq!(engine.loaded().await[0].pid, pid);
    engine.shutdown().await;
}
