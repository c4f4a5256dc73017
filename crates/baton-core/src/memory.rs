//! Ranking for memory search: one list from several rankings of the same items.

use std::collections::HashMap;
use std::hash::Hash;

/// Score fusion: each item scores `alpha · meaning + (1 − alpha) · words`, where `meaning`
/// is its cosine similarity (0 when it was not among the meaning hits) and `words` its
/// bm25 relative to the best words hit of the query (0..1; 0 when it did not match).
/// Unlike rank fusion it keeps how much better the first hit is than the next. Returns the
/// items best first; ties keep first-seen order (meaning hits first).
pub fn score_fusion<T: Clone + Eq + Hash>(
    meaning: &[(T, f64)],
    words: &[(T, f64)],
    alpha: f64,
) -> Vec<(T, f64)> {
    let best_words = words.iter().map(|(_, s)| *s).fold(0.0_f64, f64::max);
    let mut scores: HashMap<T, (f64, usize)> = HashMap::new();
    let mut seen = 0usize;
    let lists = [(meaning, alpha, 1.0), (words, 1.0 - alpha, best_words)];
    for (list, weight, scale) in lists {
        for (item, score) in list {
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            if scale > 0.0 {
                entry.0 += weight * (score / scale).clamp(0.0, 1.0);
            }
        }
    }
    let mut out: Vec<(T, f64, usize)> = scores
        .into_iter()
        .map(|(item, (score, order))| (item, score, order))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter()
        .map(|(item, score, _)| (item, score))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clearly_closer_meaning_beats_a_weak_word_match() {
        let meaning = [("right", 0.70), ("wrong", 0.30)];
        let words = [("wrong", 8.0), ("other", 2.0)];
        let fused: Vec<&str> = score_fusion(&meaning, &words, 0.9)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(fused, ["right", "wrong", "other"]);
        // Words alone decide when nothing is near in meaning.
        let fused = score_fusion(&[], &words, 0.9);
        assert_eq!(fused[0].0, "wrong");
        assert!((fused[0].1 - 0.1).abs() < 1e-9);
    }
}
