//! Small OpenCV helpers: conversions between [`Image`] and `Mat`, and error mapping.

use baton_core::{Image, VisionError};
use opencv::core::{Mat, Scalar, CV_8UC4};
use opencv::prelude::*;

/// Maps an OpenCV error into a [`VisionError`].
pub(crate) fn cv_err(context: &str) -> impl Fn(opencv::Error) -> VisionError + '_ {
    move |e| VisionError::Failed(format!("OpenCV failed while {context}: {e}"))
}

/// Copies an RGBA image into a 4-channel `Mat`.
pub(crate) fn rgba_mat(image: &Image) -> Result<Mat, VisionError> {
    image.validate()?;
    let (w, h) = dims(image)?;
    let mut m = Mat::new_rows_cols_with_default(h, w, CV_8UC4, Scalar::all(0.0))
        .map_err(cv_err("allocating an image"))?;
    m.data_bytes_mut()
        .map_err(cv_err("copying an image"))?
        .copy_from_slice(&image.rgba);
    Ok(m)
}

/// The bytes of a continuous 8-bit single-channel `Mat`.
pub(crate) fn bytes(m: &Mat) -> Result<&[u8], VisionError> {
    m.data_bytes().map_err(cv_err("reading an image"))
}

/// Width and height as `i32` (OpenCV's type).
pub(crate) fn dims(image: &Image) -> Result<(i32, i32), VisionError> {
    let w = i32::try_from(image.width)
        .map_err(|_| VisionError::InvalidImage("the image is too wide".into()))?;
    let h = i32::try_from(image.height)
        .map_err(|_| VisionError::InvalidImage("the image is too tall".into()))?;
    Ok((w, h))
}

/// Grayscale of an RGBA image (OpenCV's BT.601 weights).
pub(crate) fn to_gray(image: &Image) -> Result<Mat, VisionError> {
    let rgba = rgba_mat(image)?;
    let mut gray = Mat::default();
    opencv::imgproc::cvt_color_def(&rgba, &mut gray, opencv::imgproc::COLOR_RGBA2GRAY)
        .map_err(cv_err("converting to grayscale"))?;
    Ok(gray)
}

/// The `q`-quantile (0..=1) of an 8-bit histogram.
pub(crate) fn quantile(hist: &[u64; 256], q: f64) -> u8 {
    let total: u64 = hist.iter().sum();
    let target = (total as f64 * q).ceil() as u64;
    let mut acc = 0;
    for (v, &n) in hist.iter().enumerate() {
        acc += n;
        if acc >= target.max(1) {
            return v as u8;
        }
    }
    255
}

/// Histogram of an 8-bit buffer.
pub(crate) fn histogram(data: &[u8]) -> [u64; 256] {
    let mut h = [0u64; 256];
    for &v in data {
        h[usize::from(v)] += 1;
    }
    h
}
