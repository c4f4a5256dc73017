//! What scores mean: confidence intervals for a pass rate and for the difference between
//! two models (or modes) answering the same questions.

use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// The Wilson score interval of `passed` out of `total` (well behaved at 0% and 100% and for
/// small sets, unlike the normal approximation). `None` when `total` is 0.
pub fn wilson_interval(passed: u32, total: u32) -> Option<Interval> {
    if total == 0 {
        return None;
    }
    let n = f64::from(total);
    let p = f64::from(passed.min(total)) / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// A's pass rate minus B's on the same questions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Questions both answered.
    pub n: u32,
    /// Mean difference (A − B) in [-1, 1].
    pub mean: f64,
    /// Its 95% interval.
    pub interval: Interval,
    /// Questions only A passed.
    pub only_a: u32,
    /// Questions only B passed.
    pub only_b: u32,
}

impl PairedDifference {
    /// Whether the interval excludes zero (the difference is unlikely to be chance).
    pub fn significant(&self) -> bool {
        self.interval.low > 0.0 || self.interval.high < 0.0
    }
}

/// The paired difference of two models' results on the same questions (`(a_passed,
/// b_passed)` per question): the mean of the per-question differences with a normal
/// interval from their sample variance. Pairing removes the questions' own difficulty
/// from the noise, so fewer questions tell two models apart. `None` without questions.
pub fn paired_difference(pairs: &[(bool, bool)]) -> Option<PairedDifference> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let diffs: Vec<f64> = pairs
        .iter()
        .map(|(a, b)| f64::from(u8::from(*a)) - f64::from(u8::from(*b)))
        .collect();
    let mean = diffs.iter().sum::<f64>() / n;
    let var = if pairs.len() > 1 {
        diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let half = Z95 * (var / n).sqrt();
    Some(PairedDifference {
        n: pairs.len() as u32,
        mean,
        interval: Interval {
            low: (mean - half).max(-1.0),
            high: (mean + half).min(1.0),
        },
        only_a: pairs.iter().filter(|(a, b)| *a && !*b).count() as u32,
        only_b: pairs.iter().filter(|(a, b)| !*a && *b).count() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values() {
        // 8 of 10: the textbook Wilson interval is [0.490, 0.943].
        let i = wilson_interval(8, 10).unwrap();
        assert!(
            (i.low - 0.490).abs() < 0.002 && (i.high - 0.943).abs() < 0.002,
            "{i:?}"
        );
        let zero = wilson_interval(0, 20).unwrap();
        assert_eq!(zero.low, 0.0);
        assert!(zero.high > 0.1 && zero.high < 0.2, "{zero:?}");
        assert!(wilson_interval(0, 0).is_none());
    }

    #[test]
    fn paired_differences_tell_real_gaps_from_noise() {
        // A passes 30 more of 100 questions: a clear difference.
        let mut pairs = vec![(true, false); 30];
        pairs.extend(vec![(true, true); 50]);
        pairs.extend(vec![(false, false); 20]);
        let d = paired_difference(&pairs).unwrap();
        assert!((d.mean - 0.3).abs() < 1e-9);
        assert!(d.significant(), "{d:?}");
        assert_eq!((d.only_a, d.only_b), (30, 0));
        // One question each way out of 10: no difference.
        let mut pairs = vec![(true, false), (false, true)];
        pairs.extend(vec![(true, true); 8]);
        let d = paired_difference(&pairs).unwrap();
        assert_eq!(d.mean, 0.0);
        assert!(!d.significant(), "{d:?}");
        assert!(paired_difference(&[]).is_none());
    }
}
