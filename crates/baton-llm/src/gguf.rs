//! A pure-Rust GGUF metadata reader and validator.
//!
//! [`inspect`] reads a GGUF file's header, metadata and tensor table, checks that every
//! length and offset fits inside the file (so a truncated or corrupt file is rejected before
//! llama.cpp ever sees it), and summarises what the registry and router need: architecture,
//! parameter count, context length, quantisation, chat template. [`sha256_file`] streams a
//! checksum.
//!
//! Robustness invariant: no input makes this module panic or allocate more than a small
//! multiple of the bytes it actually read. Every count and length read from the file is
//! checked against the bytes left before anything is allocated; array contents are skipped,
//! not stored (only their element type and length are kept); stored strings are capped.

use baton_core::{ModelDescriptor, ModelFormat, TaskKind};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Most metadata entries accepted.
pub const MAX_KV_COUNT: u64 = 1 << 20;
/// Most tensors accepted.
pub const MAX_TENSOR_COUNT: u64 = 1 << 20;
/// Longest string value kept in [`GgufInfo::metadata`]; longer ones are validated and
/// skipped (recorded as [`MetaValue::LongString`]).
pub const MAX_KEPT_STRING: u64 = 1 << 20;
/// Longest metadata key or tensor name accepted.
pub const MAX_NAME_LEN: u64 = 64 * 1024;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: u32 = 4;

/// Why a file is not a usable GGUF model.
#[derive(Debug, Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}. Check that the file exists and is readable")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is empty.
    #[error("{path} is empty (0 bytes): the download or copy did not complete; fetch the model again (baton models fetch)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file does not start with the GGUF magic.
    #[error("{path} is not a GGUF file (it starts with {found:?}, not \"GGUF\"); Baton's local LLM engine needs a llama.cpp GGUF model")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// The first bytes found, escaped.
        found: String,
    },
    /// A GGUF version this reader does not support.
    #[error("{path} is GGUF version {version}, which is not supported (only versions 2 and 3); convert it with a current llama.cpp")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file ends before the data it announces.
    #[error("{path} is truncated at byte {at} of {file_size} ({what} needs more bytes); the file is incomplete, fetch it again")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the missing data starts (or the bytes needed in total).
        at: u64,
        /// The file's size.
        file_size: u64,
        /// What was being read.
        what: String,
    },
    /// The file's structure is inconsistent.
    #[error("{path} is corrupt: {detail}; fetch the model again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A metadata value (arrays are summarised, long strings skipped).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any unsigned integer type.
    Uint(u64),
    /// Any signed integer type.
    Int(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string up to [`MAX_KEPT_STRING`] bytes (invalid UTF-8 replaced).
    String(String),
    /// A string longer than [`MAX_KEPT_STRING`] bytes, not kept.
    LongString {
        /// Its length in bytes.
        len: u64,
    },
    /// An array; only its element type and length are kept.
    Array {
        /// GGUF value-type code of the elements.
        element_type: u32,
        /// Number of elements.
        len: u64,
    },
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::Uint(v) => Some(v),
            MetaValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a string, if it is a kept string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::Uint(v) => write!(f, "{v}"),
            MetaValue::Int(v) => write!(f, "{v}"),
            MetaValue::Float(v) => write!(f, "{v}"),
            MetaValue::Bool(v) => write!(f, "{v}"),
            MetaValue::String(s) => write!(f, "{s:?}"),
            MetaValue::LongString { len } => write!(f, "<string of {len} bytes>"),
            MetaValue::Array { element_type, len } => {
                write!(f, "<array of {len} × type {element_type}>")
            }
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions (innermost first, as stored).
    pub dims: Vec<u64>,
    /// ggml type code.
    pub ggml_type: u32,
    /// Offset relative to the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// Everything [`inspect`] learned about a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// The file.
    pub path: PathBuf,
    /// Size in bytes.
    pub file_size: u64,
    /// GGUF version (2 or 3).
    pub version: u32,
    /// `general.architecture` (`llama`, `gemma3`, …).
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// Total elements of all tensors.
    pub parameters: u64,
    /// `{arch}.context_length`.
    pub context_length: Option<u64>,
    /// `{arch}.block_count`.
    pub block_count: Option<u64>,
    /// `{arch}.embedding_length`.
    pub embedding_length: Option<u64>,
    /// Quantisation label from `general.file_type`, else the most common tensor type.
    pub quantization: Option<String>,
    /// Whether `tokenizer.chat_template` is present.
    pub has_chat_template: bool,
    /// The chat template, when present and not longer than [`MAX_KEPT_STRING`].
    pub chat_template: Option<String>,
    /// Length of `tokenizer.ggml.tokens`.
    pub vocab_size: Option<u64>,
    /// Data alignment (`general.alignment`, default 32).
    pub alignment: u64,
    /// Byte offset where tensor data starts.
    pub data_offset: u64,
    /// All metadata entries (arrays summarised).
    pub metadata: BTreeMap<String, MetaValue>,
    /// The tensor table.
    pub tensors: Vec<TensorInfo>,
}

impl GgufInfo {
    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// Rough bytes of memory needed to run the model with an `n_ctx` context: the weights
    /// plus an f16 KV cache estimate plus 10% overhead.
    pub fn estimated_memory_bytes(&self, n_ctx: u64) -> u64 {
        let arch = self.architecture.as_deref().unwrap_or("");
        let head_count = self
            .arch_u64(arch, "attention.head_count")
            .unwrap_or(1)
            .max(1);
        let kv_heads = self
            .arch_u64(arch, "attention.head_count_kv")
            .unwrap_or(head_count);
        let embd = self.embedding_length.unwrap_or(0);
        let layers = self.block_count.unwrap_or(0);
        let kv_width = embd.saturating_mul(kv_heads) / head_count;
        // K and V, f16 (2 bytes) each.
        let kv = n_ctx
            .saturating_mul(layers)
            .saturating_mul(kv_width)
            .saturating_mul(4);
        let base = self.file_size.saturating_add(kv);
        base.saturating_add(base / 10)
    }

    fn arch_u64(&self, arch: &str, key: &str) -> Option<u64> {
        self.metadata
            .get(&format!("{arch}.{key}"))
            .and_then(MetaValue::as_u64)
    }

    /// A registry descriptor for this model under `name`. Task is chat when a chat template
    /// is present, completion otherwise.
    pub fn to_descriptor(&self, name: &str, n_ctx: u64) -> ModelDescriptor {
        let task = if self.has_chat_template {
            TaskKind::Chat
        } else {
            TaskKind::Completion
        };
        ModelDescriptor {
            name: name.to_owned(),
            format: ModelFormat::Gguf,
            tasks: vec![task],
            architecture: self.architecture.clone(),
            parameters: Some(self.parameters),
            context_length: self.context_length.and_then(|c| u32::try_from(c).ok()),
            quantization: self.quantization.clone(),
            memory_bytes: Some(self.estimated_memory_bytes(n_ctx)),
            cost_per_1k_prompt: 0.0,
            cost_per_1k_completion: 0.0,
            enabled: true,
        }
    }
}

/// Read and validate the GGUF file at `path`.
pub fn inspect(path: impl AsRef<Path>) -> Result<GgufInfo, GgufError> {
    let path = path.as_ref();
    let io_err = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(GgufError::Io {
            path: path.to_path_buf(),
            source: io::Error::other("it is a directory, not a model file"),
        });
    }
    let size = meta.len();
    inspect_reader(BufReader::new(file), size, path)
}

/// Validate GGUF bytes held in memory (`path` is only used in messages).
pub fn inspect_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<GgufInfo, GgufError> {
    inspect_reader(io::Cursor::new(bytes), bytes.len() as u64, path.as_ref())
}

/// Validate GGUF data from any seekable reader of `file_size` bytes.
pub fn inspect_reader<R: Read + Seek>(
    reader: R,
    file_size: u64,
    path: &Path,
) -> Result<GgufInfo, GgufError> {
    Parser {
        reader,
        pos: 0,
        size: file_size,
        path: path.to_path_buf(),
    }
    .parse()
}

/// Stream the sha256 of a file, as lowercase hex.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String, GgufError> {
    sha256_file_with_progress(path, &|_| {})
}

/// [`sha256_file`], telling `on_bytes` how many bytes have been read after each block.
pub fn sha256_file_with_progress(
    path: impl AsRef<Path>,
    on_bytes: &dyn Fn(u64),
) -> Result<String, GgufError> {
    let path = path.as_ref();
    let io_err = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        on_bytes(done);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// (block size in elements, bytes per block) of a ggml type, or `None` if unknown.
pub fn ggml_type_size(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 40),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        40 => (64, 36),
        41 => (128, 18),
        _ => return None,
    })
}

/// The name of a ggml tensor type.
pub fn ggml_type_name(ggml_type: u32) -> &'static str {
    match ggml_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        40 => "NVFP4",
        41 => "Q1_0",
        _ => "unknown",
    }
}

/// The quantisation label of a `general.file_type` value.
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

// GGUF metadata value types.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

fn scalar_size(value_type: u32) -> Option<u64> {
    Some(match value_type {
        T_U8 | T_I8 | T_BOOL => 1,
        T_U16 | T_I16 => 2,
        T_U32 | T_I32 | T_F32 => 4,
        T_U64 | T_I64 | T_F64 => 8,
        _ => return None,
    })
}

struct Parser<R> {
    reader: R,
    pos: u64,
    size: u64,
    path: PathBuf,
}

impl<R: Read + Seek> Parser<R> {
    fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn truncated(&self, at: u64, what: impl Into<String>) -> GgufError {
        GgufError::Truncated {
            path: self.path.clone(),
            at,
            file_size: self.size,
            what: what.into(),
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> GgufError {
        GgufError::Corrupt {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn io(&self, source: io::Error) -> GgufError {
        GgufError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Fail unless `n` more bytes exist.
    fn need(&self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.remaining() {
            Err(self.truncated(self.size, what))
        } else {
            Ok(())
        }
    }

    fn read_exact<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.reader.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.truncated(self.pos, what)
            } else {
                self.io(e)
            }
        })?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.read_exact::<4>(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.read_exact::<8>(what)?))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        self.need(n, what)?;
        let offset = i64::try_from(n).map_err(|_| self.corrupt(format!("{what} is too long")))?;
        self.reader
            .seek(SeekFrom::Current(offset))
            .map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(())
    }

    /// Read a string of at most `keep` bytes; longer ones are skipped (`None`).
    fn string(&mut self, what: &str, keep: u64) -> Result<Option<String>, GgufError> {
        let len = self.u64(what)?;
        self.need(len, what)?;
        if len > keep {
            self.skip(len, what)?;
            return Ok(None);
        }
        // `len <= keep` and `len <= remaining`, so this allocation is bounded.
        let mut buf = vec![0u8; len as usize];
        self.reader.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.truncated(self.pos, what)
            } else {
                self.io(e)
            }
        })?;
        self.pos += len;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn name(&mut self, what: &str) -> Result<String, GgufError> {
        let at = self.pos;
        match self.string(what, MAX_NAME_LEN)? {
            Some(name) => Ok(name),
            None => Err(self.corrupt(format!(
                "{what} at byte {at} is longer than {MAX_NAME_LEN} bytes"
            ))),
        }
    }

    fn scalar(&mut self, value_type: u32, what: &str) -> Result<MetaValue, GgufError> {
        Ok(match value_type {
            T_U8 => MetaValue::Uint(u64::from(self.read_exact::<1>(what)?[0])),
            T_I8 => MetaValue::Int(i64::from(self.read_exact::<1>(what)?[0] as i8)),
            T_BOOL => MetaValue::Bool(self.read_exact::<1>(what)?[0] != 0),
            T_U16 => MetaValue::Uint(u64::from(u16::from_le_bytes(self.read_exact(what)?))),
            T_I16 => MetaValue::Int(i64::from(i16::from_le_bytes(self.read_exact(what)?))),
            T_U32 => MetaValue::Uint(u64::from(u32::from_le_bytes(self.read_exact(what)?))),
            T_I32 => MetaValue::Int(i64::from(i32::from_le_bytes(self.read_exact(what)?))),
            T_F32 => MetaValue::Float(f64::from(f32::from_le_bytes(self.read_exact(what)?))),
            T_U64 => MetaValue::Uint(u64::from_le_bytes(self.read_exact(what)?)),
            T_I64 => MetaValue::Int(i64::from_le_bytes(self.read_exact(what)?)),
            T_F64 => MetaValue::Float(f64::from_le_bytes(self.read_exact(what)?)),
            other => return Err(self.corrupt(format!("{what} has unknown value type {other}"))),
        })
    }

    fn value(&mut self, value_type: u32, what: &str) -> Result<MetaValue, GgufError> {
        match value_type {
            T_STRING => {
                let start = self.pos;
                Ok(match self.string(what, MAX_KEPT_STRING)? {
                    Some(s) => MetaValue::String(s),
                    None => MetaValue::LongString {
                        len: self.pos - start - 8,
                    },
                })
            }
            T_ARRAY => {
                let element_type = self.u32(what)?;
                let len = self.u64(what)?;
                match element_type {
                    T_STRING => {
                        // Each string needs at least its 8-byte length.
                        if len > self.remaining() / 8 {
                            return Err(self
                                .truncated(self.size, format!("{what} (array of {len} strings)")));
                        }
                        for _ in 0..len {
                            let n = self.u64(what)?;
                            self.skip(n, what)?;
                        }
                    }
                    T_ARRAY => {
                        return Err(self.corrupt(format!("{what} is a nested array")));
                    }
                    scalar => {
                        let Some(size) = scalar_size(scalar) else {
                            return Err(self.corrupt(format!(
                                "{what} is an array of unknown value type {scalar}"
                            )));
                        };
                        let bytes = len.checked_mul(size).ok_or_else(|| {
                            self.corrupt(format!("{what} has an impossible length {len}"))
                        })?;
                        self.skip(bytes, what)?;
                    }
                }
                Ok(MetaValue::Array { element_type, len })
            }
            scalar => self.scalar(scalar, what),
        }
    }

    fn parse(mut self) -> Result<GgufInfo, GgufError> {
        if self.size == 0 {
            return Err(GgufError::Empty {
                path: self.path.clone(),
            });
        }
        if self.size < 4 {
            let mut head = vec![0u8; self.size as usize];
            let _ = self.reader.read_exact(&mut head);
            return Err(GgufError::NotGguf {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&head).escape_debug().to_string(),
            });
        }
        let magic = self.read_exact::<4>("magic")?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::NotGguf {
                path: self.path.clone(),
                found: magic.escape_ascii().to_string(),
            });
        }
        let version = self.u32("version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion {
                path: self.path.clone(),
                version,
            });
        }
        let tensor_count = self.u64("tensor count")?;
        let kv_count = self.u64("metadata count")?;
        // A metadata entry needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor
        // entry at least 8 + 4 + 8 + 4 + 8.
        if kv_count > MAX_KV_COUNT {
            return Err(self.corrupt(format!(
                "it announces {kv_count} metadata entries (at most {MAX_KV_COUNT} are plausible)"
            )));
        }
        if tensor_count > MAX_TENSOR_COUNT {
            return Err(self.corrupt(format!(
                "it announces {tensor_count} tensors (at most {MAX_TENSOR_COUNT} are plausible)"
            )));
        }
        if kv_count > self.remaining() / 13 || tensor_count > self.remaining() / 32 {
            return Err(self.truncated(
                self.size,
                format!("{kv_count} metadata entries and {tensor_count} tensors announced"),
            ));
        }

        let mut metadata = BTreeMap::new();
        for index in 0..kv_count {
            let key = self.name(&format!("metadata key #{index}"))?;
            let what = format!("metadata value `{key}`");
            let value_type = self.u32(&what)?;
            let value = self.value(value_type, &what)?;
            metadata.insert(key, value);
        }

        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => return Err(self.corrupt(format!("general.alignment {v} is invalid"))),
            },
        };

        // Tensor count is bounded by remaining/32 above, so this allocation is bounded.
        let mut tensors = Vec::with_capacity(tensor_count as usize);
        for index in 0..tensor_count {
            let name = self.name(&format!("tensor name #{index}"))?;
            let what = format!("tensor `{name}`");
            let n_dims = self.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(self.corrupt(format!("{what} has {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            let mut elements: u64 = 1;
            for _ in 0..n_dims {
                let d = self.u64(&what)?;
                elements = elements
                    .checked_mul(d)
                    .filter(|e| *e <= i64::MAX as u64)
                    .ok_or_else(|| self.corrupt(format!("{what} has impossible dimensions")))?;
                dims.push(d);
            }
            let ggml_type = self.u32(&what)?;
            let offset = self.u64(&what)?;
            let Some((block, type_size)) = ggml_type_size(ggml_type) else {
                return Err(self.corrupt(format!("{what} has unknown type {ggml_type}")));
            };
            if dims[0] % block != 0 {
                return Err(self.corrupt(format!(
                    "{what} row of {} elements is not a multiple of the {} block size {block}",
                    dims[0],
                    ggml_type_name(ggml_type)
                )));
            }
            if offset % alignment != 0 {
                return Err(self.corrupt(format!(
                    "{what} data offset {offset} is not aligned to {alignment}"
                )));
            }
            let size = (elements / block)
                .checked_mul(type_size)
                .ok_or_else(|| self.corrupt(format!("{what} is impossibly large")))?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                size,
            });
        }

        let data_offset = self.pos.div_ceil(alignment) * alignment;
        if data_offset > self.size && tensor_count > 0 {
            return Err(self.truncated(self.size, "tensor data section"));
        }
        let data_len = self.size.saturating_sub(data_offset);
        let mut parameters: u64 = 0;
        let mut type_counts: BTreeMap<u32, u64> = BTreeMap::new();
        for tensor in &tensors {
            let end = tensor.offset.checked_add(tensor.size).ok_or_else(|| {
                self.corrupt(format!("tensor `{}` has an impossible offset", tensor.name))
            })?;
            if end > data_len {
                return Err(GgufError::Truncated {
                    path: self.path.clone(),
                    at: self.size,
                    file_size: self.size,
                    what: format!(
                        "data of tensor `{}` ends at byte {}",
                        tensor.name,
                        data_offset.saturating_add(end)
                    ),
                });
            }
            parameters = parameters.saturating_add(tensor.elements());
            *type_counts.entry(tensor.ggml_type).or_default() += tensor.elements();
        }

        let architecture = metadata
            .get("general.architecture")
            .and_then(MetaValue::as_str)
            .map(str::to_owned);
        let arch = architecture.clone().unwrap_or_default();
        let arch_u64 = |key: &str| {
            metadata
                .get(&format!("{arch}.{key}"))
                .and_then(MetaValue::as_u64)
        };
        let quantization = metadata
            .get("general.file_type")
            .and_then(MetaValue::as_u64)
            .and_then(file_type_name)
            .map(str::to_owned)
            .or_else(|| {
                // Most elements by type, ignoring the f32 norms.
                type_counts
                    .iter()
                    .filter(|(t, _)| **t != 0 || type_counts.len() == 1)
                    .max_by_key(|(_, n)| **n)
                    .map(|(t, _)| ggml_type_name(*t).to_owned())
            });
        let template = metadata.get("tokenizer.chat_template");
        let vocab_size = match metadata.get("tokenizer.ggml.tokens") {
            Some(MetaValue::Array { len, .. }) => Some(*len),
            _ => None,
        };
        Ok(GgufInfo {
            path: self.path.clone(),
            file_size: self.size,
            version,
            name: metadata
                .get("general.name")
                .and_then(MetaValue::as_str)
                .map(str::to_owned),
            parameters,
            context_length: arch_u64("context_length"),
            block_count: arch_u64("block_count"),
            embedding_length: arch_u64("embedding_length"),
            quantization,
            has_chat_template: template.is_some(),
            chat_template: template.and_then(MetaValue::as_str).map(str::to_owned),
            vocab_size,
            alignment,
            data_offset,
            architecture,
            metadata,
            tensors,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal GGUF writer for tests.
    pub(crate) struct Builder {
        kvs: Vec<u8>,
        n_kv: u64,
        tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Self {
                kvs: Vec::new(),
                n_kv: 0,
                tensors: Vec::new(),
            }
        }
        pub(crate) fn string(mut self, key: &str, value: &str) -> Self {
            put_str(&mut self.kvs, key);
            self.kvs.extend_from_slice(&T_STRING.to_le_bytes());
            put_str(&mut self.kvs, value);
            self.n_kv += 1;
            self
        }
        pub(crate) fn u32(mut self, key: &str, value: u32) -> Self {
            put_str(&mut self.kvs, key);
            self.kvs.extend_from_slice(&T_U32.to_le_bytes());
            self.kvs.extend_from_slice(&value.to_le_bytes());
            self.n_kv += 1;
            self
        }
        pub(crate) fn strings(mut self, key: &str, values: &[&str]) -> Self {
            put_str(&mut self.kvs, key);
            self.kvs.extend_from_slice(&T_ARRAY.to_le_bytes());
            self.kvs.extend_from_slice(&T_STRING.to_le_bytes());
            self.kvs
                .extend_from_slice(&(values.len() as u64).to_le_bytes());
            for v in values {
                put_str(&mut self.kvs, v);
            }
            self.n_kv += 1;
            self
        }
        pub(crate) fn f32s(mut self, key: &str, values: &[f32]) -> Self {
            put_str(&mut self.kvs, key);
            self.kvs.extend_from_slice(&T_ARRAY.to_le_bytes());
            self.kvs.extend_from_slice(&T_F32.to_le_bytes());
            self.kvs
                .extend_from_slice(&(values.len() as u64).to_le_bytes());
            for v in values {
                self.kvs.extend_from_slice(&v.to_le_bytes());
            }
            self.n_kv += 1;
            self
        }
        pub(crate) fn tensor_f32(mut self, name: &str, dims: &[u64]) -> Self {
            let n: u64 = dims.iter().product();
            let data = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
            self.tensors.push((name.into(), dims.to_vec(), 0, data));
            self
        }
        pub(crate) fn build(self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(b"GGUF");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
            out.extend_from_slice(&self.n_kv.to_le_bytes());
            out.extend_from_slice(&self.kvs);
            let mut offset = 0u64;
            let mut offsets = Vec::new();
            for (name, dims, ty, data) in &self.tensors {
                put_str(&mut out, name);
                out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
                for d in dims {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.extend_from_slice(&ty.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                offsets.push(offset);
                offset = (offset + data.len() as u64).div_ceil(32) * 32;
            }
            while out.len() % 32 != 0 {
                out.push(0);
            }
            let base = out.len();
            for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
                out.resize(base + off as usize, 0);
                out.extend_from_slice(data);
            }
            out
        }
    }

    pub(crate) fn tiny() -> Vec<u8> {
        Builder::new()
            .string("general.architecture", "llama")
            .string("general.name", "tiny")
            .u32("general.file_type", 0)
            .u32("llama.context_length", 256)
            .u32("llama.block_count", 1)
            .u32("llama.embedding_length", 8)
            .u32("llama.attention.head_count", 2)
            .strings("tokenizer.ggml.tokens", &["<unk>", "a", "b"])
            .f32s("tokenizer.ggml.scores", &[0.0, 1.0, 2.0])
            .string("tokenizer.chat_template", "{{ messages }}")
            .tensor_f32("token_embd.weight", &[8, 3])
            .tensor_f32("output_norm.weight", &[8])
            .build()
    }

    #[test]
    fn reads_a_valid_file() {
        let info = inspect_bytes(&tiny(), "tiny.gguf").unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.name.as_deref(), Some("tiny"));
        assert_eq!(info.parameters, 32);
        assert_eq!(info.context_length, Some(256));
        assert_eq!(info.block_count, Some(1));
        assert_eq!(info.quantization.as_deref(), Some("F32"));
        assert!(info.has_chat_template);
        assert_eq!(info.chat_template.as_deref(), Some("{{ messages }}"));
        assert_eq!(info.vocab_size, Some(3));
        assert_eq!(info.tensors.len(), 2);
        let d = info.to_descriptor("tiny", 256);
        assert_eq!(d.tasks, vec![TaskKind::Chat]);
        assert!(d.memory_bytes.unwrap() >= info.file_size);
    }

    #[test]
    fn quantization_falls_back_to_tensor_types() {
        let bytes = Builder::new()
            .string("general.architecture", "llama")
            .tensor_f32("a", &[4])
            .build();
        let info = inspect_bytes(&bytes, "x").unwrap();
        assert_eq!(info.quantization.as_deref(), Some("F32"));
        assert!(!info.has_chat_template);
        assert_eq!(info.to_descriptor("x", 1).tasks, vec![TaskKind::Completion]);
    }

    #[test]
    fn rejects_empty_and_foreign_files() {
        let err = inspect_bytes(&[], "e.gguf").unwrap_err();
        assert!(matches!(err, GgufError::Empty { .. }));
        assert!(err.to_string().contains("0 bytes"), "{err}");

        let err = inspect_bytes(b"<html>not a model</html>", "page.gguf").unwrap_err();
        assert!(matches!(err, GgufError::NotGguf { .. }));
        assert!(err.to_string().contains("not a GGUF file"), "{err}");

        let err = inspect_bytes(b"GG", "short").unwrap_err();
        assert!(matches!(err, GgufError::NotGguf { .. }), "{err}");
    }

    #[test]
    fn rejects_unsupported_versions() {
        let mut bytes = tiny();
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        let err = inspect_bytes(&bytes, "old.gguf").unwrap_err();
        assert!(matches!(
            err,
            GgufError::UnsupportedVersion { version: 1, .. }
        ));
        assert!(err.to_string().contains("version 1"), "{err}");
    }

    #[test]
    fn rejects_every_truncation() {
        let bytes = tiny();
        for len in 1..bytes.len() {
            let err = inspect_bytes(&bytes[..len], "cut.gguf").unwrap_err();
            assert!(
                matches!(
                    err,
                    GgufError::Truncated { .. }
                        | GgufError::NotGguf { .. }
                        | GgufError::Corrupt { .. }
                ),
                "length {len}: {err:?}"
            );
        }
        let err = inspect_bytes(&bytes[..bytes.len() - 1], "cut.gguf").unwrap_err();
        assert!(err.to_string().contains("truncated at byte"), "{err}");
    }

    #[test]
    fn huge_counts_are_rejected_without_allocating() {
        let mut bytes = tiny();
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            inspect_bytes(&bytes, "x").unwrap_err(),
            GgufError::Corrupt { .. }
        ));
        let mut bytes = tiny();
        bytes[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(inspect_bytes(&bytes, "x").is_err());
    }

    /// xorshift64*, deterministic.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Mutates a valid file thousands of times (bit flips, byte overwrites, truncations,
    /// length fields set huge) and asserts the reader never panics.
    #[test]
    fn fuzzed_headers_never_panic() {
        let base = tiny();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let huge = [
            u64::MAX,
            u64::MAX / 2,
            1 << 63,
            1 << 40,
            u32::MAX as u64,
            0,
            base.len() as u64,
        ];
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut bytes = base.clone();
            let mutations = 1 + rng.below(4);
            for _ in 0..mutations {
                match rng.below(5) {
                    0 => {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    2 => {
                        let len = rng.below(bytes.len() + 1);
                        bytes.truncate(len);
                        if bytes.is_empty() {
                            break;
                        }
                    }
                    _ => {
                        if bytes.len() >= 8 {
                            let i = rng.below(bytes.len() - 7);
                            let v = huge[rng.below(huge.len())];
                            bytes[i..i + 8].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
            let result = std::panic::catch_unwind(|| inspect_bytes(&bytes, "fuzz.gguf"));
            match result {
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(err)) => {
                    // Every error renders a message.
                    assert!(!err.to_string().is_empty());
                }
                Err(_) => panic!("round {round}: reader panicked on {bytes:?}"),
            }
        }
        // Some mutations (in tensor data) leave the header valid.
        assert!(accepted > 0);
    }

    #[test]
    fn sha256_streams_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = inspect(dir.path().join("missing.gguf")).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        let err = inspect(dir.path()).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }
}
