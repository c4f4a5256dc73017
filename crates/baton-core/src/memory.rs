//! Ranking for memory search: one list from several rankings of the same items.

use std::collections::HashMap;
use std::hash::Hash;

/// The `k` of reciprocal rank fusion: how much the top places count over the rest (60 is
/// the value of Cormack, Clarke and Büttcher's paper, and works without tuning).
pub const RRF_K: f64 = 60.0;

/// Reciprocal rank fusion: each item scores `Σ 1 / (k + rank)` over the lists it is in
/// (rank from 1), so an item high in either list, or fairly high in both, comes first.
/// Returns the items with their scores, best first; ties keep first-seen order.
pub fn reciprocal_rank_fusion<T: Clone + Eq + Hash>(lists: &[Vec<T>], k: f64) -> Vec<(T, f64)> {
    let mut scores: HashMap<T, (f64, usize)> = HashMap::new();
    let mut seen = 0usize;
    for list in lists {
        for (rank, item) in list.iter().enumerate() {
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            entry.0 += 1.0 / (k + rank as f64 + 1.0);
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
    fn items_high_in_both_lists_win_and_single_list_items_follow() {
        let words = vec!["a", "b", "c"];
        let meaning = vec!["c", "d", "a"];
        let fused: Vec<&str> = reciprocal_rank_fusion(&[words, meaning], RRF_K)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(fused, ["a", "c", "b", "d"]);
        assert!(reciprocal_rank_fusion::<u8>(&[], RRF_K).is_empty());
        // One list alone keeps its order.
        let one: Vec<u8> = reciprocal_rank_fusion(&[vec![3, 1, 2]], RRF_K)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(one, [3, 1, 2]);
    }
}
