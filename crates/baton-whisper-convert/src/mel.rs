//! The mel filter bank whisper.cpp's model file embeds: Slaney-style triangular filters
//! with Slaney area normalisation, as computed by librosa's `filters.mel` (`htk=False`,
//! `norm="slaney"`) and stored by openai-whisper in `mel_filters.npz`.

/// Whisper's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper's FFT window.
pub const N_FFT: usize = 400;
/// Mel bands of every Whisper model before large-v3.
pub const N_MELS: usize = 80;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hertz to mels on the Slaney scale (linear below 1 kHz, logarithmic above).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep()
    } else {
        hz / F_SP
    }
}

/// Mels on the Slaney scale to hertz.
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (mel - MIN_LOG_MEL)).exp()
    } else {
        mel * F_SP
    }
}

/// The filter bank, `n_mels` rows of `n_fft / 2 + 1` weights (row-major), from 0 Hz to
/// the Nyquist frequency. Computed in `f64`, returned as `f32` like librosa's.
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let sr = f64::from(sample_rate);
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * (sr / 2.0) / (n_bins - 1) as f64)
        .collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = Vec::with_capacity(n_mels * n_bins);
    for m in 0..n_mels {
        let (lo, mid, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for &f in &fft_freqs {
            let lower = (f - lo) / (mid - lo);
            let upper = (hi - f) / (hi - mid);
            weights.push((lower.min(upper).max(0.0) * enorm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_scale_round_trip() {
        let w = mel_filters(SAMPLE_RATE, N_FFT, N_MELS);
        assert_eq!(w.len(), 80 * 201);
        for hz in [0.0, 500.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    /// Reference values from openai-whisper's `whisper/assets/mel_filters.npz` (`mel_80`,
    /// release 20250625), which whisper.cpp's own converter copies into its files.
    #[test]
    fn matches_openai_whisper_mel_filters_npz() {
        let w = mel_filters(SAMPLE_RATE, N_FFT, N_MELS);
        let at = |m: usize, k: usize| w[m * 201 + k];
        let reference: [(usize, usize, f32); 10] = [
            (0, 1, 0.024_862_595),
            (1, 2, 0.022_871_772),
            (10, 10, 0.019_908_218),
            (10, 11, 0.004_954_375),
            (40, 42, 0.005_411_105),
            (40, 43, 0.014_735_566),
            (40, 44, 0.006_518_19),
            (79, 186, 0.000_366_741_67),
            (79, 190, 0.002_232_055),
            (79, 199, 0.000_448_759),
        ];
        for (m, k, want) in reference {
            let got = at(m, k);
            assert!(
                (got - want).abs() <= want.abs() * 1e-5 + 1e-9,
                "filter[{m}][{k}] = {got}, expected {want}"
            );
        }
        for (m, k) in [
            (0, 2),
            (1, 3),
            (10, 12),
            (40, 40),
            (40, 41),
            (79, 200),
            (30, 25),
        ] {
            assert_eq!(at(m, k), 0.0, "filter[{m}][{k}] should be zero");
        }
        assert_eq!(w.iter().filter(|&&x| x != 0.0).count(), 391);
        let sum: f64 = w.iter().map(|&x| f64::from(x)).sum();
        assert!((sum - 1.999_024_092_387_117).abs() < 1e-5, "sum {sum}");
    }
}
