//! [`SileroVad`]: the Silero voice activity detector (v5/v6 ONNX model, as shipped in the
//! `silero-vad` 6.2.3 wheel as `silero_vad/data/silero_vad.onnx`) run through ONNX Runtime.
//!
//! The model's interface, as silero-vad's own `OnnxWrapper` drives it: at 16 kHz each call
//! takes 512 new samples with the last 64 samples of the previous call prepended (input
//! `[1, 576]` float32), the recurrent `state` `[2, 1, 128]` float32 carried from call to
//! call, and `sr` (int64 scalar, 16000). It returns the speech probability (`output`,
//! `[1, 1]`) and the next state (`stateN`).

use crate::error::{Result, SpeechInputError};
use baton_onnx::ort;
use std::path::Path;

/// Samples per frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 512;
/// Samples of the previous frame prepended to each call.
pub const CONTEXT_SAMPLES: usize = 64;
const STATE_LEN: usize = 2 * 128;

/// Anything that turns a 512-sample 16 kHz frame into a speech probability: the Silero
/// model, or a stand-in in tests.
pub trait VoiceDetector: Send {
    /// The probability (0..=1) that `frame` holds speech.
    fn speech_probability(&mut self, frame: &[f32; FRAME_SAMPLES]) -> Result<f32>;
    /// Forgets the state carried between frames, as at the start of a new stream.
    fn reset(&mut self);
}

/// The Silero VAD model with its carried state.
pub struct SileroVad {
    session: ort::session::Session,
    state: Vec<f32>,
    context: [f32; CONTEXT_SAMPLES],
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Loads `silero_vad.onnx` (one intra-op thread, as silero-vad does) and checks that it
    /// has the v5/v6 inputs `input`, `state` and `sr`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let model_err = |reason: String| SpeechInputError::Model {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(model_err("file not found".into()));
        }
        let env = baton_onnx::environment().map_err(model_err)?;
        let builder = ort::session::Session::builder(&env)
            .map_err(|e| model_err(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| model_err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| model_err(e.to_string()))?;
        let mut builder = builder;
        let session = builder
            .commit_from_file(path)
            .map_err(|e| model_err(e.to_string()))?;
        let names: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        for want in ["input", "state", "sr"] {
            if !names.iter().any(|n| n == want) {
                return Err(model_err(format!(
                    "it has inputs {names:?}, not the Silero v5/v6 inputs input, state and sr"
                )));
            }
        }
        Ok(Self {
            session,
            state: vec![0.0; STATE_LEN],
            context: [0.0; CONTEXT_SAMPLES],
        })
    }

    /// The probability (0..=1) that this 512-sample 16 kHz frame holds speech. Frames must
    /// be fed in order; the model carries state from one to the next.
    pub fn speech_probability(&mut self, frame: &[f32; FRAME_SAMPLES]) -> Result<f32> {
        let fail = |what: &str, e: ort::Error| SpeechInputError::Inference(format!("{what}: {e}"));
        let mut input = Vec::with_capacity(CONTEXT_SAMPLES + FRAME_SAMPLES);
        input.extend_from_slice(&self.context);
        input.extend_from_slice(frame);
        let input =
            ort::value::Tensor::from_array(([1usize, CONTEXT_SAMPLES + FRAME_SAMPLES], input))
                .map_err(|e| fail("input tensor", e))?;
        let state = ort::value::Tensor::from_array(([2usize, 1, 128], self.state.clone()))
            .map_err(|e| fail("state tensor", e))?;
        let sr = ort::value::Tensor::from_array(((), vec![16_000i64]))
            .map_err(|e| fail("sr tensor", e))?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])
            .map_err(|e| fail("the model failed", e))?;
        let (_, prob) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail("output", e))?;
        let p = *prob.first().ok_or_else(|| {
            SpeechInputError::Inference("the model returned an empty output".into())
        })?;
        let (_, next) = outputs[1]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail("state output", e))?;
        if next.len() != STATE_LEN {
            return Err(SpeechInputError::Inference(format!(
                "the model returned a state of {} values, expected {STATE_LEN}",
                next.len()
            )));
        }
        self.state.copy_from_slice(next);
        self.context
            .copy_from_slice(&frame[FRAME_SAMPLES - CONTEXT_SAMPLES..]);
        Ok(p)
    }

    /// Clears the carried state and context.
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|v| *v = 0.0);
        self.context = [0.0; CONTEXT_SAMPLES];
    }
}

impl VoiceDetector for SileroVad {
    fn speech_probability(&mut self, frame: &[f32; FRAME_SAMPLES]) -> Result<f32> {
        SileroVad::speech_probability(self, frame)
    }

    fn reset(&mut self) {
        SileroVad::reset(self);
    }
}

/// A crude energy detector: probability 1 when a frame's RMS is at least `threshold`,
/// else 0. For tests and as a fallback where the Silero model is missing; it cannot tell
/// speech from other sounds.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    /// RMS at or above which a frame counts as speech.
    pub threshold: f32,
}

impl VoiceDetector for EnergyVad {
    fn speech_probability(&mut self, frame: &[f32; FRAME_SAMPLES]) -> Result<f32> {
        Ok(if crate::rms(frame) >= self.threshold {
            1.0
        } else {
            0.0
        })
    }

    fn reset(&mut self) {}
}
