//! [`Voice`]: the voice Baton speaks with, Piper when its files are there, espeak-ng
//! otherwise, and the [`baton_core::Synthesizer`] implementations.

use crate::error::TtsError;
use crate::espeak::EspeakVoice;
use crate::piper::{config_path_for, PiperVoice};
use async_trait::async_trait;
use baton_core::{AudioBuffer, SpeechError, Synthesizer};
use std::path::Path;

/// A voice: the Piper neural voice or the espeak-ng fallback.
#[derive(Debug, Clone)]
pub enum Voice {
    /// A Piper voice (natural).
    Piper(PiperVoice),
    /// espeak-ng (robotic, always available where espeak-ng is installed).
    Espeak(EspeakVoice),
}

/// The chosen voice and a one-line notice that says which voice is used and why.
#[derive(Debug, Clone)]
pub struct VoiceChoice {
    /// The voice.
    pub voice: Voice,
    /// Which voice is used and why, for the user (log it or show it).
    pub notice: String,
    /// Whether this is the fallback voice (the Piper voice could not be used).
    pub fallback: bool,
}

impl Voice {
    /// Chooses the voice: the Piper voice `piper_onnx` (its config next to it, as
    /// `MODEL.onnx.json`) when it loads, else espeak-ng's `espeak_voice`. Fails only when
    /// neither can be used, saying why for both.
    pub fn choose(piper_onnx: Option<&Path>, espeak_voice: &str) -> Result<VoiceChoice, TtsError> {
        let why_not_piper = match piper_onnx {
            None => "no Piper voice is configured".to_string(),
            Some(onnx) => match PiperVoice::load_default_config(onnx) {
                Ok(v) => {
                    return Ok(VoiceChoice {
                        notice: format!(
                            "using the Piper voice {} ({} Hz)",
                            onnx.display(),
                            v.sample_rate()
                        ),
                        voice: Voice::Piper(v),
                        fallback: false,
                    })
                }
                Err(e) => e.to_string(),
            },
        };
        let espeak = EspeakVoice::new(espeak_voice);
        match espeak.check() {
            Ok(()) => Ok(VoiceChoice {
                notice: format!(
                    "using the espeak-ng voice {espeak_voice} (robotic fallback) because {why_not_piper}; install the Piper voice with `baton models fetch` for natural speech"
                ),
                voice: Voice::Espeak(espeak),
                fallback: true,
            }),
            Err(e) => Err(TtsError::Synthesis(format!(
                "no voice can be used: {why_not_piper}; and the fallback failed: {e}"
            ))),
        }
    }

    /// A short name for logs: `piper:PATH` or `espeak-ng:VOICE`.
    pub fn describe(&self) -> String {
        match self {
            Voice::Piper(p) => format!("piper:{}", p.model_path().display()),
            Voice::Espeak(e) => format!("espeak-ng:{}", e.voice()),
        }
    }

    /// Synthesises `text` on this thread (blocking; use [`Synthesizer`] from async code).
    pub fn synthesize(&self, text: &str) -> Result<AudioBuffer, TtsError> {
        match self {
            Voice::Piper(p) => p.synthesize(text),
            Voice::Espeak(e) => e.synthesize(text),
        }
    }
}

/// Whether the Piper voice files for `onnx` are both present.
pub fn piper_files_present(onnx: &Path) -> bool {
    onnx.is_file() && config_path_for(onnx).is_file()
}

async fn blocking<F>(f: F) -> Result<AudioBuffer, SpeechError>
where
    F: FnOnce() -> Result<AudioBuffer, TtsError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SpeechError::Failed(format!("the synthesis task failed: {e}")))?
        .map_err(SpeechError::from)
}

#[async_trait]
impl Synthesizer for PiperVoice {
    /// Piper voices here have one speaker: `voice` is ignored.
    async fn synthesize(
        &self,
        text: &str,
        _voice: Option<&str>,
    ) -> Result<AudioBuffer, SpeechError> {
        let (v, text) = (self.clone(), text.to_string());
        blocking(move || v.synthesize(&text)).await
    }
}

#[async_trait]
impl Synthesizer for EspeakVoice {
    /// `voice` names another espeak-ng voice (`en-gb`, `de`); `None` uses this one's.
    async fn synthesize(
        &self,
        text: &str,
        voice: Option<&str>,
    ) -> Result<AudioBuffer, SpeechError> {
        let mut v = self.clone();
        if let Some(name) = voice {
            v = v.with_voice(name);
        }
        let text = text.to_string();
        blocking(move || v.synthesize(&text)).await
    }
}

#[async_trait]
impl Synthesizer for Voice {
    /// For espeak-ng, `voice` names another espeak-ng voice; the Piper voice ignores it.
    async fn synthesize(
        &self,
        text: &str,
        voice: Option<&str>,
    ) -> Result<AudioBuffer, SpeechError> {
        match self {
            Voice::Piper(p) => Synthesizer::synthesize(p, text, voice).await,
            Voice::Espeak(e) => Synthesizer::synthesize(e, text, voice).await,
        }
    }
}
