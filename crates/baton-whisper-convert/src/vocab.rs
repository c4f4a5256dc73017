//! GPT-2's byte-level BPE alphabet. Tokens in Whisper's `vocabulary.txt` and
//! `tokenizer.json` are written with printable stand-ins for bytes (`Ġ` for a space);
//! whisper.cpp wants the raw bytes.

use std::collections::HashMap;

/// GPT-2's `bytes_to_unicode`: the character that stands for each byte value.
///
/// Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the
/// other 68 bytes map, in order, to U+0100 and up.
pub fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256u32;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("Latin-1")
        } else {
            let c = char::from_u32(next).expect("below U+0200");
            next += 1;
            c
        };
    }
    table
}

/// The inverse of [`byte_to_unicode`].
pub fn unicode_to_byte() -> HashMap<char, u8> {
    byte_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Decodes one token written in the byte-level alphabet to its bytes; `None` when it holds
/// a character outside the alphabet.
pub fn decode_token(token: &str, table: &HashMap<char, u8>) -> Option<Vec<u8>> {
    token.chars().map(|c| table.get(&c).copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_matches_gpt2() {
        let t = byte_to_unicode();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'\t' as usize], 'ĉ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[0xA0], 'ł'); // no-break space
        assert_eq!(t[0xAD], 'Ń'); // soft hyphen, the last byte without a printable stand-in
        assert_eq!(t[0x7F], 'ġ');
        assert_eq!(t[0xFF], 'ÿ');
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(t.iter().map(|&c| c as u32).max(), Some(0x143));
    }

    #[test]
    fn decodes_tokens_to_raw_bytes() {
        let inv = unicode_to_byte();
        assert_eq!(decode_token("Ġhello", &inv).unwrap(), b" hello");
        assert_eq!(decode_token("ĊĊ", &inv).unwrap(), b"\n\n");
        // "é" is two UTF-8 bytes, C3 A9, written as "Ã©".
        assert_eq!(decode_token("Ã©", &inv).unwrap(), "é".as_bytes());
        assert_eq!(
            decode_token("<|endoftext|>", &inv).unwrap(),
            b"<|endoftext|>"
        );
        assert!(decode_token("€", &inv).is_none());
    }
}
