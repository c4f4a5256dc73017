//! Accuracy on images rendered with real fonts (see `fixtures/generate.py`):
//! OCR character error rate, and element detection precision/recall at IoU 0.5.

use baton_vision::metrics::{character_error_rate, score_detections, TruthElement};
use baton_vision::{
    load_image, ElementDetector, HeuristicDetector, Layout, Limits, OcrEngine, OcrOptions,
    TesseractOcr,
};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn engine() -> &'static TesseractOcr {
    static ENGINE: OnceLock<TesseractOcr> = OnceLock::new();
    ENGINE.get_or_init(|| {
        TesseractOcr::new().expect("Tesseract data (apt-get install tesseract-ocr-eng)")
    })
}

fn cer_of(name: &str) -> f64 {
    let image = load_image(&fixture(&format!("ocr_{name}.png")), &Limits::default()).unwrap();
    let truth = std::fs::read_to_string(fixture(&format!("ocr_{name}.txt"))).unwrap();
    let (result, pre) = engine()
        .recognize_detailed(&image, &OcrOptions::default())
        .unwrap();
    let cer = character_error_rate(&result.text, &truth);
    eprintln!(
        "ocr_{name}: CER {:.2}% preprocess {}",
        cer * 100.0,
        pre.summary()
    );
    if cer > 0.0 {
        eprintln!("--- got:\n{}\n---", result.text);
    }
    cer
}

#[test]
fn plain_dark_on_light_text_cer_at_most_2_percent() {
    assert!(cer_of("plain") <= 0.02);
}

#[test]
fn light_on_dark_text_cer_at_most_4_percent() {
    assert!(cer_of("dark") <= 0.04);
}

#[test]
fn eleven_pixel_text_cer_at_most_4_percent() {
    assert!(cer_of("small") <= 0.04);
}

#[test]
fn eleven_pixel_serif_light_on_dark_cer_at_most_4_percent() {
    assert!(cer_of("serif_small_dark") <= 0.04);
}

#[test]
fn mixed_light_and_dark_panels_cer_at_most_4_percent() {
    assert!(cer_of("mixed") <= 0.04);
}

#[test]
fn skewed_text_is_deskewed() {
    assert!(cer_of("skewed") <= 0.04);
}

#[test]
fn words_have_boxes_lines_and_confidences() {
    let image = load_image(&fixture("ocr_small.png"), &Limits::default()).unwrap();
    let r = engine().recognize(&image, &OcrOptions::default()).unwrap();
    assert_eq!(r.lines.len(), 6, "{:?}", r.lines);
    let quick = r
        .words
        .iter()
        .find(|w| w.text == "quick")
        .expect("the word `quick`");
    // Boxes are in input pixels: inside the image and about one 11 px line tall.
    assert!(
        quick.bbox.height >= 5 && quick.bbox.height <= 16,
        "{:?}",
        quick.bbox
    );
    assert!(quick.bbox.x as u32 + quick.bbox.width <= image.width);
    assert!(quick.confidence > 0.5 && quick.line == 3);
}

#[test]
fn missing_language_names_the_package() {
    let image = load_image(&fixture("ocr_plain.png"), &Limits::default()).unwrap();
    let opts = OcrOptions {
        languages: vec!["xyz".into()],
    };
    let e = engine().recognize(&image, &opts).unwrap_err().to_string();
    assert!(e.contains("tesseract-ocr-xyz"), "{e}");
}

fn sparse_engine() -> &'static TesseractOcr {
    static ENGINE: OnceLock<TesseractOcr> = OnceLock::new();
    ENGINE.get_or_init(|| TesseractOcr::new().unwrap().with_layout(Layout::Sparse))
}

fn form_score(name: &str) -> (f64, f64) {
    let image = load_image(&fixture(&format!("{name}.png")), &Limits::default()).unwrap();
    let truth: Vec<TruthElement> =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap())
            .unwrap();
    let ocr = sparse_engine()
        .recognize(&image, &OcrOptions::default())
        .unwrap();
    if std::env::var_os("BATON_DEBUG_OCR").is_some() {
        for w in &ocr.words {
            eprintln!(
                "  word {:?} {:?} {:.2} line {}",
                w.text, w.bbox, w.confidence, w.line
            );
        }
    }
    let line_ocr = Arc::new(TesseractOcr::new().unwrap().with_layout(Layout::SingleLine));
    let detector = HeuristicDetector::with_crop_ocr(line_ocr, OcrOptions::default());
    let found = detector.detect(&image, Some(&ocr)).unwrap();
    let s = score_detections(&found, &truth, 0.5);
    eprintln!(
        "{name}: precision {:.3} recall {:.3} ({} of {} found, {} detections)",
        s.precision, s.recall, s.true_positives, s.truths, s.detections
    );
    for d in &found {
        let hit = truth
            .iter()
            .any(|t| t.kind == d.kind && t.bbox.iou(&d.bbox) >= 0.5);
        if !hit {
            eprintln!("  false: {:?} {:?} {:?}", d.kind, d.bbox, d.text);
        }
    }
    for t in &truth {
        if !found
            .iter()
            .any(|d| t.kind == d.kind && t.bbox.iou(&d.bbox) >= 0.5)
        {
            eprintln!("  missed: {:?} {:?}", t.kind, t.bbox);
        }
    }
    // Text of matched elements (labels, links, buttons, controls' labels).
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap())
            .unwrap();
    let (mut with_text, mut right) = (0, 0);
    for (t, r) in truth.iter().zip(&raw) {
        let Some(want) = r["text"].as_str() else {
            continue;
        };
        if t.kind == baton_vision::ElementKind::TextField {
            continue;
        }
        with_text += 1;
        let got = found
            .iter()
            .find(|d| d.kind == t.kind && t.bbox.iou(&d.bbox) >= 0.5);
        if got.and_then(|d| d.text.as_deref()) == Some(want) {
            right += 1;
        } else {
            eprintln!("  text: want {want:?}, got {:?}", got.map(|d| &d.text));
        }
    }
    eprintln!("{name}: element text exact for {right} of {with_text}");
    assert!(right as f64 >= 0.85 * with_text as f64);
    (s.precision, s.recall)
}

#[test]
fn elements_on_a_light_form() {
    let (p, r) = form_score("form_light");
    assert!(p >= 0.9 && r >= 0.9);
}

#[test]
fn elements_on_a_dark_form() {
    let (p, r) = form_score("form_dark");
    assert!(p >= 0.9 && r >= 0.9);
}

#[test]
fn elements_on_a_serif_form() {
    let (p, r) = form_score("form_serif");
    assert!(p >= 0.9 && r >= 0.9);
}

#[test]
fn elements_on_a_compact_form() {
    let (p, r) = form_score("form_compact");
    assert!(p >= 0.9 && r >= 0.9);
}
