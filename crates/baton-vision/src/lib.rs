//! Screen capture, OCR and UI-element detection for Baton.
//!
//! Everything here runs in-process (no worker): OpenCV and Tesseract are C/C++ libraries
//! that do not collide with ggml, and a screenshot is recognised in well under a second.
//!
//! - [`load`]: reading image files and bytes, with the dimensions checked from the header
//!   before anything is decoded ([`Limits`]).
//! - [`capture`]: monitors and screen regions through `xcap`, in physical pixels.
//! - [`mod@preprocess`]: OpenCV preprocessing chosen per image (grayscale, dark-theme
//!   inversion, upscaling of small text, adaptive thresholding, deskew).
//! - [`ocr`]: [`TesseractOcr`], the [`baton_core::OcrEngine`] over Tesseract.
//! - [`detect`]: [`HeuristicDetector`], the default [`baton_core::ElementDetector`]
//!   (contours + morphology + OCR words, no model).
//! - [`onnx`]: [`OnnxDetector`], a YOLO-style ONNX detector run through `ort`
//!   (`load-dynamic`), with pure-Rust decoding and non-maximum suppression.
//! - [`mod@analyze`]: the whole reading front ends show (text + elements), and cropping a
//!   selection out of a captured screen.
//! - [`metrics`]: character error rate and detection precision/recall.
#![warn(missing_docs)]

pub mod analyze;
pub mod capture;
mod cv;
pub mod detect;
pub mod load;
pub mod metrics;
pub mod ocr;
pub mod onnx;
pub mod preprocess;

pub use analyze::{analyze, crop, Analysis};
pub use baton_core::{
    BoundingBox, ElementDetector, ElementKind, Image, OcrEngine, OcrOptions, OcrResult, OcrWord,
    UiElement, VisionError,
};
pub use capture::{
    capture_monitor, capture_region, capture_window, list_monitors, list_windows, MonitorInfo,
    Region, WindowInfo,
};
pub use detect::HeuristicDetector;
pub use load::{encode_png, load_image, load_image_bytes, save_png, Limits};
pub use ocr::{Layout, TesseractOcr};
pub use onnx::OnnxDetector;
pub use preprocess::{preprocess, PreprocessOptions, Preprocessed};
