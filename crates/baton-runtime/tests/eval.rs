//! Evaluations against the tiny generated model: every answer is checked and stored, the
//! scores add up per domain, a cancelled run keeps what it scored, and the stored scores
//! become the router's prior.

mod common;

use baton_core::CancellationToken;
use baton_runtime::{EvalPlan, EvalProgress, EvalTarget, Mode};
use std::sync::Mutex;

/// A set whose checks the tiny model's random text passes or fails for sure: a regex that
/// matches anything, a number it will not produce, and a Python function it cannot write.
const SET: &str = r#"
{"id": "any-1", "domain": "general", "prompt": "Say something.", "check": {"type": "regex", "pattern": "(?s).*"}}
{"id": "any-2", "domain": "general", "prompt": "Say more.", "check": {"type": "regex", "pattern": "(?s).*"}}
{"id": "num-1", "domain": "math", "prompt": "What is 123456 + 654321?", "check": {"type": "number", "value": 777777.5}}
{"id": "code-1", "domain": "code", "prompt": "Write add(a, b).", "check": {"type": "python", "tests": "assert add(1, 2) == 3"}}
"#;

#[tokio::test]
async fn answers_are_scored_stored_and_feed_routing() {
    let t = common::runtime_with_tiny_model_and(16, 1024).await;
    let rt = &t.runtime;
    let set = baton_eval::parse_set("tiny-set", SET).unwrap();
    let targets = rt.eval_targets(&[], &[Mode::Single]).await.unwrap();
    assert_eq!(
        targets,
        vec![EvalTarget {
            model: "tiny".into(),
            mode: Mode::Single
        }]
    );
    let plan = EvalPlan {
        sets: vec![set.clone()],
        targets,
        limit: None,
    };
    let seen = Mutex::new(Vec::new());
    let on_progress = |p: EvalProgress| {
        if let EvalProgress::Scored {
            done,
            total,
            result,
        } = p
        {
            seen.lock()
                .unwrap()
                .push((done, total, result.item_id.clone()));
        }
    };
    let report = rt
        .run_eval(&plan, &on_progress, CancellationToken::new())
        .await
        .unwrap();
    assert!(!report.cancelled);
    assert_eq!(
        seen.lock().unwrap().iter().map(|s| s.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let passed: Vec<(&str, bool)> = report
        .results
        .iter()
        .map(|r| (r.item_id.as_str(), r.passed))
        .collect();
    assert_eq!(
        passed,
        [
            ("any-1", true),
            ("any-2", true),
            ("num-1", false),
            ("code-1", false)
        ]
    );
    for r in &report.results {
        assert_eq!(r.answered_by.as_deref(), Some("tiny"));
        assert!(!r.detail.is_empty(), "{r:?}");
        assert!(r.completion_tokens.unwrap_or(0) > 0, "{r:?}");
    }
    let general = report
        .scores
        .iter()
        .find(|s| s.domain == "general")
        .unwrap();
    assert_eq!((general.passed, general.total), (2, 2));
    let runs = rt.store().eval_runs(5).await.unwrap();
    assert_eq!(runs[0].status, "done");
    assert_eq!(runs[0].results, 4);
    assert!(runs[0].machine.contains("cores"), "{}", runs[0].machine);

    // Enough general questions for routing to use them: the prior shows in the reasons.
    let mut more = String::new();
    for i in 3..=6 {
        more.push_str(&format!(
            "{{\"id\": \"any-{i}\", \"domain\": \"general\", \"prompt\": \"Word {i}.\", \"check\": {{\"type\": \"regex\", \"pattern\": \"(?s).*\"}}}}\n"
        ));
    }
    let plan = EvalPlan {
        sets: vec![baton_eval::parse_set("tiny-set", &more).unwrap()],
        targets: plan.targets.clone(),
        limit: None,
    };
    rt.run_eval(&plan, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    let decision = rt.route("What is the capital of France?").await.unwrap();
    assert!(
        decision.reasons[0].contains("100% on general here (6 questions"),
        "{:?}",
        decision.reasons
    );
}

#[tokio::test]
async fn a_cancelled_run_keeps_what_it_scored() {
    let t = common::runtime_with_tiny_model_and(8, 1024).await;
    let rt = &t.runtime;
    let set = baton_eval::parse_set("tiny-set", SET).unwrap();
    let plan = EvalPlan {
        sets: vec![set],
        targets: vec![EvalTarget {
            model: "tiny".into(),
            mode: Mode::Single,
        }],
        limit: None,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    // Cancel once two answers are scored.
    let on_progress = move |p: EvalProgress| {
        if matches!(p, EvalProgress::Scored { done: 2, .. }) {
            stop.cancel();
        }
    };
    let report = rt.run_eval(&plan, &on_progress, cancel).await.unwrap();
    assert!(report.cancelled);
    assert_eq!(report.results.len(), 2);
    let runs = rt.store().eval_runs(5).await.unwrap();
    assert_eq!((runs[0].status.as_str(), runs[0].results), ("cancelled", 2));
    // Nothing to evaluate is an error that says what to do.
    let empty = EvalPlan {
        targets: vec![],
        ..plan
    };
    let e = rt
        .run_eval(&empty, &|_| {}, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing to evaluate"), "{e}");
}
