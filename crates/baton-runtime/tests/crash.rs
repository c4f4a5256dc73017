//! A worker killed with SIGKILL mid-answer, a hundred times: each time that turn fails
//! with a clear error, the user's message is kept without a half answer, and afterwards
//! a fresh worker answers.

mod common;

use baton_core::{CancellationToken, ChatEvent};
use baton_runtime::ChatTurn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How many times the worker is killed (`BATON_KILL_CYCLES`, 100 by default).
fn cycles() -> usize {
    std::env::var("BATON_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_one_turn_and_the_next_is_answered() {
    // Slow the worker down (a test knob of the worker) so the kill lands mid-generation.
    std::env::set_var("BATON_LLM_WORKER_TEST_DELAY_MS", "40");
    // A breaker that never opens: every kill must land in a real generation (in use, four
    // crashes in a row open it, which is what a person wants).
    let t = common::runtime_with_tiny_model_config(
        24,
        512,
        "[reliability]\nbreaker_min_requests = 100000\n",
    )
    .await;
    let rt = t.runtime.clone();
    let mut killed = Vec::new();
    for cycle in 0..cycles() {
        let session = rt.new_session(&format!("crash {cycle}")).await.unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let sink = {
            let started = started.clone();
            move |e: ChatEvent| {
                if matches!(e, ChatEvent::Token { .. }) {
                    started.store(true, Ordering::SeqCst);
                }
            }
        };
        let killer = {
            let rt = rt.clone();
            let started = started.clone();
            tokio::spawn(async move {
                while !started.load(Ordering::SeqCst) {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                let loaded = rt.loaded_models().await;
                let pid = loaded.first().expect("a worker is running").pid;
                std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .unwrap();
                pid
            })
        };
        let turn = ChatTurn {
            session: session.id.clone(),
            text: format!("question {cycle}"),
            model: None,
        };
        let err = rt
            .send(turn, &sink, CancellationToken::new())
            .await
            .unwrap_err();
        if !started.load(Ordering::SeqCst) {
            killer.abort();
            panic!("cycle {cycle}: the turn failed before its first token: {err}");
        }
        let pid = killer.await.unwrap();
        assert!(!killed.contains(&pid), "cycle {cycle}: worker {pid} again");
        killed.push(pid);
        let text = err.to_string();
        assert!(
            text.contains("crashed") && text.contains("send the message again"),
            "cycle {cycle}: {text}"
        );
        let messages = rt.store().messages(&session.id).await.unwrap();
        assert_eq!(
            messages.len(),
            1,
            "cycle {cycle}: the question is kept, no half answer is stored"
        );
        assert_eq!(messages[0].content, format!("question {cycle}"));
    }

    std::env::set_var("BATON_LLM_WORKER_TEST_DELAY_MS", "0");
    let session = rt.new_session("after the kills").await.unwrap();
    let turn = ChatTurn {
        session: session.id.clone(),
        text: "second question".into(),
        model: None,
    };
    let outcome = rt
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert!(outcome.response.usage.completion_tokens > 0);
    let pid = rt.loaded_models().await[0].pid;
    assert!(!killed.contains(&pid), "a fresh worker answered");
    assert_eq!(
        rt.store().integrity_check().await.unwrap(),
        vec!["ok".to_string()]
    );
    println!("the worker was killed mid-answer {} times", killed.len());
    t.runtime.close().await;
}
