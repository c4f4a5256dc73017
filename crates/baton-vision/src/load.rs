//! Reading images from files and bytes. Dimensions are read from the header and checked
//! against [`Limits`] before a single pixel is decoded, so a hostile or broken file can
//! never make us allocate gigabytes.

use baton_core::{Image, VisionError};
use std::io::Cursor;
use std::path::Path;

/// Size limits for input images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Smallest accepted width and height (smaller images cannot hold readable text).
    pub min_side: u32,
    /// Largest accepted width or height.
    pub max_side: u32,
    /// Largest accepted number of pixels (width × height).
    pub max_pixels: u64,
    /// Largest accepted file size in bytes.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_side: 8,
            max_side: 16_384,
            // 8K × 6K: four 4K monitors side by side still fit.
            max_pixels: 50_000_000,
            max_file_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Checks `width`×`height` against the limits.
    pub fn check(&self, width: u32, height: u32) -> Result<(), VisionError> {
        if width == 0 || height == 0 {
            return Err(VisionError::InvalidImage(format!(
                "the image is empty ({width}x{height} pixels)"
            )));
        }
        if width < self.min_side || height < self.min_side {
            return Err(VisionError::InvalidImage(format!(
                "the image is {width}x{height} pixels, too small to hold text; at least {m}x{m} is needed",
                m = self.min_side
            )));
        }
        let pixels = u64::from(width) * u64::from(height);
        if width > self.max_side || height > self.max_side || pixels > self.max_pixels {
            return Err(VisionError::InvalidImage(format!(
                "the image is {width}x{height} pixels, larger than the limit of {s}x{s} and {p} megapixels; crop or scale it down",
                s = self.max_side,
                p = self.max_pixels / 1_000_000
            )));
        }
        Ok(())
    }
}

/// Reads an image file (PNG, JPEG, BMP, WebP, GIF, TIFF, PNM).
pub fn load_image(path: &Path, limits: &Limits) -> Result<Image, VisionError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| VisionError::InvalidImage(format!("cannot read `{}`: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(VisionError::InvalidImage(format!(
            "`{}` is a directory, not an image file",
            path.display()
        )));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(VisionError::InvalidImage(format!(
            "`{}` is {} bytes, larger than the limit of {} bytes",
            path.display(),
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| VisionError::InvalidImage(format!("cannot read `{}`: {e}", path.display())))?;
    load_image_bytes(&bytes, limits).map_err(|e| match e {
        VisionError::InvalidImage(m) => {
            VisionError::InvalidImage(format!("`{}`: {m}", path.display()))
        }
        other => other,
    })
}

/// Decodes an image held in memory.
pub fn load_image_bytes(bytes: &[u8], limits: &Limits) -> Result<Image, VisionError> {
    if bytes.is_empty() {
        return Err(VisionError::InvalidImage(
            "the file is empty (0 bytes)".to_owned(),
        ));
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(VisionError::InvalidImage(format!(
            "the data is {} bytes, larger than the limit of {} bytes",
            bytes.len(),
            limits.max_file_bytes
        )));
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::InvalidImage(format!("cannot read the data: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(VisionError::InvalidImage(
            "not an image: the format is not recognised (PNG, JPEG, BMP, WebP, GIF, TIFF and PNM are supported)"
                .to_owned(),
        ));
    };
    // Header only: no pixel is decoded yet.
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| VisionError::InvalidImage(format!("corrupt {format:?} header: {e}")))?;
    limits.check(width, height)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decoder_limits);
    let decoded = reader.decode().map_err(|e| {
        VisionError::InvalidImage(format!("corrupt {format:?} data ({width}x{height}): {e}"))
    })?;
    let rgba = decoded.into_rgba8();
    let image = Image {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    };
    image.validate()?;
    Ok(image)
}

/// Encodes `image` as PNG bytes (fast compression: screenshots are shown, not archived).
pub fn encode_png(image: &Image) -> Result<Vec<u8>, VisionError> {
    image.validate()?;
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    );
    image::ImageEncoder::write_image(
        encoder,
        &image.rgba,
        image.width,
        image.height,
        image::ExtendedColorType::Rgba8,
    )
    .map_err(|e| VisionError::Failed(format!("cannot encode a PNG: {e}")))?;
    Ok(out)
}

/// Writes `image` as a PNG file.
pub fn save_png(image: &Image, path: &Path) -> Result<(), VisionError> {
    image.validate()?;
    image::save_buffer(
        path,
        &image.rgba,
        image.width,
        image.height,
        image::ExtendedColorType::Rgba8,
    )
    .map_err(|e| VisionError::Failed(format!("cannot write `{}`: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let buf = vec![255u8; (width * height * 4) as usize];
        image::write_buffer_with_format(
            &mut Cursor::new(&mut out),
            &buf,
            width,
            height,
            image::ExtendedColorType::Rgba8,
            image::ImageFormat::Png,
        )
        .unwrap();
        out
    }

    /// A 1×1 PNG whose header (CRC fixed) claims `width`×`height`.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut v = png(1, 1);
        v[16..20].copy_from_slice(&width.to_be_bytes());
        v[20..24].copy_from_slice(&height.to_be_bytes());
        let mut crc = 0xffff_ffffu32;
        for &b in &v[12..29] {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        v[29..33].copy_from_slice(&(!crc).to_be_bytes());
        v
    }

    #[test]
    fn decodes_a_valid_png() {
        let img = load_image_bytes(&png(20, 10), &Limits::default()).unwrap();
        assert_eq!((img.width, img.height, img.rgba.len()), (20, 10, 800));
    }

    #[test]
    fn bad_inputs_give_clear_errors() {
        let l = Limits::default();
        let e = load_image_bytes(&[], &l).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = load_image_bytes(b"hello, this is text", &l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an image"), "{e}");
        let e = load_image_bytes(&png(1, 1), &l).unwrap_err().to_string();
        assert!(e.contains("too small"), "{e}");
        let mut corrupt = png(32, 32);
        let n = corrupt.len();
        corrupt.truncate(n - 20);
        corrupt[40] ^= 0xff;
        let e = load_image_bytes(&corrupt, &l).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn huge_dimensions_are_refused_from_the_header() {
        // 20000×20000 RGBA would need 1.6 GB; the header alone must be enough to refuse it.
        let e = load_image_bytes(&png_header_only(20_000, 20_000), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("20000x20000") && e.contains("larger than the limit"),
            "{e}"
        );
    }
}
