//! [`SentenceSplitter`]: turns streamed Markdown text (an LLM's answer arriving piece by
//! piece) into plain sentences to speak, as soon as each sentence is complete.
//!
//! Two stages, both pure:
//! 1. Markdown to prose, line by line: fenced code blocks (```` ``` ```` or `~~~`) are
//!    skipped entirely; heading `#`, quote `>`, list bullets and numbers and table pipes are
//!    dropped; `*`, `_` (at word edges), `~~` and backticks are removed; links and images
//!    become their text. An unfinished line is cleaned up to the last point where no link or
//!    code span is open, so long paragraphs stream before their newline arrives.
//! 2. Prose to sentences: a sentence ends at `.` `!` `?` `…` followed by a space (or closing
//!    quote), and at every line break. A period does not end a sentence inside a number
//!    (`3.14`), before a lowercase word, or after an abbreviation (`e.g.`, `Dr.`, `U.S.`).
//!    When the decision needs the next word, the splitter waits for it.

use crate::phonemize::period_ends_sentence;

/// Titles and other abbreviations whose period never ends a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "gen", "gov", "sen", "rep",
    "lt", "col", "capt", "sgt", "fig", "approx", "dept", "est", "vol", "cf",
];

/// Whether `word` (the text before a period, without it) is an abbreviation: a known title
/// (`Dr`, `Mrs`), dotted single letters (`e.g`, `U.S`, `a.m`) or a capital initial (`J`).
pub(crate) fn is_abbreviation(word: &str) -> bool {
    let lower = word.to_lowercase();
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return true;
    }
    let parts: Vec<&str> = word.split('.').collect();
    let single_letters = parts
        .iter()
        .all(|p| p.chars().count() == 1 && p.chars().all(char::is_alphabetic));
    if single_letters && parts.len() >= 2 {
        return true;
    }
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase())
}

/// Splits streamed Markdown text into speakable sentences. See the module docs.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    /// The current raw line, not yet ended by a newline.
    line: String,
    /// Bytes of `line` already cleaned into `prose`.
    line_done: usize,
    /// Whether the line's block prefix (heading, bullet...) has been handled.
    line_prefix_done: bool,
    /// Inside a fenced code block: its fence (three backticks or tildes).
    fence: Option<char>,
    /// Cleaned text not yet returned as sentences.
    prose: String,
}

impl SentenceSplitter {
    /// A new, empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a piece of streamed text; returns the sentences it completed, in order.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        for c in piece.chars() {
            if c == '\n' {
                self.end_line();
            } else if c != '\r' {
                self.line.push(c);
            }
        }
        self.clean_partial_line();
        self.take_sentences(false)
    }

    /// Ends the stream: returns whatever text is left, as one string (`None` if nothing
    /// speakable is left). The splitter is then empty and can be reused.
    pub fn finish(&mut self) -> Option<String> {
        if !self.line.is_empty() {
            self.end_line();
        }
        let mut rest = self.take_sentences(true);
        let tail = normalize(&std::mem::take(&mut self.prose));
        if speakable(&tail) {
            rest.push(tail);
        }
        *self = Self::default();
        if rest.is_empty() {
            None
        } else {
            Some(rest.join(" "))
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let done = std::mem::take(&mut self.line_done);
        let prefix_done = std::mem::take(&mut self.line_prefix_done);
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if !prefix_done && indent <= 3 {
            if let Some(f) = fence_char(trimmed) {
                match self.fence {
                    None => self.fence = Some(f),
                    Some(open) if open == f => self.fence = None,
                    Some(_) => {}
                }
                return;
            }
        }
        if self.fence.is_some() {
            return;
        }
        let start = if prefix_done {
            done
        } else {
            block_prefix_len(&line)
        };
        self.prose.push_str(&clean_inline(&line, start, line.len()));
        self.prose.push('\n');
    }

    /// Cleans as much of the unfinished line as is safe.
    fn clean_partial_line(&mut self) {
        if self.fence.is_some() {
            return;
        }
        if !self.line_prefix_done {
            let trimmed = self.line.trim_start();
            // Wait until the line's first word is complete: it may be a fence or a marker.
            let Some(space) = trimmed.find(char::is_whitespace) else {
                return;
            };
            if fence_char(&trimmed[..space]).is_some() || trimmed.starts_with('`') {
                return;
            }
            self.line_done = block_prefix_len(&self.line);
            self.line_prefix_done = true;
        }
        let rest = &self.line[self.line_done..];
        let safe = safe_prefix_len(rest);
        if safe > 0 {
            let cleaned = clean_inline(&self.line, self.line_done, self.line_done + safe);
            self.prose.push_str(&cleaned);
            self.line_done += safe;
        }
    }

    /// Removes the complete sentences from `prose`.
    fn take_sentences(&mut self, at_end: bool) -> Vec<String> {
        let chars: Vec<char> = self.prose.chars().collect();
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let cut = match c {
                '\n' => Some(i + 1),
                '.' | '!' | '?' | '…' => {
                    let mut j = i;
                    while j < chars.len() && matches!(chars[j], '.' | '!' | '?' | '…') {
                        j += 1;
                    }
                    let mut k = j;
                    while k < chars.len() && is_closing(chars[k]) {
                        k += 1;
                    }
                    if k >= chars.len() && !at_end {
                        break; // Need the next character to decide.
                    }
                    let boundary = k >= chars.len() || chars[k].is_whitespace();
                    let ends = if !boundary {
                        false
                    } else if c == '.' && j == i + 1 {
                        match period_ends_sentence(&chars, i, at_end) {
                            Some(e) => e,
                            None => break,
                        }
                    } else {
                        true
                    };
                    if ends {
                        Some(k)
                    } else {
                        i = j;
                        continue;
                    }
                }
                _ => None,
            };
            match cut {
                Some(end) => {
                    let s = normalize(&chars[start..end].iter().collect::<String>());
                    if speakable(&s) {
                        out.push(s);
                    }
                    start = end;
                    i = end;
                }
                None => i += 1,
            }
        }
        self.prose = chars[start..].iter().collect();
        out
    }
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '»')
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn speakable(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

/// The fence character if `trimmed` (a line without its indentation) opens or closes a
/// fenced code block.
fn fence_char(trimmed: &str) -> Option<char> {
    if trimmed.starts_with("```") {
        Some('`')
    } else if trimmed.starts_with("~~~") {
        Some('~')
    } else {
        None
    }
}

/// Length of the line's block markers: indentation, `#`s, `>`s, a bullet or a list number.
fn block_prefix_len(line: &str) -> usize {
    let mut t = line.trim_start();
    loop {
        let next = if let Some(s) = t.strip_prefix('>') {
            s
        } else if t.starts_with('#') {
            let s = t.trim_start_matches('#');
            if s.is_empty() || s.starts_with(char::is_whitespace) {
                s
            } else {
                break;
            }
        } else if let Some(s) = ["- ", "* ", "+ "].iter().find_map(|b| t.strip_prefix(b)) {
            s
        } else {
            let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let after = &t[digits..];
            if digits > 0 && (after.starts_with(". ") || after.starts_with(") ")) {
                &after[2..]
            } else {
                break;
            }
        };
        t = next.trim_start();
    }
    line.len() - t.len()
}

/// Longest prefix of an unfinished line that can be cleaned now: no link, image or code span
/// left open, and not ending in a character whose meaning depends on the next one.
fn safe_prefix_len(s: &str) -> usize {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut safe = 0;
    let mut code = false;
    let mut bracket = 0usize;
    let mut url = false;
    for (n, &(i, c)) in chars.iter().enumerate() {
        let next = chars.get(n + 1).map(|&(_, c)| c);
        if code {
            if c == '`' {
                code = false;
            }
        } else if url {
            if c == ')' {
                url = false;
            }
        } else if c == '`' {
            code = true;
        } else if c == '[' {
            bracket += 1;
        } else if c == ']' && bracket > 0 {
            match next {
                None => return safe,
                Some('(') => url = true,
                Some(_) => {}
            }
            bracket -= 1;
        }
        let settled = !code && !url && bracket == 0;
        let needs_next = matches!(c, '_' | '!' | '~' | '*' | ']' | '(') && next.is_none();
        if settled && !needs_next {
            safe = i + c.len_utf8();
        }
    }
    safe
}

/// Removes inline Markdown from the balanced piece `from..to` (bytes) of `line`; the
/// characters around the piece decide about markers at its edges.
fn clean_inline(line: &str, from: usize, to: usize) -> String {
    let chars: Vec<char> = line[..to].chars().collect();
    let mut out = String::with_capacity(to - from);
    let mut i = line[..from].chars().count();
    let after = line[to..].chars().next();
    while i < chars.len() {
        let c = chars[i];
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        let next = chars.get(i + 1).copied().or(after);
        match c {
            '*' | '`' | '|' => {
                if c == '|' {
                    out.push(' ');
                }
            }
            '~' if next == Some('~') || prev == Some('~') => {}
            '_' => {
                let inner = prev.is_some_and(char::is_alphanumeric)
                    && next.is_some_and(char::is_alphanumeric);
                if inner {
                    out.push('_');
                }
            }
            '!' if next == Some('[') => {}
            '[' => {}
            ']' => {
                if next == Some('(') {
                    // Skip the URL.
                    let mut j = i + 2;
                    while j < chars.len() && chars[j] != ')' {
                        j += 1;
                    }
                    i = j + 1;
                    continue;
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn abbreviations() {
        for a in ["e.g", "i.e", "U.S", "Dr", "mrs", "J", "a.m"] {
            assert!(is_abbreviation(a), "{a}");
        }
        for a in ["it", "Baton", "3", "end"] {
            assert!(!is_abbreviation(a), "{a}");
        }
    }

    #[test]
    fn splits_plain_sentences_as_they_complete() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Hello world").is_empty());
        assert_eq!(s.push(". How"), vec!["Hello world."]);
        assert_eq!(s.push(" are you? I'm"), vec!["How are you?"]);
        assert_eq!(s.finish().as_deref(), Some("I'm"));
    }

    #[test]
    fn first_sentence_is_released_once_the_next_word_starts() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Hello world.").is_empty());
        assert!(s.push(" ").is_empty());
        assert_eq!(s.push("Next"), vec!["Hello world."]);
    }

    #[test]
    fn numbers_and_abbreviations_do_not_split() {
        assert_eq!(
            all(&[
                "Pi is 3.",
                "14 roughly. Dr. Smith, e.g. ",
                "lives in the U.S. ",
                "Really!"
            ]),
            vec![
                "Pi is 3.14 roughly.",
                "Dr. Smith, e.g. lives in the U.S. Really!"
            ]
        );
        assert_eq!(
            all(&["Wait… what?! Yes... ", "ok"]),
            vec!["Wait…", "what?!", "Yes...", "ok"]
        );
    }

    #[test]
    fn newlines_end_sentences() {
        assert_eq!(
            all(&["First line\nsecond line\n\n", "third"]),
            vec!["First line", "second line", "third"]
        );
    }

    #[test]
    fn code_blocks_are_skipped() {
        let text = "Run this:\n```rust\nfn main() { println!(\"Hi. There.\"); }\n```\nThen it prints. Done";
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(all(&refs), vec!["Run this:", "Then it prints.", "Done"]);
        assert_eq!(all(&["~~~\ncode. More.\n~~~\nAfter."]), vec!["After."]);
        // An unclosed block is never read.
        assert_eq!(all(&["Intro.\n```\nsecret. code."]), vec!["Intro."]);
    }

    #[test]
    fn markdown_markers_are_stripped() {
        let text = "# Title\n\nThis is **bold**, _it_ and `code`. See [the docs](https://x.y/a.b) now!\n- item one\n2. item two\n> quoted ~~no~~ text\n![a cat](cat.png) snake_case";
        assert_eq!(
            all(&[text]),
            vec![
                "Title",
                "This is bold, it and code.",
                "See the docs now!",
                "item one",
                "item two",
                "quoted no text",
                "a cat snake_case",
            ]
        );
        // Streamed one character at a time gives the same.
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        assert_eq!(all(&refs), all(&[text]));
    }

    #[test]
    fn long_paragraph_streams_before_its_newline() {
        let mut s = SentenceSplitter::new();
        let mut got = Vec::new();
        for w in "One [link](http://a.b/c.d) here. Two `x.y` there. Three".split_inclusive(' ') {
            got.extend(s.push(w));
        }
        assert_eq!(got, vec!["One link here.", "Two x.y there."]);
        assert_eq!(s.finish().as_deref(), Some("Three"));
        assert_eq!(s.finish(), None);
    }
}
