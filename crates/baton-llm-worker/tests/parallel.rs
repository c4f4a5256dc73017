//! Several chat requests served at once by one worker (continuous batching), through the
//! raw protocol with the tiny generated model.

mod common;

use baton_core::{ChatMessage, FinishReason, SamplingParams};
use baton_llm::protocol::{WorkerEvent, WorkerRequest, WorkerStats, WorkerUsage};
use common::{models, RawWorker};
use std::collections::HashMap;

fn chat(id: &str, messages: Vec<ChatMessage>, max_tokens: u32, session: &str) -> WorkerRequest {
    WorkerRequest::Chat {
        id: id.into(),
        messages,
        params: SamplingParams {
            temperature: 0.0,
            max_tokens,
            ..SamplingParams::default()
        },
        session: Some(session.into()),
    }
}

fn done(events: &[WorkerEvent]) -> (String, WorkerUsage, FinishReason) {
    match events.last() {
        Some(WorkerEvent::Done {
            text,
            usage,
            finish_reason,
            ..
        }) => (text.clone(), *usage, *finish_reason),
        other => panic!("expected done, got {other:?}"),
    }
}

fn started(env: &[(&str, &str)], n_ctx: u32, n_parallel: u32) -> RawWorker {
    let mut w = RawWorker::start(env);
    match w.load_parallel(&models().chat, n_ctx, None, n_parallel) {
        WorkerEvent::Loaded { metadata, .. } => {
            assert_eq!(metadata.n_parallel, n_parallel.max(1));
            assert_eq!(metadata.n_ctx, n_ctx);
        }
        other => panic!("load failed: {other:?}"),
    }
    w
}

/// The worker's counters; other events read meanwhile go to `skipped`.
fn stats_keeping(w: &mut RawWorker, skipped: &mut Vec<WorkerEvent>) -> WorkerStats {
    w.send(&WorkerRequest::Stats { id: "stats".into() });
    loop {
        match w.next() {
            WorkerEvent::Stats { id, stats } if id == "stats" => return stats,
            other => skipped.push(other),
        }
    }
}

fn stats(w: &mut RawWorker) -> WorkerStats {
    stats_keeping(w, &mut Vec::new())
}

const PROMPTS: [&str; 4] = [
    "what is the capital of france",
    "hello world",
    "tell me about the water",
    "how many people live in paris",
];

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}")).collect()
}

/// Each prompt alone, one after another, in a one-slot worker.
fn solo_outputs(max_tokens: u32) -> Vec<(String, WorkerUsage)> {
    let mut w = started(&[], 2048, 1);
    PROMPTS
        .iter()
        .enumerate()
        .map(|(i, prompt)| {
            let id = format!("solo{i}");
            w.send(&chat(
                &id,
                vec![ChatMessage::user(*prompt)],
                max_tokens,
                &id,
            ));
            let (text, usage, _) = done(&w.until_end(&id));
            (text, usage)
        })
        .collect()
}

/// Four greedy requests at once give what each gives alone. (Batched and single-sequence
/// evaluation may round differently; with these prompts and the tiny model the outputs are
/// identical, so the test compares them exactly.)
#[test]
fn four_concurrent_requests_match_their_solo_outputs() {
    let solo = solo_outputs(48);
    // The four requests are sent with the load, so they all wait in the worker while the
    // model loads and are admitted together: sent after it, a starved reader thread on a
    // busy machine could hand the engine the last two only after the first two ended.
    let mut w = RawWorker::start(&[]);
    w.send(&WorkerRequest::Load {
        id: "load".into(),
        path: models().chat.clone(),
        n_ctx: 2048,
        n_gpu_layers: 0,
        chat_template: None,
        n_threads: None,
        n_parallel: 4,
    });
    let ids = ids(4);
    for (id, prompt) in ids.iter().zip(PROMPTS) {
        w.send(&chat(id, vec![ChatMessage::user(prompt)], 48, id));
    }
    match w.until_end("load").pop().unwrap() {
        WorkerEvent::Loaded { metadata, .. } => assert_eq!(metadata.n_parallel, 4),
        other => panic!("load failed: {other:?}"),
    }
    // All four stream before any of them ends: they run together.
    let mut order = Vec::new();
    let mut events: HashMap<String, Vec<WorkerEvent>> = HashMap::new();
    while events
        .values()
        .filter(|e| e.last().is_some_and(WorkerEvent::is_terminal))
        .count()
        < 4
    {
        let event = w.next();
        let id = event.request_id().unwrap_or_default().to_owned();
        order.push((id.clone(), event.is_terminal()));
        events.entry(id).or_default().push(event);
    }
    let first_end = order.iter().position(|(_, end)| *end).unwrap();
    for id in &ids {
        assert!(
            order[..first_end].iter().any(|(i, _)| i == id),
            "{id} streamed nothing before the first request ended: {order:?}"
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let (text, usage, finish) = done(&events[id]);
        assert_eq!(finish, FinishReason::Length);
        assert_eq!(usage.completion_tokens, 48);
        assert_eq!(usage.prompt_tokens, solo[i].1.prompt_tokens);
        assert_eq!(usage.cached_prompt_tokens, 0);
        assert!(usage.first_token_ms.is_some());
        assert_eq!(text, solo[i].0, "{id} differs from its solo run");
        let streamed: String = events[id]
            .iter()
            .filter_map(|e| match e {
                WorkerEvent::Token { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, text);
    }
    // The outputs are independent of each other.
    assert_ne!(solo[0].0, solo[1].0);
    let s = stats(&mut w);
    assert_eq!((s.requests, s.tokens_generated), (4, 4 * 48));
    assert_eq!(
        (s.active_requests, s.queued_requests, s.n_parallel),
        (0, 0, 4)
    );
    assert!(!s.busy && s.kv_tokens > 0);
}

#[test]
fn cancelling_one_of_several_stops_only_that_one() {
    let mut w = started(&[("BATON_LLM_WORKER_TEST_DELAY_MS", "5")], 2048, 4);
    let ids = ids(3);
    for (id, prompt) in ids.iter().zip(PROMPTS) {
        w.send(&chat(id, vec![ChatMessage::user(prompt)], 300, id));
    }
    // Wait until all three stream, then cancel the middle one.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 3 {
        if let WorkerEvent::Token { id, .. } = w.next() {
            seen.insert(id);
        }
    }
    w.send(&WorkerRequest::Cancel { id: "r1".into() });
    let events = w.collect(&ids);
    let (_, usage, finish) = done(&events["r1"]);
    assert_eq!(finish, FinishReason::Cancelled);
    assert!(usage.completion_tokens < 300, "{usage:?}");
    for id in ["r0", "r2"] {
        let (_, usage, finish) = done(&events[id]);
        assert_eq!(
            (finish, usage.completion_tokens),
            (FinishReason::Length, 300),
            "{id}"
        );
    }
    // The freed slot serves the next request.
    w.send(&chat("after", vec![ChatMessage::user("hi")], 4, "after"));
    let (_, usage, finish) = done(&w.until_end("after"));
    assert_eq!((usage.completion_tokens, finish), (4, FinishReason::Length));
}

#[test]
fn a_fifth_request_queues_and_completes() {
    let mut w = started(&[("BATON_LLM_WORKER_TEST_DELAY_MS", "5")], 2048, 4);
    let ids = ids(5);
    for (i, id) in ids.iter().enumerate() {
        w.send(&chat(id, vec![ChatMessage::user(PROMPTS[i % 4])], 60, id));
    }
    // While the first four run, the fifth waits.
    let mut early = Vec::new();
    loop {
        let event = w.next();
        let queued = matches!(event, WorkerEvent::Queued { .. });
        early.push(event);
        if queued {
            break;
        }
    }
    let s = stats_keeping(&mut w, &mut early);
    assert_eq!(
        (s.active_requests, s.queued_requests, s.busy),
        (4, 1, true),
        "{s:?}"
    );
    let mut events: HashMap<String, Vec<WorkerEvent>> = HashMap::new();
    for event in early {
        if let Some(id) = event.request_id() {
            events.entry(id.to_owned()).or_default().push(event);
        }
    }
    for (id, rest) in w.collect(&ids) {
        events.entry(id).or_default().extend(rest);
    }
    let fifth = &events["r4"];
    assert!(
        matches!(&fifth[0], WorkerEvent::Queued { position: 1, .. }),
        "{fifth:?}"
    );
    assert!(
        matches!(&fifth[1], WorkerEvent::Admitted { .. }),
        "{fifth:?}"
    );
    for id in &ids {
        let (_, usage, finish) = done(&events[id]);
        assert_eq!(
            (usage.completion_tokens, finish),
            (60, FinishReason::Length),
            "{id}"
        );
        if id != "r4" {
            assert!(
                !events[id]
                    .iter()
                    .any(|e| matches!(e, WorkerEvent::Queued { .. })),
                "{id} should not have queued"
            );
        }
    }
    // Requests queued behind a busy worker can be cancelled before they start.
    for id in ["c0", "c1", "c2", "c3", "c4"] {
        w.send(&chat(id, vec![ChatMessage::user("long")], 300, id));
    }
    w.send(&WorkerRequest::Cancel { id: "c4".into() });
    let cancelled = w.until_end("c4");
    let (text, usage, finish) = done(&cancelled);
    assert_eq!(finish, FinishReason::Cancelled);
    assert_eq!((text.as_str(), usage.completion_tokens), ("", 0));
    for id in ["c0", "c1", "c2", "c3"] {
        w.send(&WorkerRequest::Cancel { id: id.into() });
    }
    let ends = w.collect(&["c0", "c1", "c2", "c3"].map(String::from));
    assert!(ends.values().all(|e| done(e).2 == FinishReason::Cancelled));
}

/// Each session's second turn finds its first turn in its own slot's cache, even with the
/// other session's turns interleaved.
#[test]
fn each_session_reuses_its_own_slot() {
    let mut w = started(&[], 2048, 2);
    let mut conversations = [
        vec![
            ChatMessage::system("you are a geographer"),
            ChatMessage::user("what is the capital of france"),
        ],
        vec![
            ChatMessage::system("you are a poet"),
            ChatMessage::user("write about the water"),
        ],
    ];
    let first_ids = ["a1".to_owned(), "b1".to_owned()];
    for ((id, conv), session) in first_ids.iter().zip(&conversations).zip(["a", "b"]) {
        w.send(&chat(id, conv.clone(), 16, session));
    }
    let first = w.collect(&first_ids);
    let mut first_usage = Vec::new();
    for (id, conv) in first_ids.iter().zip(conversations.iter_mut()) {
        let (text, usage, _) = done(&first[id]);
        assert_eq!(usage.cached_prompt_tokens, 0);
        first_usage.push(usage);
        conv.push(ChatMessage::assistant(text));
        conv.push(ChatMessage::user("and then"));
    }
    // Second turns in the opposite order.
    let second_ids = ["b2".to_owned(), "a2".to_owned()];
    w.send(&chat("b2", conversations[1].clone(), 16, "b"));
    w.send(&chat("a2", conversations[0].clone(), 16, "a"));
    let second = w.collect(&second_ids);
    for (id, first) in [("a2", first_usage[0]), ("b2", first_usage[1])] {
        let (_, usage, _) = done(&second[id]);
        assert!(
            usage.cached_prompt_tokens >= first.prompt_tokens - 1,
            "{id} reused {} tokens; its first turn had {}",
            usage.cached_prompt_tokens,
            first.prompt_tokens
        );
        assert!(usage.cached_prompt_tokens < usage.prompt_tokens);
    }
}

/// Four requests that together need more than the shared KV cache: those that do not fit
/// wait, or are preempted and resumed, and all of them complete in full.
///
/// A resumed request evaluates its prompt and output so far again in one batch, which may
/// round differently from the token-by-token evaluation: its greedy continuation can then
/// differ from the solo run. So the outputs are compared with the solo runs only up to
/// the first preemption (well after the first 8 tokens here).
#[test]
fn requests_outgrowing_the_shared_cache_all_complete() {
    let solo = solo_tokens(100);
    let mut w = started(&[], 256, 4);
    let ids = ids(4);
    for (id, prompt) in ids.iter().zip(PROMPTS) {
        w.send(&chat(id, vec![ChatMessage::user(prompt)], 100, id));
    }
    let events = w.collect(&ids);
    let mut identical = 0;
    for (i, id) in ids.iter().enumerate() {
        let (text, usage, finish) = done(&events[id]);
        assert_eq!(
            (usage.completion_tokens, finish),
            (100, FinishReason::Length),
            "{id}"
        );
        assert_eq!(tokens(&events[id])[..8], solo[i][..8], "{id}");
        identical += usize::from(text == solo[i].concat());
    }
    // A preempted request is told it waits, and when it goes on.
    let mut told = 0;
    for id in &ids {
        let e = &events[id];
        let first_token = e
            .iter()
            .position(|e| matches!(e, WorkerEvent::Token { .. }));
        let queued = e
            .iter()
            .rposition(|e| matches!(e, WorkerEvent::Queued { .. }));
        if let (Some(token), Some(queued)) = (first_token, queued) {
            if queued > token {
                told += 1;
                assert!(
                    e[queued..]
                        .iter()
                        .any(|e| matches!(e, WorkerEvent::Admitted { .. })),
                    "{id}: queued without being admitted again"
                );
            }
        }
    }
    let s = stats(&mut w);
    assert!(s.kv_tokens <= 256, "{s:?}");
    assert!(s.preemptions > 0, "{s:?}");
    assert!(told > 0, "no preempted request was told it waits");
    eprintln!(
        "{identical} of 4 outputs identical to their solo runs after {} preemptions",
        s.preemptions
    );
}

fn tokens(events: &[WorkerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            WorkerEvent::Token { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The streamed pieces of each prompt alone.
fn solo_tokens(max_tokens: u32) -> Vec<Vec<String>> {
    let mut w = started(&[], 2048, 1);
    PROMPTS
        .iter()
        .enumerate()
        .map(|(i, prompt)| {
            let id = format!("solo{i}");
            w.send(&chat(
                &id,
                vec![ChatMessage::user(*prompt)],
                max_tokens,
                &id,
            ));
            tokens(&w.until_end(&id))
        })
        .collect()
}

/// A decode that fails (here a simulated fatal llama.cpp error on the 20th decode call)
/// fails the requests it carried with an error each, resets the cache, and the worker
/// goes on serving.
#[test]
fn a_failed_decode_fails_its_requests_and_the_worker_recovers() {
    let env = [
        ("BATON_LLM_WORKER_TEST_FAIL_DECODE", "20"),
        ("BATON_LLM_WORKER_TEST_DELAY_MS", "5"),
    ];
    let mut w = started(&env, 2048, 4);
    let ids = ids(3);
    // Arriving together or a few steps apart, all three are generating at decode 20.
    for (id, prompt) in ids.iter().zip(PROMPTS) {
        w.send(&chat(id, vec![ChatMessage::user(prompt)], 100, id));
    }
    let events = w.collect(&ids);
    for id in &ids {
        match events[id].last() {
            Some(WorkerEvent::Error { message, .. }) => assert!(
                message.contains("generation failed") && message.contains("retried"),
                "{message}"
            ),
            other => panic!("{id}: expected an error, got {other:?}"),
        }
    }
    let s = stats(&mut w);
    assert_eq!((s.kv_tokens, s.active_requests, s.busy), (0, 0, false));
    w.send(&chat("after", vec![ChatMessage::user("hi")], 8, "after"));
    let (_, usage, finish) = done(&w.until_end("after"));
    assert_eq!((usage.completion_tokens, finish), (8, FinishReason::Length));
    assert!(w.alive());
}

/// A long prompt arriving while another request generates is evaluated in pieces, so the
/// running request keeps streaming meanwhile.
#[test]
fn a_long_prompt_does_not_stall_a_running_generation() {
    let mut w = started(&[("BATON_LLM_WORKER_TEST_DELAY_MS", "5")], 2048, 2);
    w.send(&chat("run", vec![ChatMessage::user("hello")], 400, "run"));
    loop {
        if let WorkerEvent::Token { id, .. } = w.next() {
            if id == "run" {
                break;
            }
        }
    }
    let long = "the world is made of water and people ".repeat(60);
    w.send(&chat("long", vec![ChatMessage::user(long)], 4, "long"));
    let mut running_tokens_before_long_starts = 0;
    let mut events: HashMap<String, Vec<WorkerEvent>> = HashMap::new();
    let mut long_started = false;
    while !events
        .get("long")
        .is_some_and(|e| e.last().is_some_and(WorkerEvent::is_terminal))
    {
        let event = w.next();
        match &event {
            WorkerEvent::Token { id, .. } if id == "long" => long_started = true,
            WorkerEvent::Token { id, .. } if id == "run" && !long_started => {
                running_tokens_before_long_starts += 1
            }
            _ => {}
        }
        if let Some(id) = event.request_id() {
            events.entry(id.to_owned()).or_default().push(event);
        }
    }
    let (_, usage, _) = done(&events["long"]);
    assert!(usage.prompt_tokens > 300, "{usage:?}");
    // At most 128 prompt tokens per step while "run" generates: several steps.
    assert!(
        running_tokens_before_long_starts >= 2,
        "the running request streamed {running_tokens_before_long_starts} tokens while the long prompt was evaluated"
    );
    w.send(&WorkerRequest::Cancel { id: "run".into() });
    let (_, _, finish) = done(&w.until_end("run"));
    assert_eq!(finish, FinishReason::Cancelled);
}
