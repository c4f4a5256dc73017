//! Voices: Piper's phoneme ids, the real Piper voice (when `BATON_PIPER_VOICE` points to its
//! .onnx), the espeak-ng voice, voice choice and clear errors for broken voice files.

use baton_core::{AudioBuffer, Synthesizer};
use baton_tts::phonemize::{
    assemble_sentences, ipa_to_phonemes, phonemes_to_ids, ClauseEnd, PhonemeIdMap,
};
use baton_tts::{EspeakVoice, PiperVoice, TtsError, Voice};
use std::collections::HashMap;
use std::path::PathBuf;

/// The start of the default voice's `phoneme_id_map` (en_US-joe-medium.onnx.json).
fn id_map() -> PhonemeIdMap {
    let pairs = [
        ("_", 0),
        ("^", 1),
        ("$", 2),
        (" ", 3),
        ("!", 4),
        (",", 8),
        (".", 10),
        ("?", 13),
        ("d", 17),
        ("h", 20),
        ("l", 24),
        ("o", 27),
        ("w", 35),
        ("ð", 41),
        ("ɜ", 62),
        ("ə", 59),
        ("ʊ", 100),
        ("ˈ", 120),
        ("ː", 122),
        ("ɪ", 74),
        ("s", 31),
    ];
    let json: HashMap<String, Vec<i64>> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), vec![*v]))
        .collect();
    PhonemeIdMap::from_json_map(&json).unwrap()
}

fn rms(a: &AudioBuffer) -> f32 {
    (a.samples.iter().map(|s| s * s).sum::<f32>() / a.samples.len().max(1) as f32).sqrt()
}

#[test]
fn phoneme_ids_follow_piper_rules() {
    // espeak-ng's IPA for "Hello world, this." as Piper groups it.
    let sentences = assemble_sentences(&[
        (ClauseEnd::Comma, ipa_to_phonemes("həlˈoʊ wˈɜːld\n")),
        (ClauseEnd::Period, ipa_to_phonemes("ðˈɪs\n")),
    ]);
    assert_eq!(sentences.len(), 1);
    let (ids, missing) = phonemes_to_ids(&sentences[0], &id_map());
    // ^ _ then every phoneme followed by _, then $.
    let expected: Vec<i64> = vec![
        1, 0, // ^ _
        20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, // h ə l ˈ o ʊ
        3, 0, // space
        35, 0, 120, 0, 62, 0, 122, 0, 24, 0, 17, 0, // w ˈ ɜ ː l d
        8, 0, 3, 0, // , space
        41, 0, 120, 0, 74, 0, 31, 0, // ð ˈ ɪ s
        10, 0, // .
        2, // $
    ];
    assert_eq!(ids, expected);
    assert!(missing.is_empty());
    // Unknown phonemes are skipped (and reported), as Piper does.
    let (ids, missing) = phonemes_to_ids(&['h', 'ʒ', 'h'], &id_map());
    assert_eq!(ids, vec![1, 0, 20, 0, 20, 0, 2]);
    assert_eq!(missing, vec!['ʒ']);
}

#[test]
fn espeak_ng_gives_the_phonemes_piper_expects() {
    let p = baton_tts::phonemize::Phonemizer::new("en-us");
    let s = p
        .phonemize("Hello world, this is Baton. How are you?")
        .unwrap();
    let text: Vec<String> = s.iter().map(|v| v.iter().collect()).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text[0].starts_with("həlˈoʊ wˈɜːld, ðɪs ɪz "), "{text:?}");
    assert!(text[0].ends_with('.'), "{text:?}");
    assert!(text[1].ends_with('?'), "{text:?}");
    // Text that looks like an option is read as text.
    let s = p.phonemize("-v hello").unwrap();
    assert!(!s.is_empty());
}

#[test]
fn piper_voice_speaks() {
    let Some(onnx) = std::env::var_os("BATON_PIPER_VOICE").map(PathBuf::from) else {
        eprintln!("skipped: set BATON_PIPER_VOICE to the Piper voice's .onnx (its .onnx.json next to it) to run this test");
        return;
    };
    let voice = PiperVoice::load_default_config(&onnx).unwrap();
    assert_eq!(voice.sample_rate(), 22050);
    let t = std::time::Instant::now();
    let audio = voice.synthesize("Hello world, this is Baton.").unwrap();
    let secs = audio.duration_secs();
    eprintln!(
        "piper: {secs:.2} s of audio in {:.2} s, rms {:.3}",
        t.elapsed().as_secs_f64(),
        rms(&audio)
    );
    assert_eq!(audio.sample_rate, 22050);
    assert!((1.0..=4.0).contains(&secs), "duration {secs}");
    assert!(rms(&audio) > 0.02, "silent: rms {}", rms(&audio));
    assert!(audio.samples.iter().all(|s| (-1.0..=1.0).contains(s)));
    assert!(voice.synthesize(" ... ").unwrap().samples.is_empty());
}

#[test]
fn espeak_voice_speaks() {
    let voice = EspeakVoice::new("en-us");
    let audio = voice.synthesize("Hello world, this is Baton.").unwrap();
    let secs = audio.duration_secs();
    assert_eq!(audio.sample_rate, 22050);
    assert!((1.0..=4.0).contains(&secs), "duration {secs}");
    assert!(rms(&audio) > 0.02, "silent: rms {}", rms(&audio));
    let Err(e) = EspeakVoice::new("zz-none").synthesize("hi") else {
        panic!("an unknown voice must fail");
    };
    assert!(e.to_string().contains("espeak-ng --voices"), "{e}");
    let Err(e) = EspeakVoice::new("en-us")
        .with_program("/nonexistent/espeak-ng")
        .synthesize("hi")
    else {
        panic!("a missing espeak-ng must fail");
    };
    assert!(matches!(e, TtsError::EspeakMissing { .. }), "{e}");
    assert!(e.to_string().contains("install"), "{e}");
}

#[tokio::test]
async fn synthesizer_trait_runs_off_the_async_threads() {
    let voice = Voice::Espeak(EspeakVoice::new("en-us"));
    let audio = Synthesizer::synthesize(&voice, "Testing one two three.", None)
        .await
        .unwrap();
    assert!(audio.duration_secs() > 0.5);
    let other = Synthesizer::synthesize(&voice, "Testing.", Some("en-gb"))
        .await
        .unwrap();
    assert!(other.duration_secs() > 0.2);
    let Err(e) = Synthesizer::synthesize(&voice, "Testing.", Some("zz-none")).await else {
        panic!("an unknown voice must fail");
    };
    assert!(e.to_string().contains("espeak-ng"), "{e}");
}

#[test]
fn missing_piper_files_fall_back_to_espeak_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("missing.onnx");
    let choice = Voice::choose(Some(&onnx), "en-us").unwrap();
    assert!(choice.fallback);
    assert!(matches!(choice.voice, Voice::Espeak(_)));
    assert!(
        choice.notice.contains("espeak-ng voice en-us"),
        "{}",
        choice.notice
    );
    assert!(
        choice.notice.contains("missing.onnx not found"),
        "{}",
        choice.notice
    );
    let choice = Voice::choose(None, "en-us").unwrap();
    assert!(
        choice.notice.contains("no Piper voice is configured"),
        "{}",
        choice.notice
    );
}

#[test]
fn broken_voice_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("voice.onnx");
    let json = dir.path().join("voice.onnx.json");
    std::fs::write(&onnx, b"this is not an onnx model").unwrap();
    // Missing config.
    let e = PiperVoice::load(&onnx, &json).unwrap_err();
    assert!(matches!(e, TtsError::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("voice.onnx.json"), "{e}");
    assert!(e.to_string().contains("baton models fetch"), "{e}");
    // Broken config.
    std::fs::write(&json, b"{\"audio\": 3}").unwrap();
    let e = PiperVoice::load(&onnx, &json).unwrap_err();
    assert!(matches!(e, TtsError::BadConfig { .. }), "{e}");
    // Corrupt model with a good config.
    std::fs::write(
        &json,
        r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
            "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}"#,
    )
    .unwrap();
    match PiperVoice::load(&onnx, &json) {
        Err(TtsError::BadModel { path, reason }) => {
            assert_eq!(path, onnx);
            let msg = TtsError::BadModel { path, reason }.to_string();
            assert!(msg.contains("corrupt"), "{msg}");
        }
        Err(TtsError::Runtime(e)) => eprintln!("skipped the corrupt-model check: {e}"),
        other => panic!("expected a model error, got {other:?}"),
    }
    // The fallback takes over and says why.
    let choice = Voice::choose(Some(&onnx), "en-us").unwrap();
    assert!(choice.fallback);
    assert!(choice.notice.contains("cannot be loaded") || choice.notice.contains("ONNX Runtime"));
}
