//! Running whisper.cpp on samples that are already 16 kHz mono.

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext};

/// How to transcribe.
#[derive(Debug, Clone)]
pub struct Options {
    /// Spoken language as an ISO 639-1 code (`en`), or `None` to detect it.
    pub language: Option<String>,
    /// CPU threads whisper.cpp may use.
    pub threads: usize,
    /// How much of whisper's 30 s window the encoder sees.
    pub window: Window,
    /// A quick draft (partial text while someone speaks): one pass, no retries at higher
    /// temperatures, one segment, and no check of a fitted window (it is replaced a moment
    /// later anyway).
    pub draft: bool,
    /// Set to stop a decode early (the request was cancelled or Baton went away); the
    /// decode then fails with "aborted".
    pub abort: Option<Arc<AtomicBool>>,
}

/// Encoder positions per second of audio (whisper: 1500 for 30 s).
const AUDIO_CTX_PER_SECOND: f64 = 50.0;
/// The encoder positions of the full 30 s window.
const FULL_AUDIO_CTX: i32 = 1500;
/// Silence added to a fitted window: whisper misreads audio that fills its window to the
/// edge (words at the end dropped).
const FITTED_MARGIN_SECONDS: f64 = 1.0;
/// Silence kept after the last voiced frame in a fitted window.
const TRAILING_SILENCE_MS: i64 = 300;
/// The window a doubted fitted text is decoded with next: 10 s.
const WIDER_AUDIO_CTX: i32 = 500;

/// How much of whisper's 30 s input window the encoder runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Window {
    /// The whole 30 s window the model was trained on, however short the speech: the
    /// encoder's cost does not shrink with the utterance (4.4 s for 5.7 s of speech with
    /// whisper-base on 2 cores).
    Full,
    /// The audio there is plus a margin (about 6x faster for a 5 s utterance). The result
    /// is checked ([`doubt`]) and decoded again with a 10 s window, then the full one, when
    /// it looks cut short, repeats itself or is empty; drafts skip the check.
    #[default]
    Fitted,
}

/// The encoder positions for `samples` of 16 kHz audio in a fitted window.
fn fitted_audio_ctx(samples: usize) -> i32 {
    let seconds = samples as f64 / 16_000.0;
    (((seconds + FITTED_MARGIN_SECONDS) * AUDIO_CTX_PER_SECOND).ceil() as i32).min(FULL_AUDIO_CTX)
}

/// One stretch of recognised speech.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Segment {
    /// Start, milliseconds from the beginning of the audio.
    pub start_ms: i64,
    /// End, milliseconds from the beginning of the audio.
    pub end_ms: i64,
    /// The text, as whisper.cpp produced it (usually with a leading space).
    pub text: String,
}

/// The result of [`transcribe`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Transcript {
    /// All segments' text joined and trimmed.
    pub text: String,
    /// The language used (detected when none was given).
    pub language: Option<String>,
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// Encoder positions the text was decoded with (1500: the full 30 s window).
    pub audio_ctx: i32,
    /// Why a fitted window's text was not trusted and the audio decoded again with a wider
    /// window, if it was.
    pub refit: Option<String>,
}

/// Checks a language option: `auto` (or empty) means detect, anything else must be a
/// language whisper.cpp knows.
pub fn parse_language(lang: &str) -> Result<Option<String>> {
    let lang = lang.trim().to_ascii_lowercase();
    if lang.is_empty() || lang == "auto" {
        return Ok(None);
    }
    if lang.contains('\0') || whisper_rs::get_lang_id(&lang).is_none() {
        bail!("unknown language '{lang}'; use an ISO 639-1 code such as en, de, fr, or auto");
    }
    Ok(Some(lang))
}

/// whisper.cpp's abort callback: true stops the decode. `data` is an `AtomicBool`.
unsafe extern "C" fn abort_requested(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: `transcribe` passes a pointer to an `AtomicBool` that outlives the decode.
    unsafe { (*(data as *const AtomicBool)).load(Ordering::SeqCst) }
}

/// Transcribes `samples` (16 kHz, mono, [-1, 1]) with the model in `ctx`.
pub fn transcribe(ctx: &WhisperContext, samples: &[f32], options: &Options) -> Result<Transcript> {
    if samples.is_empty() {
        bail!("no audio samples to transcribe");
    }
    if options.window == Window::Full || fitted_audio_ctx(samples.len()) >= FULL_AUDIO_CTX {
        return decode_once(ctx, samples, options, FULL_AUDIO_CTX);
    }
    // Silence after the voice (the utterance detector's wait, a pause before the next
    // draft) costs encoder time and invites whisper to go on writing: a fitted window
    // ends a moment after the last voiced frame.
    let voiced = match voiced_span(samples) {
        Some(span) => {
            let end = (span.end_ms + TRAILING_SILENCE_MS) as usize * 16;
            &samples[..end.min(samples.len())]
        }
        None => samples,
    };
    let fitted = fitted_audio_ctx(voiced.len());
    let mut transcript = decode_once(ctx, voiced, options, fitted)?;
    if options.draft {
        // A draft of the first words often loops ("tomorrow tomorrow tomorrow…"): show
        // nothing new rather than that; the next draft has more audio to go on.
        if repeated_phrase(&transcript.text).is_some() {
            transcript.text.clear();
            transcript.segments.clear();
        }
        return Ok(transcript);
    }
    // A doubted text is decoded again with more room (at least 10 s, which cured whisper's
    // doubled short commands at a third of the full window's cost), then with all of it.
    let wider = (fitted * 2).clamp(WIDER_AUDIO_CTX, FULL_AUDIO_CTX);
    for audio_ctx in [wider, FULL_AUDIO_CTX] {
        let Some(reason) = doubt(&transcript, samples) else {
            break;
        };
        log_line(&format!(
            "a window of {} positions not trusted: {reason}; decoding with {audio_ctx}",
            transcript.audio_ctx
        ));
        let refit = transcript
            .refit
            .map_or(reason.clone(), |r| format!("{r}; {reason}"));
        let input = if audio_ctx == FULL_AUDIO_CTX {
            samples
        } else {
            voiced
        };
        transcript = decode_once(ctx, input, options, audio_ctx)?;
        transcript.refit = Some(refit);
        if audio_ctx == FULL_AUDIO_CTX {
            break;
        }
    }
    Ok(transcript)
}

/// The worker has no logger: notes go to stderr, which Baton collects into its log.
fn log_line(line: &str) {
    eprintln!("baton-stt-worker: {line}");
}

/// Why a fitted window's text may be wrong, if it may: no words, too few words for the
/// seconds of voice (lost) or far too many (written twice), the words stop well before the
/// voice in the audio does (whisper cut the end off), or a phrase said again right after
/// itself (whisper's loop on audio it cannot place).
pub fn doubt(transcript: &Transcript, samples: &[f32]) -> Option<String> {
    let voice = voiced_span(samples)?;
    let words = transcript.text.split_whitespace().count();
    let voiced_seconds = voice.voiced_ms as f64 / 1000.0;
    if words == 0 {
        return (voiced_seconds >= 0.5)
            .then(|| format!("no words for {voiced_seconds:.1} s of voice"));
    }
    // Speech has about 2.5 to 6 words a second of voice (pauses not counted): well under
    // that, words were lost; far over it, a sentence was written twice (whisper's habit
    // with a short command in a fitted window).
    let rate = words as f64 / voiced_seconds.max(0.2);
    if (voiced_seconds >= 2.0 && rate < 1.0) || rate > 8.0 {
        return Some(format!("{words} words for {voiced_seconds:.1} s of voice"));
    }
    let last_end = transcript
        .segments
        .iter()
        .map(|s| s.end_ms)
        .max()
        .unwrap_or(0);
    if voice.end_ms - last_end > 1_500 {
        return Some(format!(
            "the text ends at {:.1} s but the voice goes on to {:.1} s",
            last_end as f64 / 1000.0,
            voice.end_ms as f64 / 1000.0
        ));
    }
    if let Some(phrase) = repeated_phrase(&transcript.text) {
        return Some(format!("\"{phrase}\" repeats"));
    }
    None
}

/// Where the voice in a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VoicedSpan {
    /// End of the last voiced 20 ms frame, milliseconds from the start.
    end_ms: i64,
    /// Milliseconds of voiced frames in all.
    voiced_ms: i64,
}

/// Voiced frames: 20 ms frames louder than a tenth of the loud frames' level (the 90th
/// percentile), which follows the speaker's level and ignores a quiet noise floor. `None`
/// for silence.
fn voiced_span(samples: &[f32]) -> Option<VoicedSpan> {
    const FRAME: usize = 320;
    let rms: Vec<f32> = samples
        .chunks(FRAME)
        .map(|f| (f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32).sqrt())
        .collect();
    let mut sorted = rms.clone();
    sorted.sort_by(f32::total_cmp);
    let loud = sorted[sorted.len() * 9 / 10];
    if loud < 1e-3 {
        return None;
    }
    let threshold = loud * 0.1;
    let voiced: Vec<usize> = (0..rms.len()).filter(|&i| rms[i] >= threshold).collect();
    let last = *voiced.last()?;
    Some(VoicedSpan {
        end_ms: (last as i64 + 1) * 20,
        voiced_ms: voiced.len() as i64 * 20,
    })
}

/// A phrase said again right after itself (three words or more: "open the settings open
/// the settings"), or a shorter one four times in a row, if any.
fn repeated_phrase(text: &str) -> Option<String> {
    let words: Vec<String> = text.split_whitespace().map(crate::draft::plain).collect();
    for n in 1..=words.len() / 2 {
        for start in 0..words.len() {
            let Some(phrase) = words.get(start..start + n) else {
                break;
            };
            let mut repeats = 1;
            while words.get(start + repeats * n..start + (repeats + 1) * n) == Some(phrase) {
                repeats += 1;
            }
            if repeats >= 4 || (n >= 3 && repeats >= 2) {
                return Some(phrase.join(" "));
            }
        }
    }
    None
}

/// `text` trimmed and without whisper's bracketed annotations ("[BLANK_AUDIO]",
/// "[Music]"), which are never speech.
fn without_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One whisper.cpp pass over `samples` with `audio_ctx` encoder positions.
fn decode_once(
    ctx: &WhisperContext,
    samples: &[f32],
    options: &Options,
    audio_ctx: i32,
) -> Result<Transcript> {
    let mut state = ctx
        .create_state()
        .context("whisper.cpp could not create a state")?;
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(options.threads.clamp(1, 64) as i32);
    params.set_translate(false);
    params.set_language(Some(options.language.as_deref().unwrap_or("auto")));
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    // No "[Music]" or "(applause)": dictated text is speech. (A fitted window's silence
    // invited such tags at the end of 2 of 28 recordings.)
    params.set_suppress_nst(true);
    if audio_ctx < FULL_AUDIO_CTX {
        params.set_audio_ctx(audio_ctx);
    }
    if options.draft {
        // A draft is replaced a moment later: one pass, no retries at higher temperatures
        // (whisper.cpp's fallback decodes up to six times when a pass looks unsure, which
        // on a busy machine kept a partial decode going for minutes).
        params.set_temperature_inc(0.0);
        params.set_single_segment(true);
        // Speech has under ten tokens a second: more is a loop, and each token costs time.
        let seconds = samples.len() as f64 / 16_000.0;
        params.set_max_tokens((seconds * 10.0).ceil() as i32 + 6);
    }
    if let Some(abort) = &options.abort {
        // whisper-rs 0.16's `set_abort_callback_safe` hands whisper.cpp a pointer to a boxed
        // trait object but reads it back as the closure's own type, so the flag it reads is
        // garbage (every decode aborted at once): the raw callback reads the flag directly.
        // SAFETY: the pointer is the `AtomicBool` inside `options.abort`, which `options`
        // keeps alive until `state.full` below has returned; the callback only loads it.
        unsafe {
            params.set_abort_callback(Some(abort_requested));
            params.set_abort_callback_user_data(Arc::as_ptr(abort) as *mut std::ffi::c_void);
        }
    }
    let result = state.full(params, samples);
    if options
        .abort
        .as_ref()
        .is_some_and(|a| a.load(Ordering::SeqCst))
    {
        bail!("aborted");
    }
    result.context("whisper.cpp failed to transcribe the audio")?;
    let language = match &options.language {
        Some(l) => Some(l.clone()),
        None => whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_owned),
    };
    let mut segments = Vec::new();
    for seg in state.as_iter() {
        segments.push(Segment {
            start_ms: seg.start_timestamp() * 10,
            end_ms: seg.end_timestamp() * 10,
            text: seg
                .to_str_lossy()
                .context("whisper.cpp returned no text for a segment")?
                .into_owned(),
        });
    }
    let text = segments
        .iter()
        .map(|s| without_tags(&s.text))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Transcript {
        text,
        language,
        segments,
        audio_ctx,
        refit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of a 200 Hz tone between half a second of silence on each side.
    fn voice(seconds: f64) -> Vec<f32> {
        let silence = vec![0.0; 8_000];
        let tone = (0..(seconds * 16_000.0) as usize)
            .map(|i| 0.3 * (i as f32 * 200.0 * std::f32::consts::TAU / 16_000.0).sin());
        silence
            .iter()
            .copied()
            .chain(tone)
            .chain(silence.clone())
            .collect()
    }

    fn transcript(text: &str, end_ms: i64) -> Transcript {
        Transcript {
            text: text.into(),
            language: Some("en".into()),
            segments: vec![Segment {
                start_ms: 0,
                end_ms,
                text: text.into(),
            }],
            audio_ctx: 100,
            refit: None,
        }
    }

    #[test]
    fn bracketed_annotations_are_not_text() {
        assert_eq!(
            without_tags(" the tests are still failing [BLANK_AUDIO]"),
            "the tests are still failing"
        );
        assert_eq!(without_tags("[Music] hello  there [MUSIC]"), "hello there");
        assert_eq!(without_tags("a ] stray bracket"), "a ] stray bracket");
    }

    #[test]
    fn a_fitted_window_is_the_audio_plus_a_second_and_never_more_than_the_full_one() {
        assert_eq!(fitted_audio_ctx(16_000 * 5), 300);
        assert_eq!(fitted_audio_ctx(16_000 * 29), 1500);
        assert_eq!(fitted_audio_ctx(16_000 * 60), 1500);
    }

    #[test]
    fn the_voice_is_found_between_silences() {
        let span = voiced_span(&voice(2.0)).unwrap();
        assert_eq!(span.end_ms, 2_500);
        assert_eq!(span.voiced_ms, 2_000);
        assert_eq!(voiced_span(&[0.0; 16_000]), None);
    }

    #[test]
    fn plausible_text_is_trusted() {
        let audio = voice(3.0);
        let t = transcript(
            "Remind me to call the dentist tomorrow afternoon please",
            3_400,
        );
        assert_eq!(doubt(&t, &audio), None);
    }

    #[test]
    fn a_sentence_written_twice_is_doubted() {
        let audio = voice(1.0);
        let t = transcript("Open the settings. Open the settings.", 1_500);
        assert!(
            doubt(&t, &audio).unwrap().contains("repeats"),
            "{:?}",
            doubt(&t, &audio)
        );
        let t = transcript("Turn on dark mode. Turn on dark mode.", 1_500);
        assert!(doubt(&t, &audio).is_some());
    }

    #[test]
    fn a_loop_of_a_short_phrase_is_doubted_but_a_repeated_word_is_not() {
        assert_eq!(repeated_phrase("no no no no no"), Some("no".into()));
        assert_eq!(repeated_phrase("that is very very good"), None);
        assert_eq!(repeated_phrase("thank you thank you"), None);
    }

    #[test]
    fn text_that_stops_before_the_voice_does_is_doubted() {
        let audio = voice(6.0);
        // Enough words, but the timestamps end at 2 s while the voice goes on to 6.5 s.
        let t = transcript("one two three four five six seven eight nine ten", 2_000);
        assert!(doubt(&t, &audio).unwrap().contains("voice goes on"));
        // Too few words for six seconds of voice.
        let t = transcript("hello there", 6_400);
        assert!(doubt(&t, &audio).unwrap().contains("2 words"));
        // Nothing at all.
        let t = Transcript {
            segments: vec![],
            ..transcript("", 0)
        };
        assert!(doubt(&t, &audio).unwrap().contains("no words"));
    }
}
