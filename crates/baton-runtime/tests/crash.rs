//! A worker killed with SIGKILL mid-answer: that turn fails with a clear error, the user's
//! message is kept, and the next turn is answered by a fresh worker.

mod common;

use baton_core::{CancellationToken, ChatEvent};
use baton_runtime::ChatTurn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_one_turn_and_the_next_is_answered() {
    // Slow the worker down (a test knob of the worker) so the kill lands mid-generation.
    std::env::set_var("BATON_LLM_WORKER_TEST_DELAY_MS", "40");
    let t = common::runtime_with_tiny_model().await;
    let rt = t.runtime.clone();
    let session = rt.new_session("crash").await.unwrap();
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
        text: "first question".into(),
        model: None,
    };
    let err = rt
        .send(turn, &sink, CancellationToken::new())
        .await
        .unwrap_err();
    let killed_pid = killer.await.unwrap();
    let text = err.to_string();
    assert!(
        text.contains("crashed") && text.contains("send the message again"),
        "{text}"
    );
    let messages = rt.store().messages(&session.id).await.unwrap();
    assert_eq!(
        messages.len(),
        1,
        "the question is kept, no half answer is stored"
    );

    std::env::set_var("BATON_LLM_WORKER_TEST_DELAY_MS", "0");
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
    assert_ne!(pid, killed_pid, "a fresh worker answered");
    assert_eq!(
        rt.store().integrity_check().await.unwrap(),
        vec!["ok".to_string()]
    );
    t.runtime.close().await;
}
