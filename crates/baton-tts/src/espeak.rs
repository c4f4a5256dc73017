//! [`EspeakVoice`]: the espeak-ng command line as a voice (robotic, but always available).

use crate::error::TtsError;
use crate::phonemize::run_espeak;
use baton_core::AudioBuffer;
use std::io::Cursor;
use std::path::PathBuf;

/// Speech from `espeak-ng --stdout -v VOICE`, its WAV output parsed in memory.
#[derive(Debug, Clone)]
pub struct EspeakVoice {
    program: PathBuf,
    voice: String,
    /// Speaking rate in words per minute (`-s`); `None` keeps espeak-ng's default (175).
    pub words_per_minute: Option<u32>,
}

impl EspeakVoice {
    /// An espeak-ng voice by name (`en-us`), using `espeak-ng` from `PATH`.
    pub fn new(voice: impl Into<String>) -> Self {
        Self {
            program: PathBuf::from("espeak-ng"),
            voice: voice.into(),
            words_per_minute: None,
        }
    }

    /// Uses another espeak-ng executable.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// The same settings with another espeak-ng voice.
    pub fn with_voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = voice.into();
        self
    }

    /// The espeak-ng voice name.
    pub fn voice(&self) -> &str {
        &self.voice
    }

    /// Checks that espeak-ng runs and knows the voice.
    pub fn check(&self) -> Result<(), TtsError> {
        self.synthesize("a").map(|_| ())
    }

    /// Synthesises `text` (mono, espeak-ng's rate: 22050 Hz). Text with nothing to say
    /// gives an empty buffer.
    pub fn synthesize(&self, text: &str) -> Result<AudioBuffer, TtsError> {
        if !text.chars().any(char::is_alphanumeric) {
            return Ok(AudioBuffer {
                sample_rate: 22_050,
                samples: Vec::new(),
            });
        }
        let rate;
        let mut args = vec!["--stdout", "-b", "1", "-v", &self.voice];
        if let Some(wpm) = self.words_per_minute {
            rate = wpm.to_string();
            args.extend(["-s", &rate]);
        }
        let wav = run_espeak(&self.program, &args, text, "the espeak-ng voice")?;
        parse_streamed_wav(&wav)
    }
}

/// Parses a WAV as espeak-ng streams it to stdout: its header's lengths are placeholders
/// (0x7ffff000), so samples are read until the data really ends. 16-bit PCM, any channel
/// count (channels are averaged to mono).
pub fn parse_streamed_wav(bytes: &[u8]) -> Result<AudioBuffer, TtsError> {
    let reader = hound::WavReader::new(Cursor::new(bytes))
        .map_err(|e| TtsError::Espeak(format!("its output is not a WAV file: {e}")))?;
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(TtsError::Espeak(format!(
            "unexpected WAV format {spec:?}; expected 16-bit PCM"
        )));
    }
    let channels = usize::from(spec.channels.max(1));
    let mut interleaved = Vec::new();
    for s in reader.into_samples::<i16>() {
        match s {
            Ok(v) => interleaved.push(f32::from(v) / 32768.0),
            // The placeholder length runs past the real end: stop there.
            Err(_) => break,
        }
    }
    let samples = interleaved
        .chunks(channels)
        .filter(|c| c.len() == channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(AudioBuffer {
        sample_rate: spec.sample_rate,
        samples,
    })
}
