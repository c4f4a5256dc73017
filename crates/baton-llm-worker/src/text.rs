//! Turning generated token bytes into streamable text: whole UTF-8 characters only, and
//! stop strings cut out before they are ever streamed.

/// Accumulates token bytes and releases text that is safe to stream.
#[derive(Debug, Default)]
pub struct TextStream {
    /// Bytes not yet decodable (an incomplete UTF-8 sequence).
    pending: Vec<u8>,
    /// All decoded text so far.
    text: String,
    /// How much of `text` was released.
    released: usize,
    stops: Vec<String>,
    stopped: bool,
}

impl TextStream {
    /// A stream that ends at the first of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Self::default()
        }
    }

    /// Add the bytes of one token; returns text to stream now (maybe empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        self.pending.extend_from_slice(bytes);
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    // valid_up_to is a char boundary by definition.
                    let (good, rest) = self.pending.split_at(valid);
                    self.text
                        .push_str(std::str::from_utf8(good).unwrap_or_default());
                    match err.error_len() {
                        // Incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending = rest.to_vec();
                            break;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(bad) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending = rest[bad..].to_vec();
                        }
                    }
                }
            }
        }
        self.release()
    }

    /// Whether a stop string was found.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Release what is left (call once at the end).
    pub fn finish(&mut self) -> String {
        if !self.stopped && !self.pending.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
        let end = self.text.len();
        let out = self.text[self.released..end].to_owned();
        self.released = end;
        out
    }

    /// The generated text (without any stop string).
    pub fn text(&self) -> &str {
        &self.text
    }

    fn release(&mut self) -> String {
        // Earliest stop string in the whole text (it may straddle released text only if it
        // started in held-back text, which the hold-back below guarantees).
        let search_from = self.released.saturating_sub(self.max_stop_len());
        let search_from = floor_char_boundary(&self.text, search_from);
        let hit = self
            .stops
            .iter()
            .filter_map(|stop| self.text[search_from..].find(stop.as_str()))
            .min()
            .map(|i| i + search_from);
        if let Some(at) = hit {
            let at = at.max(self.released);
            self.text.truncate(at);
            self.stopped = true;
            let out = self.text[self.released..].to_owned();
            self.released = self.text.len();
            return out;
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut hold = 0;
        for stop in &self.stops {
            for len in (1..stop.len()).rev() {
                if len <= self.text.len() - self.released
                    && stop.is_char_boundary(len)
                    && self.text.ends_with(&stop[..len])
                {
                    hold = hold.max(len);
                    break;
                }
            }
        }
        let end = self.text.len() - hold;
        let out = self.text[self.released..end].to_owned();
        self.released = end;
        out
    }

    fn max_stop_len(&self) -> usize {
        self.stops.iter().map(String::len).max().unwrap_or(0)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut stream = TextStream::new(&stops);
        let mut out = Vec::new();
        for piece in pieces {
            out.push(stream.push(piece));
            if stream.stopped() {
                break;
            }
        }
        out.push(stream.finish());
        (stream.text().to_owned(), out, stream.stopped())
    }

    #[test]
    fn split_utf8_waits_for_the_whole_character() {
        let euro = "€".as_bytes();
        let (text, out, _) = run(&[], &[b"a", &euro[..1], &euro[1..], b"b"]);
        assert_eq!(text, "a€b");
        assert_eq!(out, vec!["a", "", "€", "b", ""]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let (text, _, _) = run(&[], &[b"a\xffb"]);
        assert_eq!(text, "a\u{fffd}b");
    }

    #[test]
    fn stop_strings_are_never_streamed() {
        let (text, out, stopped) = run(&["\nUser:"], &[b"Hi", b" there\n", b"Us", b"er:", b"more"]);
        assert!(stopped);
        assert_eq!(text, "Hi there");
        assert_eq!(out.concat(), "Hi there");
        assert!(out.iter().all(|s| !s.contains('\n')));
    }

    #[test]
    fn held_back_prefix_is_released_when_it_is_not_a_stop() {
        let (text, out, stopped) = run(&["END"], &[b"the EN", b"D", b"x"]);
        assert!(stopped);
        assert_eq!(text, "the ");
        assert_eq!(out.concat(), "the ");
        let (text, out, stopped) = run(&["END"], &[b"the EN", b"Dx"]);
        assert!(stopped);
        assert_eq!((text.as_str(), out.concat().as_str()), ("the ", "the "));
        let (text, out, stopped) = run(&["END"], &[b"the EN", b"ough"]);
        assert!(!stopped);
        assert_eq!(text, "the ENough");
        assert_eq!(out.concat(), "the ENough");
    }
}
