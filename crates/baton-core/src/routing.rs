//! Model routing: which model answers a request, and why.
//!
//! [`route`] is a pure function of the request's features (task kind, prompt domain), the
//! candidates (capabilities, cost, memory need, health, measured history), explicit rules
//! from the config, canary splits and a random draw. Its [`RoutingDecision`] carries the
//! reasons in words, so the UI and `baton stats` can show why a model was picked.

use crate::model::TaskKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a prompt is about, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Programming: code, errors, tools.
    Code,
    /// Arithmetic, equations, proofs.
    Math,
    /// Prose: emails, stories, summaries, rewriting.
    Writing,
    /// Translation between languages.
    Translation,
    /// Anything else.
    General,
}

impl Domain {
    /// Every domain, in a stable order.
    pub const ALL: [Domain; 5] = [
        Domain::Code,
        Domain::Math,
        Domain::Writing,
        Domain::Translation,
        Domain::General,
    ];

    /// The snake_case name used in config and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Code => "code",
            Domain::Math => "math",
            Domain::Writing => "writing",
            Domain::Translation => "translation",
            Domain::General => "general",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Domain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown domain `{s}`: expected code, math, writing, translation or general"
                )
            })
    }
}

/// Keywords that vote for a domain. Whole words, matched case-insensitively; a few symbols
/// (```` ``` ````, `=`, `+`) count as words for code and math.
const KEYWORDS: &[(Domain, &[&str])] = &[
    (
        Domain::Code,
        &[
            "code",
            "function",
            "compile",
            "compiler",
            "bug",
            "error",
            "stack",
            "rust",
            "python",
            "javascript",
            "typescript",
            "java",
            "sql",
            "regex",
            "api",
            "class",
            "struct",
            "variable",
            "debug",
            "exception",
            "script",
            "bash",
            "git",
            "fn",
            "def",
            "```",
            "programming",
            "refactor",
            "segfault",
            "cargo",
            "npm",
        ],
    ),
    (
        Domain::Math,
        &[
            "calculate",
            "equation",
            "integral",
            "derivative",
            "sum",
            "prime",
            "solve",
            "proof",
            "algebra",
            "probability",
            "percent",
            "sqrt",
            "matrix",
            "multiply",
            "divide",
            "plus",
            "minus",
            "times",
            "math",
            "=",
            "+",
            "*",
            "^",
        ],
    ),
    (
        Domain::Writing,
        &[
            "write",
            "email",
            "letter",
            "essay",
            "story",
            "poem",
            "summarize",
            "summarise",
            "summary",
            "rewrite",
            "paraphrase",
            "tone",
            "draft",
            "blog",
            "paragraph",
            "proofread",
            "grammar",
        ],
    ),
    (
        Domain::Translation,
        &[
            "translate",
            "translation",
            "french",
            "german",
            "spanish",
            "italian",
            "portuguese",
            "japanese",
            "chinese",
            "english",
            "russian",
            "arabic",
        ],
    ),
];

/// The domain a prompt most likely belongs to, with the words that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The winning domain ([`Domain::General`] when nothing matched).
    pub domain: Domain,
    /// The keywords that matched for it, in order of appearance, without repeats.
    pub matched: Vec<String>,
}

/// Classifies a prompt by keyword votes: the domain with the most matching words wins; ties
/// go to the earlier domain in [`Domain::ALL`] (code before math before writing).
pub fn classify(prompt: &str) -> Classification {
    let lower = prompt.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || ",.;:!?()[]{}\"'".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut best = Classification {
        domain: Domain::General,
        matched: Vec::new(),
    };
    for (domain, keywords) in KEYWORDS {
        let mut matched: Vec<String> = Vec::new();
        for word in &words {
            let hit = keywords.iter().any(|k| {
                if k.chars().all(char::is_alphanumeric) {
                    word == k
                } else {
                    word.contains(k)
                }
            });
            if hit && !matched.iter().any(|m| m == word) {
                matched.push((*word).to_owned());
            }
        }
        if matched.len() > best.matched.len() {
            best = Classification {
                domain: *domain,
                matched,
            };
        }
    }
    best
}

/// What was measured about a model in earlier runs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelHistory {
    /// Runs recorded.
    pub runs: u32,
    /// Fraction of runs that produced an answer.
    pub success_rate: f64,
    /// Median latency of successful runs in milliseconds.
    pub p50_latency_ms: f64,
    /// Net user rating in [-1, 1] (thumbs up minus down over rated answers).
    pub rating: f64,
    /// Answers the user rated.
    pub rated: u32,
}

/// What an evaluation measured about a model in one domain on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DomainScore {
    /// The domain.
    pub domain: Domain,
    /// Questions answered correctly.
    pub passed: u32,
    /// Questions asked.
    pub total: u32,
    /// Mean seconds per answer.
    pub mean_secs: f64,
}

impl DomainScore {
    /// The pass rate, smoothed toward 50% for small samples (Laplace: (passed + 1) /
    /// (total + 2)), so three lucky answers do not count as 100%.
    pub fn smoothed_rate(&self) -> f64 {
        (f64::from(self.passed) + 1.0) / (f64::from(self.total) + 2.0)
    }
}

/// Fewest questions of a domain before its evaluation counts for routing.
pub const MIN_EVAL_QUESTIONS: u32 = 5;

/// How many answered questions one user rating weighs (real use counts more than a
/// benchmark question, but one thumb does not overturn forty questions).
const RATING_WEIGHT: f64 = 3.0;

/// A model the router may pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Registry name.
    pub model: String,
    /// Whether it runs on this machine (local-first: preferred on equal scores).
    pub local: bool,
    /// Tasks it serves.
    pub tasks: Vec<TaskKind>,
    /// Domains it is declared good at.
    pub strengths: Vec<Domain>,
    /// US dollars per million tokens (0 for local models).
    pub cost_per_mtok: f64,
    /// Bytes it needs in memory when not loaded yet (0 when loaded or remote).
    pub memory_needed: u64,
    /// Whether its engine takes requests now (its circuit breaker is not open).
    pub available: bool,
    /// Measured history, if any.
    pub history: Option<ModelHistory>,
    /// Evaluation results per domain on this machine (`baton eval`), if any.
    #[serde(default)]
    pub evals: Vec<DomainScore>,
    /// Measured generation speed on this machine, tokens per second.
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
}

/// How much each factor weighs in a candidate's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingWeights {
    /// Weight of measured quality (success rate and user ratings).
    pub quality: f64,
    /// Weight of measured speed.
    pub speed: f64,
    /// Weight of low cost.
    pub cost: f64,
    /// Bonus for a model declared strong in the prompt's domain.
    pub domain: f64,
}

impl Default for RoutingWeights {
    fn default() -> Self {
        Self {
            quality: 1.0,
            speed: 0.5,
            cost: 0.5,
            domain: 0.4,
        }
    }
}

/// An explicit rule from the config: when it matches, it decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// Matches prompts classified in this domain.
    #[serde(default)]
    pub domain: Option<Domain>,
    /// Matches prompts containing this text (case-insensitive).
    #[serde(default)]
    pub contains: Option<String>,
    /// The model to use.
    pub model: String,
}

/// A canary or A/B split: a share of the requests that would go to `stable` go to
/// `candidate` instead, and the outcomes are recorded for both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySplit {
    /// The established model.
    pub stable: String,
    /// The model being tried.
    pub candidate: String,
    /// Fraction of requests in [0, 1] sent to `candidate`.
    pub share: f64,
}

/// What the router knows about the request.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteQuery<'a> {
    /// The task kind.
    pub task: TaskKind,
    /// The text the routing keys on (the last user message).
    pub prompt: &'a str,
    /// Memory free for loading a model, in bytes.
    pub free_memory: u64,
}

/// One candidate's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The model.
    pub model: String,
    /// Its score (higher is better); `None` when it was ruled out.
    pub score: Option<f64>,
    /// Why, in words.
    pub why: String,
}

/// The router's choice and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingDecision {
    /// The model chosen.
    pub model: String,
    /// The prompt's domain.
    pub domain: Domain,
    /// One line per reason, most important first.
    pub reasons: Vec<String>,
    /// Every candidate with its score or why it was ruled out, best first.
    pub ranked: Vec<Scored>,
    /// Other usable models, best first: the fallback chain after `model`.
    pub fallbacks: Vec<String>,
    /// Set when a canary split chose the model: the stable model it replaced.
    pub canary_of: Option<String>,
}

/// Why no model could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no model can take this {task} request: {reasons}. Add or fetch a model (`baton models list`, `baton engines list`) or wait for an engine to recover")]
pub struct NoRoute {
    /// The task asked for.
    pub task: TaskKind,
    /// Why each candidate was ruled out, joined.
    pub reasons: String,
}

/// Chooses a model. `draw` is a uniform random number in [0, 1) used for canary splits.
pub fn route(
    query: &RouteQuery<'_>,
    candidates: &[Candidate],
    rules: &[RoutingRule],
    canaries: &[CanarySplit],
    weights: &RoutingWeights,
    draw: f64,
) -> Result<RoutingDecision, NoRoute> {
    let class = classify(query.prompt);
    let mut ranked: Vec<Scored> = candidates
        .iter()
        .map(|c| evaluate(c, query, class.domain, weights))
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.score.unwrap_or(f64::NEG_INFINITY))
    });
    let usable: Vec<&str> = ranked
        .iter()
        .filter(|s| s.score.is_some())
        .map(|s| s.model.as_str())
        .collect();
    if usable.is_empty() {
        let reasons = ranked
            .iter()
            .map(|s| format!("{} {}", s.model, s.why))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(NoRoute {
            task: query.task,
            reasons: if reasons.is_empty() {
                "no models are registered".into()
            } else {
                reasons
            },
        });
    }
    let mut reasons = Vec::new();
    let domain_line = if class.matched.is_empty() {
        format!("domain {} (no topic words matched)", class.domain)
    } else {
        format!(
            "domain {} (matched: {})",
            class.domain,
            class.matched.join(", ")
        )
    };
    let prompt_lower = query.prompt.to_lowercase();
    let ruled = rules.iter().enumerate().find(|(_, rule)| {
        let domain_ok = rule.domain.is_none_or(|d| d == class.domain);
        let text_ok = rule
            .contains
            .as_ref()
            .is_none_or(|t| prompt_lower.contains(&t.to_lowercase()));
        domain_ok && text_ok && (rule.domain.is_some() || rule.contains.is_some())
    });
    let mut chosen = usable[0].to_owned();
    match ruled {
        Some((i, rule)) if usable.contains(&rule.model.as_str()) => {
            reasons.push(format!("rule {} in the config chose {}", i + 1, rule.model));
            chosen = rule.model.clone();
        }
        Some((i, rule)) => reasons.push(format!(
            "rule {} asks for {}, which cannot take requests now; routed by score",
            i + 1,
            rule.model
        )),
        None => {
            let best = &ranked[0];
            reasons.push(format!("highest score: {} ({})", best.model, best.why));
        }
    }
    let mut canary_of = None;
    if let Some(split) = canaries
        .iter()
        .find(|s| s.stable == chosen && usable.contains(&s.candidate.as_str()))
    {
        if draw < split.share.clamp(0.0, 1.0) {
            reasons.push(format!(
                "canary: {:.0}% of {} requests go to {}; this one did",
                split.share * 100.0,
                split.stable,
                split.candidate
            ));
            canary_of = Some(chosen.clone());
            chosen = split.candidate.clone();
        }
    }
    reasons.push(domain_line);
    for s in ranked.iter().filter(|s| s.score.is_none()) {
        reasons.push(format!("skipped {}: {}", s.model, s.why));
    }
    let fallbacks = usable
        .iter()
        .filter(|m| **m != chosen)
        .map(|m| (*m).to_owned())
        .collect();
    Ok(RoutingDecision {
        model: chosen,
        domain: class.domain,
        reasons,
        ranked,
        fallbacks,
        canary_of,
    })
}

fn evaluate(c: &Candidate, query: &RouteQuery<'_>, domain: Domain, w: &RoutingWeights) -> Scored {
    let out = |why: String| Scored {
        model: c.model.clone(),
        score: None,
        why,
    };
    if !c.tasks.contains(&query.task) {
        return out(format!("does not do {}", query.task));
    }
    if !c.available {
        return out("its engine is failing (circuit breaker open)".into());
    }
    if c.memory_needed > query.free_memory {
        return out(format!(
            "needs {:.1} GiB to load, {:.1} GiB free",
            gib(c.memory_needed),
            gib(query.free_memory)
        ));
    }
    let mut parts = Vec::new();
    let eval = c
        .evals
        .iter()
        .find(|e| e.domain == domain && e.total >= MIN_EVAL_QUESTIONS);
    let (quality, speed) = match (eval, c.history) {
        (Some(e), history) => {
            // The evaluation is the prior; ratings of real answers move it as they come.
            let mut quality = e.smoothed_rate();
            parts.push(format!(
                "{:.0}% on {domain} here ({} questions, {:.1} s each)",
                f64::from(e.passed) * 100.0 / f64::from(e.total),
                e.total,
                e.mean_secs
            ));
            if let Some(h) = history.filter(|h| h.rated > 0) {
                let rated = f64::from(h.rated) * RATING_WEIGHT;
                let total = f64::from(e.total);
                quality = (quality * total + (h.rating + 1.0) / 2.0 * rated) / (total + rated);
                parts.push(format!("rating {:+.2} from {}", h.rating, h.rated));
            }
            if let Some(h) = history.filter(|h| h.runs >= 3 && h.success_rate < 1.0) {
                quality *= h.success_rate;
                parts.push(format!("{:.0}% of runs ok", h.success_rate * 100.0));
            }
            (quality, 1.0 / (1.0 + e.mean_secs / 4.0))
        }
        (None, Some(h)) if h.runs >= 3 => {
            let rating = if h.rated > 0 {
                (h.rating + 1.0) / 2.0
            } else {
                0.5
            };
            parts.push(format!(
                "{:.0}% ok over {} runs, p50 {:.0} ms",
                h.success_rate * 100.0,
                h.runs,
                h.p50_latency_ms
            ));
            if h.rated > 0 {
                parts.push(format!("rating {:+.2} from {}", h.rating, h.rated));
            }
            (
                0.7 * h.success_rate + 0.3 * rating,
                1.0 / (1.0 + h.p50_latency_ms / 2000.0),
            )
        }
        _ => {
            parts.push("no history yet".into());
            (0.5, 0.5)
        }
    };
    if let Some(tps) = c.tokens_per_second {
        parts.push(format!("{tps:.0} tok/s"));
    }
    let cheap = 1.0 / (1.0 + c.cost_per_mtok);
    parts.push(if c.cost_per_mtok == 0.0 {
        "free".into()
    } else {
        format!("${:.2}/Mtok", c.cost_per_mtok)
    });
    let strong = c.strengths.contains(&domain);
    if strong {
        parts.push(format!("strong in {domain}"));
    }
    // Local-first: a tiny bonus that only decides otherwise equal scores.
    let score = w.quality * quality
        + w.speed * speed
        + w.cost * cheap
        + if strong { w.domain } else { 0.0 }
        + if c.local { 1e-6 } else { 0.0 };
    Scored {
        model: c.model.clone(),
        score: Some(score),
        why: format!("score {:.2}: {}", score, parts.join(", ")),
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(model: &str, local: bool) -> Candidate {
        Candidate {
            model: model.into(),
            local,
            tasks: vec![TaskKind::Chat],
            strengths: vec![],
            cost_per_mtok: 0.0,
            memory_needed: 0,
            available: true,
            history: None,
            evals: Vec::new(),
            tokens_per_second: None,
        }
    }

    fn query(prompt: &str) -> RouteQuery<'_> {
        RouteQuery {
            task: TaskKind::Chat,
            prompt,
            free_memory: 8 << 30,
        }
    }

    fn go(prompt: &str, cands: &[Candidate]) -> RoutingDecision {
        route(
            &query(prompt),
            cands,
            &[],
            &[],
            &RoutingWeights::default(),
            0.5,
        )
        .unwrap()
    }

    #[test]
    fn classifies_by_keywords() {
        assert_eq!(
            classify("Why does my Rust code not compile?").domain,
            Domain::Code
        );
        assert_eq!(classify("Solve x^2 = 4").domain, Domain::Math);
        assert_eq!(
            classify("Translate this into French").domain,
            Domain::Translation
        );
        assert_eq!(
            classify("Write an email to my landlord").domain,
            Domain::Writing
        );
        let general = classify("What is the capital of France?");
        assert_eq!(general.domain, Domain::General);
        assert!(general.matched.is_empty());
        let fenced = classify("fix this ```fn main() {}```");
        assert_eq!(
            (fenced.domain, fenced.matched[0].as_str()),
            (Domain::Code, "```fn")
        );
    }

    fn scored(domain: Domain, passed: u32, total: u32, mean_secs: f64) -> DomainScore {
        DomainScore {
            domain,
            passed,
            total,
            mean_secs,
        }
    }

    #[test]
    fn evaluations_per_domain_decide_and_explain() {
        let mut small = cand("small", true);
        small.evals = vec![
            scored(Domain::Code, 10, 36, 2.0),
            scored(Domain::Translation, 30, 37, 1.0),
        ];
        small.tokens_per_second = Some(30.0);
        let mut large = cand("large", true);
        large.evals = vec![
            scored(Domain::Code, 28, 36, 6.0),
            scored(Domain::Translation, 31, 37, 3.0),
        ];
        large.tokens_per_second = Some(8.0);
        // Code: the large model is far better; that outweighs its speed.
        let d = go("write a python function", &[small.clone(), large.clone()]);
        assert_eq!(d.model, "large");
        assert!(
            d.reasons[0].contains("78% on code here (36 questions, 6.0 s each)")
                && d.reasons[0].contains("8 tok/s"),
            "{:?}",
            d.reasons
        );
        // Translation: about as good, three times faster: the small one.
        let d = go(
            "translate good morning into french",
            &[small.clone(), large.clone()],
        );
        assert_eq!(d.model, "small", "{:?}", d.ranked);
        // Ratings of real answers move the prior.
        small.history = Some(ModelHistory {
            runs: 20,
            success_rate: 1.0,
            p50_latency_ms: 1000.0,
            rating: -1.0,
            rated: 10,
        });
        let d = go("translate good morning into french", &[small, large]);
        assert_eq!(d.model, "large", "{:?}", d.ranked);
    }

    #[test]
    fn local_wins_ties_and_domain_strength_wins_over_a_generalist() {
        let d = go("hello", &[cand("remote", false), cand("local", true)]);
        assert_eq!(d.model, "local");
        assert_eq!(d.fallbacks, vec!["remote"]);
        let mut coder = cand("coder", false);
        coder.strengths = vec![Domain::Code];
        let d = go("debug this python function", &[cand("local", true), coder]);
        assert_eq!(d.model, "coder");
        assert_eq!(d.domain, Domain::Code);
        assert!(d
            .reasons
            .iter()
            .any(|r| r.contains("matched: debug, python, function")));
    }

    #[test]
    fn rules_out_wrong_tasks_open_breakers_and_models_that_do_not_fit() {
        let mut tts = cand("voice", true);
        tts.tasks = vec![TaskKind::TextToSpeech];
        let mut down = cand("down", false);
        down.available = false;
        let mut big = cand("big", true);
        big.memory_needed = 16 << 30;
        let d = go("hi", &[tts, down, big, cand("ok", true)]);
        assert_eq!(d.model, "ok");
        assert!(d.fallbacks.is_empty());
        let skipped: Vec<_> = d
            .reasons
            .iter()
            .filter(|r| r.starts_with("skipped"))
            .collect();
        assert_eq!(skipped.len(), 3, "{:?}", d.reasons);
        assert!(d
            .reasons
            .iter()
            .any(|r| r.contains("needs 16.0 GiB to load, 8.0 GiB free")));
    }

    #[test]
    fn no_route_explains_every_candidate() {
        let mut down = cand("down", false);
        down.available = false;
        let err = route(
            &query("hi"),
            &[down],
            &[],
            &[],
            &RoutingWeights::default(),
            0.0,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("down its engine is failing"),
            "{err}"
        );
        let err = route(&query("hi"), &[], &[], &[], &RoutingWeights::default(), 0.0).unwrap_err();
        assert!(err.to_string().contains("no models are registered"));
    }

    #[test]
    fn history_and_cost_move_the_choice() {
        let mut flaky = cand("flaky", true);
        flaky.history = Some(ModelHistory {
            runs: 10,
            success_rate: 0.8,
            p50_latency_ms: 500.0,
            rating: 0.0,
            rated: 0,
        });
        let mut solid = cand("solid", false);
        solid.history = Some(ModelHistory {
            runs: 10,
            success_rate: 1.0,
            p50_latency_ms: 800.0,
            rating: 0.5,
            rated: 4,
        });
        assert_eq!(go("hi", &[flaky.clone(), solid.clone()]).model, "solid");
        solid.cost_per_mtok = 50.0;
        assert_eq!(go("hi", &[flaky, solid]).model, "flaky");
    }

    #[test]
    fn rules_override_scores_unless_their_model_is_down() {
        let rules = [RoutingRule {
            domain: Some(Domain::Math),
            contains: None,
            model: "mathy".into(),
        }];
        let cands = [cand("local", true), cand("mathy", false)];
        let w = RoutingWeights::default();
        let d = route(&query("solve 2+2"), &cands, &rules, &[], &w, 0.0).unwrap();
        assert_eq!(d.model, "mathy");
        assert!(d.reasons[0].starts_with("rule 1"));
        let d = route(&query("hello"), &cands, &rules, &[], &w, 0.0).unwrap();
        assert_eq!(d.model, "local");
        let mut down = cands.clone();
        down[1].available = false;
        let d = route(&query("solve 2+2"), &down, &rules, &[], &w, 0.0).unwrap();
        assert_eq!(d.model, "local");
        assert!(d.reasons[0].contains("cannot take requests now"));
    }

    #[test]
    fn canary_takes_its_share() {
        let split = [CanarySplit {
            stable: "local".into(),
            candidate: "next".into(),
            share: 0.25,
        }];
        let mut next = cand("next", false);
        next.cost_per_mtok = 1.0;
        let cands = [cand("local", true), next];
        let w = RoutingWeights::default();
        let d = route(&query("hi"), &cands, &[], &split, &w, 0.1).unwrap();
        assert_eq!(d.model, "next");
        assert_eq!(d.canary_of.as_deref(), Some("local"));
        let d = route(&query("hi"), &cands, &[], &split, &w, 0.3).unwrap();
        assert_eq!(d.model, "local");
        assert_eq!(d.canary_of, None);
    }
}
