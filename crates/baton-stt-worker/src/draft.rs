//! Partial text that keeps up with the speaker: once an utterance is longer than
//! [`WHOLE_DRAFT_SECONDS`], a draft decodes only its last [`TAIL_SECONDS`] and joins that
//! onto the draft before it, so a draft costs the same at second 20 as at second 4
//! (decoding all of a 5.7 s utterance took 0.45–0.6 s on 2 cores; its last 3 s, 0.25 s).
//! Final text always decodes the whole utterance.

/// Utterances up to this long are drafted whole.
pub const WHOLE_DRAFT_SECONDS: f64 = 4.0;
/// The audio a longer utterance's draft decodes: its end.
pub const TAIL_SECONDS: f64 = 3.0;

/// A word compared without case or punctuation.
pub fn plain(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Joins `tail` (a draft of the utterance's last seconds) onto `earlier` (the draft before
/// it, which covered the start): the tail's words replace `earlier`'s from where the two
/// first agree on two words in a row. The tail's first three words may be skipped for that,
/// since the cut can fall inside a word. `None` when they never agree (the caller drafts
/// the whole utterance instead).
pub fn join_tail(earlier: &str, tail: &str) -> Option<String> {
    let old: Vec<&str> = earlier.split_whitespace().collect();
    let new: Vec<&str> = tail.split_whitespace().collect();
    let old_plain: Vec<String> = old.iter().map(|w| plain(w)).collect();
    let new_plain: Vec<String> = new.iter().map(|w| plain(w)).collect();
    for j in 0..new.len().saturating_sub(1).min(4) {
        let pair = (&new_plain[j], &new_plain[j + 1]);
        if pair.0.is_empty() || pair.1.is_empty() {
            continue;
        }
        // The latest place: the tail starts near the end of what was heard before.
        let found = (0..old.len().saturating_sub(1))
            .rev()
            .find(|&k| (&old_plain[k], &old_plain[k + 1]) == pair);
        if let Some(k) = found {
            let mut words = old[..k].to_vec();
            words.extend_from_slice(&new[j..]);
            return Some(words.join(" "));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_replaces_the_earlier_draft_from_where_they_agree() {
        let earlier = "Tomorrow morning I will take the early train to the";
        let tail = "ly train to the city, visit my grandmother";
        assert_eq!(
            join_tail(earlier, tail).unwrap(),
            "Tomorrow morning I will take the early train to the city, visit my grandmother"
        );
    }

    #[test]
    fn case_and_punctuation_do_not_stop_agreement_and_the_tail_wins() {
        let earlier = "Send the report to Maria. Before lunch";
        let tail = "maria before lunch, please.";
        assert_eq!(
            join_tail(earlier, tail).unwrap(),
            "Send the report to maria before lunch, please."
        );
    }

    #[test]
    fn no_agreement_is_none() {
        assert_eq!(
            join_tail("open the settings", "close all windows now"),
            None
        );
        assert_eq!(join_tail("", "anything at all"), None);
        assert_eq!(join_tail("something here", ""), None);
    }
}
