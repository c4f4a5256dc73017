//! A syntax check for GBNF grammars (llama.cpp's grammar format) that says what is wrong
//! and where.
//!
//! llama.cpp's own parser only prints its reason to stderr and returns nothing, so a
//! request with a broken grammar would get no better answer than "refused". This module
//! follows the same rules as `llama_grammar_parser` (in `src/llama-grammar.cpp` of the
//! vendored llama.cpp): rule names of letters, digits and `-`; `::=`; literals, character
//! classes, `<token>`s, groups, `.`, and the repetitions `* + ? {m} {m,} {m,n}`; every
//! referenced rule defined; and the root rule present. What it accepts may still be
//! refused by llama.cpp (left recursion, a `<token>` that is not one token of the model);
//! that is reported separately by the caller.

use std::collections::{BTreeMap, BTreeSet};

/// llama.cpp's limit on repetition counts (`MAX_REPETITION_THRESHOLD`).
const MAX_REPETITION: u64 = 2000;

/// Check `src` and its root rule `root`; the error says what is wrong and where.
pub fn check(src: &str, root: &str) -> Result<(), String> {
    let mut parser = Parser {
        src: src.as_bytes(),
        pos: 0,
        defined: BTreeMap::new(),
        referenced: BTreeMap::new(),
    };
    parser.grammar()?;
    if parser.defined.is_empty() {
        return Err(
            "the grammar defines no rule (expected lines like `root ::= \"yes\" | \"no\"`)".into(),
        );
    }
    if !parser.defined.contains_key(root) {
        let names: Vec<&str> = parser.defined.keys().map(String::as_str).collect();
        return Err(format!(
            "the grammar has no `{root}` rule, where generation starts (it defines: {})",
            names.join(", ")
        ));
    }
    let undefined: BTreeSet<(&str, usize)> = parser
        .referenced
        .iter()
        .filter(|(name, _)| !parser.defined.contains_key(*name))
        .map(|(name, at)| (name.as_str(), *at))
        .collect();
    if let Some((name, at)) = undefined.iter().min_by_key(|(_, at)| *at) {
        return Err(format!(
            "rule `{name}` is used {} but never defined",
            parser.location(*at)
        ));
    }
    Ok(())
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    /// Rule name → where it is defined.
    defined: BTreeMap<String, usize>,
    /// Rule name → where it is first used.
    referenced: BTreeMap<String, usize>,
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

impl Parser<'_> {
    fn peek(&self) -> u8 {
        self.src.get(self.pos).copied().unwrap_or(0)
    }

    fn peek_at(&self, offset: usize) -> u8 {
        self.src.get(self.pos + offset).copied().unwrap_or(0)
    }

    /// "line L, column C" of byte offset `at`.
    fn location(&self, at: usize) -> String {
        let before = &self.src[..at.min(self.src.len())];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        format!("at line {line}, column {column}")
    }

    fn error<T>(&self, what: impl AsRef<str>) -> Result<T, String> {
        let rest: String = String::from_utf8_lossy(&self.src[self.pos.min(self.src.len())..])
            .chars()
            .take(24)
            .collect();
        let near = if rest.is_empty() {
            "at the end of the grammar".to_owned()
        } else {
            format!("near `{}`", rest.replace('\n', "\\n"))
        };
        Err(format!(
            "{} {}: {}",
            self.location(self.pos),
            near,
            what.as_ref()
        ))
    }

    fn space(&mut self, newline_ok: bool) {
        loop {
            match self.peek() {
                b' ' | b'\t' => self.pos += 1,
                b'\r' | b'\n' if newline_ok => self.pos += 1,
                b'#' => {
                    while !matches!(self.peek(), 0 | b'\r' | b'\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while is_word(self.peek()) {
            self.pos += 1;
        }
        if self.pos == start {
            return self.error("expected a rule name (letters, digits and `-`)");
        }
        Ok(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    fn int(&mut self) -> Result<u64, String> {
        let start = self.pos;
        while self.peek().is_ascii_digit() {
            self.pos += 1;
        }
        if self.pos == start {
            return self.error("expected a number");
        }
        std::str::from_utf8(&self.src[start..self.pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or_else(|| self.error("number too large"), Ok)
    }

    fn grammar(&mut self) -> Result<(), String> {
        self.space(true);
        while self.peek() != 0 {
            self.rule()?;
        }
        Ok(())
    }

    fn rule(&mut self) -> Result<(), String> {
        let start = self.pos;
        if self.peek() == b'_' || (self.peek() != 0 && !is_word(self.peek())) {
            return self.error("expected a rule definition `name ::= …`");
        }
        let name = self.name()?;
        if self.peek() == b'_' {
            return self.error(
                "rule names may contain only letters, digits and `-` (write `my-rule`, not `my_rule`)",
            );
        }
        self.space(false);
        if !self.src[self.pos..].starts_with(b"::=") {
            return self.error(format!("expected `::=` after the rule name `{name}`"));
        }
        self.pos += 3;
        self.space(true);
        self.defined.entry(name).or_insert(start);
        self.alternates(false)?;
        match self.peek() {
            b'\r' => {
                self.pos += 1;
                if self.peek() == b'\n' {
                    self.pos += 1;
                }
            }
            b'\n' => self.pos += 1,
            0 => {}
            b')' => return self.error("`)` without a matching `(`"),
            _ => return self.error("expected the end of the rule (a new line)"),
        }
        self.space(true);
        Ok(())
    }

    fn alternates(&mut self, nested: bool) -> Result<(), String> {
        self.sequence(nested)?;
        while self.peek() == b'|' {
            self.pos += 1;
            self.space(true);
            self.sequence(nested)?;
        }
        Ok(())
    }

    fn sequence(&mut self, nested: bool) -> Result<(), String> {
        let mut has_item = false;
        loop {
            match self.peek() {
                b'"' => {
                    self.pos += 1;
                    while self.peek() != b'"' {
                        if self.peek() == 0 {
                            return self.error("unterminated string literal (missing `\"`)");
                        }
                        self.char()?;
                    }
                    self.pos += 1;
                    has_item = true;
                }
                b'[' => {
                    self.pos += 1;
                    if self.peek() == b'^' {
                        self.pos += 1;
                    }
                    while self.peek() != b']' {
                        if self.peek() == 0 {
                            return self.error("unterminated character class (missing `]`)");
                        }
                        self.char()?;
                        if self.peek() == b'-' && self.peek_at(1) != b']' {
                            if self.peek_at(1) == 0 {
                                return self.error("unterminated character class (missing `]`)");
                            }
                            self.pos += 1;
                            self.char()?;
                        }
                    }
                    self.pos += 1;
                    has_item = true;
                }
                b'<' | b'!' => {
                    if self.peek() == b'!' {
                        self.pos += 1;
                        if self.peek() != b'<' {
                            return self.error("expected `<` after `!` (a token like `!<[42]>`)");
                        }
                    }
                    self.token()?;
                    has_item = true;
                }
                c if is_word(c) => {
                    let at = self.pos;
                    let name = self.name()?;
                    if self.peek() == b'_' {
                        return self.error(
                            "rule names may contain only letters, digits and `-` (write `my-rule`, not `my_rule`)",
                        );
                    }
                    self.referenced.entry(name).or_insert(at);
                    has_item = true;
                }
                b'(' => {
                    self.pos += 1;
                    self.space(true);
                    self.alternates(true)?;
                    if self.peek() != b')' {
                        return self.error("expected `)` to close the group");
                    }
                    self.pos += 1;
                    has_item = true;
                }
                b'.' => {
                    self.pos += 1;
                    has_item = true;
                }
                b'*' | b'+' | b'?' => {
                    if !has_item {
                        return self.error(format!(
                            "`{}` must follow an item to repeat",
                            self.peek() as char
                        ));
                    }
                    self.pos += 1;
                }
                b'{' => {
                    if !has_item {
                        return self.error("`{` must follow an item to repeat");
                    }
                    self.pos += 1;
                    self.space(nested);
                    if !self.peek().is_ascii_digit() {
                        return self.error("expected a number after `{`");
                    }
                    let min = self.int()?;
                    self.space(nested);
                    let mut max = None;
                    match self.peek() {
                        b'}' => max = Some(min),
                        b',' => {
                            self.pos += 1;
                            self.space(nested);
                            if self.peek().is_ascii_digit() {
                                max = Some(self.int()?);
                                self.space(nested);
                            }
                            if self.peek() != b'}' {
                                return self.error("expected `}` to close the repetition");
                            }
                        }
                        _ => return self.error("expected `,` or `}` in the repetition"),
                    }
                    if min > MAX_REPETITION {
                        return self.error(format!(
                            "a repetition of at least {min} exceeds llama.cpp's limit of {MAX_REPETITION}"
                        ));
                    }
                    if let Some(max) = max {
                        if max < min {
                            return self.error(format!(
                                "repetition {{{min},{max}}}: the maximum is below the minimum"
                            ));
                        }
                    }
                    self.pos += 1;
                }
                _ => return Ok(()),
            }
            self.space(nested);
        }
    }

    fn char(&mut self) -> Result<(), String> {
        if self.peek() == b'\\' {
            let hex = |p: &mut Self, n: usize| -> Result<(), String> {
                p.pos += 2;
                for _ in 0..n {
                    if !p.peek().is_ascii_hexdigit() {
                        return p.error(format!("expected {n} hex digits in the escape"));
                    }
                    p.pos += 1;
                }
                Ok(())
            };
            match self.peek_at(1) {
                b'x' => hex(self, 2),
                b'u' => hex(self, 4),
                b'U' => hex(self, 8),
                b't' | b'r' | b'n' | b'\\' | b'"' | b'[' | b']' | b'-' => {
                    self.pos += 2;
                    Ok(())
                }
                _ => self.error(
                    "unknown escape (use \\n \\r \\t \\\\ \\\" \\[ \\] \\- \\xHH \\uHHHH \\UHHHHHHHH)",
                ),
            }
        } else {
            // One UTF-8 character.
            let len = match self.peek() {
                0 => return self.error("unexpected end of the grammar"),
                c if c < 0x80 => 1,
                c if c >> 5 == 0b110 => 2,
                c if c >> 4 == 0b1110 => 3,
                _ => 4,
            };
            self.pos = (self.pos + len).min(self.src.len());
            Ok(())
        }
    }

    fn token(&mut self) -> Result<(), String> {
        // At `<`.
        self.pos += 1;
        if self.peek() == b'[' {
            self.pos += 1;
            let id = self.int()?;
            if id > u64::from(u32::MAX) {
                return self.error("token id too large");
            }
            if self.peek() != b']' {
                return self.error("expected `]` in the token id `<[N]>`");
            }
            self.pos += 1;
            if self.peek() != b'>' {
                return self.error("expected `>` after the token id `<[N]>`");
            }
            self.pos += 1;
            return Ok(());
        }
        while !matches!(self.peek(), 0 | b'>') {
            self.pos += 1;
        }
        if self.peek() != b'>' {
            return self.error("expected `>` to close the token");
        }
        self.pos += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_grammars_pass() {
        for grammar in [
            r#"root ::= "yes" | "no""#,
            "root ::= item+\nitem ::= [a-z] \"\\n\" # comment\n",
            "root ::= (\"a\" | [^\\x00-\\x1F\\]])* \"b\"{2,3} x?\nx ::= . <[42]> !<[7]>\r\n",
            "# a comment first\n\nroot ::=\n  \"a\" |\n  \"b\"\n",
            crate::format::JSON_OBJECT_GBNF,
        ] {
            assert_eq!(check(grammar, "root"), Ok(()), "{grammar}");
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            ("", "defines no rule"),
            ("item ::= \"a\"", "no `root` rule"),
            (
                "root ::= \"a\" other",
                "rule `other` is used at line 1, column 14",
            ),
            ("root ::= \"a", "unterminated string literal"),
            ("root ::= [a-z", "unterminated character class"),
            ("root := \"a\"", "expected `::=`"),
            ("root ::= (\"a\"", "expected `)`"),
            ("root ::= \"a\")", "`)` without a matching `(`"),
            ("root ::= * \"a\"", "must follow an item"),
            ("root ::= \"a\"{3,1}", "maximum is below the minimum"),
            ("root ::= \"a\"{5000}", "limit of 2000"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("my_rule ::= \"a\"\nroot ::= my_rule", "not `my_rule`"),
            ("root ::= \"a\"\n  ::= \"b\"", "line 2"),
            // A rule ends at the end of its line: `|` cannot start the next one.
            ("root ::= \"a\"\n  | \"b\"", "expected a rule definition"),
        ];
        for (grammar, expected) in cases {
            let err = check(grammar, "root").unwrap_err();
            assert!(err.contains(expected), "{grammar:?}: {err}");
        }
    }
}
