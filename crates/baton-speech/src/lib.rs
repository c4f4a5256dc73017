//! Baton's audio input.
//!
//! - [`decode`]: WAV, MP3, FLAC and OGG/Vorbis files to mono `f32` (`symphonia`), and
//!   resampling to 16 kHz (`rubato`).
//! - [`capture`]: the [`Microphone`] (`cpal`, a lock-free ring buffer, 16 kHz mono out).
//! - [`vad`]: the Silero voice activity detector through ONNX Runtime (`baton-onnx`).
//! - [`segment`]: the [`Segmenter`], which cuts utterances from per-frame probabilities.
//! - [`listener`]: the [`Listener`], all of the above as a stream of events.
#![warn(missing_docs)]

pub mod capture;
pub mod decode;
pub mod error;
pub mod listener;
pub mod segment;
pub mod vad;

pub use capture::Microphone;
pub use decode::{decode_file, to_16k_mono};
pub use error::SpeechInputError;
pub use listener::{BufferSource, ListenEvent, Listener, SampleSource};
pub use segment::{SegmentEvent, Segmenter, SegmenterConfig};
pub use vad::{EnergyVad, SileroVad, VoiceDetector};

/// Root mean square of `samples` (0 for an empty slice).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}
