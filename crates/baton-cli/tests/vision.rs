//! `baton ocr`, `baton elements` and `baton bench ocr` on the vision fixtures.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../baton-vision/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn baton(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .env("BATON_DATA_DIR", dir.path().join("data"))
        .env("BATON_CONFIG", dir.path().join("config.toml"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run baton")
}

fn ok(args: &[&str]) -> String {
    let out = baton(args);
    assert!(
        out.status.success(),
        "baton {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn err(args: &[&str]) -> String {
    let out = baton(args);
    assert!(!out.status.success(), "baton {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn ocr_prints_text_and_json_with_boxes() {
    let text = ok(&["ocr", &fixture("ocr_dark.png")]);
    assert!(
        text.contains("The quick brown fox jumps over the lazy dog"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "ocr",
        &fixture("ocr_small.png"),
        "--json",
        "--lang",
        "eng",
    ]))
    .unwrap();
    assert_eq!(v["lines"].as_array().unwrap().len(), 6);
    let w = &v["words"][0];
    assert_eq!(w["text"], "Baton");
    assert!(w["bbox"]["width"].as_u64().unwrap() > 0 && w["confidence"].as_f64().unwrap() > 0.5);
    assert!(
        v["preprocess"]["scale"].as_f64().unwrap() > 1.0,
        "11 px text is upscaled"
    );
}

#[test]
fn elements_lists_widgets_as_json() {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["elements", &fixture("form_light.png"), "--json"])).unwrap();
    let items = v.as_array().unwrap();
    let has = |kind: &str, text: &str| items.iter().any(|e| e["kind"] == kind && e["text"] == text);
    assert!(
        has("button", "Submit") && has("checkbox", "Remember me") && has("radio_button", "Free")
    );
    assert!(has("link", "Forgot your password?") && has("label", "Email address"));
    assert!(
        items.iter().any(|e| e["kind"] == "text_field")
            && items.iter().any(|e| e["kind"] == "icon")
    );
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(err(&["ocr", empty.to_str().unwrap()]).contains("empty (0 bytes)"));
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"hello").unwrap();
    assert!(err(&["elements", text.to_str().unwrap()]).contains("not an image"));
    assert!(err(&["ocr", "--screen", "0"]).contains("no display"));
    assert!(err(&["ocr", "--region", "1,2,3"]).contains("X,Y,W,H"));
    assert!(err(&["ocr", &fixture("ocr_plain.png"), "--lang", "zzz"]).contains("tesseract-ocr-zzz"));
}

#[test]
fn bench_ocr_reports_times_and_error_rates() {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["bench", "ocr", "--runs", "1", "--json"])).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1920), Some(1080))
    );
    assert!(v["baton"]["preprocess_and_ocr_ms"].as_f64().unwrap() > 0.0);
    assert!(v["baton"]["cer"].as_f64().unwrap() <= 0.02, "{v}");
    if v["tesseract_cli"]["ms"].is_number() {
        assert!(v["tesseract_cli"]["cer"].as_f64().unwrap() <= 0.05);
    }
}
