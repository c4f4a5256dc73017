//! Whether an answer passes its item's [`Check`]: pure text rules, plus the Python runner
//! for code items.

use crate::python::run_python_check;
use crate::set::{Check, Constraints};
use regex::Regex;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The verdict on one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether the answer passed.
    pub passed: bool,
    /// Why, in a few words ("expected 42, found 41").
    pub detail: String,
}

impl CheckOutcome {
    fn pass(detail: impl Into<String>) -> Self {
        Self {
            passed: true,
            detail: detail.into(),
        }
    }

    fn fail(detail: impl Into<String>) -> Self {
        Self {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// Lowercase, accents folded (é → e), whitespace collapsed, trimmed.
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Scores `answer` against `check`. Python checks run the code (see
/// [`run_python_check`]); everything else is a pure text rule.
pub fn check(check: &Check, answer: &str) -> CheckOutcome {
    match check {
        Check::Contains { any } => {
            let text = normalize(answer);
            match any.iter().find(|a| contains_phrase(&text, &normalize(a))) {
                Some(hit) => CheckOutcome::pass(format!("contains “{hit}”")),
                None => CheckOutcome::fail(format!("does not contain any of {}", quoted(any))),
            }
        }
        Check::Exact { any } => {
            let text = strip_wrapping(&normalize(answer));
            match any.iter().find(|a| strip_wrapping(&normalize(a)) == text) {
                Some(hit) => CheckOutcome::pass(format!("is “{hit}”")),
                None => CheckOutcome::fail(format!("is not exactly any of {}", quoted(any))),
            }
        }
        Check::Regex { pattern } => match Regex::new(pattern) {
            Ok(re) if re.is_match(answer) => CheckOutcome::pass(format!("matches /{pattern}/")),
            Ok(_) => CheckOutcome::fail(format!("does not match /{pattern}/")),
            Err(e) => CheckOutcome::fail(format!("the pattern is invalid: {e}")),
        },
        Check::Number { value, tolerance } => match last_number(answer) {
            Some(found) if (found - value).abs() <= *tolerance + 1e-9 => {
                CheckOutcome::pass(fmt_number(found))
            }
            Some(found) => CheckOutcome::fail(format!(
                "expected {}, the last number was {}",
                fmt_number(*value),
                fmt_number(found)
            )),
            None => CheckOutcome::fail(format!("expected {}, found no number", fmt_number(*value))),
        },
        Check::Python { tests } => run_python_check(&extract_code(answer), tests),
        Check::Constraints { rules } => constraints(rules, answer),
    }
}

fn quoted(any: &[String]) -> String {
    any.iter()
        .map(|a| format!("“{a}”"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether `phrase` occurs in `text` with no letter or digit right before or after it.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    if phrase.is_empty() {
        return false;
    }
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

/// Drops surrounding quotes and a final period or exclamation mark.
fn strip_wrapping(text: &str) -> String {
    const QUOTES: &[char] = &['"', '\'', '“', '”', '‘', '’', '`', '«', '»'];
    let t = text.trim().trim_matches(QUOTES).trim();
    let t = t.trim_end_matches(['.', '!']).trim();
    t.trim_matches(QUOTES).trim().to_owned()
}

/// The last number in `text`: integers or decimals with a dot, thousands separated by
/// commas (1,250), a minus sign when it is not a hyphen inside a word ("COVID-19").
fn last_number(text: &str) -> Option<f64> {
    static NUMBER: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = NUMBER.get_or_init(|| {
        Regex::new(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?").expect("a valid pattern")
    });
    let m = re.find_iter(text).last()?;
    let mut value: f64 = m.as_str().replace(',', "").parse().ok()?;
    let mut before = text[..m.start()].chars().rev();
    if before.next() == Some('-') && !before.next().is_some_and(is_word_char) {
        value = -value;
    }
    Some(value)
}

/// The first fenced code block (```python, ```py or a bare ```), or the whole answer.
fn extract_code(answer: &str) -> String {
    let mut lines = answer.lines();
    let mut code = Vec::new();
    let mut inside = false;
    for line in lines.by_ref() {
        let trimmed = line.trim_start();
        if !inside {
            if let Some(lang) = trimmed.strip_prefix("```") {
                let lang = lang.trim().to_lowercase();
                if lang.is_empty() || lang == "python" || lang == "py" || lang == "python3" {
                    inside = true;
                }
            }
        } else if trimmed.starts_with("```") {
            return code.join("\n");
        } else {
            code.push(line);
        }
    }
    if inside {
        // An unclosed fence (the answer was cut off): use what there is.
        return code.join("\n");
    }
    answer.to_owned()
}

fn words(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

fn sentences(text: &str) -> usize {
    text.split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count()
}

fn is_bullet(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("- ") || t.starts_with("* ") || t.starts_with("• ")
}

fn constraints(rules: &Constraints, answer: &str) -> CheckOutcome {
    let text = answer.trim();
    let normalized = normalize(text);
    let mut failed = Vec::new();
    let n_words = words(text);
    if let Some(max) = rules.max_words {
        if n_words > max {
            failed.push(format!("{n_words} words, at most {max} allowed"));
        }
    }
    if let Some(min) = rules.min_words {
        if n_words < min {
            failed.push(format!("{n_words} words, at least {min} needed"));
        }
    }
    if let Some(want) = rules.sentences {
        let n = sentences(text);
        if n != want {
            failed.push(format!("{n} sentences, {want} asked"));
        }
    }
    for word in &rules.include {
        if !contains_phrase(&normalized, &normalize(word)) {
            failed.push(format!("“{word}” is missing"));
        }
    }
    for word in &rules.exclude {
        if contains_phrase(&normalized, &normalize(word)) {
            failed.push(format!("“{word}” must not appear"));
        }
    }
    if let Some(want) = rules.bullets {
        let n = text.lines().filter(|l| is_bullet(l)).count();
        if n != want {
            failed.push(format!("{n} bullet points, {want} asked"));
        }
    }
    if let Some(want) = rules.lines {
        let n = text.lines().filter(|l| !l.trim().is_empty()).count();
        if n != want {
            failed.push(format!("{n} lines, {want} asked"));
        }
    }
    if let Some(start) = &rules.starts_with {
        if !normalized.starts_with(&normalize(start)) {
            failed.push(format!("does not start with “{start}”"));
        }
    }
    if let Some(end) = &rules.ends_with {
        if !text.ends_with(end.as_str()) {
            failed.push(format!("does not end with “{end}”"));
        }
    }
    match rules.case.as_deref() {
        Some("lower") if text.chars().any(char::is_uppercase) => {
            failed.push("has capital letters".into());
        }
        Some("upper") if text.chars().any(char::is_lowercase) => {
            failed.push("has lowercase letters".into());
        }
        _ => {}
    }
    if failed.is_empty() {
        CheckOutcome::pass("every constraint holds")
    } else {
        CheckOutcome::fail(failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::builtin_sets;

    fn contains(any: &[&str]) -> Check {
        Check::Contains {
            any: any.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn contains_folds_case_and_accents_at_word_boundaries() {
        let c = contains(&["Buenos días"]);
        assert!(check(&c, "¡BUENOS DIAS!").passed);
        assert!(!check(&contains(&["Paris"]), "Parisian cafés").passed);
        assert!(check(&contains(&["Paris"]), "It is Paris.").passed);
        assert!(!check(&contains(&["Paris"]), "").passed);
    }

    #[test]
    fn exact_ignores_quotes_and_a_final_period() {
        let c = Check::Exact {
            any: vec!["blue".into()],
        };
        assert!(check(&c, " \"Blue.\" ").passed);
        assert!(!check(&c, "It is blue").passed);
    }

    #[test]
    fn the_last_number_counts() {
        let n = |v: f64| Check::Number {
            value: v,
            tolerance: 0.0,
        };
        assert!(check(&n(5000.0), "1,250 × 4 = 5,000").passed);
        assert!(check(&n(-5.0), "The result is -5.").passed);
        assert!(
            check(&n(19.0), "COVID-19").passed,
            "a hyphen in a word is no sign"
        );
        assert!(check(&n(42.0), "Answer: 42.").passed);
        assert!(!check(&n(42.0), "41").passed);
        let no = check(&n(3.0), "three");
        assert!(!no.passed && no.detail.contains("no number"), "{no:?}");
        let close = Check::Number {
            value: 2.5,
            tolerance: 0.01,
        };
        assert!(check(&close, "about 2.505").passed);
    }

    #[test]
    fn code_is_taken_from_the_first_python_fence() {
        assert_eq!(
            extract_code("Here:\n```python\ndef f():\n    return 1\n```\ntext"),
            "def f():\n    return 1"
        );
        assert_eq!(extract_code("def f(): return 1"), "def f(): return 1");
        assert_eq!(extract_code("```py\nx = 1"), "x = 1", "an unclosed fence");
    }

    #[test]
    fn constraints_report_every_broken_rule() {
        let rules = Constraints {
            max_words: Some(5),
            include: vec!["ocean".into()],
            case: Some("lower".into()),
            ..Constraints::default()
        };
        let c = Check::Constraints { rules };
        assert!(check(&c, "the ocean is wide").passed);
        let out = check(&c, "The Sea is very wide indeed today");
        assert!(!out.passed);
        assert!(out.detail.contains("7 words") && out.detail.contains("“ocean” is missing"));
        assert!(out.detail.contains("capital"), "{}", out.detail);
    }

    /// Every built-in item's reference answer passes its own check, and a wrong answer
    /// (the prompt echoed back; for code a stub, for numbers another number, for writing
    /// nothing) fails it.
    #[test]
    fn built_in_references_pass_and_echoes_fail() {
        let python = crate::python_available();
        for set in builtin_sets() {
            for item in &set.items {
                if matches!(item.check, Check::Python { .. }) && !python {
                    continue;
                }
                let reference = item
                    .reference
                    .as_deref()
                    .expect("every built-in item has a reference");
                let out = check(&item.check, reference);
                assert!(
                    out.passed,
                    "{}: the reference fails: {}",
                    item.id, out.detail
                );
                let wrong = match item.check {
                    Check::Python { .. } => "```python\npass\n```",
                    Check::Number { value, .. } => &format!("{}", value + 1.0),
                    Check::Constraints { .. } => "",
                    _ => item.prompt.as_str(),
                };
                let out = check(&item.check, wrong);
                assert!(!out.passed, "{}: a wrong answer passes: {wrong:?}", item.id);
            }
        }
        assert!(
            python,
            "python3 is needed for the code items (scripts/setup.sh installs it)"
        );
    }
}
