//! The mutator: turns a seed input into a damaged one, as a dumb but header-aware fuzzer
//! does. Binary inputs get bit flips, bytes and 16/32/64-bit fields set to the values that
//! break parsers (0, 1, -1, powers of two, the type's limits), cuts, repeats and splices;
//! text inputs also get tokens that break parsers of text (quotes, brackets, huge numbers,
//! deep nesting, control characters, very long lines).

use fastrand::Rng;

/// Largest input the mutator produces. Campaign inputs stay under 1 MB so the 2 s hang
/// limit of the issue applies to every one of them.
pub const MAX_INPUT: usize = 256 * 1024;

/// Integer values that sit on the edges parsers get wrong.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    1000,
    1024,
    4096,
    16_000,
    44_100,
    65_535,
    65_536,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FF00,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Text tokens that break parsers of TOML, YAML, JSON, cron expressions and Markdown.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "\\",
    "\\u0000",
    "\\uD800",
    "{",
    "}",
    "[",
    "]",
    "[[",
    "]]",
    ":",
    ",",
    "=",
    "#",
    "\n",
    "\r\n",
    "\t",
    "\0",
    "-",
    "*",
    "&a",
    "*a",
    "!!binary",
    "!!python/object",
    "<<: *a",
    "---",
    "...",
    "|",
    ">",
    "?",
    "%YAML 1.2",
    "0",
    "-1",
    "1e999",
    "-1e999",
    "NaN",
    "inf",
    "-0",
    "1.5",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999",
    "0x7fffffff",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "{{",
    "}}",
    "{{ x }}",
    "@daily",
    "@reboot",
    "*/0",
    "60",
    "1-0",
    "L",
    "W",
    "#5",
    "Etc/GMT+14",
    "\u{202E}",
    "\u{FEFF}",
    "é",
    "😀",
    "\u{10FFFF}",
];

/// Returns a damaged copy of `seed`: between one and eight mutations (one in half the
/// cases, two in a quarter…, so most inputs stay close enough to valid to get past the
/// first checks), text-aware ones included when `text` is set.
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut data = seed.to_vec();
    let rounds = 1 + (rng.u32(..).trailing_zeros() as usize).min(7);
    for _ in 0..rounds {
        let choice = if text {
            rng.usize(..14)
        } else {
            rng.usize(..10)
        };
        match choice {
            0 => flip_bit(rng, &mut data),
            1 => set_byte(rng, &mut data),
            2..=4 => set_field(rng, &mut data),
            5 => cut(rng, &mut data),
            6 => repeat(rng, &mut data),
            7 => insert_random(rng, &mut data),
            8 => splice(rng, &mut data, others),
            9 => remove(rng, &mut data),
            10 | 11 => insert_token(rng, &mut data),
            12 => replace_number(rng, &mut data),
            _ => nest(rng, &mut data),
        }
    }
    data.truncate(MAX_INPUT);
    data
}

fn pos(rng: &mut Rng, data: &[u8]) -> usize {
    rng.usize(..=data.len())
}

fn flip_bit(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.usize(..data.len());
        data[i] ^= 1 << rng.u8(..8);
    }
}

fn set_byte(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.usize(..data.len());
        data[i] = *rng.choice(&[0u8, 1, 0x7F, 0x80, 0xFF]).unwrap_or(&0);
    }
}

/// Overwrites a 1-, 2-, 4- or 8-byte field with an interesting value (little or big
/// endian; sometimes off by one), where header fields (sizes, counts, rates) live.
fn set_field(rng: &mut Rng, data: &mut [u8]) {
    let width = *rng.choice(&[1usize, 2, 4, 4, 8]).unwrap_or(&4);
    if data.len() < width {
        return;
    }
    // Headers sit at the start: favour the first 64 bytes.
    let limit = if rng.bool() {
        data.len().min(64)
    } else {
        data.len()
    };
    let at = rng.usize(..=limit.saturating_sub(width));
    let mut value = *rng.choice(INTERESTING).unwrap_or(&0);
    match rng.u8(..4) {
        0 => value = value.wrapping_add(1),
        1 => value = value.wrapping_sub(1),
        _ => {}
    }
    let bytes = if rng.bool() {
        value.to_le_bytes()
    } else {
        value.to_be_bytes()
    };
    let bytes = if bytes[0] == 0 && rng.bool() {
        &bytes[8 - width..]
    } else {
        &bytes[..width]
    };
    data[at..at + width].copy_from_slice(bytes);
}

fn cut(rng: &mut Rng, data: &mut Vec<u8>) {
    let at = pos(rng, data);
    data.truncate(at);
}

fn remove(rng: &mut Rng, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let at = rng.usize(..data.len());
    let len = rng.usize(1..=(data.len() - at).min(64));
    data.drain(at..at + len);
}

fn repeat(rng: &mut Rng, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let at = rng.usize(..data.len());
    let len = rng.usize(1..=(data.len() - at).min(256));
    let chunk = data[at..at + len].to_vec();
    let times = 1 + rng.usize(..64);
    let mut block = Vec::with_capacity(len * times);
    for _ in 0..times {
        block.extend_from_slice(&chunk);
    }
    let at = pos(rng, data);
    data.splice(at..at, block);
}

fn insert_random(rng: &mut Rng, data: &mut Vec<u8>) {
    let len = 1 + rng.usize(..32);
    let block: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    let at = pos(rng, data);
    data.splice(at..at, block);
}

/// Replaces the tail from a random point with the tail of another seed.
fn splice(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let Some(other) = rng.choice(others) else {
        return;
    };
    let at = pos(rng, data);
    let from = rng.usize(..=other.len());
    data.truncate(at);
    data.extend_from_slice(&other[from..]);
}

fn insert_token(rng: &mut Rng, data: &mut Vec<u8>) {
    let token = rng.choice(TOKENS).copied().unwrap_or("\"");
    let at = pos(rng, data);
    data.splice(at..at, token.bytes());
}

/// Swaps a run of digits for a huge, negative or fractional number.
fn replace_number(rng: &mut Rng, data: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..data.len())
        .filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit()))
        .collect();
    let Some(&at) = rng.choice(&starts) else {
        return;
    };
    let end = (at..data.len())
        .find(|&i| !data[i].is_ascii_digit())
        .unwrap_or(data.len());
    let number = match rng.u8(..5) {
        0 => u64::MAX.to_string(),
        1 => "-1".to_string(),
        2 => "1e308".to_string(),
        3 => "0".to_string(),
        _ => rng.choice(INTERESTING).unwrap_or(&0).to_string(),
    };
    data.splice(at..end, number.bytes());
}

/// Wraps a span in many brackets (deep nesting blows the stack of recursive parsers) or
/// makes a very long line.
fn nest(rng: &mut Rng, data: &mut Vec<u8>) {
    let depth = 1 + rng.usize(..20_000);
    let (open, close): (&[u8], &[u8]) = match rng.u8(..4) {
        0 => (b"[", b"]"),
        1 => (b"{\"a\":", b"}"),
        2 => (b"- ", b""),
        _ => (b"x", b""),
    };
    let at = pos(rng, data);
    let mut block = Vec::new();
    for _ in 0..depth {
        block.extend_from_slice(open);
    }
    for _ in 0..depth {
        block.extend_from_slice(close);
    }
    data.splice(at..at, block);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_rng_seed_gives_the_same_mutant() {
        let seed = b"[chat]\ntemperature = 0.7\n".to_vec();
        let a = mutate(&mut Rng::with_seed(7), &seed, &[], true);
        let b = mutate(&mut Rng::with_seed(7), &seed, &[], true);
        assert_eq!(a, b);
    }

    #[test]
    fn mutants_differ_from_the_seed_and_stay_bounded() {
        let seed = vec![0u8; 1000];
        let mut rng = Rng::with_seed(1);
        let changed = (0..200)
            .filter(|_| {
                let m = mutate(&mut rng, &seed, &[], false);
                assert!(m.len() <= MAX_INPUT);
                m != seed
            })
            .count();
        assert!(changed > 150, "only {changed} of 200 mutants changed");
    }
}
