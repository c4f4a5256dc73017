//! The whole reading of a screenshot that front ends show: text (words, lines, paragraphs)
//! and UI elements, plus cropping a selection out of a captured screen.

use crate::detect::HeuristicDetector;
use crate::ocr::{Layout, TesseractOcr};
use baton_core::{
    ElementDetector, Image, OcrEngine, OcrOptions, OcrResult, UiElement, VisionError,
};
use serde::Serialize;
use std::sync::Arc;

/// What was read from an image.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// Text with full layout analysis (lines and paragraphs in reading order).
    pub ocr: OcrResult,
    /// UI elements (buttons, fields, checkboxes, links…) with their text.
    pub elements: Vec<UiElement>,
}

/// Reads `image`: page OCR for the text, sparse OCR plus the heuristic detector for the
/// UI elements (as `baton ocr` and `baton elements` do).
pub fn analyze(image: &Image, options: &OcrOptions) -> Result<Analysis, VisionError> {
    image.validate()?;
    let ocr = TesseractOcr::new()?.recognize(image, options)?;
    let sparse = TesseractOcr::new()?
        .with_layout(Layout::Sparse)
        .recognize(image, options)?;
    let line = Arc::new(TesseractOcr::new()?.with_layout(Layout::SingleLine));
    let elements =
        HeuristicDetector::with_crop_ocr(line, options.clone()).detect(image, Some(&sparse))?;
    Ok(Analysis { ocr, elements })
}

/// The `width` x `height` rectangle at (`x`, `y`) of `image`, clipped to the image.
pub fn crop(image: &Image, x: u32, y: u32, width: u32, height: u32) -> Result<Image, VisionError> {
    image.validate()?;
    let x1 = x.min(image.width);
    let y1 = y.min(image.height);
    let x2 = x.saturating_add(width).min(image.width);
    let y2 = y.saturating_add(height).min(image.height);
    let (w, h) = (x2 - x1, y2 - y1);
    if w < 4 || h < 4 {
        return Err(VisionError::InvalidImage(format!(
            "the selection is too small ({w}x{h} pixels inside the {}x{} screenshot); drag a \
             larger rectangle around the text",
            image.width, image.height
        )));
    }
    let stride = image.width as usize * 4;
    let mut rgba = Vec::with_capacity(w as usize * h as usize * 4);
    for row in y1..y2 {
        let start = row as usize * stride + x1 as usize * 4;
        rgba.extend_from_slice(&image.rgba[start..start + w as usize * 4]);
    }
    Ok(Image {
        width: w,
        height: h,
        rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32) -> Image {
        let mut rgba = Vec::new();
        for y in 0..height {
            for x in 0..width {
                rgba.extend_from_slice(&[x as u8, y as u8, 0, 255]);
            }
        }
        Image {
            width,
            height,
            rgba,
        }
    }

    #[test]
    fn crop_takes_the_rectangle_and_clips_at_the_edges() {
        let img = gradient(50, 40);
        let c = crop(&img, 10, 5, 20, 8).unwrap();
        assert_eq!((c.width, c.height), (20, 8));
        assert_eq!(&c.rgba[..4], &[10, 5, 0, 255]);
        let last = c.rgba.len() - 4;
        assert_eq!(&c.rgba[last..], &[29, 12, 0, 255]);
        let clipped = crop(&img, 40, 30, 100, 100).unwrap();
        assert_eq!((clipped.width, clipped.height), (10, 10));
    }

    #[test]
    fn tiny_or_outside_selections_are_refused_with_advice() {
        let img = gradient(50, 40);
        let err = crop(&img, 60, 60, 10, 10).unwrap_err().to_string();
        assert!(err.contains("too small"), "{err}");
        assert!(crop(&img, 0, 0, 2, 30).is_err());
    }
}
