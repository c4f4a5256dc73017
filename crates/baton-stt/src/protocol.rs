//! The JSON-lines protocol between Baton and `baton-stt-worker`: one request per line on
//! the worker's stdin, one event per line on its stdout.
//!
//! Audio goes in as base64 little-endian `f32` samples (16 kHz mono) in chunks appended to
//! an utterance named by `id`; `partial` asks for the text so far, `finish` for the final
//! transcript. The worker answers every request that names an id with an event carrying it.

use serde::{Deserialize, Serialize};

/// The protocol version both sides must speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// Samples per second of every audio chunk.
pub const SAMPLE_RATE: u32 = 16_000;

/// A request to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SttRequest {
    /// Checks the versions match; answered by [`SttEvent::Ready`].
    Hello {
        /// The client's protocol version.
        version: u32,
    },
    /// Loads a whisper.cpp model (replacing the loaded one); answered by
    /// [`SttEvent::Loaded`] or an error.
    Load {
        /// Path of the ggml model file.
        model: String,
        /// CPU threads to use.
        threads: u32,
    },
    /// Appends audio to utterance `id` (creating it).
    Audio {
        /// The utterance.
        id: String,
        /// Base64 of little-endian f32 samples at 16 kHz, mono.
        samples: String,
    },
    /// Transcribes the utterance so far; answered by [`SttEvent::Partial`].
    Partial {
        /// The utterance.
        id: String,
        /// ISO 639-1 language, or `None` to detect it.
        language: Option<String>,
    },
    /// Transcribes the whole utterance and forgets it; answered by [`SttEvent::Done`].
    Finish {
        /// The utterance.
        id: String,
        /// ISO 639-1 language, or `None` to detect it.
        language: Option<String>,
    },
    /// Forgets an utterance without transcribing it.
    Cancel {
        /// The utterance.
        id: String,
    },
    /// Liveness check; answered by [`SttEvent::Pong`].
    Ping {
        /// Echoed back.
        id: String,
    },
}

/// A timed piece of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireSegment {
    /// Start in milliseconds from the beginning of the utterance.
    pub start_ms: i64,
    /// End in milliseconds.
    pub end_ms: i64,
    /// The text.
    pub text: String,
}

/// An event from the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SttEvent {
    /// The worker speaks `version` and has whisper.cpp's `system_info`.
    Ready {
        /// Its protocol version.
        version: u32,
        /// whisper.cpp's CPU features line.
        system: String,
    },
    /// A model is loaded.
    Loaded {
        /// The model path.
        model: String,
        /// Milliseconds the load took.
        ms: u64,
    },
    /// The text of an utterance so far.
    Partial {
        /// The utterance.
        id: String,
        /// Its text so far.
        text: String,
        /// Milliseconds the decoding took.
        ms: u64,
    },
    /// The final transcript of an utterance.
    Done {
        /// The utterance.
        id: String,
        /// The whole text.
        text: String,
        /// The language used or detected.
        language: Option<String>,
        /// Timed segments.
        segments: Vec<WireSegment>,
        /// Length of the audio in milliseconds.
        audio_ms: u64,
        /// Milliseconds the decoding took.
        ms: u64,
    },
    /// Answer to [`SttRequest::Ping`].
    Pong {
        /// The ping's id.
        id: String,
    },
    /// A request failed; `id` names the utterance when there was one.
    Error {
        /// The utterance, if any.
        id: Option<String>,
        /// What went wrong and what to do.
        message: String,
    },
}

/// Encodes samples for [`SttRequest::Audio`].
pub fn encode_samples(samples: &[f32]) -> String {
    use base64::Engine as _;
    let mut bytes = Vec::with_capacity(samples.len() * 4);
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes [`SttRequest::Audio`] samples; `None` when the text is not base64 of whole
/// f32 values.
pub fn decode_samples(text: &str) -> Option<Vec<f32>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_and_bad_text_is_refused() {
        let samples = [0.0, -1.0, 0.5, 1e-7];
        assert_eq!(decode_samples(&encode_samples(&samples)).unwrap(), samples);
        assert_eq!(decode_samples("not base64!"), None);
        assert_eq!(decode_samples("AAA="), None, "two bytes are not an f32");
    }

    #[test]
    fn requests_and_events_are_tagged_json_lines() {
        let r = SttRequest::Finish {
            id: "u1".into(),
            language: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"finish","id":"u1","language":null}"#
        );
        let e: SttEvent = serde_json::from_str(r#"{"type":"pong","id":"p"}"#).unwrap();
        assert_eq!(e, SttEvent::Pong { id: "p".into() });
    }
}
