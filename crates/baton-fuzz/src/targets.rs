//! The fuzz targets: each hands one input to a parser Baton runs on outside data, the way
//! the product calls it, and checks what must hold for any input: no panic (a failed
//! assertion is one), an error that says something, and for the worker protocols, that a
//! line read back after writing is the same message.

use crate::seeds;
use fastrand::Rng;
use std::path::Path;

/// One fuzz target.
pub struct Target {
    /// Its name on the command line and the folder of its regression inputs.
    pub name: &'static str,
    /// What it feeds and to which code.
    pub about: &'static str,
    /// Whether the input is text, so text-aware mutations apply.
    pub text: bool,
    /// The valid inputs mutations start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// A generator of structured inputs, used for a third of the cases where present.
    pub generate: Option<fn(&mut Rng) -> Vec<u8>>,
    /// Runs one input and says whether the parser accepted it; `scratch` is an empty
    /// folder of this process for targets that read files.
    pub run: fn(data: &[u8], scratch: &Path) -> bool,
}

/// Every target, in the order campaigns run them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "gguf",
        about: "GGUF model files: baton_llm::gguf::inspect_bytes and the memory estimate",
        text: false,
        seeds: seeds::gguf,
        generate: None,
        run: gguf,
    },
    Target {
        name: "audio",
        about: "audio files (WAV, MP3, FLAC, OGG headers at extreme values): baton_speech::decode_file and resampling to 16 kHz",
        text: false,
        seeds: seeds::wav,
        generate: Some(seeds::wav_header),
        run: audio,
    },
    Target {
        name: "tts-wav",
        about: "espeak-ng's streamed WAV output: baton_tts::parse_streamed_wav",
        text: false,
        seeds: seeds::espeak_wav,
        generate: Some(seeds::wav_header),
        run: tts_wav,
    },
    Target {
        name: "image",
        about: "images (PNG, JPEG, BMP, GIF, TIFF, PNM, WebP): baton_vision::load_image_bytes",
        text: false,
        seeds: seeds::images,
        generate: None,
        run: image,
    },
    Target {
        name: "config",
        about: "config.toml: baton_runtime::Config::parse",
        text: true,
        seeds: seeds::config,
        generate: None,
        run: config,
    },
    Target {
        name: "llm-protocol",
        about: "LLM worker JSON lines, both directions: WorkerRequest and WorkerEvent, read and written back",
        text: true,
        seeds: seeds::llm_protocol,
        generate: None,
        run: llm_protocol,
    },
    Target {
        name: "stt-protocol",
        about: "speech worker JSON lines, both directions, and base64 audio: SttRequest, SttEvent, decode_samples",
        text: true,
        seeds: seeds::stt_protocol,
        generate: None,
        run: stt_protocol,
    },
    Target {
        name: "api-request",
        about: "bodies of POST /v1/chat/completions: baton_api::request::parse",
        text: true,
        seeds: seeds::api_request,
        generate: None,
        run: api_request,
    },
    Target {
        name: "template",
        about: "YAML task templates: baton_tasks::Template::parse and instantiating with defaults",
        text: true,
        seeds: seeds::template,
        generate: None,
        run: template,
    },
    Target {
        name: "cron",
        about: "schedules (cron expression and time zone): baton_tasks::CronSchedule::parse and the next runs",
        text: true,
        seeds: seeds::cron,
        generate: None,
        run: cron,
    },
    Target {
        name: "document",
        about: "documents added to memory (Markdown, text, code, PDF): baton_memory::docs::read_document",
        text: true,
        seeds: seeds::documents,
        generate: None,
        run: document,
    },
    Target {
        name: "eval-set",
        about: "evaluation question sets (JSON lines): baton_eval::parse_set",
        text: true,
        seeds: seeds::eval_set,
        generate: None,
        run: eval_set,
    },
    Target {
        name: "ct2",
        about: "CTranslate2 model.bin files the Whisper converter reads: Ct2Model::parse",
        text: false,
        seeds: seeds::ct2,
        generate: None,
        run: ct2,
    },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// An error must say something a person can act on.
fn explained(error: impl std::fmt::Display) -> bool {
    let text = error.to_string();
    assert!(!text.trim().is_empty(), "an error without a message");
    false
}

/// `Ok` counts as accepted; an error must explain itself.
fn accepted<T, E: std::fmt::Display>(result: Result<T, E>) -> bool {
    result.map_or_else(explained, |_| true)
}

fn gguf(data: &[u8], _: &Path) -> bool {
    match baton_llm::gguf::inspect_bytes(data, "fuzz.gguf") {
        Ok(info) => {
            let _ = info.estimated_memory_bytes(u64::from(u32::MAX));
            let _ = info.to_descriptor("fuzz", 4096);
            true
        }
        Err(e) => explained(e),
    }
}

fn audio(data: &[u8], scratch: &Path) -> bool {
    // The extension is only a hint; the reader goes by the first bytes.
    let ext = match data.first().map(|b| b % 4) {
        Some(0) => "mp3",
        Some(1) => "flac",
        Some(2) => "ogg",
        _ => "wav",
    };
    let path = scratch.join(format!("input.{ext}"));
    if std::fs::write(&path, data).is_err() {
        return false;
    }
    match baton_speech::decode_file(&path) {
        Ok(audio) => {
            let speech = baton_speech::to_16k_mono(&audio);
            let expected = audio.samples.len() as f64 * 16_000.0 / f64::from(audio.sample_rate);
            assert!(
                (speech.samples.len() as f64 - expected).abs() <= expected * 0.01 + 2.0,
                "resampling {} samples at {} Hz gave {} samples",
                audio.samples.len(),
                audio.sample_rate,
                speech.samples.len()
            );
            assert!(
                speech.samples.iter().all(|v| v.is_finite()),
                "samples that are not numbers reached the speech model"
            );
            true
        }
        Err(e) => explained(e),
    }
}

fn tts_wav(data: &[u8], _: &Path) -> bool {
    accepted(baton_tts::parse_streamed_wav(data))
}

fn image(data: &[u8], _: &Path) -> bool {
    match baton_vision::load_image_bytes(data, &baton_vision::Limits::default()) {
        Ok(img) => {
            assert!(img.width > 0 && img.height > 0);
            true
        }
        Err(e) => explained(e),
    }
}

fn config(data: &[u8], _: &Path) -> bool {
    let text = String::from_utf8_lossy(data);
    accepted(baton_runtime::Config::parse(
        &text,
        Path::new("config.toml"),
    ))
}

/// Reads every line as `T`; a line that reads must read back the same after writing.
/// Says whether any line read.
fn round_trip<T>(text: &str) -> bool
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let mut any = false;
    for line in text.lines() {
        if let Ok(message) = serde_json::from_str::<T>(line) {
            let written = baton_llm::protocol::to_line(&message);
            let back: T = serde_json::from_str(written.trim_end())
                .unwrap_or_else(|e| panic!("{written:?} does not read back: {e}"));
            assert_eq!(back, message, "{written:?} reads back differently");
            any = true;
        }
    }
    any
}

fn llm_protocol(data: &[u8], _: &Path) -> bool {
    let text = String::from_utf8_lossy(data);
    let requests = round_trip::<baton_llm::protocol::WorkerRequest>(&text);
    round_trip::<baton_llm::protocol::WorkerEvent>(&text) || requests
}

fn stt_protocol(data: &[u8], _: &Path) -> bool {
    use baton_stt::protocol::{decode_samples, SttEvent, SttRequest};
    let text = String::from_utf8_lossy(data);
    let requests = round_trip::<SttRequest>(&text);
    let events = round_trip::<SttEvent>(&text);
    for line in text.lines() {
        if let Ok(SttRequest::Audio { samples, .. }) = serde_json::from_str(line) {
            if let Some(decoded) = decode_samples(&samples) {
                assert!(
                    decoded.len() * 4 <= samples.len(),
                    "more samples than bytes"
                );
            }
        }
    }
    requests || events
}

fn api_request(data: &[u8], _: &Path) -> bool {
    accepted(baton_api::request::parse(data))
}

fn template(data: &[u8], _: &Path) -> bool {
    let text = String::from_utf8_lossy(data);
    match baton_tasks::Template::parse(&text) {
        Ok(t) => accepted(t.instantiate(&serde_json::json!({"audio": "a.wav"}), "fuzz", 0)),
        Err(e) => explained(e),
    }
}

fn cron(data: &[u8], _: &Path) -> bool {
    let text = String::from_utf8_lossy(data);
    let (expr, tz) = text.split_once('\n').unwrap_or((&text, "UTC"));
    match baton_tasks::CronSchedule::parse(expr, tz) {
        Ok(schedule) => {
            let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
            let runs = schedule.upcoming(start, 5);
            assert!(
                runs.windows(2).all(|w| w[0] < w[1]),
                "runs out of order: {runs:?}"
            );
            assert!(runs.iter().all(|&r| r > start), "a run before the start");
            let _ = schedule.describe();
            true
        }
        Err(e) => explained(e),
    }
}

fn document(data: &[u8], scratch: &Path) -> bool {
    let (kind, body) = data.split_first().unwrap_or((&b't', &[]));
    let ext = match kind {
        b'm' => "md",
        b'p' => "pdf",
        b'r' => "rs",
        _ => "txt",
    };
    let path = scratch.join(format!("input.{ext}"));
    if std::fs::write(&path, body).is_err() {
        return false;
    }
    match baton_memory::docs::read_document(&path) {
        Ok(doc) => {
            assert!(!doc.chunks.is_empty(), "text without chunks");
            assert!(
                doc.chunks.iter().all(|c| !c.trim().is_empty()),
                "an empty chunk"
            );
            true
        }
        Err(skip) => {
            assert!(!skip.0.trim().is_empty(), "a skip without a reason");
            false
        }
    }
}

fn eval_set(data: &[u8], _: &Path) -> bool {
    let text = String::from_utf8_lossy(data);
    accepted(baton_eval::parse_set("fuzz", &text))
}

fn ct2(data: &[u8], _: &Path) -> bool {
    accepted(baton_whisper_convert::ct2::Ct2Model::parse(
        data,
        Path::new("model.bin"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed is a valid input: mutations start from something the parser accepts.
    #[test]
    fn seeds_are_accepted() {
        let dir = std::env::temp_dir().join(format!("baton-fuzz-seeds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lossy = |d: &[u8]| String::from_utf8_lossy(d).into_owned();
        for d in seeds::gguf() {
            baton_llm::gguf::inspect_bytes(&d, "x.gguf").unwrap();
        }
        for d in seeds::espeak_wav() {
            baton_tts::parse_streamed_wav(&d).unwrap();
        }
        for d in seeds::wav() {
            std::fs::write(dir.join("a.wav"), &d).unwrap();
            baton_speech::decode_file(dir.join("a.wav")).unwrap();
        }
        assert_eq!(seeds::images().len(), 9);
        for d in seeds::images() {
            baton_vision::load_image_bytes(&d, &baton_vision::Limits::default()).unwrap();
        }
        for d in seeds::config() {
            baton_runtime::Config::parse(&lossy(&d), Path::new("c.toml")).unwrap();
        }
        for d in seeds::llm_protocol() {
            let line = lossy(&d);
            assert!(
                serde_json::from_str::<baton_llm::protocol::WorkerRequest>(&line).is_ok()
                    || serde_json::from_str::<baton_llm::protocol::WorkerEvent>(&line).is_ok(),
                "{line}"
            );
        }
        for d in seeds::stt_protocol() {
            let line = lossy(&d);
            assert!(
                serde_json::from_str::<baton_stt::protocol::SttRequest>(&line).is_ok()
                    || serde_json::from_str::<baton_stt::protocol::SttEvent>(&line).is_ok(),
                "{line}"
            );
        }
        for d in seeds::api_request() {
            baton_api::request::parse(&d).unwrap();
        }
        for d in seeds::template() {
            baton_tasks::Template::parse(&lossy(&d)).unwrap();
        }
        for d in seeds::cron() {
            let text = lossy(&d);
            let (expr, tz) = text.split_once('\n').unwrap();
            baton_tasks::CronSchedule::parse(expr, tz).unwrap();
        }
        for d in seeds::documents() {
            let path = dir.join(if d[0] == b'p' { "a.pdf" } else { "a.md" });
            std::fs::write(&path, &d[1..]).unwrap();
            baton_memory::docs::read_document(&path).unwrap_or_else(|s| panic!("{}", s.0));
        }
        for d in seeds::eval_set() {
            baton_eval::parse_set("s", &lossy(&d)).unwrap();
        }
        for d in seeds::ct2() {
            baton_whisper_convert::ct2::Ct2Model::parse(&d, Path::new("m.bin")).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
