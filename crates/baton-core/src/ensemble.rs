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

/// Votes over short answers: answers that say the same after [`normalize_answer`] form a
/// group, a long answer (prose cannot be compared word for word) stands alone. The group
/// with the most weight wins (a lone answer from a heavily weighted model can outvote two
/// light ones); ties go to the group whose first answer came first. Returns `None` when no
/// two answers agree (a vote decides nothing) or there are no ballots.
pub fn vote(ballots: &[Ballot]) -> Option<VoteOutcome> {
    let keys: Vec<String> = ballots
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if is_short_answer(&b.text) {
                normalize_answer(&b.text)
            } else {
                // Unique: never equal to a normalised answer (those have no NUL).
                format!("\0long{i}")
            }
        })
        .collect();
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
    let agreement = keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k));
    if !agreement {
        return None;
    }
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

/// Parses a judge's score out of its reply. Only a score stated as one counts: a number
/// right after the word "score" (`Score: 7`, `score = 8.5`), a number out of ten (`7/10`),
/// or a reply that is just a number. Digits elsewhere (a small judge echoing the question,
/// or gibberish) are not a score, and neither is a number outside 0..=10 (`Score: 19`).
pub fn parse_score(reply: &str) -> Option<f64> {
    let lower = reply.trim().to_lowercase();
    let number_at = |text: &str| -> Option<(f64, usize)> {
        let len = text
            .char_indices()
            .take_while(|(i, c)| c.is_ascii_digit() || (*c == '.' && *i > 0))
            .count();
        let digits = text[..len].trim_end_matches('.');
        digits.parse::<f64>().ok().map(|v| (v, len))
    };
    let in_range = |v: f64| (0.0..=10.0).contains(&v).then_some(v);
    if let Some(value) = number_at(&lower).filter(|(_, len)| *len == lower.len()) {
        return in_range(value.0);
    }
    if let Some(pos) = lower.find("score") {
        let rest = lower[pos + 5..]
            .trim_start_matches(|c: char| c == ':' || c == '=' || c.is_whitespace());
        if let Some((value, _)) = number_at(rest) {
            return in_range(value);
        }
    }
    for (i, _) in lower.match_indices("/10") {
        let before = &lower[..i];
        let start = before
            .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(0, |p| p + 1);
        if let Some((value, _)) = number_at(&before[start..]) {
            return in_range(value);
        }
    }
    None
}

/// Worked examples shown to the judge before the real answer: even very small models
/// follow the `Score: N` pattern when they have seen it (SmolLM2-135M gave no number
/// without them, and 10 vs 1 for a right and a wrong answer with them).
const JUDGE_EXAMPLES: [(&str, &str, &str); 3] = [
    (
        "What is the capital of France?",
        "Paris is the capital of France.",
        "Score: 10",
    ),
    (
        "What is the capital of France?",
        "The capital of France is Berlin.",
        "Score: 1",
    ),
    (
        "How many legs does a spider have?",
        "Spiders have eight legs.",
        "Score: 9",
    ),
];

/// The grammar (GBNF) a local judge's reply is sampled under: exactly `Score: N` with N
/// from 0 to 10, so the score always parses and is always in range.
pub const JUDGE_GRAMMAR: &str = r#"root ::= "Score: " ("10" | [0-9])"#;

/// The conversation asking a judge to score an answer from 0 to 10 (few-shot).
pub fn judge_messages(question: &str, answer: &str) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::system(
        "You grade answers from 0 (wrong or useless) to 10 (correct, complete and clear). \
         Reply only with `Score: N`.",
    )];
    for (q, a, score) in JUDGE_EXAMPLES {
        messages.push(ChatMessage::user(format!("Question: {q}\nAnswer: {a}")));
        messages.push(ChatMessage::assistant(score));
    }
    messages.push(ChatMessage::user(format!(
        "Question: {question}\nAnswer: {answer}"
    )));
    messages
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
        scores: Vec<Option<f64>>,
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
                    .map(|s| s.map_or("no score".to_owned(), |s| format!("{s:.1}")))
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
        assert_eq!(
            vote(&weighted).unwrap().winner,
            1,
            "0.9 for Lyon beats 0.5 for Paris"
        );
        let long = "word ".repeat(40);
        let mixed = [
            ballot("a", "Paris.", 1.0),
            ballot("b", "The answer is paris", 1.0),
            ballot("tiny", &long, 1.0),
        ];
        let out = vote(&mixed).unwrap();
        assert_eq!((out.winner, out.support, out.total), (0, 2.0, 3.0));
        assert_eq!(
            vote(&[ballot("a", &long, 1.0), ballot("b", &long, 1.0)]),
            None,
            "prose is not compared"
        );
        assert_eq!(
            vote(&[ballot("a", "Paris", 1.0), ballot("b", "Lyon", 1.0)]),
            None,
            "no agreement"
        );
        assert_eq!(vote(&[ballot("a", "Paris", 1.0)]), None);
        assert_eq!(vote(&[]), None);
    }

    #[test]
    fn parses_judge_scores() {
        assert_eq!(parse_score("Score: 7/10. Good."), Some(7.0));
        assert_eq!(parse_score("score 8.5"), Some(8.5));
        assert_eq!(parse_score("The final score = 6"), Some(6.0));
        assert_eq!(parse_score("I rate it 8/10"), Some(8.0));
        assert_eq!(parse_score(" 9 "), Some(9.0));
        assert_eq!(
            parse_score("In 2024 it got 9"),
            None,
            "digits are not a score"
        );
        assert_eq!(
            parse_score("Q BH a c FWE9 what"),
            None,
            "gibberish is not a score"
        );
        assert_eq!(parse_score("no idea"), None);
        assert_eq!(
            parse_score("Score: 19"),
            None,
            "an out-of-range score is no score"
        );
        assert_eq!(parse_score("It is worth 11"), None);
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
        let judge = judge_messages("Q?", "A");
        assert_eq!(judge.len(), 8, "system, three worked examples, the answer");
        assert_eq!(judge[7].content, "Question: Q?\nAnswer: A");
        assert!(critique_messages("Q?", "D")[1]
            .content
            .contains("Draft answer:\nD"));
    }
}
