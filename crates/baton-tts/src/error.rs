//! [`TtsError`]: everything that can go wrong while turning text into sound.

use baton_core::SpeechError;
use std::path::PathBuf;
use thiserror::Error;

/// Errors of the text-to-speech crate. Every message says what to do about it.
#[derive(Debug, Error)]
pub enum TtsError {
    /// A voice file is missing.
    #[error("voice file {path} not found: {hint}")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// What to do.
        hint: String,
    },
    /// The voice's JSON config cannot be read or parsed.
    #[error("voice config {path} is not usable: {reason}; use the .onnx.json file shipped next to the voice's .onnx (`baton models fetch` reinstalls it)")]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The ONNX model cannot be loaded or has the wrong shape.
    #[error("voice model {path} cannot be loaded: {reason}; the file is probably corrupt or not a Piper voice: reinstall it (`baton models fetch`)")]
    BadModel {
        /// The model file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// ONNX Runtime is not available.
    #[error("{0}")]
    Runtime(String),
    /// espeak-ng is not installed.
    #[error("espeak-ng is not installed (needed for {purpose}): install it with `sudo apt install espeak-ng` (or your system's package manager)")]
    EspeakMissing {
        /// What espeak-ng was needed for.
        purpose: &'static str,
    },
    /// espeak-ng ran but failed.
    #[error("espeak-ng failed: {0}; check that the voice exists (`espeak-ng --voices`)")]
    Espeak(String),
    /// Inference failed.
    #[error("speech synthesis failed: {0}")]
    Synthesis(String),
    /// No audio output device is available.
    #[error("no audio output device: {0}; check that a sound server (PulseAudio/PipeWire) runs and `aplay -L` lists a device")]
    NoDevice(String),
    /// Reading or writing audio failed.
    #[error("audio file error on {path}: {reason}")]
    AudioFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The audio buffer cannot be used.
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
}

impl From<TtsError> for SpeechError {
    fn from(e: TtsError) -> Self {
        let msg = e.to_string();
        match e {
            TtsError::MissingFile { .. }
            | TtsError::BadConfig { .. }
            | TtsError::BadModel { .. }
            | TtsError::Runtime(_)
            | TtsError::EspeakMissing { .. } => SpeechError::Model(msg),
            TtsError::NoDevice(_) => SpeechError::NoDevice(msg),
            TtsError::InvalidAudio(_) => SpeechError::InvalidAudio(msg),
            TtsError::Espeak(_) | TtsError::Synthesis(_) | TtsError::AudioFile { .. } => {
                SpeechError::Failed(msg)
            }
        }
    }
}
