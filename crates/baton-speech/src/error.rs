//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading audio: decoding files, capturing from a
/// microphone, resampling and voice activity detection. Every message is one line that says
/// what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SpeechInputError {
    /// The file does not exist.
    #[error("{}: file not found; check the path", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("{}: cannot read the file ({source}); check that it exists and is readable", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{}: the file is empty (0 bytes); record or export the audio again", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is bigger than [`crate::decode::MAX_FILE_BYTES`].
    #[error("{}: the file is {size} bytes, over the 2 GiB limit; split it into shorter files (e.g. `sox in.wav out.wav trim 0 3600 : newfile : restart`)", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The audio is longer than [`crate::decode::MAX_DURATION_SECS`].
    #[error("{}: the audio is {secs:.0} s long, over the 4-hour limit; split it into shorter files", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its duration (or the duration decoded before giving up), in seconds.
        secs: f64,
    },
    /// The file is not an audio file in a supported format.
    #[error("{}: not an audio file ({what}); use a WAV, MP3, FLAC or OGG/Vorbis file", path.display())]
    NotAudio {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        what: String,
    },
    /// The container holds no audio track.
    #[error("{}: the file holds no audio track (or ends before one); export the audio again as WAV, MP3, FLAC or OGG/Vorbis", path.display())]
    NoAudioTrack {
        /// The file.
        path: PathBuf,
    },
    /// The audio track holds no samples.
    #[error("{}: the audio track contains no samples; record or export the audio again", path.display())]
    NoSamples {
        /// The file.
        path: PathBuf,
    },
    /// The codec or a feature of the stream is not supported.
    #[error("{}: unsupported audio ({reason}); convert it to WAV, MP3, FLAC or OGG/Vorbis (e.g. `ffmpeg -i in out.wav`)", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// The file is damaged or truncated.
    #[error("{}: the audio data is corrupt or truncated ({reason}); re-export or re-download the file", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The resampler failed.
    #[error("cannot resample {from} Hz audio to {to} Hz: {reason}")]
    Resample {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
        /// What rubato said.
        reason: String,
    },
    /// No audio system could be reached.
    #[error("no audio system is available ({reason}); start PulseAudio or PipeWire, or check that ALSA sees a capture device (`arecord -l`)")]
    NoAudioSystem {
        /// What the audio backend said.
        reason: String,
    },
    /// There is no default input device.
    #[error(
        "there is no default input device; connect a microphone or pick one of: {}",
        list(available)
    )]
    NoInputDevice {
        /// The input devices that exist.
        available: Vec<String>,
    },
    /// The named input device does not exist.
    #[error("input device \"{name}\" not found; pick one of: {}", list(available))]
    DeviceNotFound {
        /// The name asked for.
        name: String,
        /// The input devices that exist.
        available: Vec<String>,
    },
    /// The input stream could not be opened or started.
    #[error("cannot record from input device \"{device}\" ({reason}); check that an audio server (PulseAudio/PipeWire) is running or pick another device of: {}", list(available))]
    StreamFailed {
        /// The device.
        device: String,
        /// What the audio backend said.
        reason: String,
        /// The input devices that exist.
        available: Vec<String>,
    },
    /// The device went away (unplugged, or its audio server source was removed) or stopped
    /// delivering audio while recording.
    #[error("input device \"{device}\" was lost while recording ({reason}); reconnect it or pick another input device")]
    DeviceLost {
        /// The device.
        device: String,
        /// What happened.
        reason: String,
    },
    /// The voice activity model could not be loaded.
    #[error("{}: cannot load the voice activity model ({reason}); run `baton models fetch` or point to silero_vad.onnx from the silero-vad 6.2.3 wheel", path.display())]
    Model {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Running the voice activity model failed.
    #[error("voice activity detection failed: {0}")]
    Inference(String),
}

fn list(devices: &[String]) -> String {
    if devices.is_empty() {
        "(none found)".into()
    } else {
        devices
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = SpeechInputError> = std::result::Result<T, E>;
