//! Silero VAD with the real model, when `BATON_SILERO_VAD` points at `silero_vad.onnx`
//! (from the silero-vad 6.2.3 wheel); otherwise the tests print "skipped".

mod common;

use baton_speech::{
    decode_file, to_16k_mono, BufferSource, ListenEvent, Listener, SegmentEvent, Segmenter,
    SileroVad,
};
use common::*;
use std::time::{Duration, Instant};

fn model() -> Option<std::path::PathBuf> {
    match std::env::var_os("BATON_SILERO_VAD") {
        Some(p) => Some(p.into()),
        None => {
            println!("skipped: set BATON_SILERO_VAD to silero_vad.onnx to run the VAD tests");
            None
        }
    }
}

/// Runs 16 kHz samples through the Listener with the Silero model; returns the utterances'
/// (start_ms, end_ms, samples).
fn utterances(model: &std::path::Path, samples: Vec<f32>) -> Vec<(u64, u64, usize)> {
    let vad = SileroVad::load(model).unwrap_or_else(|e| panic!("{e}"));
    let mut l = Listener::new(
        Box::new(BufferSource::new(samples)),
        Box::new(vad),
        Segmenter::default(),
    );
    let mut out = Vec::new();
    let mut open = false;
    while let Some(e) = l.next_event(Duration::from_secs(1)).unwrap() {
        match e {
            ListenEvent::Segment {
                event: SegmentEvent::SpeechStarted { .. },
                ..
            } => open = true,
            ListenEvent::Segment {
                event:
                    SegmentEvent::SpeechEnded {
                        utterance,
                        start_ms,
                        end_ms,
                    },
                ..
            } => {
                assert!(open, "ended without a start");
                open = false;
                out.push((start_ms, end_ms, utterance.len()));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn one_utterance_in_padded_speech_and_none_in_silence_or_noise() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    espeak(SENTENCE, &wav);
    let speech = to_16k_mono(&decode_file(&wav).unwrap()).samples;
    let pad = vec![0.0f32; 32_000];
    let mut padded = pad.clone();
    padded.extend_from_slice(&speech);
    padded.extend_from_slice(&pad);
    let (first, last) = voiced_span(&padded, 0.01).expect("espeak-ng produced sound");
    let (speech_start, speech_end) = (first as i64 / 16, last as i64 / 16);

    let found = utterances(&model, padded);
    println!("speech {speech_start}..{speech_end} ms; utterances found: {found:?}");
    assert_eq!(found.len(), 1, "{found:?}");
    let (s, e, n) = found[0];
    assert!(
        (s as i64 - speech_start).abs() <= 300,
        "start {s} vs {speech_start}"
    );
    assert!(
        (e as i64 - speech_end).abs() <= 300,
        "end {e} vs {speech_end}"
    );
    assert_eq!(n as u64, (e - s) * 16);

    assert!(utterances(&model, vec![0.0; 16_000 * 5]).is_empty());
    // White noise at a low level (uniform, RMS ~0.006).
    let mut x: u32 = 1;
    let noise: Vec<f32> = (0..16_000 * 5)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.02
        })
        .collect();
    let found = utterances(&model, noise);
    assert!(found.is_empty(), "noise gave {found:?}");
}

#[test]
fn probabilities_follow_speech_and_timing_per_frame() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    espeak(SENTENCE, &wav);
    let speech = to_16k_mono(&decode_file(&wav).unwrap()).samples;
    let mut vad = SileroVad::load(&model).unwrap();
    let mut probs = Vec::new();
    let frames: Vec<[f32; 512]> = speech
        .chunks_exact(512)
        .map(|c| c.try_into().unwrap())
        .collect();
    let t = Instant::now();
    for f in &frames {
        probs.push(vad.speech_probability(f).unwrap());
    }
    let per_frame = t.elapsed() / frames.len() as u32;
    let max = probs.iter().cloned().fold(0f32, f32::max);
    println!(
        "{} frames, {per_frame:?} per 512-sample frame (32 ms of audio); max probability {max:.3}",
        frames.len()
    );
    assert!(max > 0.8, "{probs:?}");
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));

    vad.reset();
    let silent = [0.0f32; 512];
    for _ in 0..20 {
        let p = vad.speech_probability(&silent).unwrap();
        assert!(p < 0.2, "silence scored {p}");
    }
}

#[test]
fn a_missing_or_wrong_model_is_explained() {
    let e = SileroVad::load("/nonexistent/silero_vad.onnx").unwrap_err();
    println!("{e}");
    assert!(e.to_string().contains("silero"));
}
