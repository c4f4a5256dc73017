//! Reader of CTranslate2's `model.bin` (binary version 6), as written by
//! `ctranslate2.specs.model_spec.ModelSpec._serialize`.
//!
//! Layout (little-endian): `u32` binary version, string spec name, `u32` spec revision,
//! `u32` variable count, then per variable: string name, `u8` rank, `rank × u32` shape,
//! `u8` dtype id, `u32` byte count, the bytes; then `u32` alias count and per alias two
//! strings (alias, target). A string is a `u16` length that counts a trailing NUL, the
//! UTF-8 bytes and the NUL.
//!
//! Every length is checked against the bytes that remain, so a corrupt or truncated file
//! gives an error, never a huge allocation or a panic.

use crate::{ConvertError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The binary version this reader understands.
pub const BINARY_VERSION: u32 = 6;

/// Element type of a CTranslate2 variable (ids as in CTranslate2's `DataType` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float (id 0).
    F32,
    /// 8-bit integer (id 1).
    I8,
    /// 16-bit integer (id 2).
    I16,
    /// 32-bit integer (id 3).
    I32,
    /// IEEE half float (id 4).
    F16,
    /// bfloat16 (id 5).
    BF16,
}

impl DType {
    /// The type for a CTranslate2 dtype id, if known.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// CTranslate2's id of this type.
    pub fn id(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 => 3,
            Self::F16 => 4,
            Self::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One named tensor (or scalar, when `shape` is empty) of a CTranslate2 model.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Scoped name, e.g. `encoder/layer_0/self_attention/linear_0/weight`.
    pub name: String,
    /// Dimensions, outermost first (row-major, as in NumPy).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Raw little-endian element bytes.
    pub data: Vec<u8>,
}

impl Variable {
    /// Number of elements (1 for a scalar).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the variable has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `f32`, whatever the float type; `None` for integer types.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I8 | DType::I16 | DType::I32 => return None,
        })
    }

    /// The value of an integer scalar (or single-element integer tensor).
    pub fn as_int(&self) -> Option<i64> {
        if self.len() != 1 {
            return None;
        }
        let d = &self.data;
        Some(match self.dtype {
            DType::I8 => i64::from(d[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => return None,
        })
    }
}

/// A parsed CTranslate2 model.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    /// Spec name, `WhisperSpec` for Whisper models.
    pub spec: String,
    /// Spec revision.
    pub revision: u32,
    /// Variables by name.
    pub variables: BTreeMap<String, Variable>,
    /// Aliases: name → name of the variable that holds the data.
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// Reads and parses `model.bin`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(crate::io_err(path))?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a `model.bin`; `path` is only used in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut r = Reader {
            bytes,
            pos: 0,
            path: path.to_path_buf(),
        };
        let version = r.u32("binary version")?;
        if version != BINARY_VERSION {
            return Err(r.bad(format!(
                "binary version {version}, expected {BINARY_VERSION}"
            )));
        }
        let spec = r.string("spec name")?;
        let revision = r.u32("spec revision")?;
        let count = r.u32("variable count")? as usize;
        let mut variables = BTreeMap::new();
        for i in 0..count {
            let name = r.string("variable name")?;
            let rank = r.u8("rank")? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32("dimension")? as usize);
            }
            let dtype_id = r.u8("dtype")?;
            let dtype = DType::from_id(dtype_id).ok_or_else(|| {
                r.bad(format!(
                    "variable {i} ('{name}'): unknown dtype id {dtype_id}"
                ))
            })?;
            let nbytes = r.u32("byte count")? as usize;
            let elements = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| r.bad(format!("variable '{name}': shape {shape:?} overflows")))?;
            if elements.checked_mul(dtype.size()) != Some(nbytes) {
                return Err(r.bad(format!(
                    "variable '{name}': {nbytes} bytes do not match shape {shape:?} of {dtype:?}"
                )));
            }
            let data = r.take(nbytes, &name)?.to_vec();
            variables.insert(
                name.clone(),
                Variable {
                    name,
                    shape,
                    dtype,
                    data,
                },
            );
        }
        let mut aliases = BTreeMap::new();
        // Files written before aliases existed end here.
        if r.pos < bytes.len() {
            let n = r.u32("alias count")?;
            for _ in 0..n {
                let alias = r.string("alias name")?;
                let target = r.string("alias target")?;
                aliases.insert(alias, target);
            }
        }
        if r.pos != bytes.len() {
            return Err(r.bad(format!(
                "{} unexpected bytes after the last alias",
                bytes.len() - r.pos
            )));
        }
        Ok(Self {
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// The variable called `name`, following an alias if there is one.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.variables.get(target))
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: PathBuf,
}

impl Reader<'_> {
    fn bad(&self, reason: String) -> ConvertError {
        ConvertError::BadCt2 {
            path: self.path.clone(),
            reason,
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, file has {}",
                self.pos,
                self.bytes.len()
            ))),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u16(what)? as usize;
        let at = self.pos;
        let raw = self.take(n, what)?;
        let Some((&0, text)) = raw.split_last() else {
            return Err(self.bad(format!("{what} at offset {at} is not NUL-terminated")));
        };
        String::from_utf8(text.to_vec())
            .map_err(|_| self.bad(format!("{what} at offset {at} is not UTF-8")))
    }
}

/// Serialises variables and aliases in CTranslate2's layout (version 6). The converter
/// never writes CTranslate2 files; this exists for tests and fixtures.
pub fn write_ct2(
    spec: &str,
    revision: u32,
    variables: &[Variable],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        let len = u16::try_from(s.len() + 1).expect("string shorter than 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&BINARY_VERSION.to_le_bytes());
    string(&mut out, spec);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
    for v in variables {
        string(&mut out, &v.name);
        out.push(v.shape.len() as u8);
        for &d in &v.shape {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        out.push(v.dtype.id());
        out.extend_from_slice(&(v.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&v.data);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (a, t) in aliases {
        string(&mut out, a);
        string(&mut out, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_var(name: &str, shape: &[usize], values: &[f32]) -> Variable {
        Variable {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: DType::F16,
            data: values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    fn sample() -> Vec<u8> {
        let vars = vec![
            Variable {
                name: "encoder/num_heads".into(),
                shape: vec![],
                dtype: DType::I16,
                data: 6i16.to_le_bytes().to_vec(),
            },
            f16_var(
                "decoder/embeddings/weight",
                &[2, 3],
                &[1.0, -2.0, 0.5, 0.0, 3.0, 4.0],
            ),
        ];
        write_ct2(
            "WhisperSpec",
            3,
            &vars,
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    #[test]
    fn parses_a_synthetic_file_written_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, sample()).unwrap();
        let m = Ct2Model::open(&path).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.variables.len(), 2);
        assert_eq!(m.get("encoder/num_heads").unwrap().as_int(), Some(6));
        let e = m.get("decoder/embeddings/weight").unwrap();
        assert_eq!(e.shape, vec![2, 3]);
        assert_eq!(e.to_f32().unwrap(), vec![1.0, -2.0, 0.5, 0.0, 3.0, 4.0]);
        let p = m.get("decoder/projection/weight").unwrap();
        assert_eq!(p.name, "decoder/embeddings/weight");
    }

    #[test]
    fn header_bytes_are_as_ctranslate2_writes_them() {
        let b = sample();
        assert_eq!(&b[0..4], &6u32.to_le_bytes());
        assert_eq!(&b[4..6], &12u16.to_le_bytes());
        assert_eq!(&b[6..18], b"WhisperSpec\0");
        assert_eq!(&b[18..22], &3u32.to_le_bytes());
        assert_eq!(&b[22..26], &2u32.to_le_bytes());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = sample();
        for len in 0..b.len() {
            let err = Ct2Model::parse(&b[..len], Path::new("m.bin"));
            // Cutting exactly before the alias table is the legacy layout and is accepted.
            if err.is_ok() {
                assert!(len >= b.len() - 60, "accepted a file cut at {len}");
                continue;
            }
            let msg = err.unwrap_err().to_string();
            assert!(msg.contains("m.bin"), "{msg}");
        }
    }

    #[test]
    fn wrong_version_and_bad_byte_counts_are_refused() {
        let mut b = sample();
        b[0] = 5;
        let msg = Ct2Model::parse(&b, Path::new("m.bin"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("binary version 5"), "{msg}");

        let mut b = sample();
        // Byte count of the embedding: make it disagree with the shape.
        let pos = b.windows(4).position(|w| w == 12u32.to_le_bytes()).unwrap();
        b[pos] = 13;
        assert!(Ct2Model::parse(&b, Path::new("m.bin")).is_err());
    }
}
