//! Speech traits: [`Recognizer`] (speech to text) and [`Synthesizer`] (text to speech).

use crate::error::SpeechError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Mono PCM audio as 32-bit floats in [-1, 1].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AudioBuffer {
    /// Samples per second.
    pub sample_rate: u32,
    /// The samples.
    pub samples: Vec<f32>,
}

impl AudioBuffer {
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Options for a transcription.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TranscribeOptions {
    /// ISO 639-1 language code, or `None` to detect it.
    pub language: Option<String>,
    /// Model name in the registry; `None` uses the default.
    pub model: Option<String>,
}

/// A piece of a transcript with its time span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    /// Start in seconds from the beginning of the audio.
    pub start: f64,
    /// End in seconds.
    pub end: f64,
    /// Recognised text.
    pub text: String,
}

/// The result of a transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The full text.
    pub text: String,
    /// The language used or detected.
    pub language: Option<String>,
    /// Timed segments.
    pub segments: Vec<TranscriptSegment>,
}

/// Speech to text.
#[async_trait]
pub trait Recognizer: Send + Sync {
    /// Transcribe 16 kHz mono audio, reporting partial text to `on_partial` as it firms up.
    async fn transcribe(
        &self,
        audio: AudioBuffer,
        options: TranscribeOptions,
        on_partial: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<Transcript, SpeechError>;
}

/// Text to speech.
#[async_trait]
pub trait Synthesizer: Send + Sync {
    /// Speak `text` with the named voice (`None`: the default voice).
    async fn synthesize(&self, text: &str, voice: Option<&str>)
        -> Result<AudioBuffer, SpeechError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_handles_zero_rate() {
        assert_eq!(AudioBuffer::default().duration_secs(), 0.0);
        let one_second = AudioBuffer {
            sample_rate: 16_000,
            samples: vec![0.0; 16_000],
        };
        assert_eq!(one_second.duration_secs(), 1.0);
    }
}
