//! whisper.cpp's legacy ggml model format, as read by `whisper_model_load`.
//!
//! Layout (little-endian): `u32` magic `0x67676d6c`; eleven `i32` hparams ([`HParams`]);
//! the mel filters (`i32` n_mel, `i32` n_fft, `n_mel × n_fft` `f32`); the vocabulary
//! (`i32` count, then per token an `u32` length and the raw bytes); then tensors until the
//! end of the file, each `i32` n_dims, `i32` name length, `i32` type (0 = f32, 1 = f16),
//! `n_dims × i32` extents innermost first (ggml's `ne`, i.e. PyTorch's shape reversed), the
//! name, and the data.
//!
//! whisper.cpp fills in the names of the special tokens (`[_EOT_]`, `[_SOT_]`, timestamps)
//! for ids at or above the written vocabulary's length, and derives their ids from
//! `n_vocab`, so a converted file holds only the ordinary BPE tokens (ids below
//! `<|endoftext|>`), as whisper.cpp's own converters write them.

use std::io::{self, Write};

/// `ggml` in ASCII, read as a little-endian `u32`.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// ggml tensor element types used by whisper.cpp's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit float (`GGML_TYPE_F32` = 0).
    F32,
    /// IEEE half float (`GGML_TYPE_F16` = 1).
    F16,
    /// 8-bit blocks (`GGML_TYPE_Q8_0` = 8): per 32 values of a row, one f16 scale and 32
    /// signed bytes. Half the size of f16, and whisper.cpp's matrix products on the CPU
    /// run faster on it.
    Q8_0,
}

/// Values per `Q8_0` block.
pub const Q8_0_BLOCK: usize = 32;

impl TensorType {
    /// ggml's id.
    pub fn id(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 8,
        }
    }

    /// The type with ggml's id `id`, if this crate writes it.
    pub fn from_id(id: i32) -> Option<Self> {
        match id {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            8 => Some(Self::Q8_0),
            _ => None,
        }
    }

    /// Bytes of `n` elements (`n` a multiple of the block size for block types).
    pub fn bytes(self, n: usize) -> Option<usize> {
        match self {
            Self::F32 => n.checked_mul(4),
            Self::F16 => n.checked_mul(2),
            Self::Q8_0 => n
                .is_multiple_of(Q8_0_BLOCK)
                .then(|| n / Q8_0_BLOCK * (2 + Q8_0_BLOCK)),
        }
    }
}

/// Quantises `values` to `Q8_0` blocks the way ggml's reference quantiser does: the scale
/// is the largest magnitude over 127, each value divided by it and rounded half away from
/// zero.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * (2 + Q8_0_BLOCK));
    for block in values.chunks(Q8_0_BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * inverse).round() as i8 as u8));
    }
    out
}

/// Model hyper-parameters, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    /// Vocabulary size, special tokens included (51864 English-only, 51865 multilingual).
    pub n_vocab: i32,
    /// Audio positions (1500 for 30 s).
    pub n_audio_ctx: i32,
    /// Encoder width.
    pub n_audio_state: i32,
    /// Encoder attention heads.
    pub n_audio_head: i32,
    /// Encoder layers.
    pub n_audio_layer: i32,
    /// Text positions (448).
    pub n_text_ctx: i32,
    /// Decoder width (equal to the encoder's).
    pub n_text_state: i32,
    /// Decoder attention heads.
    pub n_text_head: i32,
    /// Decoder layers.
    pub n_text_layer: i32,
    /// Mel bands (80).
    pub n_mels: i32,
    /// Weight type of the matrices: 0 all f32, 1 f16 (`ggml_ftype`).
    pub ftype: i32,
}

impl HParams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Self {
        Self {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }
}

/// Streams a whisper.cpp model file: header first ([`GgmlWriter::new`]), then tensors.
pub struct GgmlWriter<W: Write> {
    out: W,
    tensors: usize,
}

impl<W: Write> GgmlWriter<W> {
    /// Writes the magic, `hparams`, the filter bank (`n_mel × n_fft` values, row-major)
    /// and the vocabulary (raw token bytes, in id order).
    pub fn new(
        mut out: W,
        hparams: &HParams,
        filters: &[f32],
        n_mel: usize,
        n_fft: usize,
        vocab: &[Vec<u8>],
    ) -> io::Result<Self> {
        if filters.len() != n_mel * n_fft {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} filter values for {n_mel} x {n_fft}", filters.len()),
            ));
        }
        out.write_all(&GGML_MAGIC.to_le_bytes())?;
        for v in hparams.as_array() {
            out.write_all(&v.to_le_bytes())?;
        }
        out.write_all(&(n_mel as i32).to_le_bytes())?;
        out.write_all(&(n_fft as i32).to_le_bytes())?;
        write_f32s(&mut out, filters)?;
        out.write_all(&(vocab.len() as i32).to_le_bytes())?;
        for token in vocab {
            out.write_all(&(token.len() as u32).to_le_bytes())?;
            out.write_all(token)?;
        }
        Ok(Self { out, tensors: 0 })
    }

    /// Writes one tensor. `shape` is PyTorch's (outermost first); it is reversed into
    /// ggml's `ne`. `values` are converted to `ttype`.
    pub fn write_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ttype: TensorType,
        values: &[f32],
    ) -> io::Result<()> {
        let n: usize = shape.iter().product();
        if n != values.len() || shape.is_empty() || shape.len() > 4 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tensor {name}: shape {shape:?} for {} values", values.len()),
            ));
        }
        if ttype == TensorType::Q8_0 && !shape[shape.len() - 1].is_multiple_of(Q8_0_BLOCK) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tensor {name}: rows of {shape:?} do not split into blocks of 32"),
            ));
        }
        let out = &mut self.out;
        out.write_all(&(shape.len() as i32).to_le_bytes())?;
        out.write_all(&(name.len() as i32).to_le_bytes())?;
        out.write_all(&ttype.id().to_le_bytes())?;
        for &d in shape.iter().rev() {
            out.write_all(&(d as i32).to_le_bytes())?;
        }
        out.write_all(name.as_bytes())?;
        match ttype {
            TensorType::F32 => write_f32s(out, values)?,
            TensorType::F16 => {
                let mut buf = Vec::with_capacity(values.len() * 2);
                for &v in values {
                    buf.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
                out.write_all(&buf)?;
            }
            TensorType::Q8_0 => out.write_all(&quantize_q8_0(values))?,
        }
        self.tensors += 1;
        Ok(())
    }

    /// Number of tensors written so far.
    pub fn tensor_count(&self) -> usize {
        self.tensors
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_f32s(out: &mut impl Write, values: &[f32]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(values.len() * 4);
    for &v in values {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    out.write_all(&buf)
}

/// A tensor's entry in a parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// whisper.cpp's name, e.g. `encoder.blocks.0.attn.query.weight`.
    pub name: String,
    /// ggml's `ne` (innermost first).
    pub ne: Vec<usize>,
    /// Element type.
    pub ttype: TensorType,
    /// Offset of the data in the file.
    pub offset: usize,
}

/// The structure of a whisper.cpp model file, parsed with bounds checks (for tests and
/// for checking a converted file before use).
#[derive(Debug, Clone)]
pub struct GgmlFile {
    /// Hyper-parameters.
    pub hparams: HParams,
    /// Filter bank rows.
    pub n_mel: usize,
    /// Filter bank columns.
    pub n_fft: usize,
    /// The filter values.
    pub filters: Vec<f32>,
    /// Token bytes in id order.
    pub vocab: Vec<Vec<u8>>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
}

impl GgmlFile {
    /// Parses `bytes`; the error says what is wrong and where.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut c = Cursor { bytes, pos: 0 };
        let magic = c.i32("magic")? as u32;
        if magic != GGML_MAGIC {
            return Err(format!(
                "bad magic {magic:#010x}, expected {GGML_MAGIC:#010x}"
            ));
        }
        let mut hp = [0i32; 11];
        for v in &mut hp {
            *v = c.i32("hparams")?;
        }
        let hparams = HParams::from_array(hp);
        let n_mel = c.count("n_mel")?;
        let n_fft = c.count("n_fft")?;
        let filters = c
            .take(n_mel.saturating_mul(n_fft).saturating_mul(4), "filters")?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let n_vocab = c.count("n_vocab")?;
        let mut vocab = Vec::new();
        for _ in 0..n_vocab {
            let len = c.i32("token length")? as u32 as usize;
            vocab.push(c.take(len, "token")?.to_vec());
        }
        let mut tensors = Vec::new();
        // whisper.cpp stops at the end of the file.
        while c.pos < bytes.len() {
            let n_dims = c.i32("tensor header")?;
            let name_len = c.count("tensor name length")?;
            let t = c.i32("tensor type")?;
            let ttype = TensorType::from_id(t)
                .ok_or_else(|| format!("unsupported tensor type {t} at offset {}", c.pos))?;
            if !(1..=4).contains(&n_dims) {
                return Err(format!(
                    "tensor with {n_dims} dimensions at offset {}",
                    c.pos
                ));
            }
            let mut ne = Vec::new();
            for _ in 0..n_dims {
                ne.push(c.count("extent")?);
            }
            let name = String::from_utf8(c.take(name_len, "tensor name")?.to_vec())
                .map_err(|_| "tensor name is not UTF-8".to_string())?;
            let size = ne
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| ttype.bytes(n))
                .ok_or_else(|| format!("tensor {name}: extents overflow or split blocks"))?;
            let offset = c.pos;
            c.take(size, &name)?;
            tensors.push(TensorInfo {
                name,
                ne,
                ttype,
                offset,
            });
        }
        Ok(Self {
            hparams,
            n_mel,
            n_fft,
            filters,
            vocab,
            tensors,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at offset {} reading {what}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn count(&mut self, what: &str) -> Result<usize, String> {
        let v = self.i32(what)?;
        usize::try_from(v).map_err(|_| format!("negative {what} ({v})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_parses_back() {
        let hp = HParams {
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_audio_state: 4,
            n_audio_head: 1,
            n_audio_layer: 1,
            n_text_ctx: 448,
            n_text_state: 4,
            n_text_head: 1,
            n_text_layer: 1,
            n_mels: 2,
            ftype: 1,
        };
        let mut w = GgmlWriter::new(
            Vec::new(),
            &hp,
            &[0.5; 6],
            2,
            3,
            &[b"a".to_vec(), b" b".to_vec()],
        )
        .unwrap();
        w.write_tensor(
            "x.weight",
            &[3, 2],
            TensorType::F16,
            &[1., 2., 3., 4., 5., 6.],
        )
        .unwrap();
        w.write_tensor("x.bias", &[3], TensorType::F32, &[1., 2., 3.])
            .unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[..4], b"lmgg");
        let f = GgmlFile::parse(&bytes).unwrap();
        assert_eq!(f.hparams, hp);
        assert_eq!((f.n_mel, f.n_fft), (2, 3));
        assert_eq!(f.vocab, vec![b"a".to_vec(), b" b".to_vec()]);
        assert_eq!(f.tensors.len(), 2);
        assert_eq!(f.tensors[0].ne, vec![2, 3]);
        assert_eq!(f.tensors[0].ttype, TensorType::F16);
        let o = f.tensors[1].offset;
        assert_eq!(
            f32::from_le_bytes(bytes[o + 8..o + 12].try_into().unwrap()),
            3.0
        );
        assert_eq!(o + 12, bytes.len());
        assert!(GgmlFile::parse(&bytes[..bytes.len() - 1]).is_err());
    }
}
