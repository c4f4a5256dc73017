//! Accuracy measures: character error rate for OCR, precision and recall for detection.

use baton_core::{BoundingBox, ElementKind, UiElement};

/// Collapses every run of whitespace into one space and trims the ends, so that line
/// breaks and indentation do not count as errors.
pub fn normalize_text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Levenshtein distance between two sequences (characters for OCR, words for speech).
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Character error rate of `hypothesis` against `reference`: edit distance over the
/// reference length, both normalised with [`normalize_text`].
pub fn character_error_rate(hypothesis: &str, reference: &str) -> f64 {
    let h: Vec<char> = normalize_text(hypothesis).chars().collect();
    let r: Vec<char> = normalize_text(reference).chars().collect();
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&h, &r) as f64 / r.len() as f64
}

/// A ground-truth element for detection scoring.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TruthElement {
    /// What it is.
    pub kind: ElementKind,
    /// Where it is.
    pub bbox: BoundingBox,
}

/// Precision and recall of a detection run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DetectionScore {
    /// Detections that matched a truth element of the same kind.
    pub true_positives: usize,
    /// All detections.
    pub detections: usize,
    /// All truth elements.
    pub truths: usize,
    /// `true_positives / detections`.
    pub precision: f64,
    /// `true_positives / truths`.
    pub recall: f64,
}

/// Greedy one-to-one matching by IoU (highest first); a match needs the same kind and
/// IoU ≥ `min_iou`.
pub fn score_detections(
    detections: &[UiElement],
    truth: &[TruthElement],
    min_iou: f64,
) -> DetectionScore {
    let mut pairs = Vec::new();
    for (i, d) in detections.iter().enumerate() {
        for (j, t) in truth.iter().enumerate() {
            if d.kind == t.kind {
                let iou = d.bbox.iou(&t.bbox);
                if iou >= min_iou {
                    pairs.push((iou, i, j));
                }
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut used_d = vec![false; detections.len()];
    let mut used_t = vec![false; truth.len()];
    let mut tp = 0;
    for (_, i, j) in pairs {
        if !used_d[i] && !used_t[j] {
            used_d[i] = true;
            used_t[j] = true;
            tp += 1;
        }
    }
    let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    DetectionScore {
        true_positives: tp,
        detections: detections.len(),
        truths: truth.len(),
        precision: ratio(tp, detections.len()),
        recall: ratio(tp, truth.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cer_counts_edits_over_reference_length() {
        assert_eq!(character_error_rate("hello world", "hello  world\n"), 0.0);
        assert!((character_error_rate("hallo", "hello") - 0.2).abs() < 1e-12);
        assert_eq!(character_error_rate("", "abcd"), 1.0);
        assert_eq!(character_error_rate("", ""), 0.0);
    }

    #[test]
    fn detection_scoring_matches_one_to_one() {
        let b = |x| BoundingBox {
            x,
            y: 0,
            width: 10,
            height: 10,
        };
        let det = |x| UiElement {
            kind: ElementKind::Button,
            bbox: b(x),
            confidence: 1.0,
            text: None,
        };
        let truth = vec![TruthElement {
            kind: ElementKind::Button,
            bbox: b(0),
        }];
        let s = score_detections(&[det(0), det(1)], &truth, 0.5);
        assert_eq!(s.true_positives, 1);
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.recall, 1.0);
    }
}
