//! Multi-model modes: fan-out with a merge (vote, weighted vote, judge) and
//! critique-and-refine, as pure decisions, prompts and parsers. The runtime executes them.

use crate::chat::ChatMessage;
use crate::routing::RoutingDecision;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How answers of a fan-out are merged into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    /// Majority vote over normalised short answers; long answers fall back to the judge.
    Vote,
    /// Vote where each model counts with its measured weight (success rate, ratings).
    Weighted,
    /// A judge model scores each answer; the best one wins.
    Judge,
}

impl FromStr for MergeStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vote" => Ok(Self::Vote),
            "weighted" => Ok(Self::Weighted),
            "judge" => Ok(Self::Judge),
            other => Err(format!(
                "unknown merge strategy `{other}`: expected vote, weighted or judge"
            )),
        }
    }
}

impl fmt::Display for MergeStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vote => "vote",
            Self::Weighted => "weighted",
            Self::Judge => "judge",
        })
    }
}

/// The most critique-and-refine rounds a request may ask for.
pub const MAX_REFINE_ROUNDS: u32 = 10;

/// Answers longer than this many words are not compared by vote.
pub const SHORT_ANSWER_WORDS: usize = 16;

/// Lowercases, drops punctuation and filler ("the answer is"), and collapses whitespace, so
/// "Paris." and "The answer is paris" vote together.
pub fn normalize_answer(text: &str) -> String {
    let lower = text.trim().to_lowercase();
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || c == '-' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    for filler in [
        &["the", "answer", "is"][..],
        &["answer"][..],
        &["it", "is"][..],
    ] {
        if words.len() > filler.len() && words[..filler.len()] == *filler {
            words.drain(..filler.len());
        }
    }
    words.join(" ")
}

/// Whether an answer is short enough to be compared by vote.
pub fn is_short_answer(text: &str) -> bool {
    text.split_whitespace().count() <= SHORT_ANSWER_WORDS
}

/// One branch's answer going into a vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ballot {
    /// The model that answered.
    pub model: String,
    /// Its answer.
    pub text: String,
    /// Its weight (1 for a plain vote).
    pub weight: f64,
}

/// The result of a vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteOutcome {
    /// Index into the ballots of the answer that represents the winning group.
    pub winner: usize,
    /// Weight behind the winner.
    pub support: f64,
    /// Total weight cast.
    pub total: f64,
    /// Models whose answers agreed with the winner.
    pub agreeing: Vec<String>,
}

/// Votes over short answers. Returns `None` when any answer is long (votes over prose mean
/// nothing) or there are no ballots. Ties go to the group whose first answer came first.
pub fn vote(ballots: &[Ballot]) -> Option<VoteOutcome> {
    if ballots.is_empty() || ballots.iter().any(|b| !is_short_answer(&b.text)) {
        return None;
    }
    let keys: Vec<String> = ballots.iter().map(|b| normalize_answer(&b.text)).collect();
    let total: f64 = ballots.iter().map(|b| b.weight.max(0.0)).sum();
    let mut best: Option<(usize, f64)> = None;
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            continue;
        }
        let support: f64 = keys
            .iter()
            .zip(ballots)
            .filter(|(k, _)| *k == key)
            .map(|(_, b)| b.weight.max(0.0))
            .sum();
        if best.is_none_or(|(_, s)| support > s) {
            best = Some((i, support));
        }
    }
    let (winner, support) = best?;
    Some(VoteOutcome {
        winner,
        support,
        total,
        agreeing: keys
            .iter()
            .zip(ballots)
            .filter(|(k, _)| **k == keys[winner])
            .map(|(_, b)| b.model.clone())
            .collect(),
    })
}

/// Parses a judge's score out of its reply: the first number in 0..=10 ("Score: 7/10",
/// "8.5", "I'd give it a 6"). `None` when the reply has no usable number.
pub fn parse_score(reply: &str) -> Option<f64> {
    let mut chars = reply.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_ascii_digit() {
            continue;
        }
        let mut end = start + 1;
        while let Some(&(i, d)) = chars.peek() {
            if d.is_ascii_digit() || (d == '.' && !reply[start..i].contains('.')) {
                end = i + 1;
                chars.next();
            } else {
                break;
            }
        }
        let number = reply[start..end].trim_end_matches('.');
        if let Ok(value) = number.parse::<f64>() {
            if (0.0..=10.0).contains(&value) {
                return Some(value);
            }
        }
    }
    None
}

/// The conversation asking a judge to score an answer from 0 to 10.
pub fn judge_messages(question: &str, answer: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You grade answers. Reply with a single line: `Score: N` where N is 0 (wrong or \
             useless) to 10 (correct, complete and clear), then one short sentence why.",
        ),
        ChatMessage::user(format!(
            "Question:\n{question}\n\nAnswer:\n{answer}\n\nGrade the answer."
        )),
    ]
}

/// The conversation asking a critic to find problems in a draft.
pub fn critique_messages(question: &str, draft: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You review answers. List concrete mistakes, omissions and unclear parts of the \
             draft, most important first, in at most five short bullet points. Do not rewrite it.",
        ),
        ChatMessage::user(format!(
            "Question:\n{question}\n\nDraft answer:\n{draft}\n\nYour critique:"
        )),
    ]
}

/// The conversation asking the primary model to revise its draft given the critiques.
pub fn revise_messages(
    question: &str,
    draft: &str,
    critiques: &[(String, String)],
) -> Vec<ChatMessage> {
    let notes = critiques
        .iter()
        .map(|(model, text)| format!("From {model}:\n{text}"))
        .collect::<Vec<_>>()
        .join("\n\n");
    vec![
        ChatMessage::system(
            "You improve answers. Write the complete improved answer to the question, fixing \
             what the reviewers found. Reply with the answer only.",
        ),
        ChatMessage::user(format!(
            "Question:\n{question}\n\nDraft answer:\n{draft}\n\nReviews:\n{notes}\n\nImproved answer:"
        )),
    ]
}

/// Why a critique-and-refine loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefineStop {
    /// The configured number of rounds ran.
    MaxRounds,
    /// The judged score did not improve by at least the minimum gain.
    NoImprovement,
    /// The answer reached the top score.
    Perfect,
}

impl fmt::Display for RefineStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaxRounds => "the configured number of rounds ran",
            Self::NoImprovement => "the judged score stopped improving",
            Self::Perfect => "the answer got the top score",
        })
    }
}

/// Decides whether to run another round, given the scores so far (the draft's first, then
/// one per revision). `None` means go on.
pub fn refine_should_stop(scores: &[f64], max_rounds: u32, min_gain: f64) -> Option<RefineStop> {
    let last = *scores.last()?;
    if last >= 10.0 {
        return Some(RefineStop::Perfect);
    }
    let rounds_done = scores.len().saturating_sub(1) as u32;
    if scores.len() >= 2 {
        let best_before = scores[..scores.len() - 1]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if last < best_before + min_gain {
            return Some(RefineStop::NoImprovement);
        }
    }
    if rounds_done >= max_rounds.min(MAX_REFINE_ROUNDS) {
        return Some(RefineStop::MaxRounds);
    }
    None
}

/// Index of the best-scored version (the earliest on ties): a revision that made things worse
/// is not what the user gets.
pub fn best_version(scores: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.iter().enumerate() {
        if best.is_none_or(|(_, b)| *s > b) {
            best = Some((i, *s));
        }
    }
    best.map(|(i, _)| i)
}

/// A progress event of an orchestrated request, streamed to the CLI and the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrchestrationEvent {
    /// The router chose a model.
    Routed {
        /// The decision with its reasons.
        decision: RoutingDecision,
    },
    /// A model is being asked (a branch of a fan-out, a critic, a judge, a revision).
    Step {
        /// What the step is: `answer`, `critique`, `judge`, `revise`.
        role: String,
        /// The model asked.
        model: String,
        /// Round number in critique-and-refine (0 for the draft), else 0.
        round: u32,
    },
    /// A step finished.
    StepDone {
        /// Same as in [`OrchestrationEvent::Step`].
        role: String,
        /// The model.
        model: String,
        /// Round number.
        round: u32,
        /// Its output (an answer, a critique, or the judge's reply), or the error text.
        text: String,
        /// Whether it succeeded.
        ok: bool,
        /// How long it took.
        ms: u64,
        /// The judged score, for judge steps.
        score: Option<f64>,
    },
    /// A model failed and another one takes over.
    Fallback {
        /// The model that failed or was refused.
        from: String,
        /// The model that answers instead.
        to: String,
        /// What happened, in words.
        reason: String,
    },
    /// The fan-out was merged.
    Merged {
        /// The strategy used.
        strategy: MergeStrategy,
        /// The model whose answer won.
        winner: String,
        /// Why, in words ("3 of 4 agree", "judge score 8").
        detail: String,
    },
    /// Critique-and-refine ended.
    RefineDone {
        /// Rounds of revision that ran.
        rounds: u32,
        /// The score of each version (draft first).
        scores: Vec<f64>,
        /// Why it stopped.
        stop: RefineStop,
        /// Which version was kept (0 = the draft).
        kept: usize,
    },
}

impl OrchestrationEvent {
    /// One line describing the event for people (CLI progress, the app's step list).
    pub fn summary(&self) -> String {
        let short = |text: &str| {
            let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if one_line.chars().count() > 90 {
                format!("{}…", one_line.chars().take(90).collect::<String>())
            } else {
                one_line
            }
        };
        match self {
            OrchestrationEvent::Routed { decision } => {
                format!("auto → {}: {}", decision.model, decision.reasons.join("; "))
            }
            OrchestrationEvent::Step { role, model, round } => {
                format!("  round {round} · {role} · {model} …")
            }
            OrchestrationEvent::StepDone {
                role,
                model,
                round,
                text,
                ok,
                ms,
                score,
            } => {
                let mark = if *ok { "✓" } else { "✗" };
                let score = score.map(|s| format!(" · score {s:.1}")).unwrap_or_default();
                format!(
                    "  round {round} · {role} · {model} {mark} {:.1} s{score} · {}",
                    *ms as f64 / 1000.0,
                    short(text)
                )
            }
            OrchestrationEvent::Fallback { from, to, reason } => {
                format!("{from} failed ({reason}); {to} answers instead")
            }
            OrchestrationEvent::Merged {
                strategy,
                winner,
                detail,
            } => format!("merged by {strategy}: {winner} ({detail})"),
            OrchestrationEvent::RefineDone {
                rounds,
                scores,
                stop,
                kept,
            } => format!(
                "refined in {rounds} round(s), scores {}; stopped because {stop}; kept version {kept}",
                scores
                    .iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(model: &str, text: &str, weight: f64) -> Ballot {
        Ballot {
            model: model.into(),
            text: text.into(),
            weight,
        }
    }

    #[test]
    fn normalises_answers_for_voting() {
        assert_eq!(normalize_answer("Paris."), "paris");
        assert_eq!(normalize_answer("The answer is: PARIS!"), "paris");
        assert_eq!(normalize_answer("  it is   42 "), "42");
        assert_eq!(normalize_answer("answer"), "answer");
    }

    #[test]
    fn majority_and_weighted_votes() {
        let plain = [
            ballot("a", "Paris", 1.0),
            ballot("b", "Lyon", 1.0),
            ballot("c", "paris.", 1.0),
        ];
        let out = vote(&plain).unwrap();
        assert_eq!(out.winner, 0);
        assert_eq!(out.support, 2.0);
        assert_eq!(out.total, 3.0);
        assert_eq!(out.agreeing, vec!["a", "c"]);
        let weighted = [
            ballot("a", "Paris", 0.2),
            ballot("b", "Lyon", 0.9),
            ballot("c", "paris.", 0.3),
        ];
        assert_eq!(vote(&weighted).unwrap().winner, 1);
        let long = "word ".repeat(40);
        assert_eq!(vote(&[ballot("a", &long, 1.0)]), None);
        assert_eq!(vote(&[]), None);
    }

    #[test]
    fn parses_judge_scores() {
        assert_eq!(parse_score("Score: 7/10. Good."), Some(7.0));
        assert_eq!(parse_score("score 8.5"), Some(8.5));
        assert_eq!(parse_score("I'd give it a 6."), Some(6.0));
        assert_eq!(parse_score("In 2024 it got 9"), Some(9.0));
        assert_eq!(parse_score("no idea"), None);
        assert_eq!(parse_score("Score: 11"), None);
    }

    #[test]
    fn refine_stops_when_scores_stop_improving_or_rounds_run_out() {
        assert_eq!(refine_should_stop(&[], 3, 0.5), None);
        assert_eq!(refine_should_stop(&[5.0], 3, 0.5), None);
        assert_eq!(refine_should_stop(&[5.0, 7.0], 3, 0.5), None);
        assert_eq!(
            refine_should_stop(&[5.0, 7.0, 7.2], 3, 0.5),
            Some(RefineStop::NoImprovement)
        );
        assert_eq!(
            refine_should_stop(&[5.0, 6.0, 7.0, 8.0], 3, 0.5),
            Some(RefineStop::MaxRounds)
        );
        assert_eq!(
            refine_should_stop(&[10.0], 3, 0.5),
            Some(RefineStop::Perfect)
        );
        assert_eq!(
            refine_should_stop(&[1.0], 0, 0.5),
            Some(RefineStop::MaxRounds)
        );
        let many: Vec<f64> = (0..12).map(|i| f64::from(i) * 0.8).collect();
        assert_eq!(
            refine_should_stop(&many[..11], 50, 0.5),
            Some(RefineStop::MaxRounds),
            "never more than MAX_REFINE_ROUNDS"
        );
        assert_eq!(best_version(&[5.0, 7.0, 6.0]), Some(1));
        assert_eq!(best_version(&[5.0, 5.0]), Some(0));
    }

    #[test]
    fn prompts_carry_the_question_and_the_drafts() {
        let m = revise_messages("Q?", "draft", &[("critic".into(), "too short".into())]);
        assert!(m[1].content.contains("From critic:\ntoo short"));
        assert!(judge_messages("Q?", "A")[1].content.contains("Answer:\nA"));
        assert!(critique_messages("Q?", "D")[1]
            .content
            .contains("Draft answer:\nD"));
    }
}
