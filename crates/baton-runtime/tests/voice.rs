//! Speech recognition through the supervised worker with a tiny generated whisper model:
//! the worker killed in the middle of an utterance fails that utterance only, with a
//! message saying what to do, and the next one starts a fresh worker.

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

    let mut utterance = engine.begin().await.unwrap();
    utterance.push(&second).await.unwrap();
    let pid = {
        // The worker that holds this utterance.
        let out = std::process::Command::new("pgrep")
            .args(["-n", "-f", "baton-stt-worker --serve"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(!pid.is_empty(), "the worker runs");
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
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
        "{err}"
    );

    let again = engine
        .transcribe_samples(&second, Some("en".into()))
        .await
        .expect("a fresh worker takes the next utterance");
    assert_eq!(again.language.as_deref(), Some("en"));

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
