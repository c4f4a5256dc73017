//! Decoding audio files (WAV, MP3, FLAC, OGG/Vorbis) to mono `f32` with `symphonia`, and
//! resampling to 16 kHz with `rubato`.

use crate::error::{Result, SpeechInputError};
use baton_core::AudioBuffer;
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Largest file [`decode_file`] accepts: 2 GiB.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Longest audio [`decode_file`] accepts: 4 hours.
pub const MAX_DURATION_SECS: u64 = 4 * 3600;
/// The rate speech models want.
pub const SPEECH_RATE: u32 = 16_000;
/// Lowest sample rate accepted: below it a header is damaged, not recorded audio.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest sample rate accepted (studio audio goes to 768 kHz). A damaged header claiming
/// billions of samples a second once kept the resampler busy for minutes.
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Most channels accepted (symphonia's channel masks hold 32).
pub const MAX_CHANNELS: u16 = 32;

/// Decodes a WAV, MP3, FLAC or OGG/Vorbis file at any sample rate and channel count into
/// mono `f32` samples (channels averaged) at the file's own sample rate.
///
/// Refused before decoding: a missing or empty file, one over [`MAX_FILE_BYTES`], a file
/// whose first bytes are not those of a supported audio format, and one whose header
/// declares more than [`MAX_DURATION_SECS`] of audio (formats without a declared length
/// stop decoding as soon as they pass the limit).
pub fn decode_file(path: impl AsRef<Path>) -> Result<AudioBuffer> {
    let path = path.as_ref();
    let p = || path.to_path_buf();
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(SpeechInputError::NotAudio {
            path: p(),
            what: "it is a directory or a device, not a file".into(),
        });
    }
    if meta.len() == 0 {
        return Err(SpeechInputError::Empty { path: p() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(SpeechInputError::TooLarge {
            path: p(),
            size: meta.len(),
        });
    }
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut head = Vec::with_capacity(HEAD_BYTES as usize);
    (&mut file)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| io_error(path, e))?;
    if let Some(what) = not_audio(&head) {
        return Err(SpeechInputError::NotAudio { path: p(), what });
    }
    if let Some(reason) = wav_header_problem(&head) {
        return Err(SpeechInputError::Corrupt { path: p(), reason });
    }
    // Symphonia panics on some damaged files (a zero time base, an overflowing channel
    // mask): a panic is a damaged file too, never the end of the app.
    std::panic::catch_unwind(|| decode_checked(path, meta.len(), &head)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(SpeechInputError::Corrupt {
            path: p(),
            reason: format!("the decoder gave up on damaged data ({what})"),
        })
    })
}

/// Bytes read before decoding, to recognise the format and check a WAV header.
const HEAD_BYTES: u64 = 4096;

/// The WAV header's `fmt ` fields, when `head` starts a RIFF/WAVE file and holds them:
/// a reason to refuse the file when they cannot describe real audio.
fn wav_header_problem(head: &[u8]) -> Option<String> {
    if !(head.starts_with(b"RIFF") || head.starts_with(b"RF64")) || head.get(8..12) != Some(b"WAVE")
    {
        return None;
    }
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut at = 12;
    while let (Some(id), Some(size)) = (head.get(at..at + 4), u32_at(at + 4)) {
        if id == b"fmt " {
            let (channels, rate, bits) = (u16_at(at + 10)?, u32_at(at + 12)?, u16_at(at + 22)?);
            return if channels == 0 || channels > MAX_CHANNELS {
                Some(format!(
                    "the WAV header claims {channels} channels; audio has 1 to {MAX_CHANNELS}"
                ))
            } else if let Some(problem) = rate_problem(rate, "the WAV header") {
                Some(problem)
            } else if bits == 0 || bits > 64 {
                Some(format!(
                    "the WAV header claims {bits} bits a sample; audio has 8 to 64"
                ))
            } else {
                None
            };
        }
        at = at.checked_add(8 + size as usize + (size as usize & 1))?;
    }
    None
}

/// Why a sample rate `header` gives cannot be real audio, if it cannot.
fn rate_problem(rate: u32, header: &str) -> Option<String> {
    (!(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate)).then(|| {
        format!(
            "{header} claims a sample rate of {rate} Hz; audio is recorded at {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, so the header is damaged"
        )
    })
}

/// [`decode_file`] past the checks of the file itself.
fn decode_checked(path: &Path, file_len: u64, head: &[u8]) -> Result<AudioBuffer> {
    let p = || path.to_path_buf();
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => SpeechInputError::NotAudio {
                path: p(),
                what: "no supported audio format recognised".into(),
            },
            // Symphonia's Ogg reader reads to the end looking for a stream it knows.
            SymError::IoError(e)
                if head.starts_with(b"OggS") && e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                SpeechInputError::NoAudioTrack { path: p() }
            }
            other => classify(path, other),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| SpeechInputError::NoAudioTrack { path: p() })?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let rate = params
        .sample_rate
        .filter(|&r| r > 0)
        .ok_or_else(|| SpeechInputError::Corrupt {
            path: p(),
            reason: "the header gives no sample rate".into(),
        })?;
    if let Some(reason) = rate_problem(rate, "the header") {
        return Err(SpeechInputError::Corrupt { path: p(), reason });
    }
    if let Some(n) = params.n_frames {
        if n / u64::from(rate) > MAX_DURATION_SECS {
            return Err(SpeechInputError::TooLong {
                path: p(),
                secs: n as f64 / f64::from(rate),
            });
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| SpeechInputError::Unsupported {
            path: p(),
            reason: e.to_string(),
        })?;
    let max_frames = MAX_DURATION_SECS * u64::from(rate);
    // The header's frame count is a claim: reserve no more than the file could hold.
    let mut mono: Vec<f32> =
        Vec::with_capacity(params.n_frames.unwrap_or(0).min(max_frames).min(file_len) as usize);
    let mut sample_buf: Option<SampleBuffer<f32>> = None;
    let (mut good, mut bad, mut last_bad) = (0usize, 0usize, String::new());
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                if good > 0 && matches!(e, SymError::DecodeError(_)) {
                    // A damaged tail after good audio: keep what was decoded.
                    break;
                }
                return Err(classify(path, e));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(msg)) => {
                bad += 1;
                last_bad = msg.to_string();
                continue;
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(classify(path, e)),
        };
        good += 1;
        let spec = *decoded.spec();
        if spec.rate != rate {
            return Err(SpeechInputError::Unsupported {
                path: p(),
                reason: format!("the sample rate changes from {rate} Hz to {} Hz", spec.rate),
            });
        }
        let channels = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        if sample_buf
            .as_ref()
            .is_none_or(|b| (b.capacity() as u64) < needed * channels as u64)
        {
            sample_buf = Some(SampleBuffer::new(needed, spec));
        }
        let buf = sample_buf.as_mut().expect("allocated above");
        buf.copy_interleaved_ref(decoded);
        let samples = buf.samples();
        // Float files can hold NaN, infinities and values far past full scale, which
        // poison every later step (the resampler's FFT refuses them): NaN becomes silence
        // and the rest is clipped to full scale, as a player would.
        let clip = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
        if channels == 1 {
            mono.extend(samples.iter().map(|&v| clip(v)));
        } else {
            let scale = 1.0 / channels as f32;
            mono.extend(
                samples
                    .chunks_exact(channels)
                    .map(|f| f.iter().map(|&v| clip(v)).sum::<f32>() * scale),
            );
        }
        if mono.len() as u64 > max_frames {
            return Err(SpeechInputError::TooLong {
                path: p(),
                secs: mono.len() as f64 / f64::from(rate),
            });
        }
    }
    if bad > 0 && bad >= good {
        return Err(SpeechInputError::Corrupt {
            path: p(),
            reason: format!(
                "{bad} of {} packets could not be decoded: {last_bad}",
                bad + good
            ),
        });
    }
    if let Some(declared) = params.n_frames.filter(|&n| n > 0) {
        // The header promised audio that is not there: damaged or cut short.
        if (mono.len() as u64) < declared - declared / 10 {
            return Err(SpeechInputError::Corrupt {
                path: p(),
                reason: format!(
                    "the header declares {:.2} s of audio but only {:.2} s could be decoded",
                    declared as f64 / f64::from(rate),
                    mono.len() as f64 / f64::from(rate)
                ),
            });
        }
    }
    if mono.is_empty() {
        return Err(SpeechInputError::NoSamples { path: p() });
    }
    Ok(AudioBuffer {
        sample_rate: rate,
        samples: mono,
    })
}

fn io_error(path: &Path, e: std::io::Error) -> SpeechInputError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SpeechInputError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        SpeechInputError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

fn classify(path: &Path, e: SymError) -> SpeechInputError {
    let path: PathBuf = path.to_path_buf();
    match e {
        SymError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            SpeechInputError::Corrupt {
                path,
                reason: "the file ends in the middle of its header or data".into(),
            }
        }
        SymError::IoError(e) => SpeechInputError::Io { path, source: e },
        SymError::DecodeError(msg) => SpeechInputError::Corrupt {
            path,
            reason: msg.into(),
        },
        SymError::Unsupported(msg) => SpeechInputError::Unsupported {
            path,
            reason: msg.into(),
        },
        SymError::LimitError(msg) => SpeechInputError::Corrupt {
            path,
            reason: format!("a limit was exceeded: {msg}"),
        },
        other => SpeechInputError::Corrupt {
            path,
            reason: other.to_string(),
        },
    }
}

/// Looks at the first bytes: `None` when they may start a supported audio file, otherwise
/// a short description of what the file looks like.
fn not_audio(head: &[u8]) -> Option<String> {
    let starts = |m: &[u8]| head.starts_with(m);
    let audio = starts(b"RIFF")
        || starts(b"RF64")
        || starts(b"fLaC")
        || starts(b"OggS")
        || starts(b"ID3")
        || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0);
    if audio {
        return None;
    }
    let what = if starts(b"\x89PNG") {
        "it is a PNG image"
    } else if starts(b"\xFF\xD8\xFF") {
        "it is a JPEG image"
    } else if starts(b"%PDF") {
        "it is a PDF document"
    } else if starts(b"PK\x03\x04") {
        "it is a ZIP archive"
    } else if starts(b"\x7FELF") {
        "it is a program"
    } else if head
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "it looks like text"
    } else {
        "its first bytes match no supported audio format"
    };
    Some(what.into())
}

/// Resamples mono audio to 16 kHz with rubato's FFT resampler (fixed ratio, accurate and
/// fast for whole clips). The output has `round(len * 16000 / rate)` samples; 16 kHz input
/// is returned as is and a zero sample rate gives an empty buffer.
pub fn to_16k_mono(audio: &AudioBuffer) -> AudioBuffer {
    AudioBuffer {
        sample_rate: SPEECH_RATE,
        samples: resample(&audio.samples, audio.sample_rate, SPEECH_RATE)
            .unwrap_or_else(|_| linear_resample(&audio.samples, audio.sample_rate, SPEECH_RATE)),
    }
}

/// Resamples a whole mono clip from `from` Hz to `to` Hz.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to {
        return Ok(samples.to_vec());
    }
    if from == 0 || to == 0 || samples.is_empty() {
        return Ok(Vec::new());
    }
    let err = |reason: String| SpeechInputError::Resample { from, to, reason };
    let rates = MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE;
    if !rates.contains(&from) || !rates.contains(&to) {
        return Err(err(format!(
            "rates outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz are not audio"
        )));
    }
    let mut r = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| err(e.to_string()))?;
    let input = SequentialSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let out = r
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data())
}

fn linear_resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == 0 || samples.is_empty() {
        return Vec::new();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..n)
        .map(|i| {
            let x = i as f64 * step;
            let i0 = x as usize;
            let f = (x - i0 as f64) as f32;
            let a = samples[i0.min(samples.len() - 1)];
            let b = samples[(i0 + 1).min(samples.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_length_and_tone() {
        let tone: Vec<f32> = (0..44_100)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 0.5)
            .collect();
        let out = to_16k_mono(&AudioBuffer {
            sample_rate: 44_100,
            samples: tone,
        });
        assert_eq!(out.sample_rate, 16_000);
        assert!(
            (out.samples.len() as i64 - 16_000).abs() <= 2,
            "{}",
            out.samples.len()
        );
        let peak = out.samples[1000..15_000]
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.02, "{peak}");
    }

    #[test]
    fn sniffing_tells_audio_from_other_files() {
        assert!(not_audio(b"RIFF\0\0\0\0WAVEfmt ").is_none());
        assert!(not_audio(b"fLaC\0\0\0\"").is_none());
        assert!(not_audio(b"OggS\0\x02").is_none());
        assert!(not_audio(b"ID3\x04").is_none());
        assert!(not_audio(&[0xFF, 0xFB, 0x90, 0x64]).is_none());
        assert!(not_audio(b"\x89PNG\r\n\x1a\n").unwrap().contains("PNG"));
        assert!(not_audio(b"hello world\n").unwrap().contains("text"));
    }

    #[test]
    fn linear_fallback_scales_length() {
        assert_eq!(linear_resample(&[0.0; 480], 48_000, 16_000).len(), 160);
        assert!(linear_resample(&[0.0; 10], 0, 16_000).is_empty());
    }
}
