//! The ONNX detector path end to end through ONNX Runtime, with the tiny model that
//! `models/gen_tiny_detector.py` generates (its output is pinned, so the detections are
//! known). Skipped, with a message, when `libonnxruntime.so` is not installed.

use baton_vision::onnx::find_onnxruntime;
use baton_vision::{BoundingBox, ElementDetector, ElementKind, Image, OnnxDetector};
use std::path::PathBuf;

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_detector.onnx")
}

fn runtime_present() -> bool {
    match find_onnxruntime() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            false
        }
    }
}

#[test]
fn tiny_model_detections_are_decoded_suppressed_and_mapped_back() {
    if !runtime_present() {
        return;
    }
    let det = OnnxDetector::load(&model()).unwrap();
    assert_eq!(det.input_size(), 64);
    // 128×128: letterbox scale 0.5, no padding, so boxes come back doubled.
    let img = Image {
        width: 128,
        height: 128,
        rgba: vec![200; 128 * 128 * 4],
    };
    let found = det.detect(&img, None).unwrap();
    let got: Vec<(ElementKind, BoundingBox)> = found.iter().map(|e| (e.kind, e.bbox)).collect();
    let b = |x, y, width, height| BoundingBox {
        x,
        y,
        width,
        height,
    };
    assert_eq!(
        got,
        vec![
            (ElementKind::Button, b(16, 10, 48, 20)),
            (ElementKind::Checkbox, b(12, 72, 16, 16)),
            (ElementKind::TextField, b(58, 70, 60, 20)),
        ]
    );
    assert!((found[0].confidence - 0.95).abs() < 1e-6);
    // A wide image is letterboxed: 256×128 → scale 0.25 and 16 model pixels of padding
    // above and below; the button then falls in the padding and is dropped.
    let wide = Image {
        width: 256,
        height: 128,
        rgba: vec![10; 256 * 128 * 4],
    };
    let got: Vec<(ElementKind, BoundingBox)> = det
        .detect(&wide, None)
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.bbox))
        .collect();
    assert_eq!(
        got,
        vec![
            (ElementKind::Checkbox, b(24, 80, 32, 32)),
            (ElementKind::TextField, b(116, 76, 120, 40))
        ]
    );
}

#[test]
fn a_file_that_is_not_a_model_gives_a_clear_error() {
    if !runtime_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.onnx");
    std::fs::write(&bogus, b"not a model").unwrap();
    let e = OnnxDetector::load(&bogus).unwrap_err().to_string();
    assert!(e.contains("cannot load") && e.contains("bogus.onnx"), "{e}");
    let e = OnnxDetector::load(&dir.path().join("missing.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gen_tiny_detector.py"), "{e}");
}
