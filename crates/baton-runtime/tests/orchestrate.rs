//! The orchestrator end to end: remote engines over real HTTP on 127.0.0.1 (a scripted peer
//! injects faults), the local worker with a tiny generated model as the fallback, SQLite.

mod common;

use baton_core::{CancellationToken, ChatEvent, OrchestrationEvent, RefineStop};
use baton_remote::test_peer::{Behaviour, TestPeer};
use baton_runtime::{AddEngine, AnswerOptions, ChatTurn, Mode, Runtime, TurnOutcome};
use std::sync::Mutex;
use std::time::Duration;

const PASSPHRASE: &str = "test passphrase";

fn words(text: &[&str]) -> Vec<String> {
    text.iter().map(|w| (*w).to_owned()).collect()
}

const FAST_FAILING: &str = r#"
[reliability]
breaker_window = 10
breaker_min_requests = 2
breaker_failure_rate = 0.5
breaker_open_secs = 1
first_token_timeout_secs = 1
idle_timeout_secs = 1
max_retries = 0
[secrets]
store = "file"
"#;

async fn add(rt: &Runtime, name: &str, peer: &TestPeer) {
    std::env::set_var("BATON_SECRETS_PASSPHRASE", PASSPHRASE);
    rt.add_engine(AddEngine {
        name: name.into(),
        base_url: peer.base_url.clone(),
        api_key: Some(format!("sk-{name}-secret")),
        ..AddEngine::default()
    })
    .await
    .unwrap();
}

struct Seen {
    events: Mutex<Vec<ChatEvent>>,
    progress: Mutex<Vec<OrchestrationEvent>>,
}

impl Seen {
    fn new() -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            progress: Mutex::new(Vec::new()),
        }
    }

    fn fallbacks(&self) -> Vec<(String, String, String)> {
        self.progress
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                OrchestrationEvent::Fallback { from, to, reason } => {
                    Some((from.clone(), to.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

async fn ask(
    rt: &Runtime,
    text: &str,
    model: Option<&str>,
    mode: Mode,
    seen: &Seen,
) -> Result<TurnOutcome, baton_runtime::RuntimeError> {
    let session = rt.new_session("t").await.unwrap();
    let turn = ChatTurn {
        session: session.id.clone(),
        text: text.into(),
        model: model.map(str::to_owned),
    };
    let options = AnswerOptions::new(model.map(str::to_owned), mode);
    rt.send_with(
        turn,
        options,
        &|e| seen.events.lock().unwrap().push(e),
        &|p| seen.progress.lock().unwrap().push(p),
        CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn engines_are_added_with_their_key_outside_sqlite() {
    let t = common::runtime_with_tiny_model_config(8, 512, FAST_FAILING).await;
    let peer = TestPeer::start(Behaviour::Stream(words(&["Paris."]))).await;
    add(&t.runtime, "peer", &peer).await;
    let statuses = t.runtime.engine_statuses().await.unwrap();
    assert_eq!(statuses[0].record.models, vec!["peer-model"]);
    assert_eq!(statuses[0].record.key_store, "file");
    assert_eq!(statuses[0].breaker, "closed");
    let seen = Seen::new();
    let out = ask(
        &t.runtime,
        "capital of France?",
        Some("peer/peer-model"),
        Mode::Single,
        &seen,
    )
    .await
    .unwrap();
    assert_eq!(out.assistant.content, "Paris.");
    assert_eq!(
        peer.received()[0].authorization.as_deref(),
        Some("Bearer sk-peer-secret")
    );
    let data = t.runtime.paths().data_dir.clone();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"sk-peer-secret"),
            "the key is in clear in {}",
            path.display()
        );
    }
    // A reopened runtime finds the engine and its key again.
    let paths = t.runtime.paths().clone();
    t.runtime.clone().close().await;
    let reopened = Runtime::open(paths).await.unwrap();
    let out = ask(
        &reopened,
        "again?",
        Some("peer/peer-model"),
        Mode::Single,
        &seen,
    )
    .await
    .unwrap();
    assert_eq!(out.assistant.content, "Paris.");
    assert_eq!(
        peer.received()[1].authorization.as_deref(),
        Some("Bearer sk-peer-secret")
    );
    assert!(reopened.remove_engine("peer").await.unwrap());
    assert!(reopened.engine_statuses().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failing_engine_opens_its_breaker_the_local_model_answers_and_it_recovers() {
    let t = common::runtime_with_tiny_model_config(8, 512, FAST_FAILING).await;
    let rt = &t.runtime;
    let peer = TestPeer::start(Behaviour::Stream(words(&["ok"]))).await;
    add(rt, "peer", &peer).await;
    peer.set_default(Behaviour::Status(
        500,
        vec![],
        r#"{"error":{"message":"boom"}}"#.into(),
    ));

    for _ in 0..2 {
        let seen = Seen::new();
        let out = ask(rt, "hi", Some("peer/peer-model"), Mode::Single, &seen)
            .await
            .unwrap();
        assert_eq!(
            out.assistant.model.as_deref(),
            Some("tiny"),
            "the fallback answered"
        );
        let fallbacks = seen.fallbacks();
        assert_eq!(fallbacks.len(), 1);
        assert!(fallbacks[0].2.contains("HTTP 500: boom"), "{fallbacks:?}");
        assert!(seen.events.lock().unwrap().iter().any(|e| matches!(e, ChatEvent::Notice { message } if message.contains("tiny answers instead"))));
    }
    assert_eq!(rt.engine_statuses().await.unwrap()[0].breaker, "open");
    let before = peer.received().len();
    let seen = Seen::new();
    let out = ask(rt, "hi", Some("peer/peer-model"), Mode::Single, &seen)
        .await
        .unwrap();
    assert_eq!(out.assistant.model.as_deref(), Some("tiny"));
    assert_eq!(
        peer.received().len(),
        before,
        "an open breaker sends nothing"
    );
    assert!(seen.fallbacks()[0].2.contains("circuit breaker is open"));

    // The engine recovers; after the open period one probe goes through and closes it.
    peer.set_default(Behaviour::Stream(words(&["back"])));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(rt.engine_statuses().await.unwrap()[0].breaker, "half-open");
    let seen = Seen::new();
    let out = ask(rt, "hi", Some("peer/peer-model"), Mode::Single, &seen)
        .await
        .unwrap();
    assert_eq!(out.assistant.content, "back");
    assert_eq!(rt.engine_statuses().await.unwrap()[0].breaker, "closed");

    let stats = rt.store().stats().await.unwrap();
    let remote = stats
        .models
        .iter()
        .find(|m| m.key == "peer/peer-model")
        .unwrap();
    assert_eq!((remote.ok, remote.errors), (1, 2));
}

#[tokio::test]
async fn a_hanging_engine_and_a_dropped_stream_fall_back() {
    let t = common::runtime_with_tiny_model_config(8, 512, FAST_FAILING).await;
    let rt = &t.runtime;
    let peer = TestPeer::start(Behaviour::Stream(words(&["ok"]))).await;
    add(rt, "peer", &peer).await;

    peer.push([Behaviour::Hang]);
    let seen = Seen::new();
    let out = ask(rt, "hi", Some("peer/peer-model"), Mode::Single, &seen)
        .await
        .unwrap();
    assert_eq!(out.assistant.model.as_deref(), Some("tiny"));
    assert!(
        seen.fallbacks()[0].2.contains("did not answer within 1 s"),
        "{:?}",
        seen.fallbacks()
    );

    peer.push([Behaviour::Drop(words(&["half", " an"]))]);
    let seen = Seen::new();
    let out = ask(rt, "hi", Some("peer/peer-model"), Mode::Single, &seen)
        .await
        .unwrap();
    assert_eq!(out.assistant.model.as_deref(), Some("tiny"));
    let events = seen.events.lock().unwrap().clone();
    let restart = events
        .iter()
        .position(|e| matches!(e, ChatEvent::Restart { .. }))
        .expect("the partial answer is withdrawn");
    assert!(matches!(&events[restart - 1], ChatEvent::Token { text } if text == " an"));
    assert!(
        !out.assistant.content.starts_with("half an"),
        "the stored answer is the fallback's"
    );
}

#[tokio::test]
async fn auto_routes_by_rules_and_records_why() {
    let extra = format!(
        "{FAST_FAILING}[routing]\nrules = [{{ domain = \"code\", model = \"peer/peer-model\" }}]\n"
    );
    let t = common::runtime_with_tiny_model_config(8, 512, &extra).await;
    let rt = &t.runtime;
    let peer = TestPeer::start(Behaviour::Stream(words(&["Use a loop."]))).await;
    add(rt, "peer", &peer).await;

    let seen = Seen::new();
    let out = ask(
        rt,
        "How do I debug this python function?",
        None,
        Mode::Single,
        &seen,
    )
    .await
    .unwrap();
    assert_eq!(out.assistant.model.as_deref(), Some("peer/peer-model"));
    let reasons = rt
        .store()
        .decision_reasons(out.assistant.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        reasons[0].starts_with("rule 1 in the config chose peer/peer-model"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("domain code")),
        "{reasons:?}"
    );

    // Without a matching rule the free local model wins the tie-break on cost.
    let seen = Seen::new();
    let out = ask(rt, "Say hello", None, Mode::Single, &seen)
        .await
        .unwrap();
    assert_eq!(out.assistant.model.as_deref(), Some("tiny"));
    let routed =
        seen.progress.lock().unwrap().iter().any(
            |p| matches!(p, OrchestrationEvent::Routed { decision } if decision.model == "tiny"),
        );
    assert!(routed);
    assert_eq!(rt.store().stats().await.unwrap().decisions, 2);
}

#[tokio::test]
async fn fan_out_votes_across_engines_within_the_deadline() {
    let extra = format!(
        "{FAST_FAILING}[orchestration]\nfanout_models = [\"a/peer-model\", \"b/peer-model\", \"c/peer-model\", \"tiny\"]\nfanout_deadline_secs = 5\n"
    );
    let t = common::runtime_with_tiny_model_config(8, 512, &extra).await;
    let rt = &t.runtime;
    let a = TestPeer::start(Behaviour::Stream(words(&["Paris."]))).await;
    let b = TestPeer::start(Behaviour::Stream(words(&["The answer is ", "paris"]))).await;
    let c = TestPeer::start(Behaviour::Stream(words(&["Lyon"]))).await;
    add(rt, "a", &a).await;
    add(rt, "b", &b).await;
    add(rt, "c", &c).await;
    c.set_default(Behaviour::Slow(words(&["Lyon"]), Duration::from_secs(60)));

    let seen = Seen::new();
    let out = ask(rt, "Capital of France?", None, Mode::FanOut, &seen)
        .await
        .unwrap();
    assert_eq!(out.assistant.content, "Paris.");
    assert_eq!(out.assistant.mode.as_deref(), Some("fanout"));
    let progress = seen.progress.lock().unwrap().clone();
    let merged = progress
        .iter()
        .find_map(|p| match p {
            OrchestrationEvent::Merged { winner, detail, .. } => {
                Some((winner.clone(), detail.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(merged.0, "a/peer-model");
    assert!(
        merged
            .1
            .starts_with("2.0 of 3.0 votes agree (a/peer-model, b/peer-model)"),
        "{}",
        merged.1
    );
    let late = progress.iter().any(|p| matches!(p, OrchestrationEvent::StepDone { model, ok: false, text, .. } if model == "c/peer-model" && text.contains("did not answer within")));
    assert!(late, "{progress:?}");
}

#[tokio::test]
async fn critique_and_refine_runs_rounds_and_stops_when_scores_stall() {
    let extra = format!(
        "{FAST_FAILING}[orchestration]\njudge_model = \"p/peer-model\"\ncritics = [\"p/peer-model\"]\nrefine_rounds = 5\nrefine_min_gain = 0.5\n"
    );
    let t = common::runtime_with_tiny_model_config(8, 512, &extra).await;
    let rt = &t.runtime;
    let peer = TestPeer::start(Behaviour::Stream(words(&["Score: 1"]))).await;
    add(rt, "p", &peer).await;
    let reply = |s: &str| Behaviour::Stream(words(&[s]));
    peer.push([
        reply("Draft."),
        reply("I like it"),
        reply("Score: 4"),
        reply("- too short"),
        reply("Better answer."),
        reply("Score: 7/10"),
        reply("- fine"),
        reply("A worse answer."),
        reply("Score: 6"),
    ]);
    let seen = Seen::new();
    let out = ask(
        rt,
        "Explain tides",
        Some("p/peer-model"),
        Mode::Refine,
        &seen,
    )
    .await
    .unwrap();
    assert_eq!(
        out.assistant.content, "Better answer.",
        "the best-scored version is kept"
    );
    let done = seen
        .progress
        .lock()
        .unwrap()
        .iter()
        .find_map(|p| match p {
            OrchestrationEvent::RefineDone {
                rounds,
                scores,
                stop,
                kept,
            } => Some((*rounds, scores.clone(), *stop, *kept)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        done,
        (
            2,
            vec![Some(4.0), Some(7.0), Some(6.0)],
            RefineStop::NoImprovement,
            1
        )
    );
    let steps: Vec<String> = seen
        .progress
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| match p {
            OrchestrationEvent::Step { role, round, .. } => Some(format!("{role}{round}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "answer0",
            "judge0",
            "judge0",
            "critique1",
            "revise1",
            "judge1",
            "critique2",
            "revise2",
            "judge2"
        ],
        "a judge reply without a score is asked again"
    );
    let stats = rt.store().stats().await.unwrap();
    let refine = stats.modes.iter().find(|m| m.key == "refine").unwrap();
    assert_eq!(refine.runs, 9);
}
