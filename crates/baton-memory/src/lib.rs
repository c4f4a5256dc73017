//! Baton's memory: sentence embeddings computed locally, so that what Baton has seen
//! (messages, captures, transcripts, task outputs, documents) is found by what it means.
//!
//! [`Embedder`] runs all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions) through ONNX Runtime with
//! the model's own Hugging Face tokenizer: texts are tokenised in a batch (cut at
//! [`MAX_TOKENS`]), run once, mean-pooled over their real tokens and L2-normalised, so the
//! dot product of two vectors is their cosine similarity.
#![warn(missing_docs)]

pub mod docs;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Tokens per text the model reads; longer texts are cut (all-MiniLM-L6-v2 was trained on
/// 256).
pub const MAX_TOKENS: usize = 256;

/// What went wrong while embedding.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The model or tokenizer cannot be loaded.
    #[error("the embedding model {path} cannot be used: {reason}. Fetch it with `baton models fetch all-minilm-l6-v2`")]
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Running the model failed.
    #[error("embedding failed: {0}")]
    Inference(String),
}

/// A loaded embedding model with its tokenizer.
pub struct Embedder {
    session: Mutex<ort::session::Session>,
    tokenizer: tokenizers::Tokenizer,
    dimensions: usize,
    name: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the ONNX model at `model` (inputs `input_ids`, `attention_mask`,
    /// `token_type_ids`; output `last_hidden_state`) and the `tokenizer.json` at
    /// `tokenizer`, running on `threads` CPU threads. `name` is what vectors are stored
    /// under (a new model re-embeds).
    pub fn load(
        name: &str,
        model: &Path,
        tokenizer: &Path,
        threads: usize,
    ) -> Result<Self, MemoryError> {
        let model_err = |path: &Path, reason: String| MemoryError::Model {
            path: path.to_path_buf(),
            reason,
        };
        for path in [model, tokenizer] {
            if !path.is_file() {
                return Err(model_err(path, "file not found".into()));
            }
        }
        let mut tokenizer = tokenizers::Tokenizer::from_file(tokenizer)
            .map_err(|e| model_err(tokenizer, e.to_string()))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| model_err(model, e.to_string()))?;
        tokenizer.with_padding(Some(tokenizers::PaddingParams::default()));
        let env = baton_onnx::environment().map_err(|e| model_err(model, e))?;
        let mut builder = ort::session::Session::builder(&env)
            .map_err(|e| model_err(model, e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| model_err(model, e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| model_err(model, e.to_string()))?;
        let session = builder
            .commit_from_file(model)
            .map_err(|e| model_err(model, e.to_string()))?;
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        for want in ["input_ids", "attention_mask", "token_type_ids"] {
            if !inputs.iter().any(|n| n == want) {
                return Err(model_err(
                    model,
                    format!("it has inputs {inputs:?}, not a BERT encoder's input_ids, attention_mask and token_type_ids"),
                ));
            }
        }
        let embedder = Self {
            session: Mutex::new(session),
            tokenizer,
            dimensions: 0,
            name: name.to_owned(),
        };
        // The width comes from the model itself.
        let probe = embedder.embed(&["dimensions"])?;
        let dimensions = probe.first().map_or(0, Vec::len);
        if dimensions == 0 {
            return Err(model_err(model, "it returned empty vectors".into()));
        }
        Ok(Self {
            dimensions,
            ..embedder
        })
    }

    /// The name vectors are stored under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The length of every vector.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Tokens the model reads of each text (cut at [`MAX_TOKENS`], with `[CLS]` and `[SEP]`).
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<usize>, MemoryError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| MemoryError::Inference(format!("tokenising: {e}")))?;
        Ok(encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|&&m| m == 1).count())
            .collect())
    }

    /// One unit-length vector per text, in order. Empty texts get the vector of an empty
    /// sentence (the model's `[CLS] [SEP]`).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MemoryError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let fail = |what: &str, e: String| MemoryError::Inference(format!("{what}: {e}"));
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail("tokenising", e.to_string()))?;
        let batch = encodings.len();
        let width = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; batch * width];
        let mut mask = vec![0i64; batch * width];
        let types = vec![0i64; batch * width];
        for (row, encoding) in encodings.iter().enumerate() {
            for (col, (&id, &m)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_attention_mask())
                .enumerate()
            {
                ids[row * width + col] = i64::from(id);
                mask[row * width + col] = i64::from(m);
            }
        }
        let tensor = |data: Vec<i64>| {
            ort::value::Tensor::from_array(([batch, width], data))
                .map_err(|e| fail("input tensor", e.to_string()))
        };
        let inputs = ort::inputs![
            "input_ids" => tensor(ids)?,
            "attention_mask" => tensor(mask.clone())?,
            "token_type_ids" => tensor(types)?,
        ];
        let mut session = self
            .session
            .lock()
            .map_err(|_| MemoryError::Inference("the model's lock was poisoned".into()))?;
        let outputs = session
            .run(inputs)
            .map_err(|e| fail("the model failed", e.to_string()))?;
        let (shape, hidden) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail("output", e.to_string()))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let [b, s, d] = dims[..] else {
            return Err(fail(
                "output",
                format!("shape {dims:?}, expected [batch, tokens, width]"),
            ));
        };
        if b != batch || s != width {
            return Err(fail(
                "output",
                format!("shape {dims:?} for a batch of {batch}×{width}"),
            ));
        }
        Ok((0..batch)
            .map(|row| {
                mean_pool(
                    &hidden[row * s * d..(row + 1) * s * d],
                    &mask[row * s..(row + 1) * s],
                    d,
                )
            })
            .collect())
    }
}

/// The mean of the token vectors whose mask is set, scaled to unit length.
fn mean_pool(hidden: &[f32], mask: &[i64], width: usize) -> Vec<f32> {
    let mut sum = vec![0f32; width];
    let mut count = 0f32;
    for (token, &m) in hidden.chunks_exact(width).zip(mask) {
        if m != 0 {
            count += 1.0;
            for (acc, v) in sum.iter_mut().zip(token) {
                *acc += v;
            }
        }
    }
    normalize(sum.iter().map(|v| v / count.max(1.0)).collect())
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The dot product of two vectors (their cosine similarity when both are unit length).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        let hidden = [1.0, 0.0, 3.0, 0.0, 100.0, 100.0];
        let v = mean_pool(&hidden, &[1, 1, 0], 2);
        assert!((v[0] - 1.0).abs() < 1e-6 && v[1].abs() < 1e-6, "{v:?}");
        assert!((dot(&v, &v) - 1.0).abs() < 1e-6);
        assert_eq!(normalize(vec![0.0, 0.0]), [0.0, 0.0]);
    }
}
