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

/// `--serve` with whisper-base (fetched by `make test` into the shared test-model cache):
/// a `cancel` for the utterance being decoded stops that decode (an "aborted" error instead
/// of its text; whisper.cpp checks between its encoder pass and each token), and when
/// stdin closes mid-decode the worker exits instead of decoding on as an orphan.
#[test]
fn serve_stops_a_decode_on_cancel_and_exits_when_stdin_closes() {
    use baton_stt::protocol::{encode_samples, SttEvent, SttRequest};
    use std::io::{BufRead, BufReader, Write};
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let model = home.join(".cache/baton/test-models/ggml-base.bin");
    if !model.exists() {
        eprintln!(
            "skipped: {} is missing (make test fetches it)",
            model.display()
        );
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton-stt-worker"))
        .arg("--serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the worker");
    let mut stdin = child.stdin.take().unwrap();
    let mut events = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |r: &SttRequest| {
        let line = serde_json::to_string(r).unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    };
    let mut next = || -> SttEvent {
        let line = events.next().expect("an event").expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    send(&SttRequest::Hello {
        version: baton_stt::protocol::PROTOCOL_VERSION,
    });
    assert!(matches!(next(), SttEvent::Ready { .. }));
    send(&SttRequest::Load {
        model: model.display().to_string(),
        threads: 1,
    });
    assert!(matches!(next(), SttEvent::Loaded { .. }));
    // 25 s of a noisy tone: whisper-base needs seconds to decode it on one thread.
    let samples: Vec<f32> = (0..25 * 16_000u64)
        .map(|i| ((i as f32 * 0.07).sin() * 0.3) + ((i * 7919 % 1000) as f32 / 5000.0 - 0.1))
        .collect();
    send(&SttRequest::Audio {
        id: "u1".into(),
        samples: encode_samples(&samples),
    });
    send(&SttRequest::Finish {
        id: "u1".into(),
        language: Some("en".into()),
    });
    send(&SttRequest::Cancel { id: "u1".into() });
    let t = std::time::Instant::now();
    match next() {
        SttEvent::Error { id, message } => {
            assert_eq!(id.as_deref(), Some("u1"));
            assert!(message.contains("aborted"), "{message}");
        }
        other => panic!("expected the decode to be aborted, got {other:?}"),
    }
    eprintln!(
        "the cancelled decode ended after {} ms",
        t.elapsed().as_millis()
    );
    // The worker still serves, and a second decode interrupted by the end of stdin ends
    // the process.
    send(&SttRequest::Ping { id: "p".into() });
    assert!(matches!(next(), SttEvent::Pong { .. }));
    send(&SttRequest::Audio {
        id: "u2".into(),
        samples: encode_samples(&samples),
    });
    send(&SttRequest::Finish {
        id: "u2".into(),
        language: Some("en".into()),
    });
    drop(stdin);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!(
                "exited {} ms after stdin closed",
                started.elapsed().as_millis()
            );
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the worker did not exit after stdin closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
