//! `--serve`: the JSON-lines protocol of `baton_stt::protocol` on stdin/stdout. One request
//! is handled at a time; audio is buffered per utterance id until `finish`.

use crate::{draft, model, transcribe};
use baton_stt::protocol::{
    decode_samples, SttEvent, SttRequest, WireSegment, PROTOCOL_VERSION, SAMPLE_RATE,
};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// The longest utterance kept in memory: 4 hours of 16 kHz audio (~920 MB as f32).
const MAX_SAMPLES: usize = 4 * 3600 * SAMPLE_RATE as usize;

fn emit(event: &SttEvent) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, event);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn error(id: Option<&str>, message: String) {
    emit(&SttEvent::Error {
        id: id.map(str::to_owned),
        message,
    });
}

/// What the reader thread shares with the decoding loop: the utterance being decoded, the
/// flag that stops its decode, and the cancels read but not yet handled (a `cancel` that
/// arrives before its utterance's decode has started must still stop it).
#[derive(Default)]
struct Decoding {
    id: Mutex<Option<String>>,
    abort: Arc<AtomicBool>,
    pending_cancels: Mutex<HashMap<String, usize>>,
    /// stdin has closed: Baton went away, nothing more is wanted.
    closed: AtomicBool,
}

impl Decoding {
    /// A decode of `id` starts; returns its abort flag (already set when a cancel for `id`
    /// is waiting behind it).
    fn start(&self, id: &str) -> Arc<AtomicBool> {
        let cancelled = self
            .pending_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id);
        *self.id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_owned());
        let closed = self.closed.load(Ordering::SeqCst);
        self.abort.store(cancelled || closed, Ordering::SeqCst);
        self.abort.clone()
    }

    fn end(&self) {
        *self.id.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The reader saw `cancel` for `id`: stop its decode if it runs, and remember it until
    /// the decoding loop reaches that cancel.
    fn cancel_read(&self, id: &str) {
        *self
            .pending_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_default() += 1;
        self.abort(Some(id));
    }

    /// The decoding loop reached a `cancel` for `id`.
    fn cancel_handled(&self, id: &str) {
        let mut pending = self
            .pending_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = pending.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                pending.remove(id);
            }
        }
    }

    /// Stops the decode of `id` (any decode when `None`) if one runs.
    fn abort(&self, id: Option<&str>) {
        let current = self.id.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_some() && (id.is_none() || current.as_deref() == id) {
            self.abort.store(true, Ordering::SeqCst);
        }
    }
}

/// Reads requests on its own thread, so that a `cancel` for the utterance being decoded
/// stops that decode (whisper.cpp checks between its passes and tokens), and the end of
/// stdin (Baton went away) ends the process at once.
fn read_requests(decoding: Arc<Decoding>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if let Ok(SttRequest::Cancel { id }) = serde_json::from_str::<SttRequest>(&line) {
                decoding.cancel_read(&id);
            }
            if tx.send(line).is_err() {
                break;
            }
        }
        // Baton went away (or asked the worker to end): nobody can receive what is still
        // being decoded, and whisper.cpp's encoder pass cannot be interrupted, so end the
        // process now instead of decoding on as an orphan.
        decoding.closed.store(true, Ordering::SeqCst);
        decoding.abort(None);
        std::process::exit(0);
    });
    rx
}

/// Serves requests until stdin closes.
pub fn run() -> anyhow::Result<()> {
    let mut ctx: Option<whisper_rs::WhisperContext> = None;
    let mut threads = 2usize;
    let mut buffers: HashMap<String, Vec<f32>> = HashMap::new();
    // The last partial text shown per utterance, which the next draft's tail joins onto.
    let mut drafts: HashMap<String, String> = HashMap::new();
    // With no language given ("auto"), the language is detected once, in the first final
    // text, and kept while this worker runs: detecting it is a full-window encoder pass
    // (it doubled the final text's latency, 8.1 s instead of 4.0 s for a 2.5 s utterance
    // with whisper-base on 2 threads), and partial text cannot afford it at all.
    let mut detected: Option<String> = None;
    let decoding = Arc::new(Decoding::default());
    for line in read_requests(decoding.clone()) {
        if line.trim().is_empty() {
            continue;
        }
        let request: SttRequest = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                error(None, format!("unreadable request ({e})"));
                continue;
            }
        };
        match request {
            SttRequest::Hello { .. } => emit(&SttEvent::Ready {
                version: PROTOCOL_VERSION,
                system: whisper_rs::print_system_info().to_owned(),
            }),
            SttRequest::Ping { id } => emit(&SttEvent::Pong { id }),
            SttRequest::Load {
                model: path,
                threads: t,
            } => {
                let started = Instant::now();
                match model::load(std::path::Path::new(&path), false) {
                    Ok(c) => {
                        ctx = Some(c);
                        threads = (t as usize).clamp(1, 64);
                        emit(&SttEvent::Loaded {
                            model: path,
                            ms: started.elapsed().as_millis() as u64,
                        });
                    }
                    Err(e) => error(None, format!("{e:#}")),
                }
            }
            SttRequest::Audio { id, samples } => match decode_samples(&samples) {
                Some(samples) => {
                    let buffer = buffers.entry(id.clone()).or_default();
                    if buffer.len() + samples.len() > MAX_SAMPLES {
                        buffers.remove(&id);
                        error(
                            Some(&id),
                            "the recording is longer than 4 hours; split it into parts".into(),
                        );
                    } else {
                        buffer.extend(samples);
                    }
                }
                None => error(Some(&id), "audio chunk is not base64 f32 samples".into()),
            },
            SttRequest::Cancel { id } => {
                decoding.cancel_handled(&id);
                buffers.remove(&id);
                drafts.remove(&id);
            }
            SttRequest::Partial { id, language } | SttRequest::Finish { id, language }
                if ctx.is_none() =>
            {
                let _ = language;
                buffers.remove(&id);
                drafts.remove(&id);
                error(Some(&id), "no model is loaded".into());
            }
            SttRequest::Partial { id, language } => {
                let samples = buffers.get(&id).map(Vec::as_slice).unwrap_or_default();
                let started = Instant::now();
                let language = language.or_else(|| detected.clone());
                // No partial text before a language is known (the first utterance in auto).
                let text = if samples.len() < SAMPLE_RATE as usize / 4 || language.is_none() {
                    String::new()
                } else {
                    let abort = decoding.start(&id);
                    let earlier = drafts.get(&id).map(String::as_str).unwrap_or_default();
                    let drafted = draft(
                        ctx.as_ref().expect("checked"),
                        samples,
                        earlier,
                        language,
                        threads,
                        abort,
                    );
                    decoding.end();
                    match drafted {
                        Ok(t) => t,
                        Err(e) => {
                            error(Some(&id), e);
                            continue;
                        }
                    }
                };
                if !text.is_empty() {
                    drafts.insert(id.clone(), text.clone());
                }
                emit(&SttEvent::Partial {
                    id,
                    text,
                    ms: started.elapsed().as_millis() as u64,
                });
            }
            SttRequest::Finish { id, language } => {
                drafts.remove(&id);
                let samples = buffers.remove(&id).unwrap_or_default();
                if samples.is_empty() {
                    error(Some(&id), "the utterance has no audio".into());
                    continue;
                }
                let started = Instant::now();
                let language = language.or_else(|| detected.clone());
                let auto = language.is_none();
                let abort = decoding.start(&id);
                let decoded = decode(
                    ctx.as_ref().expect("checked"),
                    &samples,
                    language,
                    threads,
                    false,
                    abort,
                );
                decoding.end();
                match decoded {
                    Ok(t) => {
                        if auto && t.language.is_some() {
                            detected = t.language.clone();
                        }
                        emit(&SttEvent::Done {
                            id,
                            text: t.text,
                            language: t.language,
                            segments: t
                                .segments
                                .into_iter()
                                .map(|s| WireSegment {
                                    start_ms: s.start_ms,
                                    end_ms: s.end_ms,
                                    text: s.text,
                                })
                                .collect(),
                            audio_ms: samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE),
                            ms: started.elapsed().as_millis() as u64,
                        })
                    }
                    Err(e) => error(Some(&id), e),
                }
            }
        }
    }
    Ok(())
}

/// Partial text of `samples`: a long utterance's last seconds joined onto the `earlier`
/// draft (see [`crate::draft`]), or the whole utterance drafted when it is short, when
/// there is no earlier draft, or when the two do not agree.
fn draft(
    ctx: &whisper_rs::WhisperContext,
    samples: &[f32],
    earlier: &str,
    language: Option<String>,
    threads: usize,
    abort: Arc<AtomicBool>,
) -> Result<String, String> {
    let rate = f64::from(SAMPLE_RATE);
    let seconds = samples.len() as f64 / rate;
    if seconds > draft::WHOLE_DRAFT_SECONDS && !earlier.is_empty() {
        let tail_start = samples.len() - (draft::TAIL_SECONDS * rate) as usize;
        let tail = decode(
            ctx,
            &samples[tail_start..],
            language.clone(),
            threads,
            true,
            abort.clone(),
        )?;
        if tail.text.is_empty() {
            // Nothing usable in the newest seconds (a pause, or a loop that was dropped).
            return Ok(earlier.to_owned());
        }
        if let Some(joined) = draft::join_tail(earlier, &tail.text) {
            return Ok(joined);
        }
    }
    decode(ctx, samples, language, threads, true, abort).map(|t| t.text)
}

fn decode(
    ctx: &whisper_rs::WhisperContext,
    samples: &[f32],
    language: Option<String>,
    threads: usize,
    draft: bool,
    abort: Arc<AtomicBool>,
) -> Result<transcribe::Transcript, String> {
    let language = match language {
        Some(l) => transcribe::parse_language(&l).map_err(|e| format!("{e:#}"))?,
        None => None,
    };
    let options = transcribe::Options {
        language,
        threads,
        window: transcribe::Window::Fitted,
        draft,
        abort: Some(abort),
    };
    transcribe::transcribe(ctx, samples, &options).map_err(|e| format!("{e:#}"))
}
