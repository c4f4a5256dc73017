//! The real default model (SmolLM2-135M-Instruct) through the engine and worker.
//!
//! Slow and needs the fetched model, so it only runs with `BATON_REAL_MODELS=1`:
//!
//! ```text
//! baton models fetch --all
//! BATON_REAL_MODELS=1 cargo test -p baton-llm-worker --test real_model -- --nocapture
//! ```
//!
//! The model is looked up in `$BATON_MODELS_DIR`, else `$XDG_DATA_HOME/baton/models`, else
//! `~/.local/share/baton/models`.

mod common;
#[allow(dead_code)]
#[path = "../src/schema_gen.rs"]
mod schema_gen;

use baton_core::{CancellationToken, ChatMessage, ChatRequest, Engine, SessionId};
use baton_llm::{LocalLlmConfig, LocalLlmEngine, ModelSpec};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BATON_MODELS_DIR") {
        return dir.into();
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("baton/models")
}

fn enabled() -> bool {
    std::env::var("BATON_REAL_MODELS").as_deref() == Ok("1")
}

#[tokio::test]
async fn smollm2_knows_the_capital_of_france() {
    if !enabled() {
        eprintln!("skipped: set BATON_REAL_MODELS=1 (after `baton models fetch --all`) to run");
        return;
    }
    let path = models_dir().join(FILE);
    assert!(
        path.exists(),
        "{} is missing: run `baton models fetch --all`",
        path.display()
    );
    let mut map = HashMap::new();
    map.insert("smollm2".to_owned(), ModelSpec::new(&path, 2048));
    let n_threads = std::env::var("BATON_LLM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok());
    let engine = LocalLlmEngine::new(
        Arc::new(map),
        LocalLlmConfig {
            worker_path: Some(common::WORKER.into()),
            n_threads,
            // One slot: the "cold cache" turn below relies on the other request evicting
            // the session's prefix (with several slots it would go to another slot).
            n_parallel: 1,
            ..LocalLlmConfig::default()
        },
    );
    let load_start = Instant::now();
    let loaded = engine.load("smollm2").await.unwrap();
    eprintln!(
        "load: {} ms wall ({} ms in worker), {} params, n_ctx {}",
        load_start.elapsed().as_millis(),
        loaded.load_ms,
        loaded.parameters,
        loaded.n_ctx
    );

    let session = SessionId::new();
    let mut conversation = vec![ChatMessage::user("What is the capital of France?")];
    let mut request = ChatRequest::new("smollm2", conversation.clone());
    request.params.temperature = 0.0;
    request.params.max_tokens = 64;
    request.session = Some(session.clone());
    let first = engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    eprintln!(
        "turn 1: {:?} | ttft {:?} ms, total {} ms, {:?} tok/s, usage {:?}",
        first.content,
        first.first_token_ms,
        first.total_ms,
        first.tokens_per_second(),
        first.usage
    );
    assert!(first.content.contains("Paris"), "{:?}", first.content);

    conversation.push(ChatMessage::assistant(first.content.clone()));
    conversation.push(ChatMessage::user(
        "Write three sentences about the history of that city.",
    ));
    let mut request = ChatRequest::new("smollm2", conversation.clone());
    request.params.temperature = 0.0;
    request.params.max_tokens = 128;
    request.session = Some(session);
    let second = engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    eprintln!(
        "turn 2 (same session): ttft {:?} ms, total {} ms, {:?} tok/s, usage {:?}",
        second.first_token_ms,
        second.total_ms,
        second.tokens_per_second(),
        second.usage
    );
    assert!(second.usage.cached_prompt_tokens > 0);

    // The same second turn without the cache (another session's prompt evicts the prefix).
    let mut other = ChatRequest::new("smollm2", vec![ChatMessage::user("Hi")]);
    other.params.max_tokens = 1;
    engine
        .chat(other, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    let mut request = ChatRequest::new("smollm2", conversation);
    request.params.temperature = 0.0;
    request.params.max_tokens = 128;
    let cold = engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    eprintln!(
        "turn 2 (cold cache): ttft {:?} ms, total {} ms, usage {:?}",
        cold.first_token_ms, cold.total_ms, cold.usage
    );
    engine.shutdown().await;
}

#[test]
fn real_gguf_metadata_is_read_correctly() {
    if !enabled() {
        return;
    }
    let smol = baton_llm::inspect(models_dir().join(FILE)).unwrap();
    assert_eq!(smol.architecture.as_deref(), Some("llama"));
    assert_eq!(smol.quantization.as_deref(), Some("Q4_1"));
    assert_eq!(smol.context_length, Some(8192));
    assert_eq!(smol.block_count, Some(30));
    assert_eq!(smol.vocab_size, Some(49152));
    assert!(smol.has_chat_template);
    assert!(
        (130_000_000..140_000_000).contains(&smol.parameters),
        "{}",
        smol.parameters
    );
    assert_eq!(
        baton_llm::gguf::sha256_file(&smol.path).unwrap(),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    let gemma_path = models_dir().join("gemma-3-270m-q4_k_m.gguf");
    if gemma_path.exists() {
        let gemma = baton_llm::inspect(&gemma_path).unwrap();
        eprintln!(
            "gemma: {:?} {:?} ctx {:?} params {} template {}",
            gemma.architecture,
            gemma.quantization,
            gemma.context_length,
            gemma.parameters,
            gemma.has_chat_template
        );
        assert_eq!(gemma.architecture.as_deref(), Some("gemma3"));
        assert_eq!(gemma.quantization.as_deref(), Some("Q4_K_M"));
        assert!(!gemma.has_chat_template);
    }
}

#[tokio::test]
async fn gemma_base_model_needs_a_template_override() {
    if !enabled() {
        return;
    }
    let path = models_dir().join("gemma-3-270m-q4_k_m.gguf");
    if !path.exists() {
        eprintln!("skipped: gemma3-270m not fetched (baton models fetch gemma3-270m)");
        return;
    }
    let mut map = HashMap::new();
    map.insert("gemma".to_owned(), ModelSpec::new(&path, 1024));
    map.insert(
        "gemma-chatml".to_owned(),
        ModelSpec::new(&path, 1024).with_chat_template("chatml"),
    );
    let engine = LocalLlmEngine::new(
        Arc::new(map),
        LocalLlmConfig {
            worker_path: Some(common::WORKER.into()),
            ..LocalLlmConfig::default()
        },
    );
    let err = engine
        .chat(
            ChatRequest::new("gemma", vec![ChatMessage::user("Hello")]),
            &|_| {},
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no chat template"), "{err}");
    let mut request = ChatRequest::new("gemma-chatml", vec![ChatMessage::user("Hello")]);
    request.params.max_tokens = 8;
    let response = engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    eprintln!("gemma (chatml override): {:?}", response.content);
    assert!(response.usage.completion_tokens > 0);
    engine.shutdown().await;
}

/// Qwen2.5-Coder-0.5B-Instruct (`baton models fetch qwen2.5-coder-0.5b-instruct`) answers
/// requests constrained to random JSON schemas, four at a time, with JSON that validates.
/// `baton-llm-worker --schema-check MODEL --count 200` runs the same on a larger scale.
#[tokio::test]
async fn qwen_outputs_follow_random_json_schemas() {
    if !enabled() {
        return;
    }
    let path = models_dir().join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    if !path.exists() {
        eprintln!(
            "skipped: {} missing (baton models fetch qwen2.5-coder-0.5b-instruct)",
            path.display()
        );
        return;
    }
    let mut map = HashMap::new();
    map.insert("qwen".to_owned(), ModelSpec::new(&path, 4096));
    let engine = LocalLlmEngine::new(
        Arc::new(map),
        LocalLlmConfig {
            worker_path: Some(common::WORKER.into()),
            ..LocalLlmConfig::default()
        },
    );
    let started = Instant::now();
    let cases: Vec<serde_json::Value> = (0..12)
        .map(|i| schema_gen::random_schema(&mut schema_gen::Rng::new(500 + i)))
        .collect();
    let chats = cases.iter().map(|schema| {
        let mut request = ChatRequest::new(
            "qwen",
            vec![ChatMessage::user(format!(
                "Fill in this JSON schema with realistic example values:\n{schema}"
            ))],
        );
        request.params.temperature = 0.0;
        request.params.max_tokens = 512;
        request.params.format = Some(baton_core::OutputFormat::JsonSchema {
            name: "case".into(),
            schema: schema.clone(),
        });
        let engine = engine.clone();
        async move {
            engine
                .chat(request, &|_| {}, CancellationToken::new())
                .await
        }
    });
    let responses = futures_join_all(chats.collect()).await;
    for (schema, response) in cases.iter().zip(responses) {
        let response = response.unwrap();
        let value: serde_json::Value = serde_json::from_str(&response.content)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.content));
        schema_gen::validate(schema, &value)
            .unwrap_or_else(|why| panic!("{why}: {}\nschema: {schema}", response.content));
    }
    eprintln!(
        "12 schema-constrained answers valid in {:?}",
        started.elapsed()
    );
    engine.shutdown().await;
}

/// Await every future (spawned on the test's runtime so they run concurrently).
async fn futures_join_all<F, T>(futures: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}
