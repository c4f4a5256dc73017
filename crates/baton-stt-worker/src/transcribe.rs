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
    /// A quick draft (partial text while someone speaks): the encoder sees only the audio
    /// there is (about 4x faster for a few seconds of speech) instead of the 30 s window
    /// the model was trained on, which costs accuracy, so final text never uses it.
    pub draft: bool,
    /// Set to stop a decode early (the request was cancelled or Baton went away); the
    /// decode then fails with "aborted".
    pub abort: Option<Arc<AtomicBool>>,
}

/// Encoder positions per second of audio (whisper: 1500 for 30 s).
const AUDIO_CTX_PER_SECOND: f64 = 50.0;

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
    if options.draft {
        let seconds = samples.len() as f64 / 16_000.0;
        // One second of margin: whisper misreads audio that fills its window to the edge.
        let ctx = ((seconds + 1.0) * AUDIO_CTX_PER_SECOND).ceil() as i32;
        params.set_audio_ctx(ctx.min(1500));
        // A draft is replaced a moment later: one pass, no retries at higher temperatures
        // (whisper.cpp's fallback decodes up to six times when a pass looks unsure, which
        // on a busy machine kept a partial decode going for minutes).
        params.set_temperature_inc(0.0);
        params.set_single_segment(true);
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
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Transcript {
        text,
        language,
        segments,
    })
}
