//! Text to Piper phoneme ids, the way Piper (piper-phonemize) does it, with the espeak-ng
//! command line instead of a linked libespeak-ng.
//!
//! Piper asks espeak-ng for the IPA phonemes of one clause at a time
//! (`espeak_TextToPhonemesWithTerminator`, IPA mode), decomposes them to Unicode NFD, drops
//! language-switch flags such as `(fr)`, and appends the clause's punctuation itself:
//! `.` `?` `!` for sentence ends, `, ` `: ` `; ` (with a space) for inner clauses. A sentence
//! (period, question or exclamation) is synthesised on its own. Its phonemes become ids as
//! BOS `^`, pad `_`, then every phoneme followed by a pad, then EOS `$`.
//!
//! Here [`split_clauses`] finds the clauses and their terminators with espeak-ng's rules
//! (punctuation followed by a space or the end; a period followed by a lowercase word, inside
//! a number or after an abbreviation does not end a sentence; an ellipsis or a dash is a
//! semicolon-like pause), [`Phonemizer`] runs `espeak-ng -q --ipa -v VOICE` on each clause,
//! [`assemble_sentences`] and [`phonemes_to_ids`] do the rest as pure functions.

use crate::error::TtsError;
use crate::splitter::is_abbreviation;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use unicode_normalization::UnicodeNormalization;

/// One phoneme: a Unicode code point, as in Piper.
pub type Phoneme = char;

/// Beginning-of-sentence symbol.
pub const BOS: Phoneme = '^';
/// End-of-sentence symbol.
pub const EOS: Phoneme = '$';
/// Pad symbol, put after BOS and after every phoneme.
pub const PAD: Phoneme = '_';

/// How a clause ends, as espeak-ng reports it to Piper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClauseEnd {
    /// `.`: ends the sentence.
    Period,
    /// `?`: ends the sentence.
    Question,
    /// `!`: ends the sentence.
    Exclamation,
    /// `,`.
    Comma,
    /// `:`.
    Colon,
    /// `;`, and the pauses espeak-ng treats like it (ellipsis, en and em dashes).
    Semicolon,
    /// A line break or the end of the text: ends the sentence without punctuation.
    Break,
}

impl ClauseEnd {
    /// Whether this terminator ends a sentence (Piper synthesises sentences separately).
    pub fn ends_sentence(self) -> bool {
        matches!(
            self,
            ClauseEnd::Period | ClauseEnd::Question | ClauseEnd::Exclamation | ClauseEnd::Break
        )
    }

    /// The phonemes Piper appends after the clause's own phonemes.
    pub fn phonemes(self) -> &'static [Phoneme] {
        match self {
            ClauseEnd::Period => &['.'],
            ClauseEnd::Question => &['?'],
            ClauseEnd::Exclamation => &['!'],
            ClauseEnd::Comma => &[',', ' '],
            ClauseEnd::Colon => &[':', ' '],
            ClauseEnd::Semicolon => &[';', ' '],
            ClauseEnd::Break => &[],
        }
    }
}

/// A clause of the input text and how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The clause's text, its terminating punctuation included (espeak-ng reads it).
    pub text: String,
    /// Its terminator.
    pub end: ClauseEnd,
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

/// Whether the character after a punctuation run lets it end a clause: whitespace, the end,
/// or a closing quote/bracket followed by one of those.
fn boundary_after(chars: &[char], mut j: usize) -> bool {
    while j < chars.len() && is_closing(chars[j]) {
        j += 1;
    }
    j >= chars.len() || chars[j].is_whitespace()
}

/// Decides whether the period at `i` (followed by a boundary) ends a sentence; `None` when the
/// text stops before the next word and `at_end` is false (more text may come).
pub(crate) fn period_ends_sentence(chars: &[char], i: usize, at_end: bool) -> Option<bool> {
    // The next word: skip closing marks and whitespace.
    let mut j = i + 1;
    while j < chars.len() && (is_closing(chars[j]) || chars[j].is_whitespace()) {
        j += 1;
    }
    if j >= chars.len() {
        return if at_end { Some(true) } else { None };
    }
    // espeak-ng: a period before a lowercase word is an abbreviation's, not a sentence end.
    if chars[j].is_lowercase() {
        return Some(false);
    }
    // The word before the period.
    let mut k = i;
    while k > 0 && !chars[k - 1].is_whitespace() {
        k -= 1;
    }
    let word: String = chars[k..i]
        .iter()
        .collect::<String>()
        .trim_start_matches(['(', '[', '"', '\'', '“', '‘', '«'])
        .to_string();
    Some(!is_abbreviation(&word))
}

/// Splits text into clauses with espeak-ng's clause rules (see the module docs). Clauses
/// without any letter or digit are dropped, except that their sentence end is kept.
pub fn split_clauses(text: &str) -> Vec<Clause> {
    let chars: Vec<char> = text.chars().collect();
    let mut clauses = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let push = |from: usize, to: usize, end: ClauseEnd, clauses: &mut Vec<Clause>| {
        let t: String = chars[from..to].iter().collect();
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
        if t.chars().any(|c| c.is_alphanumeric()) {
            clauses.push(Clause { text: t, end });
        } else if end.ends_sentence() {
            if let Some(last) = clauses.last_mut() {
                if !last.end.ends_sentence() {
                    last.end = ClauseEnd::Break;
                }
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let end = match c {
            '\n' => {
                push(start, i, ClauseEnd::Break, &mut clauses);
                i += 1;
                start = i;
                continue;
            }
            ',' | ':' | ';' | '–' | '—' | '…' if boundary_after(&chars, i + 1) => match c {
                ',' => Some(ClauseEnd::Comma),
                ':' => Some(ClauseEnd::Colon),
                _ => Some(ClauseEnd::Semicolon),
            },
            '.' if i + 1 < chars.len() && chars[i + 1] == '.' => {
                let mut j = i;
                while j < chars.len() && chars[j] == '.' {
                    j += 1;
                }
                if boundary_after(&chars, j) {
                    i = j - 1;
                    Some(ClauseEnd::Semicolon)
                } else {
                    None
                }
            }
            '.' if boundary_after(&chars, i + 1) => {
                if period_ends_sentence(&chars, i, true) == Some(true) {
                    Some(ClauseEnd::Period)
                } else {
                    None
                }
            }
            '?' | '!' => {
                let mut j = i;
                while j < chars.len() && matches!(chars[j], '?' | '!' | '.') {
                    j += 1;
                }
                if boundary_after(&chars, j) {
                    i = j - 1;
                    Some(if c == '?' {
                        ClauseEnd::Question
                    } else {
                        ClauseEnd::Exclamation
                    })
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(end) = end {
            let mut to = i + 1;
            while to < chars.len() && is_closing(chars[to]) {
                to += 1;
            }
            push(start, to, end, &mut clauses);
            start = to;
            i = to;
        } else {
            i += 1;
        }
    }
    push(start, chars.len(), ClauseEnd::Break, &mut clauses);
    clauses
}

/// Turns espeak-ng's IPA for one clause into Piper phonemes: NFD-decomposed code points,
/// language-switch flags such as `(en)` removed, line breaks (espeak-ng's own sub-clauses)
/// joined with a space.
pub fn ipa_to_phonemes(ipa: &str) -> Vec<Phoneme> {
    let joined = ipa
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    let mut in_flag = false;
    for c in joined.nfd() {
        if in_flag {
            if c == ')' {
                in_flag = false;
            }
        } else if c == '(' {
            in_flag = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Groups clause phonemes into sentences the way Piper does: each clause's phonemes, then
/// its terminator's punctuation; a sentence ends at `.`, `?`, `!` or a break. Sentences
/// without any phoneme other than punctuation and spaces are dropped.
pub fn assemble_sentences(clauses: &[(ClauseEnd, Vec<Phoneme>)]) -> Vec<Vec<Phoneme>> {
    let mut sentences = Vec::new();
    let mut current: Vec<Phoneme> = Vec::new();
    for (end, phonemes) in clauses {
        current.extend_from_slice(phonemes);
        current.extend_from_slice(end.phonemes());
        if end.ends_sentence() {
            sentences.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        // A trailing inner clause: drop its dangling space like a sentence end would.
        while current.last() == Some(&' ') {
            current.pop();
        }
        sentences.push(current);
    }
    sentences
        .into_iter()
        .filter(|s| s.iter().any(|c| c.is_alphabetic()))
        .collect()
}

/// A voice's `phoneme_id_map`: phoneme to one or more model ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PhonemeIdMap {
    map: HashMap<Phoneme, Vec<i64>>,
}

impl PhonemeIdMap {
    /// Builds the map from the JSON form (`{"a": [14], ...}`). Keys must be single code
    /// points and BOS `^`, EOS `$` and pad `_` must be present.
    pub fn from_json_map(json: &HashMap<String, Vec<i64>>) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (k, v) in json {
            let mut it = k.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => {
                    map.insert(c, v.clone());
                }
                _ => return Err(format!("phoneme_id_map key {k:?} is not one character")),
            }
        }
        for special in [BOS, EOS, PAD] {
            if map.get(&special).is_none_or(|v| v.is_empty()) {
                return Err(format!("phoneme_id_map has no id for {special:?}"));
            }
        }
        Ok(Self { map })
    }

    /// The ids of a phoneme.
    pub fn get(&self, p: Phoneme) -> Option<&[i64]> {
        self.map.get(&p).map(Vec::as_slice)
    }
}

/// Piper's phoneme-to-id rule: BOS, pad, then each phoneme's ids followed by a pad, then EOS.
/// Phonemes missing from the map are skipped and returned in the second value (in order of
/// first appearance), as Piper warns about them.
pub fn phonemes_to_ids(phonemes: &[Phoneme], map: &PhonemeIdMap) -> (Vec<i64>, Vec<Phoneme>) {
    let ids_of = |p: Phoneme| map.get(p).unwrap_or(&[]);
    let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
    let mut missing = Vec::new();
    ids.extend_from_slice(ids_of(BOS));
    ids.extend_from_slice(ids_of(PAD));
    for &p in phonemes {
        match map.get(p) {
            Some(v) => {
                ids.extend_from_slice(v);
                ids.extend_from_slice(ids_of(PAD));
            }
            None => {
                if !missing.contains(&p) {
                    missing.push(p);
                }
            }
        }
    }
    ids.extend_from_slice(ids_of(EOS));
    (ids, missing)
}

/// Runs the espeak-ng command line for phonemes.
#[derive(Debug, Clone)]
pub struct Phonemizer {
    program: PathBuf,
    voice: String,
}

impl Phonemizer {
    /// A phonemiser for an espeak-ng voice (`en-us`), using `espeak-ng` from `PATH`.
    pub fn new(voice: impl Into<String>) -> Self {
        Self {
            program: PathBuf::from("espeak-ng"),
            voice: voice.into(),
        }
    }

    /// Uses another espeak-ng executable.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// The espeak-ng voice.
    pub fn voice(&self) -> &str {
        &self.voice
    }

    /// IPA of one piece of text, as `espeak-ng -q --ipa -v VOICE` prints it (text on stdin,
    /// so text that looks like an option is still read as text).
    pub fn ipa(&self, text: &str) -> Result<String, TtsError> {
        let out = run_espeak(
            &self.program,
            &["-q", "--ipa", "-b", "1", "-v", &self.voice],
            text,
            "phonemising text for the Piper voice",
        )?;
        String::from_utf8(out).map_err(|_| TtsError::Espeak("its IPA output is not UTF-8".into()))
    }

    /// Text to Piper phonemes, one list per sentence.
    pub fn phonemize(&self, text: &str) -> Result<Vec<Vec<Phoneme>>, TtsError> {
        let mut clauses = Vec::new();
        for clause in split_clauses(text) {
            let ipa = self.ipa(&clause.text)?;
            clauses.push((clause.end, ipa_to_phonemes(&ipa)));
        }
        Ok(assemble_sentences(&clauses))
    }
}

/// Runs espeak-ng with `args`, `text` on stdin; returns stdout. A missing program gives
/// [`TtsError::EspeakMissing`].
pub(crate) fn run_espeak(
    program: &std::path::Path,
    args: &[&str],
    text: &str,
    purpose: &'static str,
) -> Result<Vec<u8>, TtsError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TtsError::EspeakMissing { purpose }
            } else {
                TtsError::Espeak(format!("cannot start {}: {e}", program.display()))
            }
        })?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let text = text.to_string();
    // Write from a thread so a large output cannot dead-lock against our input.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
        let _ = stdin.write_all(b"\n");
    });
    let out = child
        .wait_with_output()
        .map_err(|e| TtsError::Espeak(format!("cannot read its output: {e}")))?;
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(TtsError::Espeak(format!(
            "exit status {}: {stderr}",
            out.status
        )));
    }
    // espeak-ng reports an unknown voice on stderr but may still exit 0.
    if stderr.contains("Failed to set voice") || stderr.contains("Voice does not exist") {
        return Err(TtsError::Espeak(stderr));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(text: &str) -> Vec<(String, ClauseEnd)> {
        split_clauses(text)
            .into_iter()
            .map(|c| (c.text, c.end))
            .collect()
    }

    #[test]
    fn clauses_follow_espeak_rules() {
        use ClauseEnd::*;
        assert_eq!(
            ends("Hello world, this is Baton. How are you? Fine!"),
            vec![
                ("Hello world,".into(), Comma),
                ("this is Baton.".into(), Period),
                ("How are you?".into(), Question),
                ("Fine!".into(), Exclamation),
            ]
        );
        assert_eq!(
            ends("Pi is 3.14, e.g. in maths. Dr. Smith agrees"),
            vec![
                ("Pi is 3.14,".into(), Comma),
                ("e.g. in maths.".into(), Period),
                ("Dr. Smith agrees".into(), Break),
            ]
        );
        assert_eq!(
            ends("Wait... what?! Yes: no; maybe"),
            vec![
                ("Wait...".into(), Semicolon),
                ("what?!".into(), Question),
                ("Yes:".into(), Colon),
                ("no;".into(), Semicolon),
                ("maybe".into(), Break),
            ]
        );
        assert_eq!(
            ends("He said \"stop.\" Then 1,000 left\nnext line"),
            vec![
                ("He said \"stop.\"".into(), Period),
                ("Then 1,000 left".into(), Break),
                ("next line".into(), Break),
            ]
        );
        assert!(split_clauses("  ... \n ").is_empty());
    }

    #[test]
    fn ipa_is_decomposed_and_flags_dropped() {
        assert_eq!(
            ipa_to_phonemes(" həlˈoʊ\n(fr)bɔ̃ʒuʁ(en) ç\n"),
            "həlˈoʊ bɔ̃ʒuʁ c\u{327}".chars().collect::<Vec<_>>()
        );
    }

    #[test]
    fn sentences_get_piper_punctuation() {
        let p = |s: &str| s.chars().collect::<Vec<_>>();
        let s = assemble_sentences(&[
            (ClauseEnd::Comma, p("həlˈoʊ wˈɜːld")),
            (ClauseEnd::Period, p("ðɪs ɪz")),
            (ClauseEnd::Question, p("hˈaʊ")),
            (ClauseEnd::Semicolon, p("wˈeɪt")),
        ]);
        assert_eq!(
            s,
            vec![p("həlˈoʊ wˈɜːld, ðɪs ɪz."), p("hˈaʊ?"), p("wˈeɪt;")]
        );
    }
}
