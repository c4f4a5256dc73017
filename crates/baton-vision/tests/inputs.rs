//! Bad inputs give clear errors, and absurd sizes are refused from the header alone.

use baton_vision::{
    load_image, ElementDetector, HeuristicDetector, Image, Limits, OcrEngine, OcrOptions,
    TesseractOcr,
};
use std::io::Write;

/// A PNG whose header claims `w`×`h` with a few bytes of (bogus) data behind it.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn err(path: &std::path::Path) -> String {
    load_image(path, &Limits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn files_that_cannot_be_used_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    assert!(err(&write(&dir, "empty.png", b"")).contains("empty (0 bytes)"));
    assert!(err(&write(&dir, "notes.png", b"just some text, not pixels")).contains("not an image"));
    assert!(err(&write(&dir, "tiny.png", &png_header(1, 1))).contains("too small"));
    let e = err(&write(&dir, "zero.png", &png_header(0, 5)));
    assert!(e.contains("corrupt") || e.contains("empty"), "{e}");
    let e = err(&write(&dir, "corrupt.png", &png_header(64, 64)));
    assert!(e.contains("corrupt"), "{e}");
    assert!(err(dir.path()).contains("directory"));
    assert!(err(&dir.path().join("missing.png")).contains("cannot read"));
}

#[test]
fn huge_images_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "huge.png", &png_header(20_000, 20_000));
    let started = std::time::Instant::now();
    let e = err(&p);
    assert!(
        e.contains("20000x20000") && e.contains("larger than the limit"),
        "{e}"
    );
    // Refused from the header: no 1.6 GB buffer, no time spent decoding.
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn engines_reject_malformed_images() {
    let bad = Image {
        width: 10,
        height: 10,
        rgba: vec![0; 7],
    };
    let ocr = TesseractOcr::new().unwrap();
    assert!(ocr
        .recognize(&bad, &OcrOptions::default())
        .unwrap_err()
        .to_string()
        .contains("needs 400"));
    let dot = Image {
        width: 1,
        height: 1,
        rgba: vec![255; 4],
    };
    assert!(ocr
        .recognize(&dot, &OcrOptions::default())
        .unwrap_err()
        .to_string()
        .contains("too small"));
    let sliver = Image {
        width: 60_000,
        height: 8,
        rgba: vec![255; 60_000 * 8 * 4],
    };
    assert!(HeuristicDetector::default()
        .detect(&sliver, None)
        .unwrap_err()
        .to_string()
        .contains("larger than the limit"));
    assert!(HeuristicDetector::default()
        .detect(&Image::default(), None)
        .unwrap_err()
        .to_string()
        .contains("empty"));
}
