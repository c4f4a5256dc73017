//! Question sets: JSON Lines of [`EvalItem`]s, built into the binary or read from a file.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Names and contents of the sets built into Baton, in the order they run.
pub const BUILTIN_SETS: [(&str, &str); 5] = [
    ("general", include_str!("../sets/general.jsonl")),
    ("arithmetic", include_str!("../sets/arithmetic.jsonl")),
    ("code", include_str!("../sets/code.jsonl")),
    ("writing", include_str!("../sets/writing.jsonl")),
    ("translation", include_str!("../sets/translation.jsonl")),
];

/// The domains an item may belong to (the router's domains).
const DOMAINS: [&str; 5] = ["general", "math", "code", "writing", "translation"];

/// How an answer is scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The answer contains one of these (case and accents folded, at word boundaries).
    Contains {
        /// Accepted strings.
        any: Vec<String>,
    },
    /// The whole answer, normalised, equals one of these.
    Exact {
        /// Accepted answers.
        any: Vec<String>,
    },
    /// The regular expression (Rust `regex` syntax) matches somewhere in the answer.
    Regex {
        /// The pattern.
        pattern: String,
    },
    /// The last number in the answer equals `value` within `tolerance`.
    Number {
        /// The expected value.
        value: f64,
        /// Largest accepted absolute difference.
        #[serde(default)]
        tolerance: f64,
    },
    /// The answer's first ```python block (or the whole answer), followed by `tests`, runs
    /// with `python3 -I` and exits 0 within the time limit.
    Python {
        /// Python statements (asserts) appended to the code.
        tests: String,
    },
    /// Writing constraints; every given rule must hold.
    Constraints {
        /// The rules.
        rules: Constraints,
    },
}

/// Checkable constraints on a piece of writing. Unset rules are not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// At most this many words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_words: Option<usize>,
    /// At least this many words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_words: Option<usize>,
    /// Exactly this many sentences (ended by `.`, `!` or `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentences: Option<usize>,
    /// Words or phrases that must appear (case-insensitive, word boundaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Words or phrases that must not appear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Exactly this many bullet lines (`- `, `* ` or `• `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bullets: Option<usize>,
    /// Exactly this many non-empty lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// The answer starts with this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    /// The answer ends with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    /// Every letter is `lower` or `upper` case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalItem {
    /// Unique within its set (`general-001`).
    pub id: String,
    /// The router's domain: `general`, `math`, `code`, `writing` or `translation`.
    pub domain: String,
    /// The user message sent to the model.
    pub prompt: String,
    /// How the answer is scored.
    pub check: Check,
    /// A correct answer (checked to pass by the tests; not shown to models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A named list of questions.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSet {
    /// Its name (`general`, or a file's stem).
    pub name: String,
    /// The questions, in file order.
    pub items: Vec<EvalItem>,
}

impl EvalSet {
    /// How many items each domain has.
    pub fn domains(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for item in &self.items {
            *out.entry(item.domain.clone()).or_insert(0) += 1;
        }
        out
    }
}

/// Why a set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// A line is not a valid item.
    #[error("{set}, line {line}: {reason}")]
    Item {
        /// The set.
        set: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in words.
        reason: String,
    },
    /// The set has no items.
    #[error("{0}: the set has no questions; each line must be a JSON object with id, domain, prompt and check")]
    Empty(String),
    /// The file could not be read.
    #[error("cannot read the question set {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No built-in set has that name, and no such file exists.
    #[error("no question set `{0}`: use one of general, arithmetic, code, writing, translation, all, or a path to a .jsonl file")]
    Unknown(String),
}

/// Parses a set from JSON Lines text. Empty lines and lines starting with `#` are skipped;
/// every other line must be an item, ids must be unique and regexes must compile.
pub fn parse_set(name: &str, text: &str) -> Result<EvalSet, SetError> {
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |reason: String| SetError::Item {
            set: name.to_owned(),
            line: line_no,
            reason,
        };
        let item: EvalItem = serde_json::from_str(trimmed).map_err(|e| {
            err(format!(
                "not a question ({e}); expected {{\"id\", \"domain\", \"prompt\", \"check\": {{\"type\": …}}}}"
            ))
        })?;
        if item.id.trim().is_empty() {
            return Err(err("the id is empty".into()));
        }
        if !ids.insert(item.id.clone()) {
            return Err(err(format!("the id `{}` is used twice", item.id)));
        }
        if !DOMAINS.contains(&item.domain.as_str()) {
            return Err(err(format!(
                "unknown domain `{}`: expected one of {}",
                item.domain,
                DOMAINS.join(", ")
            )));
        }
        if item.prompt.trim().is_empty() {
            return Err(err("the prompt is empty".into()));
        }
        validate_check(&item.check).map_err(err)?;
        items.push(item);
    }
    if items.is_empty() {
        return Err(SetError::Empty(name.to_owned()));
    }
    Ok(EvalSet {
        name: name.to_owned(),
        items,
    })
}

fn validate_check(check: &Check) -> Result<(), String> {
    match check {
        Check::Contains { any } | Check::Exact { any } => {
            if any.iter().all(|a| a.trim().is_empty()) {
                return Err("`any` lists no accepted answer".into());
            }
        }
        Check::Regex { pattern } => {
            regex::Regex::new(pattern).map_err(|e| format!("the pattern does not compile: {e}"))?;
        }
        Check::Number { value, tolerance } => {
            if !value.is_finite() || !tolerance.is_finite() || *tolerance < 0.0 {
                return Err("value and tolerance must be finite, tolerance not negative".into());
            }
        }
        Check::Python { tests } => {
            if tests.trim().is_empty() {
                return Err("a python check needs tests".into());
            }
        }
        Check::Constraints { rules } => {
            if let Some(case) = &rules.case {
                if case != "lower" && case != "upper" {
                    return Err(format!("case `{case}`: expected lower or upper"));
                }
            }
            if rules == &Constraints::default() {
                return Err("constraints without any rule".into());
            }
        }
    }
    Ok(())
}

/// The built-in set `name`.
pub fn builtin_set(name: &str) -> Option<EvalSet> {
    BUILTIN_SETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| parse_set(n, text).expect("built-in sets are valid (tested)"))
}

/// Every built-in set, in order.
pub fn builtin_sets() -> Vec<EvalSet> {
    BUILTIN_SETS
        .iter()
        .map(|(n, text)| parse_set(n, text).expect("built-in sets are valid (tested)"))
        .collect()
}

/// A set by name: a built-in one, or a `.jsonl` file (its stem names it). Files larger than
/// 16 MiB are refused.
pub fn load_set(name_or_path: &str) -> Result<EvalSet, SetError> {
    if let Some(set) = builtin_set(name_or_path) {
        return Ok(set);
    }
    let path = Path::new(name_or_path);
    if !path.exists() {
        return Err(SetError::Unknown(name_or_path.to_owned()));
    }
    let read_err = |reason: String| SetError::Read {
        path: path.display().to_string(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| read_err(e.to_string()))?
        .len();
    if size > 16 << 20 {
        return Err(read_err(format!(
            "{size} bytes is more than the 16 MiB a set may have"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
    let name = path.file_stem().map_or_else(
        || name_or_path.to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    parse_set(&name, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sets_parse_and_cover_every_domain_with_150_items() {
        let sets = builtin_sets();
        let total: usize = sets.iter().map(|s| s.items.len()).sum();
        assert!(total >= 150, "{total} items");
        let mut domains = HashSet::new();
        for set in &sets {
            domains.extend(set.domains().into_keys());
        }
        assert_eq!(domains.len(), DOMAINS.len(), "{domains:?}");
    }

    #[test]
    fn bad_lines_name_their_line_and_what_to_do() {
        let e = parse_set("s", "\n{\"id\": \"a\"}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s, line 2: not a question"), "{e}");
        let dup =
            r#"{"id":"a","domain":"general","prompt":"p","check":{"type":"contains","any":["x"]}}"#;
        let e = parse_set("s", &format!("{dup}\n{dup}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("used twice"), "{e}");
        let bad =
            r#"{"id":"a","domain":"poetry","prompt":"p","check":{"type":"contains","any":["x"]}}"#;
        assert!(parse_set("s", bad)
            .unwrap_err()
            .to_string()
            .contains("unknown domain"));
        let re =
            r#"{"id":"a","domain":"general","prompt":"p","check":{"type":"regex","pattern":"("}}"#;
        assert!(parse_set("s", re)
            .unwrap_err()
            .to_string()
            .contains("does not compile"));
        assert!(matches!(
            parse_set("s", "# only a comment\n"),
            Err(SetError::Empty(_))
        ));
        assert!(matches!(load_set("no-such-set"), Err(SetError::Unknown(_))));
    }
}
