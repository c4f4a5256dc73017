//! Converts Whisper speech-recognition models from CTranslate2's format (the `model.bin`
//! that faster-whisper uses, a `WhisperSpec`) to whisper.cpp's legacy ggml format
//! (`ggml-*.bin`, magic `0x67676d6c`), in pure Rust.
//!
//! The pieces:
//! - [`ct2`]: a bounds-checked reader of CTranslate2's `model.bin` (binary version 6).
//! - [`mel`]: the 80 × 201 Slaney mel filter bank whisper.cpp's file embeds.
//! - [`vocab`]: GPT-2's byte ↔ unicode mapping, so that tokens are written as raw bytes.
//! - [`ggml`]: the writer of whisper.cpp's file (hparams, filters, vocabulary, tensors).
//! - [`convert_dir`]: the whole conversion, with the tensor renaming and the splitting of
//!   CTranslate2's fused attention projections.
//! - [`write_tiny_model`]: a small random-weight model in the same format, for fast tests.
//!
//! No native code: the crate can be used anywhere, also where whisper.cpp is not linked.

#![warn(missing_docs)]

mod convert;
pub mod ct2;
pub mod ggml;
pub mod mel;
mod tiny;
pub mod vocab;

pub use convert::{convert_dir, convert_model, load_vocabulary, ConvertReport, Weights};
pub use tiny::{write_tiny_model, write_tiny_model_with, TinyModelSpec};

use std::path::PathBuf;

/// What can go wrong while reading a CTranslate2 model or writing a ggml one.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{path}: {source} (check that the path exists and is readable/writable)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `model.bin` is not a CTranslate2 model this converter understands.
    #[error("{path}: not a CTranslate2 model this converter can read: {reason} (pass the model.bin of a faster-whisper / CTranslate2 Whisper model, binary version 6)")]
    BadCt2 {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model is a CTranslate2 model, but not a Whisper model in a supported layout.
    #[error("{path}: unsupported Whisper model: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported, and what to do.
        reason: String,
    },
    /// A tensor the conversion needs is missing or has the wrong shape.
    #[error("{path}: tensor '{name}': {reason} (the model is incomplete or not a standard Whisper model; re-download or re-convert it with ct2-transformers-converter --quantization float16)")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The CTranslate2 variable name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The vocabulary files are missing or do not match the model.
    #[error("{path}: bad vocabulary: {reason} (use the vocabulary.txt or tokenizer.json shipped with the same model)")]
    Vocabulary {
        /// The vocabulary file (or the model directory when none was found).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ConvertError {
    let path = path.into();
    move |source| ConvertError::Io { path, source }
}
