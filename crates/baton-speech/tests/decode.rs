//! Decoding files made at test time by espeak-ng and sox, and refusing bad ones.

mod common;

use baton_speech::{decode_file, to_16k_mono, SpeechInputError};
use common::*;
use std::path::Path;

fn check(path: &Path, rate: u32, tolerance_s: f64) -> f64 {
    let expected = soxi_duration(path);
    let audio = decode_file(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(audio.sample_rate, rate, "{}", path.display());
    let got = audio.duration_secs();
    assert!(
        (got - expected).abs() <= tolerance_s,
        "{}: decoded {got:.3} s, soxi says {expected:.3} s",
        path.display()
    );
    let peak = audio.samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        peak > 0.05 && peak <= 1.0,
        "{}: peak {peak}",
        path.display()
    );
    let s16 = to_16k_mono(&audio);
    assert_eq!(s16.sample_rate, 16_000);
    let want = (audio.samples.len() as f64 * 16_000.0 / f64::from(rate)).round() as i64;
    assert!(
        (s16.samples.len() as i64 - want).abs() <= 2,
        "{}: {} samples at 16 kHz, expected {want}",
        path.display(),
        s16.samples.len()
    );
    println!(
        "{}: {got:.3} s at {rate} Hz (soxi {expected:.3} s) -> {} samples at 16 kHz",
        path.file_name().unwrap().to_string_lossy(),
        s16.samples.len()
    );
    got
}

#[test]
fn decodes_wav_flac_ogg_and_mp3_at_any_rate_and_channel_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    espeak(SENTENCE, &d("speech.wav"));
    sox(&[
        &d("speech.wav"),
        &"-r",
        &"44100",
        &"-c",
        &"2",
        &d("stereo44.wav"),
    ]);
    sox(&[&d("speech.wav"), &"-r", &"8000", &d("narrow8.wav")]);
    sox(&[&d("speech.wav"), &d("speech.flac")]);
    sox(&[
        &d("speech.wav"),
        &"-r",
        &"48000",
        &"-c",
        &"2",
        &d("stereo48.flac"),
    ]);
    sox(&[&d("speech.wav"), &d("speech.ogg")]);
    sox(&[
        &d("speech.wav"),
        &"-r",
        &"44100",
        &"-c",
        &"2",
        &d("speech.mp3"),
    ]);

    let base = check(&d("speech.wav"), 22_050, 0.001);
    assert!(base > 2.0, "espeak-ng spoke for {base} s");
    check(&d("stereo44.wav"), 44_100, 0.001);
    check(&d("narrow8.wav"), 8_000, 0.001);
    check(&d("speech.flac"), 22_050, 0.001);
    check(&d("stereo48.flac"), 48_000, 0.001);
    check(&d("speech.ogg"), 22_050, 0.01);
    check(&d("speech.mp3"), 44_100, 0.06);

    // Stereo mixes to mono: identical channels give the same signal back.
    let mono = decode_file(d("speech.wav")).unwrap();
    let down = to_16k_mono(&mono);
    let stereo = to_16k_mono(&decode_file(d("stereo44.wav")).unwrap());
    let n = down.samples.len().min(stereo.samples.len());
    let diff: Vec<f32> = down.samples[..n]
        .iter()
        .zip(&stereo.samples[..n])
        .map(|(a, b)| a - b)
        .collect();
    let rel = baton_speech::rms(&diff) / baton_speech::rms(&down.samples[..n]);
    assert!(
        rel < 0.1,
        "mono and stereo versions differ by {rel} (relative RMS)"
    );
}

fn refused(path: &Path) -> SpeechInputError {
    let e = decode_file(path).expect_err("must be refused");
    let msg = e.to_string();
    println!("{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "names the file: {msg}"
    );
    e
}

#[test]
fn bad_inputs_get_one_line_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);

    assert!(matches!(
        refused(&d("missing.wav")),
        SpeechInputError::NotFound { .. }
    ));

    std::fs::write(d("empty.wav"), b"").unwrap();
    assert!(matches!(
        refused(&d("empty.wav")),
        SpeechInputError::Empty { .. }
    ));

    std::fs::write(d("notes.wav"), "These are my meeting notes, not audio.\n").unwrap();
    let e = refused(&d("notes.wav"));
    assert!(matches!(e, SpeechInputError::NotAudio { .. }), "{e:?}");
    assert!(e.to_string().contains("WAV, MP3, FLAC or OGG"));

    // A real PNG header renamed .wav.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    png.extend_from_slice(&[0x1f, 0x15, 0xc4, 0x89]);
    std::fs::write(d("picture.wav"), &png).unwrap();
    let e = refused(&d("picture.wav"));
    assert!(e.to_string().contains("PNG"), "{e}");

    // A WAV cut in the middle of its header.
    espeak("Short.", &d("ok.wav"));
    let bytes = std::fs::read(d("ok.wav")).unwrap();
    std::fs::write(d("truncated.wav"), &bytes[..30]).unwrap();
    let e = refused(&d("truncated.wav"));
    assert!(
        matches!(
            e,
            SpeechInputError::Corrupt { .. } | SpeechInputError::NotAudio { .. }
        ),
        "{e:?}"
    );

    // A FLAC whose frames are overwritten with garbage.
    sox(&[&d("ok.wav"), &d("ok.flac")]);
    let mut flac = std::fs::read(d("ok.flac")).unwrap();
    let start = flac.len() / 4;
    let mut x: u32 = 12345;
    for b in &mut flac[start..] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (x >> 16) as u8;
    }
    std::fs::write(d("garbled.flac"), &flac).unwrap();
    match decode_file(d("garbled.flac")) {
        Err(e) => {
            println!("{e}");
            assert!(matches!(e, SpeechInputError::Corrupt { .. }), "{e:?}");
        }
        // The decoder may resynchronise and keep the intact first frames; then the
        // audio must be no longer than the original.
        Ok(a) => assert!(a.duration_secs() <= soxi_duration(&d("ok.wav")) + 0.01),
    }

    // A WAV whose data is cut off at a third: the header promises more.
    let long = std::fs::read(d("ok.wav")).unwrap();
    std::fs::write(d("cut.wav"), &long[..long.len() / 3]).unwrap();
    let e = refused(&d("cut.wav"));
    assert!(matches!(e, SpeechInputError::Corrupt { .. }), "{e:?}");

    // A WAV with a valid header and no samples.
    sox(&[&d("ok.wav"), &d("nothing.wav"), &"trim", &"0", &"0"]);
    let e = refused(&d("nothing.wav"));
    assert!(matches!(e, SpeechInputError::NoSamples { .. }), "{e:?}");

    // An Ogg container whose only stream is not audio (an unknown codec).
    std::fs::write(d("data.ogg"), ogg_page(b"\x80theora-not-audio-payload")).unwrap();
    let e = refused(&d("data.ogg"));
    assert!(matches!(e, SpeechInputError::NoAudioTrack { .. }), "{e:?}");

    // A directory is not a file.
    let e = refused(dir.path());
    assert!(matches!(e, SpeechInputError::NotAudio { .. }));
}

#[test]
fn limits_are_checked_from_the_header_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // A WAV header that declares 5 hours of 8 kHz 16-bit mono (288 MB of data) but is only
    // 1 MB on disk: refused from the header, without decoding.
    let rate: u32 = 8_000;
    let data_len: u32 = rate * 2 * 5 * 3600;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(wav.len() + 1_000_000, 0);
    let path = dir.path().join("long.wav");
    std::fs::write(&path, &wav).unwrap();
    let t = std::time::Instant::now();
    let e = refused(&path);
    assert!(matches!(e, SpeechInputError::TooLong { .. }), "{e:?}");
    assert!(e.to_string().contains("4-hour"));
    // Decoding a 4-hour file would take minutes; reading its header, a moment.
    assert!(t.elapsed().as_secs() < 5, "refused from the header");

    // A sparse file over 2 GiB is refused by its size.
    let big = dir.path().join("big.wav");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(2 * 1024 * 1024 * 1024 + 1).unwrap();
    let e = refused(&big);
    assert!(matches!(e, SpeechInputError::TooLarge { .. }), "{e:?}");
}

/// One beginning-of-stream Ogg page carrying `payload`, with a correct CRC.
fn ogg_page(payload: &[u8]) -> Vec<u8> {
    let mut page = Vec::new();
    page.extend_from_slice(b"OggS\0\x06"); // beginning and end of stream
    page.extend_from_slice(&[0; 8]); // granule position
    page.extend_from_slice(&1u32.to_le_bytes()); // serial
    page.extend_from_slice(&0u32.to_le_bytes()); // sequence
    page.extend_from_slice(&0u32.to_le_bytes()); // CRC, filled below
    page.push(1);
    page.push(payload.len() as u8);
    page.extend_from_slice(payload);
    let mut crc: u32 = 0;
    for &b in &page {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}
