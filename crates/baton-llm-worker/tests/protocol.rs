//! The worker binary driven over its raw stdio protocol with a tiny generated model.

mod common;

use baton_core::{ChatMessage, FinishReason, SamplingParams};
use baton_llm::protocol::{ErrorKind, WorkerEvent, WorkerRequest};
use common::{models, RawWorker};

fn chat(id: &str, messages: Vec<ChatMessage>, max_tokens: u32) -> WorkerRequest {
    WorkerRequest::Chat {
        id: id.into(),
        messages,
        params: SamplingParams {
            temperature: 0.0,
            max_tokens,
            ..SamplingParams::default()
        },
        session: Some("s1".into()),
    }
}

fn done(events: &[WorkerEvent]) -> (&str, baton_llm::protocol::WorkerUsage, FinishReason) {
    match events.last() {
        Some(WorkerEvent::Done {
            text,
            usage,
            finish_reason,
            ..
        }) => (text, *usage, *finish_reason),
        other => panic!("expected done, got {other:?}"),
    }
}

fn loaded_ok(event: WorkerEvent) {
    assert!(
        matches!(event, WorkerEvent::Loaded { .. }),
        "load failed: {event:?}"
    );
}

#[test]
fn tokens_stream_and_text_matches() {
    let mut w = RawWorker::start(&[]);
    loaded_ok(w.load(&models().chat, 512, None));
    w.send(&chat("r1", vec![ChatMessage::user("hello world")], 24));
    let events = w.until_end("r1");
    let tokens: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Token { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(tokens.len() >= 2, "tokens streamed: {events:?}");
    let (text, usage, finish) = done(&events);
    assert_eq!(tokens.concat(), text);
    assert_eq!(usage.completion_tokens, 24);
    assert_eq!(finish, FinishReason::Length);
    assert!(usage.prompt_tokens > 0);
    assert_eq!(usage.cached_prompt_tokens, 0);

    // Greedy decoding is deterministic: the same prompt gives the same text, and now the
    // whole prompt but its last token comes from the cache.
    w.send(&chat("r2", vec![ChatMessage::user("hello world")], 24));
    let events = w.until_end("r2");
    let (text2, usage2, _) = done(&events);
    assert_eq!(text2, text);
    assert_eq!(usage2.cached_prompt_tokens, usage2.prompt_tokens - 1);
}

#[test]
fn second_turn_reuses_the_prompt_prefix() {
    let mut w = RawWorker::start(&[]);
    loaded_ok(w.load(&models().chat, 1024, None));
    let mut conversation = vec![
        ChatMessage::system("you are terse"),
        ChatMessage::user("what is the capital of france"),
    ];
    w.send(&chat("t1", conversation.clone(), 16));
    let (answer, first, _) = {
        let events = w.until_end("t1");
        let (a, u, f) = done(&events);
        (a.to_owned(), u, f)
    };
    assert_eq!(first.cached_prompt_tokens, 0);
    conversation.push(ChatMessage::assistant(answer));
    conversation.push(ChatMessage::user("and the answer"));
    w.send(&chat("t2", conversation, 16));
    let events = w.until_end("t2");
    let (_, second, _) = done(&events);
    assert!(
        second.cached_prompt_tokens >= first.prompt_tokens - 1,
        "second turn reused {} tokens, first prompt had {}",
        second.cached_prompt_tokens,
        first.prompt_tokens
    );
    assert!(second.cached_prompt_tokens < second.prompt_tokens);

    w.send(&WorkerRequest::Stats { id: "st".into() });
    match w.until_end("st").pop().unwrap() {
        WorkerEvent::Stats { stats, .. } => {
            assert_eq!(stats.requests, 2);
            assert!(stats.cached_prompt_tokens > 0 && stats.kv_tokens > 0);
            assert!(!stats.busy);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_stops_generation_midway() {
    let mut w = RawWorker::start(&[("BATON_LLM_WORKER_TEST_DELAY_MS", "5")]);
    loaded_ok(w.load(&models().chat, 2048, None));
    w.send(&chat(
        "long",
        vec![ChatMessage::user("tell me everything")],
        1500,
    ));
    // Wait for the first token, then cancel; a ping is answered mid-generation.
    loop {
        if let WorkerEvent::Token { .. } = w.next() {
            break;
        }
    }
    w.send(&WorkerRequest::Ping { id: "p".into() });
    w.send(&WorkerRequest::Cancel { id: "long".into() });
    let events = w.until_end("long");
    assert!(events
        .iter()
        .any(|e| matches!(e, WorkerEvent::Pong { id } if id == "p")));
    let (_, usage, finish) = done(&events);
    assert_eq!(finish, FinishReason::Cancelled);
    assert!(usage.completion_tokens < 1500, "{usage:?}");
    // The worker still serves.
    w.send(&chat("after", vec![ChatMessage::user("hi")], 4));
    let (_, usage, finish) = done(&w.until_end("after"));
    assert_eq!((usage.completion_tokens, finish), (4, FinishReason::Length));
}

#[test]
fn broken_model_files_give_clear_errors_and_no_crash() {
    let dir = &models().dir;
    let valid = std::fs::read(&models().chat).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zero.gguf", Vec::new(), "0 bytes"),
        (
            "page.gguf",
            b"<!DOCTYPE html><html>404</html>".to_vec(),
            "not a GGUF file",
        ),
        (
            "cut.gguf",
            valid[..valid.len() / 2].to_vec(),
            "truncated at byte",
        ),
        ("header.gguf", valid[..100].to_vec(), "truncated"),
        (
            "v9.gguf",
            {
                let mut v = valid.clone();
                v[4..8].copy_from_slice(&9u32.to_le_bytes());
                v
            },
            "version 9",
        ),
        (
            "huge.gguf",
            {
                let mut v = valid.clone();
                v[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
                v
            },
            "corrupt",
        ),
    ];
    let mut w = RawWorker::start(&[]);
    for (name, bytes, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        match w.load(&path, 256, None) {
            WorkerEvent::Error { kind, message, .. } => {
                assert_eq!(kind, ErrorKind::ModelLoad, "{name}");
                assert!(message.contains(expected), "{name}: {message}");
            }
            other => panic!("{name}: expected an error, got {other:?}"),
        }
        assert!(w.alive(), "worker died on {name}");
    }
    match w.load(&dir.join("does-not-exist.gguf"), 256, None) {
        WorkerEvent::Error { message, .. } => assert!(message.contains("cannot read"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Chat without a model is an error, not a crash.
    w.send(&chat("nomodel", vec![ChatMessage::user("hi")], 4));
    match w.until_end("nomodel").pop().unwrap() {
        WorkerEvent::Error { kind, .. } => assert_eq!(kind, ErrorKind::NoModel),
        other => panic!("{other:?}"),
    }
    // And a good model still loads afterwards.
    loaded_ok(w.load(&models().chat, 256, None));
}

#[test]
fn model_without_template_needs_an_override() {
    let mut w = RawWorker::start(&[]);
    match w.load(&models().no_template, 256, None) {
        WorkerEvent::Loaded { metadata, .. } => assert!(!metadata.has_chat_template),
        other => panic!("{other:?}"),
    }
    w.send(&chat("c", vec![ChatMessage::user("hi")], 4));
    match w.until_end("c").pop().unwrap() {
        WorkerEvent::Error { kind, message, .. } => {
            assert_eq!(kind, ErrorKind::NoChatTemplate);
            assert!(
                message.contains("has no chat template; pass --chat-template"),
                "{message}"
            );
            assert!(message.contains("tiny-base.gguf"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // With an override it works.
    match w.load(&models().no_template, 256, Some("chatml")) {
        WorkerEvent::Loaded { metadata, .. } => assert!(metadata.has_chat_template),
        other => panic!("{other:?}"),
    }
    w.send(&chat("c2", vec![ChatMessage::user("hi")], 4));
    let (_, usage, _) = done(&w.until_end("c2"));
    assert_eq!(usage.completion_tokens, 4);
}

#[test]
fn long_history_drops_oldest_turns_and_oversized_prompts_fail_clearly() {
    let mut w = RawWorker::start(&[]);
    loaded_ok(w.load(&models().chat, 256, None));
    let mut conversation = vec![ChatMessage::system("sys")];
    for i in 0..30 {
        conversation.push(ChatMessage::user(format!(
            "question number {i} about the world"
        )));
        conversation.push(ChatMessage::assistant(format!(
            "answer number {i} about the world"
        )));
    }
    conversation.push(ChatMessage::user("last question"));
    w.send(&chat("h", conversation, 32));
    let events = w.until_end("h");
    let notice = events.iter().find_map(|e| match e {
        WorkerEvent::Notice { message, .. } => Some(message.clone()),
        _ => None,
    });
    let notice = notice.expect("a notice about dropped turns");
    assert!(notice.contains("dropped the"), "{notice}");
    let (_, usage, _) = done(&events);
    assert!(usage.dropped_turns > 0);
    assert!(usage.prompt_tokens + 32 <= 256, "{usage:?}");
    assert_eq!(usage.completion_tokens, 32);

    let huge = "world ".repeat(400);
    w.send(&chat("big", vec![ChatMessage::user(huge)], 8));
    match w.until_end("big").pop().unwrap() {
        WorkerEvent::Error { kind, message, .. } => {
            assert_eq!(kind, ErrorKind::ContextOverflow);
            assert!(message.contains("context window"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_input_never_kills_the_worker() {
    let mut w = RawWorker::start(&[]);
    for line in [
        "not json\n",
        "{}\n",
        "{\"type\":\"chat\"}\n",
        "{\"type\":\"chat\",\"id\":\"x\",\"messages\":\"no\"}\n",
        "{\"type\":\"launch_missiles\",\"id\":\"m\"}\n",
        "\u{0}\u{1}\u{2}\n",
        "[1,2,3]\n",
    ] {
        w.send_raw(line);
        match w.next() {
            WorkerEvent::Error { kind, .. } => assert_eq!(kind, ErrorKind::BadRequest, "{line:?}"),
            other => panic!("{line:?}: {other:?}"),
        }
    }
    // The id of a malformed request is echoed when it can be read.
    w.send_raw("{\"type\":\"chat\",\"id\":\"known\",\"messages\":5}\n");
    match w.next() {
        WorkerEvent::Error { id, .. } => assert_eq!(id.as_deref(), Some("known")),
        other => panic!("{other:?}"),
    }
    // A version mismatch is reported.
    w.send(&WorkerRequest::Hello {
        protocol_version: 999,
    });
    match w.next() {
        WorkerEvent::Error { kind, .. } => assert_eq!(kind, ErrorKind::VersionMismatch),
        other => panic!("{other:?}"),
    }
    w.send(&WorkerRequest::Ping { id: "alive".into() });
    assert_eq!(w.next(), WorkerEvent::Pong { id: "alive".into() });
    // Shutdown exits cleanly.
    w.send(&WorkerRequest::Shutdown);
    let status = w.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
