//! [`HeuristicDetector`]: the default [`ElementDetector`], no trained model needed.
//!
//! 1. The page background is the most common gray level; everything that differs from it
//!    by more than [`HeuristicDetector::ink_threshold`] is "ink".
//! 2. Contours of the ink (OpenCV, all levels) give shapes. Each is measured: size,
//!    aspect, rectangularity (contour area / box area; 1 for rectangles, π/4 for circles).
//!    - Rectangles 16–120 px tall and wider than tall are **boxes**: a box whose text is
//!      centred, or whose fill differs from the page, is a **button**; one with
//!      left-aligned text or none is a **text field**. Boxes that contain other boxes or
//!      controls are containers (panels, cards) and are skipped.
//!    - Small squares and circles (8–32 px) followed on their right by a text phrase are
//!      **checkboxes** and **radio buttons**, and take that phrase as their text.
//!    - Other compact shapes of 12–48 px that are not text are **icons**.
//! 3. With [`HeuristicDetector::crop_ocr`] set, text the page OCR missed is read again
//!    from crops: the inside of every box without words (Tesseract's layout analysis
//!    drops text on coloured buttons), ink clusters no word covers, and clusters read with
//!    low confidence (the surer reading wins; a second try binarises the crop).
//! 4. OCR words that are not inside a box and not a control's label are grouped into
//!    phrases on their line; a phrase in a blue ink or underlined is a **link**, any other
//!    a **label**.
//!
//! Give it OCR from a [`crate::TesseractOcr`] in [`crate::Layout::Sparse`] mode: full
//! layout analysis skips text inside boxes.

use crate::cv::{bytes, cv_err, histogram, to_gray};
use baton_core::{
    BoundingBox, ElementDetector, ElementKind, Image, OcrEngine, OcrOptions, OcrResult, OcrWord,
    UiElement, VisionError,
};
use opencv::core::{Mat, Point, Scalar, Vector};
use opencv::imgproc;
use opencv::prelude::*;
use std::sync::Arc;

/// Contours, morphology and OCR words; see the module docs.
#[derive(Clone)]
pub struct HeuristicDetector {
    /// Gray-level difference from the background that counts as ink.
    pub ink_threshold: u8,
    /// OCR words below this confidence are ignored.
    pub min_word_confidence: f32,
    /// When set, text the page OCR missed (inside buttons and fields, and ink clusters
    /// no word covers) is read again from crops with this engine (best: a
    /// [`crate::TesseractOcr`] with [`crate::Layout::SingleLine`]).
    pub crop_ocr: Option<Arc<dyn OcrEngine>>,
    /// Options for `crop_ocr`.
    pub crop_ocr_options: OcrOptions,
}

impl std::fmt::Debug for HeuristicDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeuristicDetector")
            .field("ink_threshold", &self.ink_threshold)
            .field("min_word_confidence", &self.min_word_confidence)
            .field("crop_ocr", &self.crop_ocr.is_some())
            .finish()
    }
}

impl Default for HeuristicDetector {
    fn default() -> Self {
        Self {
            ink_threshold: 30,
            min_word_confidence: 0.45,
            crop_ocr: None,
            crop_ocr_options: OcrOptions::default(),
        }
    }
}

impl HeuristicDetector {
    /// A detector that re-reads missed text from crops with `engine`.
    pub fn with_crop_ocr(engine: Arc<dyn OcrEngine>, options: OcrOptions) -> Self {
        Self {
            crop_ocr: Some(engine),
            crop_ocr_options: options,
            ..Self::default()
        }
    }

    /// OCR of `r` (clamped to the image); words come back in image coordinates on line
    /// `line`.
    fn read_crop(&self, image: &Image, r: &Rect, line: usize) -> Result<Vec<OcrWord>, VisionError> {
        let Some(engine) = &self.crop_ocr else {
            return Ok(Vec::new());
        };
        let (iw, ih) = (image.width as i32, image.height as i32);
        let c = Rect {
            x0: r.x0.clamp(0, iw),
            y0: r.y0.clamp(0, ih),
            x1: r.x1.clamp(0, iw),
            y1: r.y1.clamp(0, ih),
        };
        // Below the OCR engine's minimum size there is nothing to read.
        if c.w() < 8 || c.h() < 8 {
            return Ok(Vec::new());
        }
        let mut rgba = Vec::with_capacity((c.w() * c.h() * 4) as usize);
        for y in c.y0..c.y1 {
            let start = ((y * iw + c.x0) * 4) as usize;
            rgba.extend_from_slice(&image.rgba[start..start + (c.w() * 4) as usize]);
        }
        let crop = Image {
            width: c.w() as u32,
            height: c.h() as u32,
            rgba,
        };
        let mean_conf = |r: &OcrResult| {
            if r.words.is_empty() {
                0.0
            } else {
                r.words.iter().map(|w| w.confidence).sum::<f32>() / r.words.len() as f32
            }
        };
        let mut result = engine.recognize(&crop, &self.crop_ocr_options)?;
        if mean_conf(&result) < 0.85 {
            // Second try on an Otsu-binarised crop (dark text on white); keep the surer.
            let second = engine.recognize(&binarize(&crop)?, &self.crop_ocr_options)?;
            if mean_conf(&second) > mean_conf(&result) {
                result = second;
            }
        }
        Ok(result
            .words
            .into_iter()
            .filter(|w| w.confidence >= 0.6 && w.text.chars().any(char::is_alphanumeric))
            .map(|mut w| {
                w.bbox.x += c.x0;
                w.bbox.y += c.y0;
                w.line = line;
                w
            })
            .collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ShapeKind {
    Box,
    Square,
    Circle,
    Blob,
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    kind: ShapeKind,
    rect: Rect,
}

/// Half-open integer rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl Rect {
    fn from_bbox(b: &BoundingBox) -> Self {
        Rect {
            x0: b.x,
            y0: b.y,
            x1: b.x + b.width as i32,
            y1: b.y + b.height as i32,
        }
    }
    fn w(&self) -> i32 {
        self.x1 - self.x0
    }
    fn h(&self) -> i32 {
        self.y1 - self.y0
    }
    fn area(&self) -> i64 {
        i64::from(self.w().max(0)) * i64::from(self.h().max(0))
    }
    fn inter(&self, o: &Rect) -> i64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0);
        i64::from(w) * i64::from(h)
    }
    fn iou(&self, o: &Rect) -> f64 {
        let i = self.inter(o) as f64;
        let u = (self.area() + o.area()) as f64 - i;
        if u <= 0.0 {
            0.0
        } else {
            i / u
        }
    }
    /// Whether `o` lies (almost) entirely inside `self`.
    fn contains(&self, o: &Rect) -> bool {
        o.area() > 0 && self.inter(o) as f64 >= 0.9 * o.area() as f64 && self.area() > o.area()
    }
    fn center(&self) -> (i32, i32) {
        ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)
    }
    fn union(&self, o: &Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
    fn bbox(&self) -> BoundingBox {
        BoundingBox {
            x: self.x0,
            y: self.y0,
            width: self.w().max(0) as u32,
            height: self.h().max(0) as u32,
        }
    }
}

/// The image's gray levels with the page background.
struct Page<'a> {
    gray: &'a [u8],
    rgba: &'a [u8],
    width: i32,
    height: i32,
}

impl Page<'_> {
    fn clamp(&self, r: &Rect) -> Rect {
        Rect {
            x0: r.x0.clamp(0, self.width),
            y0: r.y0.clamp(0, self.height),
            x1: r.x1.clamp(0, self.width),
            y1: r.y1.clamp(0, self.height),
        }
    }

    /// Median gray level inside `r`.
    fn median(&self, r: &Rect) -> Option<u8> {
        let r = self.clamp(r);
        let mut h = [0u64; 256];
        let mut n = 0;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                h[usize::from(self.gray[(y * self.width + x) as usize])] += 1;
                n += 1;
            }
        }
        (n > 0).then(|| crate::cv::quantile(&h, 0.5))
    }

    /// Median colour inside `r` (per channel).
    fn median_rgb(&self, r: &Rect) -> Option<[u8; 3]> {
        let r = self.clamp(r);
        let mut hs = [[0u64; 256]; 3];
        let mut n = 0;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let p = ((y * self.width + x) * 4) as usize;
                for c in 0..3 {
                    hs[c][usize::from(self.rgba[p + c])] += 1;
                }
                n += 1;
            }
        }
        (n > 0).then(|| {
            [
                crate::cv::quantile(&hs[0], 0.5),
                crate::cv::quantile(&hs[1], 0.5),
                crate::cv::quantile(&hs[2], 0.5),
            ]
        })
    }

    /// Mean colour of the ink (pixels far from the local background) inside `r`.
    fn ink_rgb(&self, r: &Rect, local_bg: u8) -> Option<[f64; 3]> {
        let r = self.clamp(r);
        let mut sum = [0f64; 3];
        let mut n = 0f64;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let i = (y * self.width + x) as usize;
                if self.gray[i].abs_diff(local_bg) > 60 {
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += f64::from(self.rgba[i * 4 + c]);
                    }
                    n += 1.0;
                }
            }
        }
        (n > 0.0).then(|| [sum[0] / n, sum[1] / n, sum[2] / n])
    }

    /// Whether a row just under (or at the bottom of) `r` is a line of ink across it.
    fn underlined(&self, r: &Rect, local_bg: u8) -> bool {
        let span = self.clamp(&Rect {
            x0: r.x0,
            x1: r.x1,
            y0: r.y1 - r.h() / 4,
            y1: r.y1 + 4,
        });
        if span.w() < 4 {
            return false;
        }
        (span.y0..span.y1).any(|y| {
            let ink = (span.x0..span.x1)
                .filter(|&x| self.gray[(y * self.width + x) as usize].abs_diff(local_bg) > 60)
                .count();
            ink as f64 >= 0.85 * f64::from(span.w())
        })
    }
}

fn saturation(c: [u8; 3]) -> f64 {
    let max = f64::from(*c.iter().max().unwrap_or(&0));
    let min = f64::from(*c.iter().min().unwrap_or(&0));
    if max <= 0.0 {
        0.0
    } else {
        (max - min) / max
    }
}

impl HeuristicDetector {
    fn shapes(&self, gray: &Mat, background: u8) -> Result<(Vec<Shape>, Mat), VisionError> {
        let mut diff = Mat::default();
        opencv::core::absdiff(gray, &Scalar::all(f64::from(background)), &mut diff)
            .map_err(cv_err("finding ink"))?;
        let mut mask = Mat::default();
        imgproc::threshold(
            &diff,
            &mut mask,
            f64::from(self.ink_threshold),
            255.0,
            imgproc::THRESH_BINARY,
        )
        .map_err(cv_err("finding ink"))?;
        let mut contours: Vector<Vector<Point>> = Vector::new();
        imgproc::find_contours_def(
            &mask,
            &mut contours,
            imgproc::RETR_LIST,
            imgproc::CHAIN_APPROX_SIMPLE,
        )
        .map_err(cv_err("finding contours"))?;
        let mut shapes: Vec<Shape> = Vec::new();
        for c in contours.iter() {
            let r = imgproc::bounding_rect(&c).map_err(cv_err("measuring contours"))?;
            let rect = Rect {
                x0: r.x,
                y0: r.y,
                x1: r.x + r.width,
                y1: r.y + r.height,
            };
            let (w, h) = (r.width, r.height);
            if w < 8 || h < 8 {
                continue;
            }
            let area = imgproc::contour_area_def(&c).map_err(cv_err("measuring contours"))?;
            let fill = area / (f64::from(w - 1) * f64::from(h - 1));
            let aspect = f64::from(w) / f64::from(h);
            let kind = if (16..=120).contains(&h) && w >= 40 && aspect >= 1.2 && fill >= 0.85 {
                ShapeKind::Box
            } else if w <= 32 && h <= 32 && (0.8..=1.25).contains(&aspect) && fill >= 0.88 {
                ShapeKind::Square
            } else if w <= 32
                && h <= 32
                && (0.8..=1.25).contains(&aspect)
                && (0.65..0.88).contains(&fill)
            {
                let mut approx: Vector<Point> = Vector::new();
                let per = imgproc::arc_length(&c, true).map_err(cv_err("measuring contours"))?;
                imgproc::approx_poly_dp(&c, &mut approx, 0.02 * per, true)
                    .map_err(cv_err("measuring contours"))?;
                if approx.len() >= 6 {
                    ShapeKind::Circle
                } else {
                    ShapeKind::Blob
                }
            } else if (12..=48).contains(&w)
                && (12..=48).contains(&h)
                && (0.5..=2.0).contains(&aspect)
            {
                ShapeKind::Blob
            } else {
                continue;
            };
            // Outer and inner contours of one outline: keep the outer.
            if let Some(s) = shapes
                .iter_mut()
                .find(|s| s.kind == kind && s.rect.iou(&rect) > 0.6)
            {
                if rect.area() > s.rect.area() {
                    s.rect = rect;
                }
                continue;
            }
            shapes.push(Shape { kind, rect });
        }
        self.faint_boxes(&diff, &mut shapes)?;
        Ok((shapes, mask))
    }

    /// Boxes drawn with faint, anti-aliased outlines (flat web and GTK text fields: a 1 px
    /// light-gray border with rounded corners), whose corners fall under the ink threshold
    /// and leave the outline open: a lower threshold, small gaps closed, boxes only.
    fn faint_boxes(&self, diff: &Mat, shapes: &mut Vec<Shape>) -> Result<(), VisionError> {
        let mut low = Mat::default();
        imgproc::threshold(
            diff,
            &mut low,
            f64::from(self.ink_threshold / 3),
            255.0,
            imgproc::THRESH_BINARY,
        )
        .map_err(cv_err("finding faint outlines"))?;
        let kernel = imgproc::get_structuring_element_def(
            imgproc::MORPH_RECT,
            opencv::core::Size::new(3, 3),
        )
        .map_err(cv_err("finding faint outlines"))?;
        let mut closed = Mat::default();
        imgproc::morphology_ex_def(&low, &mut closed, imgproc::MORPH_CLOSE, &kernel)
            .map_err(cv_err("finding faint outlines"))?;
        let mut contours: Vector<Vector<Point>> = Vector::new();
        imgproc::find_contours_def(
            &closed,
            &mut contours,
            imgproc::RETR_LIST,
            imgproc::CHAIN_APPROX_SIMPLE,
        )
        .map_err(cv_err("finding faint outlines"))?;
        for c in contours.iter() {
            let r = imgproc::bounding_rect(&c).map_err(cv_err("measuring contours"))?;
            let (w, h) = (r.width, r.height);
            if !(16..=120).contains(&h) || w < 40 || f64::from(w) / f64::from(h) < 1.2 {
                continue;
            }
            let area = imgproc::contour_area_def(&c).map_err(cv_err("measuring contours"))?;
            if area / (f64::from(w - 1) * f64::from(h - 1)) < 0.85 {
                continue;
            }
            let rect = Rect {
                x0: r.x,
                y0: r.y,
                x1: r.x + w,
                y1: r.y + h,
            };
            if !shapes
                .iter()
                .any(|s| s.kind == ShapeKind::Box && s.rect.iou(&rect) > 0.6)
            {
                shapes.push(Shape {
                    kind: ShapeKind::Box,
                    rect,
                });
            }
        }
        Ok(())
    }
}

/// Tesseract often reads a capital `I` standing alone as `|`: a `|` no taller than the
/// word right after it on the same line, and close to it, is taken as `I` (a field's
/// border read as `|` is much taller than the text next to it).
fn fix_capital_i(words: &[OcrWord]) -> Vec<OcrWord> {
    let mut out = words.to_vec();
    for word in out.iter_mut() {
        if word.text != "|" {
            continue;
        }
        let bar = word.bbox;
        let next = words
            .iter()
            .filter(|w| w.line == word.line && w.bbox.x > bar.x)
            .min_by_key(|w| w.bbox.x);
        if let Some(n) = next {
            let gap = n.bbox.x - (bar.x + bar.width as i32);
            let alphabetic = n.text.chars().next().is_some_and(char::is_alphabetic);
            if alphabetic
                && f64::from(bar.height) <= 1.3 * f64::from(n.bbox.height)
                && f64::from(gap) <= f64::from(n.bbox.height)
            {
                word.text = "I".to_owned();
            }
        }
    }
    out
}

/// Otsu binarisation with the majority (background) white, as an RGBA image.
fn binarize(image: &Image) -> Result<Image, VisionError> {
    let gray = to_gray(image)?;
    let mut bin = Mat::default();
    imgproc::threshold(
        &gray,
        &mut bin,
        0.0,
        255.0,
        imgproc::THRESH_BINARY | imgproc::THRESH_OTSU,
    )
    .map_err(cv_err("binarising"))?;
    let data = bytes(&bin)?;
    let white = data.iter().filter(|&&v| v > 127).count();
    let invert = white * 2 < data.len();
    let mut rgba = Vec::with_capacity(data.len() * 4);
    for &v in data {
        let v = if invert { 255 - v } else { v };
        rgba.extend_from_slice(&[v, v, v, 255]);
    }
    Ok(Image {
        width: image.width,
        height: image.height,
        rgba,
    })
}

/// Clusters of ink shaped like a line of text (glyphs merged by a horizontal close).
fn text_clusters(mask: &Mat) -> Result<Vec<Rect>, VisionError> {
    let kernel =
        imgproc::get_structuring_element_def(imgproc::MORPH_RECT, opencv::core::Size::new(9, 3))
            .map_err(cv_err("finding text"))?;
    let mut closed = Mat::default();
    imgproc::morphology_ex_def(mask, &mut closed, imgproc::MORPH_CLOSE, &kernel)
        .map_err(cv_err("finding text"))?;
    let mut contours: Vector<Vector<Point>> = Vector::new();
    imgproc::find_contours_def(
        &closed,
        &mut contours,
        imgproc::RETR_EXTERNAL,
        imgproc::CHAIN_APPROX_SIMPLE,
    )
    .map_err(cv_err("finding text"))?;
    let mut out = Vec::new();
    for c in contours.iter() {
        let r = imgproc::bounding_rect(&c).map_err(cv_err("finding text"))?;
        if (6..=48).contains(&r.height) && r.width >= 8 && r.width <= 60 * r.height {
            out.push(Rect {
                x0: r.x,
                y0: r.y,
                x1: r.x + r.width,
                y1: r.y + r.height,
            });
        }
    }
    Ok(out)
}

/// Words of one line that follow each other closely, from `start` on.
fn phrase_from(words: &[OcrWord], start: usize, used: &[bool]) -> Vec<usize> {
    let mut out = vec![start];
    let mut last = Rect::from_bbox(&words[start].bbox);
    for (j, w) in words.iter().enumerate().skip(start + 1) {
        if used[j] || w.line != words[start].line {
            continue;
        }
        let r = Rect::from_bbox(&w.bbox);
        let gap = r.x0 - last.x1;
        let height = f64::from(last.h().max(r.h()));
        if gap >= -2 && f64::from(gap) <= 0.9 * height {
            out.push(j);
            last = r;
        } else if r.x0 > last.x1 {
            break;
        }
    }
    out
}

impl ElementDetector for HeuristicDetector {
    fn detect(
        &self,
        image: &Image,
        ocr: Option<&OcrResult>,
    ) -> Result<Vec<UiElement>, VisionError> {
        image.validate()?;
        crate::load::Limits::default().check(image.width, image.height)?;
        let gray = to_gray(image)?;
        let gray_bytes = bytes(&gray)?;
        let hist = histogram(gray_bytes);
        let background = hist
            .iter()
            .enumerate()
            .max_by_key(|(_, n)| **n)
            .map(|(v, _)| v as u8)
            .unwrap_or(255);
        let page = Page {
            gray: gray_bytes,
            rgba: &image.rgba,
            width: gray.cols(),
            height: gray.rows(),
        };
        let (shapes, mask) = self.shapes(&gray, background)?;

        // OCR words worth using.
        let mut words: Vec<OcrWord> = ocr
            .map(|o| {
                fix_capital_i(&o.words)
                    .iter()
                    .filter(|w| {
                        w.confidence >= self.min_word_confidence
                            && w.text.chars().any(char::is_alphanumeric)
                            && w.bbox.width > 0
                            && w.bbox.height > 0
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut next_line = words.iter().map(|w| w.line + 1).max().unwrap_or(0);

        // Boxes, without containers (boxes holding other boxes).
        let boxes: Vec<Rect> = shapes
            .iter()
            .filter(|s| s.kind == ShapeKind::Box)
            .map(|s| s.rect)
            .collect();
        let accepted_boxes: Vec<Rect> = boxes
            .iter()
            .filter(|b| {
                !boxes
                    .iter()
                    .any(|o| o != *b && b.contains(o) && o.iou(b) < 0.6)
            })
            .copied()
            .collect();
        let centre_in = |w: &OcrWord, b: &Rect| {
            let (cx, cy) = Rect::from_bbox(&w.bbox).center();
            cx > b.x0 && cx < b.x1 && cy > b.y0 && cy < b.y1
        };
        let clusters = text_clusters(&mask)?;
        // Text the page OCR missed: inside empty boxes, and ink clusters no word covers.
        if self.crop_ocr.is_some() {
            for b in &accepted_boxes {
                if !words.iter().any(|w| centre_in(w, b)) {
                    let inner = Rect {
                        x0: b.x0 + 3,
                        y0: b.y0 + 3,
                        x1: b.x1 - 3,
                        y1: b.y1 - 3,
                    };
                    words.extend(self.read_crop(image, &inner, next_line)?);
                    next_line += 1;
                }
            }
            for cluster in clusters.iter().copied() {
                let covered = accepted_boxes.iter().any(|b| b.inter(&cluster) > 0)
                    || shapes.iter().any(|s| {
                        s.kind != ShapeKind::Box
                            && s.rect.inter(&cluster) as f64 > 0.5 * cluster.area() as f64
                    })
                    || words
                        .iter()
                        .any(|w| Rect::from_bbox(&w.bbox).inter(&cluster) > 0);
                if !covered {
                    let pad = Rect {
                        x0: cluster.x0 - 4,
                        y0: cluster.y0 - 4,
                        x1: cluster.x1 + 4,
                        y1: cluster.y1 + 4,
                    };
                    words.extend(self.read_crop(image, &pad, next_line)?);
                    next_line += 1;
                }
            }
        }
        words.sort_by_key(|w| (w.line, w.bbox.x));
        let word_rects: Vec<Rect> = words.iter().map(|w| Rect::from_bbox(&w.bbox)).collect();
        let mut used = vec![false; words.len()];
        let mut out: Vec<UiElement> = Vec::new();

        for b in &accepted_boxes {
            let inside: Vec<usize> = (0..words.len())
                .filter(|&i| {
                    let (cx, cy) = word_rects[i].center();
                    cx > b.x0 && cx < b.x1 && cy > b.y0 && cy < b.y1
                })
                .collect();
            let inner = Rect {
                x0: b.x0 + 3,
                y0: b.y0 + 3,
                x1: b.x1 - 3,
                y1: b.y1 - 3,
            };
            let fill = page.median(&inner).unwrap_or(background);
            let fill_rgb = page.median_rgb(&inner).unwrap_or([fill; 3]);
            let fill_differs = fill.abs_diff(background) > 12 || saturation(fill_rgb) > 0.25;
            let (kind, confidence, text) = if inside.is_empty() {
                if saturation(fill_rgb) > 0.35 {
                    (ElementKind::Button, 0.6, None)
                } else if b.w() >= 3 * b.h() || !fill_differs {
                    (ElementKind::TextField, 0.6, None)
                } else {
                    (ElementKind::Button, 0.5, None)
                }
            } else {
                let tx0 = inside
                    .iter()
                    .map(|&i| word_rects[i].x0)
                    .min()
                    .unwrap_or(b.x0);
                let tx1 = inside
                    .iter()
                    .map(|&i| word_rects[i].x1)
                    .max()
                    .unwrap_or(b.x1);
                let (left, right) = (tx0 - b.x0, b.x1 - tx1);
                let centred = f64::from((left - right).abs()) <= (0.15 * f64::from(b.w())).max(6.0);
                let text = inside
                    .iter()
                    .map(|&i| words[i].text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                // A strongly coloured fill is a button whatever its text alignment.
                if (centred && (fill_differs || b.w() < 5 * b.h())) || saturation(fill_rgb) > 0.35 {
                    (
                        ElementKind::Button,
                        if fill_differs { 0.9 } else { 0.7 },
                        Some(text),
                    )
                } else {
                    (
                        ElementKind::TextField,
                        if centred { 0.55 } else { 0.85 },
                        Some(text),
                    )
                }
            };
            for &i in &inside {
                used[i] = true;
            }
            out.push(UiElement {
                kind,
                bbox: b.bbox(),
                confidence,
                text,
            });
        }

        // Checkboxes and radio buttons (squares and circles with a label on their right);
        // other compact shapes become icons.
        let mut accepted_controls: Vec<Rect> = Vec::new();
        let mut shapes_sorted: Vec<&Shape> =
            shapes.iter().filter(|s| s.kind != ShapeKind::Box).collect();
        shapes_sorted.sort_by_key(|s| std::cmp::Reverse(s.rect.area()));
        for s in shapes_sorted {
            let r = s.rect;
            if accepted_boxes
                .iter()
                .chain(accepted_controls.iter())
                .any(|b| b.inter(&r) > 0)
            {
                continue;
            }
            // Part of a word (a letter such as `o`)?
            let in_word = word_rects.iter().any(|w| {
                w.inter(&r) as f64 >= 0.5 * r.area() as f64 && w.w() as f64 > 1.6 * f64::from(r.w())
            });
            if in_word {
                continue;
            }
            if matches!(s.kind, ShapeKind::Square | ShapeKind::Circle) {
                let (_, cy) = r.center();
                let label = (0..words.len()).find(|&i| {
                    let w = &word_rects[i];
                    !used[i]
                        && w.y0 <= cy
                        && w.y1 >= cy
                        && w.x0 >= r.x1 - 2
                        && w.x0 - r.x1 <= 3 * r.w().max(8)
                        && w.iou(&r) < 0.3
                });
                if let Some(start) = label {
                    let idx = phrase_from(&words, start, &used);
                    let text = idx
                        .iter()
                        .map(|&i| words[i].text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    for &i in &idx {
                        used[i] = true;
                    }
                    // A word that is just the control read as a letter (`O`, `[]`).
                    for (i, w) in word_rects.iter().enumerate() {
                        if w.iou(&r) > 0.3 {
                            used[i] = true;
                        }
                    }
                    let kind = if s.kind == ShapeKind::Square {
                        ElementKind::Checkbox
                    } else {
                        ElementKind::RadioButton
                    };
                    accepted_controls.push(r);
                    out.push(UiElement {
                        kind,
                        bbox: r.bbox(),
                        confidence: 0.85,
                        text: Some(text),
                    });
                    continue;
                }
            }
            if r.w() < 12 || r.h() < 12 {
                continue;
            }
            // Icons: not text (allow a low-confidence word read from the pictogram).
            let textual = word_rects.iter().enumerate().any(|(i, w)| {
                w.inter(&r) as f64 > 0.3 * r.area().min(w.area()) as f64
                    && words[i].confidence >= 0.8
            });
            if textual {
                continue;
            }
            for (i, w) in word_rects.iter().enumerate() {
                if w.inter(&r) as f64 > 0.5 * w.area() as f64 {
                    used[i] = true;
                }
            }
            accepted_controls.push(r);
            out.push(UiElement {
                kind: ElementKind::Icon,
                bbox: r.bbox(),
                confidence: 0.5,
                text: None,
            });
        }

        // Remaining words: phrases → links or labels. A cluster of ink read with low
        // confidence is read again as one line, and kept when the second reading is surer.
        let mut phrases: Vec<(Rect, String, f32)> = Vec::new();
        if self.crop_ocr.is_some() {
            for c in &clusters {
                let idx: Vec<usize> = (0..words.len())
                    .filter(|&i| {
                        let (cx, cy) = word_rects[i].center();
                        !used[i] && cx >= c.x0 && cx < c.x1 && cy >= c.y0 && cy < c.y1
                    })
                    .collect();
                if idx.is_empty() || idx.iter().all(|&i| words[i].confidence >= 0.8) {
                    continue;
                }
                let old = idx.iter().map(|&i| words[i].confidence).sum::<f32>() / idx.len() as f32;
                let pad = Rect {
                    x0: c.x0 - 4,
                    y0: c.y0 - 4,
                    x1: c.x1 + 4,
                    y1: c.y1 + 4,
                };
                let again = self.read_crop(image, &pad, 0)?;
                if again.is_empty() {
                    continue;
                }
                let conf = again.iter().map(|w| w.confidence).sum::<f32>() / again.len() as f32;
                if conf > old {
                    let mut rect = Rect::from_bbox(&again[0].bbox);
                    for w in &again {
                        rect = rect.union(&Rect::from_bbox(&w.bbox));
                    }
                    let text = again
                        .iter()
                        .map(|w| w.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    for &i in &idx {
                        used[i] = true;
                    }
                    phrases.push((rect, text, conf));
                }
            }
        }
        for i in 0..words.len() {
            if used[i] {
                continue;
            }
            let idx = phrase_from(&words, i, &used);
            let mut rect = word_rects[idx[0]];
            for &j in &idx {
                used[j] = true;
                rect = rect.union(&word_rects[j]);
            }
            let text = idx
                .iter()
                .map(|&j| words[j].text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let conf = idx.iter().map(|&j| words[j].confidence).sum::<f32>() / idx.len() as f32;
            phrases.push((rect, text, conf));
        }
        for (rect, text, conf) in phrases {
            let local_bg = page
                .median(&Rect {
                    x0: rect.x0 - 4,
                    y0: rect.y0 - 4,
                    x1: rect.x1 + 4,
                    y1: rect.y1 + 4,
                })
                .unwrap_or(background);
            let blue = page
                .ink_rgb(&rect, local_bg)
                .is_some_and(|[r, g, b]| b > r + 40.0 && b > g + 15.0);
            let kind = if blue || page.underlined(&rect, local_bg) {
                ElementKind::Link
            } else {
                ElementKind::Label
            };
            out.push(UiElement {
                kind,
                bbox: rect.bbox(),
                confidence: conf.clamp(0.0, 1.0),
                text: Some(text),
            });
        }
        out.sort_by_key(|e| (e.bbox.y, e.bbox.x));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_geometry() {
        let a = Rect {
            x0: 0,
            y0: 0,
            x1: 10,
            y1: 10,
        };
        let b = Rect {
            x0: 2,
            y0: 2,
            x1: 5,
            y1: 5,
        };
        assert!(a.contains(&b) && !b.contains(&a));
        assert_eq!(a.inter(&b), 9);
        assert_eq!(a.union(&b), a);
        assert_eq!(saturation([255, 0, 0]), 1.0);
        assert_eq!(saturation([200, 200, 200]), 0.0);
    }

    #[test]
    fn a_short_bar_before_a_word_is_a_capital_i() {
        let w = |text: &str, x, height| OcrWord {
            text: text.into(),
            bbox: BoundingBox {
                x,
                y: 0,
                width: 8,
                height,
            },
            confidence: 0.9,
            line: 0,
            paragraph: 0,
        };
        let fixed = fix_capital_i(&[w("|", 0, 10), w("accept", 12, 11)]);
        assert_eq!(fixed[0].text, "I");
        // A field border read as `|` is much taller than the text after it.
        let kept = fix_capital_i(&[w("|", 0, 28), w("Street", 12, 11)]);
        assert_eq!(kept[0].text, "|");
    }

    #[test]
    fn blank_image_has_no_elements() {
        let img = Image {
            width: 50,
            height: 40,
            rgba: vec![255; 50 * 40 * 4],
        };
        assert!(HeuristicDetector::default()
            .detect(&img, None)
            .unwrap()
            .is_empty());
    }
}
