//! Speech recognition through the supervised worker with a tiny generated whisper model:
//! the worker killed in the middle of an utterance (a hundred times) fails that utterance
//! only, with a message saying what to do, and the next one starts a fresh worker.

mod common;

use baton_runtime::AddModel;

#[tokio::test]
async fn a_killed_speech_worker_fails_one_utterance_and_the_next_is_transcribed() {
    let t = common::runtime_with_tiny_model().await;
    let model = t.dir.path().join("tiny-whisper.bin");
    baton_whisper_convert::write_tiny_model(&model).unwrap();
    let record = t
        .runtime
        .add_model(
            &model,
            AddModel {
                name: Some("tiny-whisper".into()),
                ..AddModel::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(record.format, baton_core::ModelFormat::WhisperGgml);
    let engine = t.runtime.recognizer(Some("tiny-whisper")).await.unwrap();
    let second: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();

    let first = engine
        .transcribe_samples(&second, Some("en".into()))
        .await
        .expect("the tiny model transcribes (nonsense, but it runs)");
    assert!(first.language.as_deref() == Some("en"));

    let cycles: usize = std::env::var("BATON_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut killed = Vec::new();
    for cycle in 0..cycles {
        // A fresh worker takes the utterance after each kill (and starts one here).
        let again = engine
            .transcribe_samples(&second, Some("en".into()))
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: a fresh worker transcribes: {e}"));
        assert_eq!(again.language.as_deref(), Some("en"));
        let pid = engine.worker_pid().await.expect("the worker runs");
        assert!(!killed.contains(&pid), "cycle {cycle}: worker {pid} again");
        let mut utterance = engine.begin().await.unwrap();
        utterance.push(&second).await.unwrap();
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        killed.push(pid);
        // The utterance holds the worker until it is finished or dropped.
        let err = match utterance.push(&second).await {
            Err(e) => {
                drop(utterance);
                e
            }
            Ok(()) => utterance.finish(None).await.unwrap_err(),
        }
        .to_string();
        assert!(
            err.contains("speech worker stopped") && err.contains("say it again"),
            "cycle {cycle}: {err}"
        );
    }
    let again = engine
        .transcribe_samples(&second, Some("en".into()))
        .await
        .expect("a fresh worker takes the next utterance");
    assert_eq!(again.language.as_deref(), Some("en"));
    println!(
        "the speech worker was killed mid-utterance {} times",
        killed.len()
    );

    // Not a speech model, and a missing one: clear errors.
    let err = t
        .runtime
        .recognizer(Some("tiny"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a speech recognition model"), "{err}");
    let err = t
        .runtime
        .recognizer(Some("nope"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("baton models fetch nope"), "{err}");
}
