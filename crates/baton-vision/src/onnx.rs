//! [`OnnxDetector`]: a YOLO-style UI-element detector run through ONNX Runtime (`ort`,
//! `load-dynamic`: `libonnxruntime.so` is loaded at run time, never linked).
//!
//! Model contract: one float input `[1, 3, S, S]` (RGB in 0..1, letterboxed with gray
//! 114/255 padding) and one float output in YOLOv8 layout, `[1, 4 + C, N]` or its
//! transpose `[1, N, 4 + C]`: box centre, width and height in input pixels followed by
//! one score per class. Classes are [`ONNX_CLASSES`] in order. Decoding
//! ([`decode_yolo`]), letterboxing ([`Letterbox`]) and non-maximum suppression ([`nms`])
//! are pure functions.

use baton_core::{
    BoundingBox, ElementDetector, ElementKind, Image, OcrResult, UiElement, VisionError,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Class order of the model's score channels.
pub const ONNX_CLASSES: [ElementKind; 7] = [
    ElementKind::Button,
    ElementKind::TextField,
    ElementKind::Checkbox,
    ElementKind::RadioButton,
    ElementKind::Link,
    ElementKind::Label,
    ElementKind::Icon,
];

/// A decoded detection in floating-point pixel coordinates (x0, y0, x1, y1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Left.
    pub x0: f32,
    /// Top.
    pub y0: f32,
    /// Right.
    pub x1: f32,
    /// Bottom.
    pub y1: f32,
    /// Class index.
    pub class: usize,
    /// Score in [0, 1].
    pub score: f32,
}

impl Detection {
    fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    /// Intersection over union.
    pub fn iou(&self, o: &Detection) -> f32 {
        let iw = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let ih = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// Decodes a YOLOv8-style output tensor of `shape` (`[1, 4+C, N]` or `[1, N, 4+C]`) with
/// `num_classes` classes, keeping the best class of each candidate when its score is at
/// least `min_score`.
pub fn decode_yolo(
    shape: &[usize],
    data: &[f32],
    num_classes: usize,
    min_score: f32,
) -> Result<Vec<Detection>, VisionError> {
    let channels = 4 + num_classes;
    let bad = || {
        VisionError::Model(format!(
            "detector output has shape {shape:?}; expected [1, {channels}, N] or [1, N, {channels}]"
        ))
    };
    if shape.len() != 3 || shape[0] != 1 {
        return Err(bad());
    }
    let (n, channels_first) = if shape[1] == channels {
        (shape[2], true)
    } else if shape[2] == channels {
        (shape[1], false)
    } else {
        return Err(bad());
    };
    if data.len() != n * channels {
        return Err(bad());
    }
    let at = |c: usize, i: usize| {
        if channels_first {
            data[c * n + i]
        } else {
            data[i * channels + c]
        }
    };
    let mut out = Vec::new();
    for i in 0..n {
        let (mut best, mut best_score) = (0, f32::MIN);
        for c in 0..num_classes {
            let s = at(4 + c, i);
            if s > best_score {
                best = c;
                best_score = s;
            }
        }
        if !best_score.is_finite() || best_score < min_score {
            continue;
        }
        let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
        if !(cx.is_finite() && cy.is_finite() && w.is_finite() && h.is_finite())
            || w <= 0.0
            || h <= 0.0
        {
            continue;
        }
        out.push(Detection {
            x0: cx - w / 2.0,
            y0: cy - h / 2.0,
            x1: cx + w / 2.0,
            y1: cy + h / 2.0,
            class: best,
            score: best_score.min(1.0),
        });
    }
    Ok(out)
}

/// Class-aware non-maximum suppression: keeps the highest-scoring box and drops every box
/// of the same class that overlaps it by more than `iou_threshold`, repeatedly.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep
            .iter()
            .all(|k| k.class != d.class || k.iou(&d) <= iou_threshold)
        {
            keep.push(d);
        }
    }
    keep
}

/// Letterbox geometry: the image scaled by `scale` and placed at (`pad_x`, `pad_y`) in a
/// `size`×`size` square.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Model input side.
    pub size: u32,
    /// Scale from image to model pixels.
    pub scale: f32,
    /// Horizontal padding.
    pub pad_x: f32,
    /// Vertical padding.
    pub pad_y: f32,
}

impl Letterbox {
    /// Geometry for fitting a `width`×`height` image into a `size` square.
    pub fn new(width: u32, height: u32, size: u32) -> Self {
        let scale = (size as f32 / width as f32).min(size as f32 / height as f32);
        let pad_x = (size as f32 - width as f32 * scale) / 2.0;
        let pad_y = (size as f32 - height as f32 * scale) / 2.0;
        Self {
            size,
            scale,
            pad_x,
            pad_y,
        }
    }

    /// Maps a model-space detection to an image-space box, clamped to the image.
    pub fn to_image(&self, d: &Detection, width: u32, height: u32) -> BoundingBox {
        let fx = |v: f32| ((v - self.pad_x) / self.scale).clamp(0.0, width as f32);
        let fy = |v: f32| ((v - self.pad_y) / self.scale).clamp(0.0, height as f32);
        let (x0, y0, x1, y1) = (fx(d.x0), fy(d.y0), fx(d.x1), fy(d.y1));
        BoundingBox {
            x: x0.round() as i32,
            y: y0.round() as i32,
            width: (x1 - x0).round().max(0.0) as u32,
            height: (y1 - y0).round().max(0.0) as u32,
        }
    }

    /// The letterboxed CHW float tensor (RGB in 0..1, padding 114/255), nearest-neighbour
    /// resampling.
    pub fn tensor(&self, image: &Image) -> Vec<f32> {
        let s = self.size as usize;
        let mut out = vec![114.0 / 255.0; 3 * s * s];
        let (w, h) = (image.width as usize, image.height as usize);
        for ty in 0..s {
            let sy = (ty as f32 + 0.5 - self.pad_y) / self.scale;
            if sy < 0.0 || sy >= h as f32 {
                continue;
            }
            for tx in 0..s {
                let sx = (tx as f32 + 0.5 - self.pad_x) / self.scale;
                if sx < 0.0 || sx >= w as f32 {
                    continue;
                }
                let p = ((sy as usize) * w + sx as usize) * 4;
                for c in 0..3 {
                    out[c * s * s + ty * s + tx] = f32::from(image.rgba[p + c]) / 255.0;
                }
            }
        }
        out
    }
}

/// Finds `libonnxruntime.so` (see [`baton_onnx::find_library`]).
pub fn find_onnxruntime() -> Result<PathBuf, VisionError> {
    baton_onnx::find_library().map_err(VisionError::Model)
}

fn init_ort() -> Result<ort::environment::Environment, VisionError> {
    baton_onnx::environment().map_err(VisionError::Model)
}

/// A YOLO-style element detector loaded from an ONNX file.
pub struct OnnxDetector {
    session: Mutex<ort::session::Session>,
    input_size: u32,
    /// Lowest class score kept.
    pub min_score: f32,
    /// IoU above which NMS drops the weaker box.
    pub nms_iou: f32,
}

impl std::fmt::Debug for OnnxDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDetector")
            .field("input_size", &self.input_size)
            .field("min_score", &self.min_score)
            .field("nms_iou", &self.nms_iou)
            .finish_non_exhaustive()
    }
}

impl OnnxDetector {
    /// Loads a model; its input must be `[1, 3, S, S]`.
    pub fn load(model: &Path) -> Result<Self, VisionError> {
        if !model.is_file() {
            return Err(VisionError::Model(format!(
                "detector model {} not found; generate the test one with `python3 models/gen_tiny_detector.py OUT.onnx`",
                model.display()
            )));
        }
        let env = init_ort()?;
        let session = ort::session::Session::builder(&env)
            .and_then(|mut b| b.commit_from_file(model))
            .map_err(|e| VisionError::Model(format!("cannot load {}: {e}", model.display())))?;
        let input_size = match session.inputs().first().map(|i| i.dtype()) {
            Some(ort::value::ValueType::Tensor { shape, .. })
                if shape.len() == 4 && shape[1] == 3 && shape[2] > 0 && shape[2] == shape[3] =>
            {
                shape[2] as u32
            }
            other => {
                return Err(VisionError::Model(format!(
                    "{}: expected one input of shape [1, 3, S, S], found {other:?}",
                    model.display()
                )))
            }
        };
        Ok(Self {
            session: Mutex::new(session),
            input_size,
            min_score: 0.25,
            nms_iou: 0.45,
        })
    }

    /// The model's input side.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }
}

impl ElementDetector for OnnxDetector {
    fn detect(
        &self,
        image: &Image,
        _ocr: Option<&OcrResult>,
    ) -> Result<Vec<UiElement>, VisionError> {
        image.validate()?;
        crate::load::Limits::default().check(image.width, image.height)?;
        let lb = Letterbox::new(image.width, image.height, self.input_size);
        let s = self.input_size as usize;
        let input = ort::value::Tensor::from_array(([1usize, 3, s, s], lb.tensor(image)))
            .map_err(|e| VisionError::Failed(format!("cannot build the input tensor: {e}")))?;
        let mut session = self.session.lock().map_err(|_| {
            VisionError::Failed("the detector was poisoned by an earlier crash".into())
        })?;
        let outputs = session
            .run(ort::inputs![input])
            .map_err(|e| VisionError::Failed(format!("the detector failed: {e}")))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| VisionError::Model(format!("detector output is not float32: {e}")))?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let dets = nms(
            decode_yolo(&shape, data, ONNX_CLASSES.len(), self.min_score)?,
            self.nms_iou,
        );
        Ok(dets
            .iter()
            .map(|d| UiElement {
                kind: ONNX_CLASSES[d.class],
                bbox: lb.to_image(d, image.width, image.height),
                confidence: d.score,
                text: None,
            })
            .filter(|e| e.bbox.width > 0 && e.bbox.height > 0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x0: f32, y0: f32, x1: f32, y1: f32, class: usize, score: f32) -> Detection {
        Detection {
            x0,
            y0,
            x1,
            y1,
            class,
            score,
        }
    }

    #[test]
    fn decodes_channels_first_and_transposed() {
        // Two candidates, 2 classes: [cx, cy, w, h, s0, s1].
        let cands = [
            [10.0, 10.0, 4.0, 2.0, 0.9, 0.1],
            [30.0, 5.0, 2.0, 2.0, 0.2, 0.3],
        ];
        let mut first = vec![0.0; 12];
        let mut last = vec![0.0; 12];
        for (i, c) in cands.iter().enumerate() {
            for (ch, v) in c.iter().enumerate() {
                first[ch * 2 + i] = *v;
                last[i * 6 + ch] = *v;
            }
        }
        for (shape, data) in [([1, 6, 2], &first), ([1, 2, 6], &last)] {
            let d = decode_yolo(&shape, data, 2, 0.25).unwrap();
            assert_eq!(
                d,
                vec![
                    det(8.0, 9.0, 12.0, 11.0, 0, 0.9),
                    det(29.0, 4.0, 31.0, 6.0, 1, 0.3)
                ]
            );
        }
        assert!(decode_yolo(&[1, 5, 2], &first[..10], 2, 0.1).is_err());
        assert!(decode_yolo(&[1, 6, 3], &first, 2, 0.1).is_err());
    }

    #[test]
    fn nms_drops_overlaps_of_the_same_class_only() {
        let a = det(0.0, 0.0, 10.0, 10.0, 0, 0.9);
        let b = det(1.0, 1.0, 11.0, 11.0, 0, 0.8); // IoU 0.68 with a
        let c = det(1.0, 1.0, 11.0, 11.0, 1, 0.7); // other class
        let d = det(20.0, 20.0, 30.0, 30.0, 0, 0.6); // disjoint
        let kept = nms(vec![d, b, c, a], 0.45);
        assert_eq!(kept, vec![a, c, d]);
        assert_eq!(nms(vec![a, b], 0.9).len(), 2);
    }

    #[test]
    fn letterbox_round_trips_boxes() {
        let lb = Letterbox::new(200, 100, 64);
        assert_eq!(lb.scale, 0.32);
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 16.0));
        let d = det(6.4, 16.0 + 3.2, 12.8, 16.0 + 6.4, 0, 1.0);
        assert_eq!(
            lb.to_image(&d, 200, 100),
            BoundingBox {
                x: 20,
                y: 10,
                width: 20,
                height: 10
            }
        );
        let img = Image {
            width: 200,
            height: 100,
            rgba: vec![255; 200 * 100 * 4],
        };
        let t = lb.tensor(&img);
        assert_eq!(t.len(), 3 * 64 * 64);
        assert_eq!(t[0], 114.0 / 255.0); // padding row
        assert_eq!(t[32 * 64 + 5], 1.0); // image row
    }
}
