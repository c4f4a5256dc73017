//! `--serve`: the JSON-lines protocol of `baton_stt::protocol` on stdin/stdout. One request
//! is handled at a time; audio is buffered per utterance id until `finish`.

use crate::{model, transcribe};
use baton_stt::protocol::{
    decode_samples, SttEvent, SttRequest, WireSegment, PROTOCOL_VERSION, SAMPLE_RATE,
};
use std::collections::HashMap;
use std::io::{BufRead, Write};
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

/// Serves requests until stdin closes.
pub fn run() -> anyhow::Result<()> {
    let mut ctx: Option<whisper_rs::WhisperContext> = None;
    let mut threads = 2usize;
    let mut buffers: HashMap<String, Vec<f32>> = HashMap::new();
    // With no language given ("auto"), the language is detected once, in the first final
    // text, and kept while this worker runs: detecting it is a full-window encoder pass
    // (it doubled the final text's latency, 8.1 s instead of 4.0 s for a 2.5 s utterance
    // with whisper-base on 2 threads), and partial text cannot afford it at all.
    let mut detected: Option<String> = None;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
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
                match model::load(std::path::Path::new(&path)) {
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
                buffers.remove(&id);
            }
            SttRequest::Partial { id, language } | SttRequest::Finish { id, language }
                if ctx.is_none() =>
            {
                let _ = language;
                buffers.remove(&id);
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
                    match decode(
                        ctx.as_ref().expect("checked"),
                        samples,
                        language,
                        threads,
                        true,
                    ) {
                        Ok(t) => t.text,
                        Err(e) => {
                            error(Some(&id), e);
                            continue;
                        }
                    }
                };
                emit(&SttEvent::Partial {
                    id,
                    text,
                    ms: started.elapsed().as_millis() as u64,
                });
            }
            SttRequest::Finish { id, language } => {
                let samples = buffers.remove(&id).unwrap_or_default();
                if samples.is_empty() {
                    error(Some(&id), "the utterance has no audio".into());
                    continue;
                }
                let started = Instant::now();
                let language = language.or_else(|| detected.clone());
                let auto = language.is_none();
                match decode(
                    ctx.as_ref().expect("checked"),
                    &samples,
                    language,
                    threads,
                    false,
                ) {
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

fn decode(
    ctx: &whisper_rs::WhisperContext,
    samples: &[f32],
    language: Option<String>,
    threads: usize,
    draft: bool,
) -> Result<transcribe::Transcript, String> {
    let language = match language {
        Some(l) => transcribe::parse_language(&l).map_err(|e| format!("{e:#}"))?,
        None => None,
    };
    let options = transcribe::Options {
        language,
        threads,
        draft,
    };
    transcribe::transcribe(ctx, samples, &options).map_err(|e| format!("{e:#}"))
}
