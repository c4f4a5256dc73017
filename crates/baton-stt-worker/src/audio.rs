//! Reading WAV files into what Whisper wants: 16 kHz mono `f32` samples in [-1, 1].

use anyhow::{bail, Context as _, Result};
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};
use std::path::Path;

/// Whisper's sample rate.
pub const WHISPER_RATE: u32 = 16_000;

/// Reads a PCM WAV file (8/16/24/32-bit integer or 32-bit float, any channel count and
/// rate), mixes it down to mono and resamples it to 16 kHz.
pub fn load_wav(path: &Path) -> Result<Vec<f32>> {
    let shown = path.display();
    std::fs::metadata(path).with_context(|| format!("{shown}: cannot read the audio file"))?;
    let reader = hound::WavReader::open(path).map_err(|e| {
        let why = match e {
            hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                "the file ends inside the WAV header".to_string()
            }
            other => other.to_string(),
        };
        anyhow::anyhow!(
            "{shown}: not a readable WAV file ({why}); convert it to 16 kHz mono PCM WAV, \
             e.g. `sox IN -r 16000 -c 1 -b 16 OUT.wav`"
        )
    })?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        bail!(
            "{shown}: WAV header declares {} channels at {} Hz",
            spec.channels,
            spec.sample_rate
        );
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .with_context(|| format!("{shown}: corrupt or truncated WAV data"))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .with_context(|| format!("{shown}: corrupt or truncated WAV data"))?
        }
    };
    let channels = usize::from(spec.channels);
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    if mono.is_empty() {
        bail!("{shown}: the WAV file contains no audio samples; record or export some audio first");
    }
    if spec.sample_rate == WHISPER_RATE {
        return Ok(mono);
    }
    resample(&mono, spec.sample_rate, WHISPER_RATE).with_context(|| {
        format!(
            "{shown}: cannot resample {} Hz audio to 16 kHz",
            spec.sample_rate
        )
    })
}

/// Resamples mono audio from `from` Hz to `to` Hz (FFT resampler, fixed ratio).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)?;
    let channels = [samples.to_vec()];
    let input = SequentialSliceOfVecs::new(&channels[..], 1, samples.len())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let out = resampler.process_all(&input, samples.len(), None)?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_length_and_tone() {
        let tone: Vec<f32> = (0..44_100)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin() * 0.5)
            .collect();
        let out = resample(&tone, 44_100, 16_000).unwrap();
        assert!((out.len() as i64 - 16_000).abs() <= 2, "{}", out.len());
        let peak = out[1000..15_000].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.02, "{peak}");
    }
}
