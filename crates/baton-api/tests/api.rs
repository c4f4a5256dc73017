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
    // The engine forwards the request's sampling; the server honours it.
    let mut request = ChatRequest::new("local/tiny", vec![ChatMessage::user("hello there")]);
    request.params.max_tokens = 12;
    let response = engine
        .chat(request, &sink, CancellationToken::new())
        .await
        .unwrap();
    let pieces = pieces.into_inner().unwrap();
    assert!(pieces.len() > 3, "streamed in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), response.content);
    assert_eq!(
        response.usage.completion_tokens, 12,
        "max_tokens of the request, not the server's 24"
    );
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert!(response.usage.prompt_tokens > 0);

    // The orchestrator of another runtime uses it as a remote engine.
    let client =
        common::runtime_with_tiny_model_config(10, 512, "[secrets]\nstore = \"file\"\n").await;
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
    assert_eq!(
        outcome.response.usage.completion_tokens, 10,
        "the client runtime's max_tokens travels to the server"
    );
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

/// A server over a runtime with the tiny model (24 tokens per answer unless asked).
async fn tiny_server() -> (common::TestRuntime, baton_api::Server, String) {
    let t = common::runtime_with_tiny_model().await;
    let token = baton_api::new_token();
    let server = baton_api::serve(t.runtime.clone(), 0, token.clone())
        .await
        .unwrap();
    (t, server, token)
}

/// Posts a chat completion request with `extra` fields; returns the status and the JSON body.
async fn post(
    server: &baton_api::Server,
    token: &str,
    extra: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut body = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "tell me about ships"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    if body["stream"] == true && status == 200 {
        // The SSE chunks as a JSON array (`[DONE]` as the string "[DONE]").
        let chunks: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap_or_else(|_| serde_json::json!(d)))
            .collect();
        return (status, serde_json::json!(chunks));
    }
    (status, serde_json::from_str(&text).unwrap())
}

fn content(body: &serde_json::Value) -> String {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn max_tokens_is_honoured_and_reported_as_length() {
    let (_t, server, token) = tiny_server().await;
    let (status, body) = post(&server, &token, serde_json::json!({"max_tokens": 5})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let (_, body) = post(
        &server,
        &token,
        serde_json::json!({"max_tokens": 9, "max_completion_tokens": 3}),
    )
    .await;
    assert_eq!(
        body["usage"]["completion_tokens"], 3,
        "max_completion_tokens wins"
    );

    // Streamed: the usage chunk only when asked for, as OpenAI does.
    let (status, chunks) = post(
        &server,
        &token,
        serde_json::json!({"max_tokens": 4, "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    let chunks = chunks.as_array().unwrap();
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["model"] == "tiny"));

    let (_, chunks) = post(
        &server,
        &token,
        serde_json::json!({"max_tokens": 4, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let chunks = chunks.as_array().unwrap();
    let usage = &chunks[chunks.len() - 2];
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(
        chunks[chunks.len() - 3]["choices"][0]["finish_reason"],
        "length"
    );
    assert!(chunks[..chunks.len() - 2]
        .iter()
        .all(|c| c["usage"].is_null()));
    server.stop().await;
}

#[tokio::test]
async fn unsupported_and_out_of_range_parameters_get_a_400_that_names_them() {
    let (t, server, token) = tiny_server().await;
    for (extra, param, says) in [
        (
            serde_json::json!({"temperature": 3}),
            "temperature",
            "between 0 and 2",
        ),
        (
            serde_json::json!({"top_p": 0}),
            "top_p",
            "greater than 0 and at most 1",
        ),
        (
            serde_json::json!({"presence_penalty": -2.5}),
            "presence_penalty",
            "between -2 and 2",
        ),
        (
            serde_json::json!({"frequency_penalty": 9}),
            "frequency_penalty",
            "between -2 and 2",
        ),
        (serde_json::json!({"max_tokens": 0}), "max_tokens", "from 1"),
        (
            serde_json::json!({"stop": ["a", "b", "c", "d", "e"]}),
            "stop",
            "up to 4",
        ),
        (serde_json::json!({"n": 2}), "n", "one choice per request"),
        (
            serde_json::json!({"logprobs": true}),
            "logprobs",
            "log probabilities",
        ),
        (
            serde_json::json!({"top_logprobs": 2}),
            "top_logprobs",
            "log probabilities",
        ),
        (
            serde_json::json!({"tools": [{"type": "function", "function": {"name": "get_weather"}}]}),
            "tools",
            "no tool or function calling",
        ),
        (
            serde_json::json!({"tool_choice": "required"}),
            "tool_choice",
            "no tool",
        ),
        (
            serde_json::json!({"logit_bias": {"50256": -100}}),
            "logit_bias",
            "not supported",
        ),
        (
            serde_json::json!({"modalities": ["text", "audio"]}),
            "modalities",
            "text only",
        ),
        (
            serde_json::json!({"audio": {"voice": "alloy", "format": "mp3"}}),
            "audio",
            "not supported",
        ),
        (
            serde_json::json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format.json_schema.schema",
            "missing",
        ),
        (
            serde_json::json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            "messages[0].content[1]",
            "images are not supported",
        ),
        (
            serde_json::json!({"stream": true, "n": 3}),
            "n",
            "send 3 requests",
        ),
    ] {
        let (status, body) = post(&server, &token, extra.clone()).await;
        assert_eq!(status, 400, "{extra}: {body}");
        let error = &body["error"];
        assert_eq!(error["type"], "invalid_request_error", "{body}");
        assert_eq!(error["param"], param, "{extra}: {body}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(param) && message.contains(says),
            "{extra}: {message}"
        );
    }
    // None of them reached a model.
    let stats = t.runtime.store().stats().await.unwrap();
    assert!(stats.models.iter().all(|m| m.ok == 0), "{stats:?}");

    // Fields OpenAI clients send that change nothing are accepted.
    let (status, body) = post(
        &server,
        &token,
        serde_json::json!({"user": "u1", "n": 1, "logprobs": false, "tools": [], "tool_choice": "none",
                           "logit_bias": {}, "modalities": ["text"], "response_format": {"type": "text"},
                           "metadata": {"k": "v"}, "store": false, "parallel_tool_calls": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Streamed requests that fail before the answer starts get their HTTP status too.
    let (status, body) = post(
        &server,
        &token,
        serde_json::json!({"model": "nope", "stream": true}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "model_not_found", "{body}");
    server.stop().await;
}

#[tokio::test]
async fn stop_strings_end_the_answer_before_them() {
    let (_t, server, token) = tiny_server().await;
    let greedy = serde_json::json!({"temperature": 0, "max_tokens": 24});
    let (_, body) = post(&server, &token, greedy.clone()).await;
    let full = content(&body);
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() >= 12, "{full:?}");
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 3].iter().collect();
    let expected = &full[..full.find(&stop).unwrap()];

    let mut with_stop = greedy.clone();
    with_stop["stop"] = serde_json::json!(stop);
    let (status, body) = post(&server, &token, with_stop.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content(&body), expected, "stop {stop:?} in {full:?}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() < 24);

    // Streamed, in an array among other stop strings: the same text.
    with_stop["stop"] = serde_json::json!(["\u{1}never", stop]);
    with_stop["stream"] = serde_json::json!(true);
    let (_, chunks) = post(&server, &token, with_stop).await;
    let streamed: String = chunks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_seed_makes_sampling_repeatable() {
    let (_t, server, token) = tiny_server().await;
    let sample = |seed: u64| serde_json::json!({"temperature": 1, "seed": seed, "max_tokens": 12});
    let (_, a) = post(&server, &token, sample(7)).await;
    let (_, b) = post(&server, &token, sample(7)).await;
    assert_eq!(content(&a), content(&b), "same seed, same text");
    let mut others = std::collections::HashSet::new();
    for seed in [1, 2, 3] {
        others.insert(content(&post(&server, &token, sample(seed)).await.1));
    }
    others.insert(content(&a));
    assert!(
        others.len() > 1,
        "different seeds all gave the same text: {others:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn text_parts_are_one_message_and_response_formats_shape_the_answer() {
    let (_t, server, token) = tiny_server().await;
    let greedy = |messages: serde_json::Value| serde_json::json!({"temperature": 0, "max_tokens": 8, "messages": messages});
    let (_, plain) = post(
        &server,
        &token,
        greedy(serde_json::json!([{"role": "user", "content": "hello world"}])),
    )
    .await;
    let (status, parts) = post(
        &server,
        &token,
        greedy(serde_json::json!([{"role": "user", "content": [
            {"type": "text", "text": "hello "}, {"type": "text", "text": "world"}]}])),
    )
    .await;
    assert_eq!(status, 200, "{parts}");
    assert_eq!(content(&parts), content(&plain));
    assert_eq!(
        parts["usage"]["prompt_tokens"],
        plain["usage"]["prompt_tokens"]
    );

    // Response formats: the answer is sampled under a grammar made from them.
    let (status, body) = post(
        &server,
        &token,
        serde_json::json!({"max_tokens": 8, "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(content(&body).trim_start().starts_with('{'), "{body}");
    let schema = serde_json::json!({"type": "object", "properties": {"ok": {"type": "boolean"}},
                                    "required": ["ok"], "additionalProperties": false});
    let (status, body) = post(
        &server,
        &token,
        serde_json::json!({"max_tokens": 48, "response_format": {"type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": true}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&content(&body)).unwrap();
    assert!(value["ok"].is_boolean(), "{value}");
    server.stop().await;
}

/// The virtual environment `scripts/setup.sh` prepares (`BATON_VENV`).
fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var_os("BATON_VENV").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/baton-venv")
        },
        std::path::PathBuf::from,
    );
    venv.join("bin/python3")
}

#[tokio::test]
async fn the_official_openai_client_gets_what_it_asks_for() {
    let python = venv_python();
    let has_openai = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_openai {
        eprintln!(
            "SKIPPED: {} has no `openai` module; run scripts/setup.sh (make test does) to install it",
            python.display()
        );
        return;
    }
    let (t, server, token) = tiny_server().await;
    let embeddings = with_embedding_model(&t).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .env("BATON_API_BASE", server.base_url())
        .env("BATON_API_TOKEN", &token)
        .env("BATON_API_MODEL", "tiny")
        .env("BATON_API_EMBEDDINGS", if embeddings { "1" } else { "" })
        .kill_on_drop(true)
        .output();
    // Generous: some forty small requests on a busy machine.
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), run)
        .await
        .expect("the openai client script finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "openai_client.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("all openai client checks passed"),
        "{stdout}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_its_generation() {
    let t = common::runtime_with_tiny_model_and(24, 2048).await;
    let token = baton_api::new_token();
    let server = baton_api::serve(t.runtime.clone(), 0, token.clone())
        .await
        .unwrap();
    // Long enough that the disconnect always lands before the answer is complete.
    let body = serde_json::json!({"model": "tiny", "stream": true, "max_tokens": 1900,
                                  "messages": [{"role": "user", "content": "a long story"}]});
    let mut response = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.chunk().await.unwrap().is_some(),
        "the answer started"
    );
    drop(response);

    // The run is recorded once the generation stopped: cancelled, not completed.
    let started = std::time::Instant::now();
    let tiny = loop {
        let stats = t.runtime.store().stats().await.unwrap();
        if let Some(m) = stats
            .models
            .into_iter()
            .find(|m| m.key == "tiny" && m.runs > 0)
        {
            break m;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no run was recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((tiny.runs, tiny.ok, tiny.errors), (1, 0, 0), "{tiny:?}");
    server.stop().await;
}

/// Installs the embedding model from the test cache (`make test` fills it) into the test
/// runtime's models folder, as `baton models fetch` does with a copy already there. False
/// when the cache does not hold it.
async fn with_embedding_model(t: &common::TestRuntime) -> bool {
    let cache = std::path::PathBuf::from(std::env::var_os("HOME").unwrap())
        .join(".cache/baton/test-models");
    let files = [
        "all-MiniLM-L6-v2.int8.onnx",
        "all-MiniLM-L6-v2.tokenizer.json",
    ];
    if !files.iter().all(|f| cache.join(f).is_file()) {
        eprintln!(
            "SKIPPED embeddings: {} lacks the model; make test fetches it",
            cache.display()
        );
        return false;
    }
    let models = &t.runtime.paths().models_dir;
    std::fs::create_dir_all(models).unwrap();
    for f in files {
        std::fs::copy(cache.join(f), models.join(f)).unwrap();
    }
    t.runtime
        .fetch_model("all-minilm-l6-v2", &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    true
}

async fn embed(
    server: &baton_api::Server,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/embeddings", server.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_come_from_the_local_model_and_bad_input_gets_a_reason() {
    let (t, server, token) = tiny_server().await;
    // Before the model is installed: a 404 that says how to install it.
    let (status, body) = embed(&server, &token, serde_json::json!({"input": "hi"})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("baton models fetch all-minilm-l6-v2"));
    if !with_embedding_model(&t).await {
        return;
    }
    let (status, body) = embed(
        &server,
        &token,
        serde_json::json!({"model": "all-minilm-l6-v2", "input": ["the dentist appointment", "seeing the tooth doctor", "quarterly tax return"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let vectors: Vec<Vec<f64>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((dot(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-3);
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.2);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 9);
    // A text of a megabyte is cut at the model's 256 tokens, not refused.
    let long = "word ".repeat(200_000);
    let (status, body) = embed(&server, &token, serde_json::json!({"input": long})).await;
    assert_eq!(status, 200);
    assert_eq!(body["usage"]["prompt_tokens"], 256);
    for (bad, says) in [
        (serde_json::json!({"input": []}), "empty list"),
        (serde_json::json!({"input": [1, 2, 3]}), "token ids"),
        (serde_json::json!({"input": ""}), "empty text"),
        (serde_json::json!({"model": "all-minilm-l6-v2"}), "missing"),
        (
            serde_json::json!({"input": "x", "encoding_format": "int8"}),
            "float or base64",
        ),
        (serde_json::json!({"input": "x", "dimensions": 64}), "384"),
    ] {
        let (status, body) = embed(&server, &token, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{bad}: {body}"
        );
    }
    let (status, _) = embed(
        &server,
        &token,
        serde_json::json!({"model": "text-embedding-3-large", "input": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    server.stop().await;
}
