//! Runs the real `baton-stt-worker` binary on a generated tiny model (random weights, so
//! the text is nonsense: these tests check the path, not the accuracy) and on bad inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn worker(model: &Path, wav: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton-stt-worker"))
        .arg("--model")
        .arg(model)
        .arg("--transcribe")
        .arg(wav)
        .args(["--threads", "2"])
        .args(extra)
        .output()
        .expect("run baton-stt-worker")
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("ggml-tiny-random.bin");
    baton_whisper_convert::write_tiny_model(&path).expect("write tiny model");
    path
}

/// A WAV of `seconds` of a gliding tone with some noise.
fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f32) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut noise = 12345u32;
    for i in 0..(rate as f32 * seconds) as u32 {
        let t = i as f32 / rate as f32;
        noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let n = (noise >> 16) as f32 / 65536.0 - 0.5;
        let v = (t * (300.0 + 200.0 * t) * std::f32::consts::TAU).sin() * 0.4 + n * 0.05;
        for _ in 0..channels {
            w.write_sample((v * 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Failed cleanly: exit status 1 (not a signal or an abort), message on stderr.
fn assert_clean_failure(out: &Output, must_contain: &[&str]) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "status {:?}, stderr: {err}",
        out.status
    );
    for s in must_contain {
        assert!(err.contains(s), "stderr lacks {s:?}: {err}");
    }
}

#[test]
fn transcribes_a_generated_wav_with_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, 16_000, 1, 1.0);
    let out = worker(&model, &wav, &["--json"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(v["text"].is_string());
    assert!(v["segments"].is_array());
    assert_eq!(v["audio_ms"], 1000);
}

#[test]
fn resamples_other_rates_and_mixes_channels() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let wav = dir.path().join("stereo-44k.wav");
    write_wav(&wav, 44_100, 2, 1.0);
    let out = worker(&model, &wav, &["--json", "--language", "auto"]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ms = v["audio_ms"].as_u64().unwrap();
    assert!((999..=1001).contains(&ms), "{ms}");
}

#[test]
fn corrupt_and_truncated_models_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, 16_000, 1, 0.5);

    let garbage = dir.path().join("garbage-model.bin");
    std::fs::write(
        &garbage,
        b"this is not a model at all, just some text".repeat(100),
    )
    .unwrap();
    let out = worker(&garbage, &wav, &[]);
    assert_clean_failure(&out, &["garbage-model.bin", "not a whisper.cpp ggml model"]);

    let model = tiny_model(dir.path());
    let bytes = std::fs::read(&model).unwrap();
    let truncated = dir.path().join("truncated-model.bin");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = worker(&truncated, &wav, &[]);
    assert_clean_failure(&out, &["truncated-model.bin", "truncated", "again"]);

    let mut bad_hparams = bytes.clone();
    bad_hparams[4..8].copy_from_slice(&i32::MAX.to_le_bytes()); // n_vocab
    let weird = dir.path().join("weird-model.bin");
    std::fs::write(&weird, &bad_hparams).unwrap();
    let out = worker(&weird, &wav, &[]);
    assert_clean_failure(&out, &["weird-model.bin", "hyper-parameters"]);

    let missing = dir.path().join("no-such-model.bin");
    let out = worker(&missing, &wav, &[]);
    assert_clean_failure(&out, &["no-such-model.bin", "cannot open"]);

    let tiny_file = dir.path().join("three-bytes.bin");
    std::fs::write(&tiny_file, b"abc").unwrap();
    let out = worker(&tiny_file, &wav, &[]);
    assert_clean_failure(&out, &["three-bytes.bin", "not a whisper.cpp ggml model"]);
}

#[test]
fn empty_and_non_wav_audio_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    // The model is never loaded for bad audio, so any path will do.
    let model = dir.path().join("unused.bin");

    let empty = dir.path().join("empty.wav");
    write_wav(&empty, 16_000, 1, 0.0);
    let out = worker(&model, &empty, &[]);
    assert_clean_failure(&out, &["empty.wav", "no audio"]);

    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "just some text, not RIFF").unwrap();
    let out = worker(&model, &text, &[]);
    assert_clean_failure(&out, &["notes.wav", "not a readable WAV", "sox"]);

    let zero = dir.path().join("zero-bytes.wav");
    std::fs::write(&zero, b"").unwrap();
    let out = worker(&model, &zero, &[]);
    assert_clean_failure(&out, &["zero-bytes.wav", "not a readable WAV"]);

    let out = worker(&model, &dir.path().join("missing.wav"), &[]);
    assert_clean_failure(&out, &["missing.wav", "cannot read"]);
}

#[test]
fn unknown_language_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    write_wav(&wav, 16_000, 1, 0.5);
    let out = worker(
        &dir.path().join("unused.bin"),
        &wav,
        &["--language", "klingon"],
    );
    assert_clean_failure(&out, &["unknown language", "klingon"]);
}
