//! Fixtures made at test time with espeak-ng and sox (installed by scripts/setup.sh).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The sentence every speech fixture says.
pub const SENTENCE: &str = "Hello. This is a test of the Baton speech input, one two three.";

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); scripts/setup.sh installs it"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speaks `text` into a 22 050 Hz mono WAV file.
pub fn espeak(text: &str, out: &Path) {
    run(
        Command::new("espeak-ng").arg("-w").arg(out).arg(text),
        "espeak-ng",
    );
}

/// Runs sox with these arguments.
pub fn sox(args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let mut c = Command::new("sox");
    for a in args {
        c.arg(a.as_ref());
    }
    run(&mut c, "sox");
}

/// Duration in seconds as soxi reads it.
pub fn soxi_duration(path: &Path) -> f64 {
    let out = Command::new("soxi")
        .arg("-D")
        .arg(path)
        .output()
        .expect("soxi comes with sox");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("soxi -D {}: {:?}", path.display(), out))
}

/// Reads a 16-bit little-endian mono raw file as f32.
pub fn read_s16(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// The span (first, last sample index) where |x| exceeds `threshold`.
pub fn voiced_span(samples: &[f32], threshold: f32) -> Option<(usize, usize)> {
    let first = samples.iter().position(|s| s.abs() > threshold)?;
    let last = samples.iter().rposition(|s| s.abs() > threshold)?;
    Some((first, last))
}
