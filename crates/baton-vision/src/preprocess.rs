//! OpenCV preprocessing before OCR, chosen per image.
//!
//! Steps, each decided from measurements of the image itself:
//! 1. grayscale;
//! 2. **dark-theme inversion**, per region: the local background (median of a coarse grid)
//!    is estimated and every region whose background is dark is inverted, so text is
//!    always dark on light (Tesseract's LSTM models are trained on that);
//! 3. **upscaling** of small text: the median glyph height is measured from connected
//!    components and the image is enlarged (bicubic) until glyphs are about
//!    [`PreprocessOptions::target_glyph_height`] pixels tall;
//! 4. **deskew**: text lines are merged with a morphological close, their angle is taken
//!    from minimum-area rectangles, and the image is rotated back when the median angle is
//!    noticeable;
//! 5. **adaptive thresholding** (Gaussian) only when the background is uneven (gradients,
//!    panels of different colours); on a flat background the grayscale is kept, which
//!    preserves anti-aliasing that helps small text.
//!
//! [`Preprocessed::to_original`] maps boxes on the processed image back to the input.

use crate::cv::{bytes, cv_err, histogram, quantile, to_gray};
use baton_core::{BoundingBox, Image, VisionError};
use opencv::core::{Mat, Point, Point2f, Scalar, Size, Vector, BORDER_REPLICATE};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Serialize;

/// Knobs for [`preprocess`]; the defaults suit screenshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreprocessOptions {
    /// Median glyph height (pixels) that small text is scaled up to.
    pub target_glyph_height: f64,
    /// Largest upscaling factor.
    pub max_scale: f64,
    /// Largest processed image, in pixels (caps the upscaling of big screenshots).
    pub max_pixels: f64,
    /// Whether to invert dark-background regions.
    pub invert_dark: bool,
    /// Whether to deskew.
    pub deskew: bool,
    /// `Some(true)`/`Some(false)` forces adaptive thresholding on/off; `None` decides.
    pub threshold: Option<bool>,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            target_glyph_height: 18.0,
            max_scale: 4.0,
            max_pixels: 16_000_000.0,
            invert_dark: true,
            deskew: true,
            threshold: None,
        }
    }
}

/// What preprocessing did, and the processed 8-bit grayscale image.
#[derive(Debug)]
pub struct Preprocessed {
    /// The processed image (8-bit, one channel, dark text on light).
    pub gray: Mat,
    /// Upscaling factor applied.
    pub scale: f64,
    /// Rotation applied to deskew, in degrees (0 when none).
    pub angle_deg: f64,
    /// Share of pixels that were inverted because their region had a dark background.
    pub inverted_fraction: f64,
    /// Whether adaptive thresholding was applied.
    pub thresholded: bool,
    /// Median glyph height measured on the input, in input pixels (0 when unknown).
    pub glyph_height: f64,
    /// Input size.
    pub input_size: (u32, u32),
    /// Affine transform from processed back to (scaled) pre-rotation coordinates.
    inverse_rotation: [f64; 6],
}

impl Preprocessed {
    /// A short description of the choices, for logs and `--json` output.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "scale": self.scale,
            "deskew_degrees": self.angle_deg,
            "inverted_fraction": self.inverted_fraction,
            "adaptive_threshold": self.thresholded,
            "glyph_height_px": self.glyph_height,
        })
    }

    /// Maps a box on the processed image back to input-image pixels.
    pub fn to_original(&self, b: &BoundingBox) -> BoundingBox {
        let m = &self.inverse_rotation;
        let (x0, y0) = (f64::from(b.x), f64::from(b.y));
        let (x1, y1) = (x0 + f64::from(b.width), y0 + f64::from(b.height));
        let mut min = (f64::MAX, f64::MAX);
        let mut max = (f64::MIN, f64::MIN);
        for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
            let tx = (m[0] * x + m[1] * y + m[2]) / self.scale;
            let ty = (m[3] * x + m[4] * y + m[5]) / self.scale;
            min = (min.0.min(tx), min.1.min(ty));
            max = (max.0.max(tx), max.1.max(ty));
        }
        let (w, h) = (f64::from(self.input_size.0), f64::from(self.input_size.1));
        let x0 = min.0.round().clamp(0.0, w);
        let y0 = min.1.round().clamp(0.0, h);
        let x1 = max.0.round().clamp(0.0, w);
        let y1 = max.1.round().clamp(0.0, h);
        BoundingBox {
            x: x0 as i32,
            y: y0 as i32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        }
    }
}

/// Runs the preprocessing chain on `image`.
pub fn preprocess(image: &Image, opts: &PreprocessOptions) -> Result<Preprocessed, VisionError> {
    let gray = to_gray(image)?;
    let (w, h) = (gray.cols(), gray.rows());

    // 2. Per-region dark-theme inversion.
    let (mut work, inverted_fraction) = if opts.invert_dark {
        invert_dark_regions(&gray)?
    } else {
        (gray, 0.0)
    };

    // 3. Upscale small text.
    let glyph_height = median_glyph_height(&work)?;
    let mut scale = 1.0;
    if glyph_height > 0.0 && glyph_height < opts.target_glyph_height {
        scale = (opts.target_glyph_height / glyph_height).min(opts.max_scale);
        let limit = (opts.max_pixels / (f64::from(w) * f64::from(h))).sqrt();
        scale = scale.min(limit).max(1.0);
        if scale < 1.15 {
            scale = 1.0;
        }
    }
    if scale > 1.0 {
        let size = Size::new(
            (f64::from(w) * scale).round() as i32,
            (f64::from(h) * scale).round() as i32,
        );
        let mut up = Mat::default();
        imgproc::resize(&work, &mut up, size, 0.0, 0.0, imgproc::INTER_CUBIC)
            .map_err(cv_err("upscaling"))?;
        work = up;
    }

    // 4. Deskew.
    let mut angle_deg = 0.0;
    let mut inverse_rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    if opts.deskew {
        let glyph = (glyph_height * scale).max(4.0);
        let angle = estimate_skew(&work, glyph)?;
        if angle.abs() >= 0.3 && angle.abs() <= 15.0 {
            let center = Point2f::new(work.cols() as f32 / 2.0, work.rows() as f32 / 2.0);
            let rot =
                imgproc::get_rotation_matrix_2d(center, angle, 1.0).map_err(cv_err("deskewing"))?;
            let mut rotated = Mat::default();
            imgproc::warp_affine(
                &work,
                &mut rotated,
                &rot,
                work.size().map_err(cv_err("deskewing"))?,
                imgproc::INTER_CUBIC,
                BORDER_REPLICATE,
                Scalar::all(255.0),
            )
            .map_err(cv_err("deskewing"))?;
            work = rotated;
            angle_deg = angle;
            inverse_rotation = invert_affine(&rotation_matrix(center, angle));
        }
    }

    // 5. Adaptive threshold on uneven backgrounds only.
    let uneven = background_spread(&work)? > 40;
    let thresholded = opts.threshold.unwrap_or(uneven);
    if thresholded {
        let glyph = (glyph_height * scale).max(8.0);
        let mut block = ((glyph * 2.0) as i32) | 1;
        block = block.clamp(11, 101);
        let mut bin = Mat::default();
        imgproc::adaptive_threshold(
            &work,
            &mut bin,
            255.0,
            imgproc::ADAPTIVE_THRESH_GAUSSIAN_C,
            imgproc::THRESH_BINARY,
            block,
            12.0,
        )
        .map_err(cv_err("thresholding"))?;
        work = bin;
    }

    Ok(Preprocessed {
        gray: work,
        scale,
        angle_deg,
        inverted_fraction,
        thresholded,
        glyph_height,
        input_size: (image.width, image.height),
        inverse_rotation,
    })
}

/// The 2×3 matrix of OpenCV's `getRotationMatrix2D(center, angle, 1)`.
fn rotation_matrix(center: Point2f, angle_deg: f64) -> [f64; 6] {
    let a = angle_deg.to_radians();
    let (alpha, beta) = (a.cos(), a.sin());
    let (cx, cy) = (f64::from(center.x), f64::from(center.y));
    [
        alpha,
        beta,
        (1.0 - alpha) * cx - beta * cy,
        -beta,
        alpha,
        beta * cx + (1.0 - alpha) * cy,
    ]
}

/// Inverse of a 2×3 affine transform.
fn invert_affine(m: &[f64; 6]) -> [f64; 6] {
    let det = m[0] * m[4] - m[1] * m[3];
    if det.abs() < 1e-12 {
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    }
    let (a, b, c, d) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    [a, b, -(a * m[2] + b * m[5]), c, d, -(c * m[2] + d * m[5])]
}

/// Coarse background map: the image shrunk by 8 and median-filtered (a 56-pixel window),
/// so text strokes vanish and panels remain.
fn background_map(gray: &Mat) -> Result<Mat, VisionError> {
    let small_size = Size::new((gray.cols() / 8).max(1), (gray.rows() / 8).max(1));
    let mut small = Mat::default();
    imgproc::resize(gray, &mut small, small_size, 0.0, 0.0, imgproc::INTER_AREA)
        .map_err(cv_err("estimating the background"))?;
    if small.cols() < 7 || small.rows() < 7 {
        return Ok(small);
    }
    let mut med = Mat::default();
    imgproc::median_blur(&small, &mut med, 7).map_err(cv_err("estimating the background"))?;
    Ok(med)
}

/// Inverts every region whose local background is dark; returns the image and the share
/// of inverted pixels.
fn invert_dark_regions(gray: &Mat) -> Result<(Mat, f64), VisionError> {
    let bg = background_map(gray)?;
    let bg_bytes = bytes(&bg)?;
    let dark = bg_bytes.iter().filter(|&&v| v < 128).count();
    if dark == 0 {
        return Ok((gray.clone(), 0.0));
    }
    if dark == bg_bytes.len() {
        let mut inv = Mat::default();
        opencv::core::bitwise_not_def(gray, &mut inv).map_err(cv_err("inverting"))?;
        return Ok((inv, 1.0));
    }
    // Mask of dark regions at full size.
    let mut small_mask = Mat::default();
    imgproc::threshold(
        &bg,
        &mut small_mask,
        127.0,
        255.0,
        imgproc::THRESH_BINARY_INV,
    )
    .map_err(cv_err("inverting"))?;
    let mut mask = Mat::default();
    imgproc::resize(
        &small_mask,
        &mut mask,
        gray.size().map_err(cv_err("inverting"))?,
        0.0,
        0.0,
        imgproc::INTER_NEAREST,
    )
    .map_err(cv_err("inverting"))?;
    let mut out = gray.clone();
    let mut inv = Mat::default();
    opencv::core::bitwise_not_def(gray, &mut inv).map_err(cv_err("inverting"))?;
    inv.copy_to_masked(&mut out, &mask)
        .map_err(cv_err("inverting"))?;
    Ok((out, dark as f64 / bg_bytes.len() as f64))
}

/// Spread (95th − 5th percentile) of the background under dark-on-light text: the image
/// shrunk by 4, then a grayscale dilation (local maximum over ~28 px) removes the text.
fn background_spread(gray: &Mat) -> Result<i32, VisionError> {
    let small_size = Size::new((gray.cols() / 4).max(1), (gray.rows() / 4).max(1));
    let mut small = Mat::default();
    imgproc::resize(gray, &mut small, small_size, 0.0, 0.0, imgproc::INTER_AREA)
        .map_err(cv_err("estimating the background"))?;
    let kernel = imgproc::get_structuring_element_def(imgproc::MORPH_RECT, Size::new(7, 7))
        .map_err(cv_err("estimating the background"))?;
    let mut bg = Mat::default();
    imgproc::dilate_def(&small, &mut bg, &kernel).map_err(cv_err("estimating the background"))?;
    let hist = histogram(bytes(&bg)?);
    Ok(i32::from(quantile(&hist, 0.95)) - i32::from(quantile(&hist, 0.05)))
}

/// Dark-on-light binary (text = 255) by Otsu.
fn ink_mask(gray: &Mat) -> Result<Mat, VisionError> {
    let mut bin = Mat::default();
    imgproc::threshold(
        gray,
        &mut bin,
        0.0,
        255.0,
        imgproc::THRESH_BINARY_INV | imgproc::THRESH_OTSU,
    )
    .map_err(cv_err("binarising"))?;
    Ok(bin)
}

/// Median height of glyph-like connected components (0 when there are too few).
pub fn median_glyph_height(gray: &Mat) -> Result<f64, VisionError> {
    let bin = ink_mask(gray)?;
    let mut labels = Mat::default();
    let mut stats = Mat::default();
    let mut centroids = Mat::default();
    let n =
        imgproc::connected_components_with_stats_def(&bin, &mut labels, &mut stats, &mut centroids)
            .map_err(cv_err("measuring glyphs"))?;
    let mut heights = Vec::new();
    for i in 1..n {
        let get = |c| stats.at_2d::<i32>(i, c).copied().unwrap_or(0);
        let (cw, ch, area) = (
            get(imgproc::CC_STAT_WIDTH),
            get(imgproc::CC_STAT_HEIGHT),
            get(imgproc::CC_STAT_AREA),
        );
        if (3..=200).contains(&ch) && cw <= ch * 3 && area >= 4 {
            heights.push(ch);
        }
    }
    if heights.len() < 5 {
        return Ok(0.0);
    }
    heights.sort_unstable();
    Ok(f64::from(heights[heights.len() / 2]))
}

/// Median angle (degrees, OpenCV rotation sense) of text lines; 0 when unknown.
pub fn estimate_skew(gray: &Mat, glyph_height: f64) -> Result<f64, VisionError> {
    let bin = ink_mask(gray)?;
    let k = (glyph_height * 1.5).round().max(3.0) as i32;
    let kernel = imgproc::get_structuring_element_def(imgproc::MORPH_RECT, Size::new(k, 1))
        .map_err(cv_err("deskewing"))?;
    let mut closed = Mat::default();
    imgproc::morphology_ex_def(&bin, &mut closed, imgproc::MORPH_CLOSE, &kernel)
        .map_err(cv_err("deskewing"))?;
    let mut contours: Vector<Vector<Point>> = Vector::new();
    imgproc::find_contours_def(
        &closed,
        &mut contours,
        imgproc::RETR_EXTERNAL,
        imgproc::CHAIN_APPROX_SIMPLE,
    )
    .map_err(cv_err("deskewing"))?;
    let mut angles: Vec<(f64, f64)> = Vec::new();
    for c in contours.iter() {
        let r = imgproc::min_area_rect(&c).map_err(cv_err("deskewing"))?;
        let (mut rw, mut rh, mut a) = (
            f64::from(r.size.width),
            f64::from(r.size.height),
            f64::from(r.angle),
        );
        if rw < rh {
            std::mem::swap(&mut rw, &mut rh);
            a -= 90.0;
        }
        while a > 90.0 {
            a -= 180.0;
        }
        while a <= -90.0 {
            a += 180.0;
        }
        if rw >= 6.0 * rh && rw >= glyph_height * 6.0 && a.abs() <= 20.0 {
            angles.push((a, rw));
        }
    }
    if angles.len() < 2 {
        return Ok(0.0);
    }
    // Width-weighted median.
    angles.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = angles.iter().map(|a| a.1).sum();
    let mut acc = 0.0;
    for (a, w) in &angles {
        acc += w;
        if acc >= total / 2.0 {
            return Ok(*a);
        }
    }
    Ok(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_inverse_round_trips() {
        let m = rotation_matrix(Point2f::new(50.0, 30.0), 7.0);
        let inv = invert_affine(&m);
        let (x, y) = (12.0, 40.0);
        let (tx, ty) = (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]);
        let (bx, by) = (
            inv[0] * tx + inv[1] * ty + inv[2],
            inv[3] * tx + inv[4] * ty + inv[5],
        );
        assert!((bx - x).abs() < 1e-9 && (by - y).abs() < 1e-9);
    }

    #[test]
    fn boxes_map_back_through_the_scale() {
        let p = Preprocessed {
            gray: Mat::default(),
            scale: 2.0,
            angle_deg: 0.0,
            inverted_fraction: 0.0,
            thresholded: false,
            glyph_height: 10.0,
            input_size: (100, 100),
            inverse_rotation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        };
        let b = p.to_original(&BoundingBox {
            x: 20,
            y: 40,
            width: 30,
            height: 10,
        });
        assert_eq!(
            b,
            BoundingBox {
                x: 10,
                y: 20,
                width: 15,
                height: 5
            }
        );
    }

    #[test]
    fn dark_images_are_inverted_and_light_ones_are_not() {
        let mut rgba = vec![0u8; 64 * 64 * 4];
        for px in rgba.chunks_mut(4) {
            px.copy_from_slice(&[20, 20, 30, 255]);
        }
        let dark = Image {
            width: 64,
            height: 64,
            rgba,
        };
        let p = preprocess(&dark, &PreprocessOptions::default()).unwrap();
        assert_eq!(p.inverted_fraction, 1.0);
        assert!(bytes(&p.gray).unwrap().iter().all(|&v| v > 200));
        let light = Image {
            width: 64,
            height: 64,
            rgba: vec![255; 64 * 64 * 4],
        };
        let p = preprocess(&light, &PreprocessOptions::default()).unwrap();
        assert_eq!(p.inverted_fraction, 0.0);
        assert_eq!(p.scale, 1.0);
    }
}
