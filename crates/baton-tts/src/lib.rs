//! Baton's text to speech.
//!
//! - [`PiperVoice`]: a Piper neural voice (VITS, ONNX) run through ONNX Runtime
//!   (`baton-onnx`), phonemised like Piper with the espeak-ng command line
//!   ([`phonemize`]).
//! - [`EspeakVoice`]: espeak-ng itself, the fallback voice.
//! - [`Voice`]: chooses Piper when its files load, espeak-ng otherwise, and says why.
//!   All three implement [`baton_core::Synthesizer`] (the work runs on tokio's blocking
//!   pool).
//! - [`SentenceSplitter`]: streamed Markdown text to sentences, so speech can start
//!   while an answer is still being generated.
//! - [`Player`]: queued, interruptible playback (rodio); [`write_wav`].
//! - [`Reader`]: streamed text read aloud sentence by sentence on a [`Player`], stoppable.
#![warn(missing_docs)]

mod error;
mod espeak;
pub mod phonemize;
mod piper;
mod playback;
mod reader;
mod splitter;
mod voice;

pub use error::TtsError;
pub use espeak::{parse_streamed_wav, EspeakVoice};
pub use piper::{config_path_for, normalize_peak, PiperConfig, PiperVoice};
pub use playback::{write_wav, Player};
pub use reader::Reader;
pub use splitter::SentenceSplitter;
pub use voice::{piper_files_present, Voice, VoiceChoice};
