//! Vision traits: [`OcrEngine`] and [`ElementDetector`], and the image and result types.

use crate::error::VisionError;
use serde::{Deserialize, Serialize};

/// An RGBA8 image in row-major order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

impl Image {
    /// Checks that the buffer matches the dimensions and that the image is not empty.
    pub fn validate(&self) -> Result<(), VisionError> {
        if self.width == 0 || self.height == 0 {
            return Err(VisionError::InvalidImage(format!(
                "the image is empty ({}x{} pixels)",
                self.width, self.height
            )));
        }
        let expected = u64::from(self.width) * u64::from(self.height) * 4;
        if self.rgba.len() as u64 != expected {
            return Err(VisionError::InvalidImage(format!(
                "buffer holds {} bytes but {}x{} RGBA needs {expected}",
                self.rgba.len(),
                self.width,
                self.height
            )));
        }
        Ok(())
    }
}

/// An axis-aligned rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl BoundingBox {
    /// Intersection over union with another box (0 when either is empty).
    pub fn iou(&self, other: &BoundingBox) -> f64 {
        let ax2 = i64::from(self.x) + i64::from(self.width);
        let ay2 = i64::from(self.y) + i64::from(self.height);
        let bx2 = i64::from(other.x) + i64::from(other.width);
        let by2 = i64::from(other.y) + i64::from(other.height);
        let iw = (ax2.min(bx2) - i64::from(self.x.max(other.x))).max(0);
        let ih = (ay2.min(by2) - i64::from(self.y.max(other.y))).max(0);
        let inter = (iw * ih) as f64;
        let union = f64::from(self.width) * f64::from(self.height)
            + f64::from(other.width) * f64::from(other.height)
            - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// Options for OCR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrOptions {
    /// Tesseract language codes, joined with `+` when passed on (for example `eng`).
    pub languages: Vec<String>,
}

impl Default for OcrOptions {
    fn default() -> Self {
        Self {
            languages: vec!["eng".to_owned()],
        }
    }
}

/// One recognised word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrWord {
    /// The text.
    pub text: String,
    /// Where it is, in pixels of the input image.
    pub bbox: BoundingBox,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Index of its line in [`OcrResult::lines`].
    pub line: usize,
    /// Index of its paragraph.
    pub paragraph: usize,
}

/// OCR output: words with boxes, and the text grouped into lines.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OcrResult {
    /// Words in reading order.
    pub words: Vec<OcrWord>,
    /// Lines of text in reading order.
    pub lines: Vec<String>,
    /// The full text, lines joined with newlines and paragraphs with blank lines.
    pub text: String,
}

/// Reads text from images.
pub trait OcrEngine: Send + Sync {
    /// Recognise the text in `image`.
    fn recognize(&self, image: &Image, options: &OcrOptions) -> Result<OcrResult, VisionError>;
}

/// Kinds of UI elements a detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementKind {
    /// A push button.
    Button,
    /// A single- or multi-line text input.
    TextField,
    /// A checkbox.
    Checkbox,
    /// A radio button.
    RadioButton,
    /// A hyperlink.
    Link,
    /// Static text.
    Label,
    /// A small pictogram.
    Icon,
}

/// A detected UI element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UiElement {
    /// What it is.
    pub kind: ElementKind,
    /// Where it is.
    pub bbox: BoundingBox,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Text on or next to it, if any.
    pub text: Option<String>,
}

/// Finds UI elements in screenshots.
pub trait ElementDetector: Send + Sync {
    /// Detect elements in `image`; `ocr` (when given) supplies the words on it.
    fn detect(&self, image: &Image, ocr: Option<&OcrResult>)
        -> Result<Vec<UiElement>, VisionError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_boxes_is_one_and_disjoint_is_zero() {
        let a = BoundingBox {
            x: 0,
            y: 0,
            width: 10,
            height: 10,
        };
        let b = BoundingBox {
            x: 20,
            y: 20,
            width: 10,
            height: 10,
        };
        let c = BoundingBox {
            x: 5,
            y: 0,
            width: 10,
            height: 10,
        };
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&b), 0.0);
        assert!((a.iou(&c) - 50.0 / 150.0).abs() < 1e-9);
    }

    #[test]
    fn empty_and_mismatched_images_are_rejected() {
        assert!(Image::default().validate().is_err());
        let bad = Image {
            width: 2,
            height: 2,
            rgba: vec![0; 3],
        };
        assert!(bad.validate().unwrap_err().to_string().contains("needs 16"));
    }
}
