//! CTranslate2 `WhisperSpec` → whisper.cpp ggml.
//!
//! Name mapping (`N` a layer index; `d` the model width):
//!
//! | CTranslate2 | whisper.cpp |
//! | --- | --- |
//! | `encoder/position_encodings/encodings` | `encoder.positional_embedding` (f32) |
//! | `encoder/conv{1,2}/{weight,bias}` | `encoder.conv{1,2}.{weight,bias}` (bias as `[d, 1]`) |
//! | `encoder/layer_norm/{gamma,beta}` | `encoder.ln_post.{weight,bias}` |
//! | `*/layer_N/self_attention/layer_norm` | `*.blocks.N.attn_ln` |
//! | `*/layer_N/self_attention/linear_0` (q, k, v stacked: `3d` rows) | `*.blocks.N.attn.{query,key,value}` |
//! | `*/layer_N/self_attention/linear_1` | `*.blocks.N.attn.out` |
//! | `decoder/layer_N/attention/layer_norm` | `decoder.blocks.N.cross_attn_ln` |
//! | `decoder/layer_N/attention/linear_0` | `decoder.blocks.N.cross_attn.query` |
//! | `decoder/layer_N/attention/linear_1` (k, v stacked: `2d` rows) | `decoder.blocks.N.cross_attn.{key,value}` |
//! | `decoder/layer_N/attention/linear_2` | `decoder.blocks.N.cross_attn.out` |
//! | `*/layer_N/ffn/layer_norm`, `linear_0`, `linear_1` | `*.blocks.N.mlp_ln`, `mlp.0`, `mlp.2` |
//! | `decoder/embeddings/weight` | `decoder.token_embedding.weight` |
//! | `decoder/position_encodings/encodings` | `decoder.positional_embedding` (f32) |
//! | `decoder/layer_norm` | `decoder.ln` |
//!
//! Whisper's key projections have no bias; CTranslate2 stores zeros there. Dropping a key
//! bias is exact in any case: it adds the same `q·b` to every logit of a query, which the
//! softmax cancels. `decoder/projection/weight` is tied to the token embedding (an alias)
//! and whisper.cpp ties it too. Linear and convolution weights keep PyTorch's layout
//! (`[out, in]`, `[out, in, k]`), which is ggml's `ne` reversed, so nothing is transposed.

use crate::ct2::{Ct2Model, Variable};
use crate::ggml::{GgmlWriter, HParams, TensorType};
use crate::{io_err, mel, vocab, ConvertError, Result};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// The hyper-parameters written.
    pub hparams: HParams,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of vocabulary entries written (ordinary tokens, below `<|endoftext|>`).
    pub vocab_tokens: usize,
    /// Size of the output file in bytes.
    pub bytes: u64,
}

impl ConvertReport {
    /// Whether the model is multilingual (whisper.cpp's rule: `n_vocab >= 51865`).
    pub fn multilingual(&self) -> bool {
        self.hparams.n_vocab >= 51865
    }
}

/// Converts the CTranslate2 model in `ct2_dir` (`model.bin` plus `vocabulary.txt` or
/// `tokenizer.json`) into `out`.
///
/// `config.json` is not needed: whisper.cpp derives every special-token id from `n_vocab`,
/// and the converter checks the vocabulary against those ids instead. (Its `lang_ids` are
/// also off by one for English-only models converted by CTranslate2's Transformers loader.)
///
/// The file is written next to `out` under a `.part` name and renamed at the end, so
/// `out` never holds a half-written model.
pub fn convert_dir(ct2_dir: &Path, out: &Path, weights: Weights) -> Result<ConvertReport> {
    let model_path = ct2_dir.join("model.bin");
    let model = Ct2Model::open(&model_path)?;
    let tokens = load_vocabulary(ct2_dir)?;
    convert_model(&model, &tokens, &model_path, out, weights)
}

/// How the weight matrices (every linear layer and the token embedding) are stored; the
/// convolutions stay f16 and biases, norms and positions f32 either way, as in
/// whisper.cpp's own quantiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// Half floats, as CTranslate2's float16 models hold them.
    #[default]
    F16,
    /// ggml's 8-bit blocks: half the file, and with whisper-base on 2 cores a 5 s
    /// utterance decodes in about 0.5 s instead of 0.85 s, with the same word error rate
    /// on Baton's sentence sets (`baton bench stt`).
    Q8_0,
}

impl Weights {
    /// The ggml type of the weight matrices.
    fn matrix_type(self) -> TensorType {
        match self {
            Self::F16 => TensorType::F16,
            Self::Q8_0 => TensorType::Q8_0,
        }
    }

    /// The file's `ftype` (ggml_ftype, with quantisation version 2 for quantised files
    /// as whisper.cpp's quantiser writes it).
    fn ftype(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 2_000 + 7,
        }
    }
}

/// The id of `<|endoftext|>` that whisper.cpp assumes for a vocabulary size.
fn eot_id(n_vocab: i32) -> i32 {
    if n_vocab >= 51865 {
        50257
    } else {
        50256
    }
}

/// Reads the token strings (byte-level alphabet), in id order: `vocabulary.txt` (one per
/// line) if present, else `tokenizer.json` (`model.vocab` plus `added_tokens`).
pub fn load_vocabulary(dir: &Path) -> Result<Vec<String>> {
    let txt = dir.join("vocabulary.txt");
    if txt.is_file() {
        let text = std::fs::read_to_string(&txt).map_err(io_err(&txt))?;
        let mut tokens: Vec<String> = text.split('\n').map(str::to_owned).collect();
        if text.ends_with('\n') {
            tokens.pop();
        }
        return Ok(tokens);
    }
    let json = dir.join("tokenizer.json");
    if !json.is_file() {
        return Err(ConvertError::Vocabulary {
            path: dir.to_path_buf(),
            reason: "neither vocabulary.txt nor tokenizer.json is in the model directory".into(),
        });
    }
    let bad = |reason: String| ConvertError::Vocabulary {
        path: json.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&json).map_err(io_err(&json))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut pairs: Vec<(usize, String)> = Vec::new();
    let entries = v["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad("no model.vocab object".into()))?;
    for (tok, id) in entries {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(format!("id of {tok:?} is not a number")))?;
        pairs.push((id as usize, tok.clone()));
    }
    for added in v["added_tokens"].as_array().into_iter().flatten() {
        if let (Some(id), Some(tok)) = (added["id"].as_u64(), added["content"].as_str()) {
            pairs.push((id as usize, tok.to_owned()));
        }
    }
    pairs.sort();
    pairs.dedup_by_key(|p| p.0);
    let mut tokens = Vec::with_capacity(pairs.len());
    for (i, (id, tok)) in pairs.into_iter().enumerate() {
        if id != i {
            return Err(bad(format!(
                "token ids skip from {} to {id}",
                i.saturating_sub(1)
            )));
        }
        tokens.push(tok);
    }
    Ok(tokens)
}

struct Source<'a> {
    model: &'a Ct2Model,
    path: &'a Path,
}

impl Source<'_> {
    fn var(&self, name: &str) -> Result<&Variable> {
        self.model.get(name).ok_or_else(|| ConvertError::Tensor {
            path: self.path.to_path_buf(),
            name: name.into(),
            reason: "missing".into(),
        })
    }

    /// The values of `name`, checked against `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let v = self.var(name)?;
        if v.shape != shape {
            return Err(ConvertError::Tensor {
                path: self.path.to_path_buf(),
                name: name.into(),
                reason: format!("shape {:?}, expected {shape:?}", v.shape),
            });
        }
        v.to_f32().ok_or_else(|| ConvertError::Unsupported {
            path: self.path.to_path_buf(),
            reason: format!(
                "'{name}' is quantized ({:?}); convert the model again with \
                 ct2-transformers-converter --quantization float16 (or float32)",
                v.dtype
            ),
        })
    }

    fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.var(name)?.shape)
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.model.get(name).and_then(Variable::as_int)
    }

    fn count_layers(&self, stack: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.model
                    .variables
                    .contains_key(&format!("{stack}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }

    fn unsupported(&self, reason: String) -> ConvertError {
        ConvertError::Unsupported {
            path: self.path.to_path_buf(),
            reason,
        }
    }
}

/// Converts a parsed model; `tokens` are its vocabulary strings in id order and `source`
/// names the model in error messages.
pub fn convert_model(
    model: &Ct2Model,
    tokens: &[String],
    source: &Path,
    out: &Path,
    weights: Weights,
) -> Result<ConvertReport> {
    let src = Source {
        model,
        path: source,
    };
    if model.spec != "WhisperSpec" {
        return Err(src.unsupported(format!(
            "spec is '{}', not 'WhisperSpec' (only Whisper speech models can be converted)",
            model.spec
        )));
    }
    let emb = src.shape("decoder/embeddings/weight")?;
    let [n_vocab, d] = *emb else {
        return Err(src.unsupported(format!("token embedding has shape {emb:?}")));
    };
    let audio_ctx = src.shape("encoder/position_encodings/encodings")?[0];
    let text_ctx = src.shape("decoder/position_encodings/encodings")?[0];
    let conv1 = src.shape("encoder/conv1/weight")?;
    let n_mels = conv1.get(1).copied().unwrap_or(0);
    let n_audio_layer = src.count_layers("encoder");
    let n_text_layer = src.count_layers("decoder");
    if n_audio_layer == 0 || n_text_layer == 0 || n_mels == 0 || d == 0 {
        return Err(src.unsupported("no encoder or decoder layers found".into()));
    }
    // Whisper's heads are 64 wide; CTranslate2 records the count as a scalar.
    let heads = |stack: &str| {
        src.int(&format!("{stack}/num_heads"))
            .and_then(|h| usize::try_from(h).ok())
            .filter(|&h| h > 0)
            .unwrap_or(d / 64)
    };
    let (n_audio_head, n_text_head) = (heads("encoder"), heads("decoder"));
    if n_audio_head == 0 || d % n_audio_head != 0 || d % n_text_head != 0 {
        return Err(src.unsupported(format!(
            "width {d} is not divisible by the head counts {n_audio_head}/{n_text_head}"
        )));
    }
    let as_i32 = |v: usize| i32::try_from(v).map_err(|_| src.unsupported(format!("{v} too large")));
    let hparams = HParams {
        n_vocab: as_i32(n_vocab)?,
        n_audio_ctx: as_i32(audio_ctx)?,
        n_audio_state: as_i32(d)?,
        n_audio_head: as_i32(n_audio_head)?,
        n_audio_layer: as_i32(n_audio_layer)?,
        n_text_ctx: as_i32(text_ctx)?,
        n_text_state: as_i32(d)?,
        n_text_head: as_i32(n_text_head)?,
        n_text_layer: as_i32(n_text_layer)?,
        n_mels: as_i32(n_mels)?,
        ftype: weights.ftype(),
    };

    let vocab_bytes = ordinary_tokens(tokens, n_vocab, source)?;

    let part = part_path(out);
    let file = std::fs::File::create(&part).map_err(io_err(&part))?;
    let filters = mel::mel_filters(mel::SAMPLE_RATE, mel::N_FFT, n_mels);
    let result = (|| -> Result<usize> {
        let mut w = GgmlWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            &hparams,
            &filters,
            n_mels,
            mel::N_FFT / 2 + 1,
            &vocab_bytes,
        )
        .map_err(io_err(&part))?;
        write_tensors(
            &src,
            &mut w,
            d,
            n_mels,
            audio_ctx,
            text_ctx,
            n_vocab,
            n_audio_layer,
            n_text_layer,
            weights.matrix_type(),
        )
        .map_err(|e| match e {
            Failure::Convert(e) => e,
            Failure::Io(e) => ConvertError::Io {
                path: part.clone(),
                source: e,
            },
        })?;
        let n = w.tensor_count();
        let file = w.finish().map_err(io_err(&part))?;
        file.into_inner()
            .map_err(|e| ConvertError::Io {
                path: part.clone(),
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(io_err(&part))?;
        Ok(n)
    })();
    let tensors = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, out).map_err(io_err(out))?;
    let bytes = std::fs::metadata(out).map_err(io_err(out))?.len();
    Ok(ConvertReport {
        hparams,
        tensors,
        vocab_tokens: vocab_bytes.len(),
        bytes,
    })
}

fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

/// The raw bytes of the tokens below `<|endoftext|>`, checked against whisper.cpp's fixed
/// special-token ids.
fn ordinary_tokens(tokens: &[String], n_vocab: usize, source: &Path) -> Result<Vec<Vec<u8>>> {
    let bad = |reason: String| ConvertError::Vocabulary {
        path: source.to_path_buf(),
        reason,
    };
    if tokens.len() != n_vocab {
        return Err(bad(format!(
            "{} tokens for a model with {n_vocab} embeddings",
            tokens.len()
        )));
    }
    let eot = eot_id(n_vocab as i32) as usize;
    // whisper.cpp's ids (whisper_model_load): fixed for English-only models, shifted by
    // one for eot/sot and by the extra languages for the rest in multilingual ones.
    let multilingual = n_vocab >= 51865;
    let languages = n_vocab.saturating_sub(51765 + usize::from(multilingual));
    let shift = if multilingual {
        languages.saturating_sub(98)
    } else {
        0
    };
    let expected = [
        (eot, "<|endoftext|>"),
        (eot + 1, "<|startoftranscript|>"),
        (eot + 2, "<|en|>"),
        (50357 + shift, "<|translate|>"),
        (50358 + shift, "<|transcribe|>"),
        (50362 + shift, "<|notimestamps|>"),
        (50363 + shift, "<|0.00|>"),
    ];
    for (id, want) in expected {
        if tokens.get(id).map(String::as_str) != Some(want) {
            return Err(bad(format!(
                "token {id} is {:?}; whisper.cpp expects {want} there for a {n_vocab}-token model",
                tokens.get(id)
            )));
        }
    }
    let table = vocab::unicode_to_byte();
    tokens[..eot]
        .iter()
        .enumerate()
        .map(|(id, t)| {
            vocab::decode_token(t, &table).ok_or_else(|| {
                bad(format!(
                    "token {id} ({t:?}) is not in GPT-2's byte alphabet"
                ))
            })
        })
        .collect()
}

enum Failure {
    Convert(ConvertError),
    Io(std::io::Error),
}

impl From<ConvertError> for Failure {
    fn from(e: ConvertError) -> Self {
        Self::Convert(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

#[allow(clippy::too_many_arguments)]
fn write_tensors<W: std::io::Write>(
    src: &Source<'_>,
    w: &mut GgmlWriter<W>,
    d: usize,
    n_mels: usize,
    audio_ctx: usize,
    text_ctx: usize,
    n_vocab: usize,
    n_audio_layer: usize,
    n_text_layer: usize,
    matrix: TensorType,
) -> Result<(), Failure> {
    use TensorType::{F16, F32};
    // A linear layer: weight [rows, d] (`matrix`) and bias [rows] (f32).
    let linear = |w: &mut GgmlWriter<W>,
                  from: &str,
                  to: &str,
                  rows: usize,
                  cols: usize|
     -> Result<(), Failure> {
        w.write_tensor(
            &format!("{to}.weight"),
            &[rows, cols],
            matrix,
            &src.get(&format!("{from}/weight"), &[rows, cols])?,
        )?;
        w.write_tensor(
            &format!("{to}.bias"),
            &[rows],
            F32,
            &src.get(&format!("{from}/bias"), &[rows])?,
        )?;
        Ok(())
    };
    let norm = |w: &mut GgmlWriter<W>, from: &str, to: &str| -> Result<(), Failure> {
        w.write_tensor(
            &format!("{to}.weight"),
            &[d],
            F32,
            &src.get(&format!("{from}/gamma"), &[d])?,
        )?;
        w.write_tensor(
            &format!("{to}.bias"),
            &[d],
            F32,
            &src.get(&format!("{from}/beta"), &[d])?,
        )?;
        Ok(())
    };
    // Fused projections: `parts` names the stacked blocks of `d` rows; `None` is dropped.
    let fused = |w: &mut GgmlWriter<W>,
                 from: &str,
                 to: &str,
                 parts: &[(&str, bool)]|
     -> Result<(), Failure> {
        let n = parts.len();
        let weight = src.get(&format!("{from}/weight"), &[n * d, d])?;
        let bias = src.get(&format!("{from}/bias"), &[n * d])?;
        for (i, &(part, has_bias)) in parts.iter().enumerate() {
            w.write_tensor(
                &format!("{to}.{part}.weight"),
                &[d, d],
                matrix,
                &weight[i * d * d..(i + 1) * d * d],
            )?;
            if has_bias {
                w.write_tensor(
                    &format!("{to}.{part}.bias"),
                    &[d],
                    F32,
                    &bias[i * d..(i + 1) * d],
                )?;
            }
        }
        Ok(())
    };
    let qkv = [("query", true), ("key", false), ("value", true)];
    // The blocks encoder and decoder layers share, in the order whisper.cpp reads them.
    let self_attention = |w: &mut GgmlWriter<W>, from: &str, to: &str| -> Result<(), Failure> {
        norm(
            w,
            &format!("{from}/self_attention/layer_norm"),
            &format!("{to}.attn_ln"),
        )?;
        fused(
            w,
            &format!("{from}/self_attention/linear_0"),
            &format!("{to}.attn"),
            &qkv,
        )?;
        linear(
            w,
            &format!("{from}/self_attention/linear_1"),
            &format!("{to}.attn.out"),
            d,
            d,
        )
    };
    let feed_forward = |w: &mut GgmlWriter<W>, from: &str, to: &str| -> Result<(), Failure> {
        norm(
            w,
            &format!("{from}/ffn/layer_norm"),
            &format!("{to}.mlp_ln"),
        )?;
        linear(
            w,
            &format!("{from}/ffn/linear_0"),
            &format!("{to}.mlp.0"),
            4 * d,
            d,
        )?;
        linear(
            w,
            &format!("{from}/ffn/linear_1"),
            &format!("{to}.mlp.2"),
            d,
            4 * d,
        )
    };

    w.write_tensor(
        "encoder.positional_embedding",
        &[audio_ctx, d],
        F32,
        &src.get("encoder/position_encodings/encodings", &[audio_ctx, d])?,
    )?;
    for (i, c_in) in [(1, n_mels), (2, d)] {
        let from = format!("encoder/conv{i}");
        w.write_tensor(
            &format!("encoder.conv{i}.weight"),
            &[d, c_in, 3],
            F16,
            &src.get(&format!("{from}/weight"), &[d, c_in, 3])?,
        )?;
        w.write_tensor(
            &format!("encoder.conv{i}.bias"),
            &[d, 1],
            F32,
            &src.get(&format!("{from}/bias"), &[d])?,
        )?;
    }
    for l in 0..n_audio_layer {
        let (from, to) = (format!("encoder/layer_{l}"), format!("encoder.blocks.{l}"));
        self_attention(w, &from, &to)?;
        feed_forward(w, &from, &to)?;
    }
    norm(w, "encoder/layer_norm", "encoder.ln_post")?;

    w.write_tensor(
        "decoder.positional_embedding",
        &[text_ctx, d],
        F32,
        &src.get("decoder/position_encodings/encodings", &[text_ctx, d])?,
    )?;
    w.write_tensor(
        "decoder.token_embedding.weight",
        &[n_vocab, d],
        matrix,
        &src.get("decoder/embeddings/weight", &[n_vocab, d])?,
    )?;
    for l in 0..n_text_layer {
        let (from, to) = (format!("decoder/layer_{l}"), format!("decoder.blocks.{l}"));
        self_attention(w, &from, &to)?;
        norm(
            w,
            &format!("{from}/attention/layer_norm"),
            &format!("{to}.cross_attn_ln"),
        )?;
        linear(
            w,
            &format!("{from}/attention/linear_0"),
            &format!("{to}.cross_attn.query"),
            d,
            d,
        )?;
        fused(
            w,
            &format!("{from}/attention/linear_1"),
            &format!("{to}.cross_attn"),
            &[("key", false), ("value", true)],
        )?;
        linear(
            w,
            &format!("{from}/attention/linear_2"),
            &format!("{to}.cross_attn.out"),
            d,
            d,
        )?;
        feed_forward(w, &from, &to)?;
    }
    norm(w, "decoder/layer_norm", "decoder.ln")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml::{GgmlFile, TensorType};
    use crate::tiny::{tiny_ct2_model, TinyModelSpec};

    fn f16_at(bytes: &[u8], offset: usize, i: usize) -> f32 {
        half::f16::from_le_bytes([bytes[offset + 2 * i], bytes[offset + 2 * i + 1]]).to_f32()
    }

    fn f32_at(bytes: &[u8], offset: usize, i: usize) -> f32 {
        let o = offset + 4 * i;
        f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap())
    }

    #[test]
    fn tiny_model_has_whisper_cpp_names_shapes_and_types() {
        let spec = TinyModelSpec {
            n_layer: 2,
            ..TinyModelSpec::default()
        };
        let d = spec.n_state;
        let (model, tokens) = tiny_ct2_model(&spec);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ggml-tiny-test.bin");
        let report =
            convert_model(&model, &tokens, Path::new("model.bin"), &out, Weights::F16).unwrap();
        assert!(!report.multilingual());
        assert_eq!(report.tensors, 11 + 15 * 2 + 24 * 2);
        assert!(!dir.path().join("ggml-tiny-test.bin.part").exists());

        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(report.bytes, bytes.len() as u64);
        let f = GgmlFile::parse(&bytes).unwrap();
        assert_eq!(f.hparams.n_vocab, 51864);
        assert_eq!(f.hparams.n_audio_state, d as i32);
        assert_eq!(f.hparams.n_audio_head, 2);
        assert_eq!(f.hparams.n_text_layer, 2);
        assert_eq!(f.hparams.ftype, 1);
        assert_eq!((f.n_mel, f.n_fft), (80, 201));
        assert_eq!(f.vocab.len(), 50256);
        assert_eq!(f.vocab[32], b" ");
        assert_eq!(f.tensors.len(), report.tensors);

        let t = |name: &str| {
            f.tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .clone()
        };
        let expect = |name: &str, ne: &[usize], ttype: TensorType| {
            let info = t(name);
            assert_eq!((info.ne.as_slice(), info.ttype), (ne, ttype), "{name}");
        };
        use TensorType::{F16, F32};
        expect("encoder.positional_embedding", &[d, 1500], F32);
        expect("encoder.conv1.weight", &[3, 80, d], F16);
        expect("encoder.conv1.bias", &[1, d], F32);
        expect("encoder.conv2.weight", &[3, d, d], F16);
        expect("encoder.ln_post.weight", &[d], F32);
        expect("encoder.blocks.1.attn.query.weight", &[d, d], F16);
        expect("encoder.blocks.1.attn.key.weight", &[d, d], F16);
        expect("encoder.blocks.1.mlp.0.weight", &[d, 4 * d], F16);
        expect("encoder.blocks.1.mlp.2.weight", &[4 * d, d], F16);
        expect("decoder.positional_embedding", &[d, 448], F32);
        expect("decoder.token_embedding.weight", &[d, 51864], F16);
        expect("decoder.blocks.0.cross_attn.value.bias", &[d], F32);
        expect("decoder.ln.bias", &[d], F32);
        assert!(f.tensors.iter().all(|t| !t.name.ends_with("key.bias")));
        let mut names: Vec<_> = f.tensors.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), f.tensors.len());

        // The fused projections are split by rows: value = rows 2d..3d of linear_0.
        let fused = model
            .get("decoder/layer_1/self_attention/linear_0/weight")
            .unwrap()
            .to_f32()
            .unwrap();
        let v = t("decoder.blocks.1.attn.value.weight");
        for i in [0, 1, d + 3, d * d - 1] {
            assert_eq!(f16_at(&bytes, v.offset, i), fused[2 * d * d + i]);
        }
        let kv_bias = model
            .get("decoder/layer_0/attention/linear_1/bias")
            .unwrap()
            .to_f32()
            .unwrap();
        let vb = t("decoder.blocks.0.cross_attn.value.bias");
        for i in [0, d - 1] {
            assert_eq!(f32_at(&bytes, vb.offset, i), kv_bias[d + i]);
        }
        // Mel filters come first after the hparams.
        let filters = mel::mel_filters(16_000, 400, 80);
        assert_eq!(f.filters, filters);
    }

    #[test]
    fn q8_0_weights_quantise_the_matrices_and_keep_the_rest() {
        let spec = TinyModelSpec::default();
        let d = spec.n_state;
        let (model, tokens) = tiny_ct2_model(&spec);
        let dir = tempfile::tempdir().unwrap();
        let (f16_out, q8_out) = (dir.path().join("f16.bin"), dir.path().join("q8.bin"));
        let f16 = convert_model(&model, &tokens, Path::new("m.bin"), &f16_out, Weights::F16);
        let q8 = convert_model(&model, &tokens, Path::new("m.bin"), &q8_out, Weights::Q8_0);
        let (f16, q8) = (f16.unwrap(), q8.unwrap());
        assert_eq!(q8.tensors, f16.tensors);
        assert!(
            q8.bytes < f16.bytes * 2 / 3,
            "{} vs {}",
            q8.bytes,
            f16.bytes
        );

        let bytes = std::fs::read(&q8_out).unwrap();
        let f = GgmlFile::parse(&bytes).unwrap();
        assert_eq!(f.hparams.ftype, 2_007);
        let t = |name: &str| f.tensors.iter().find(|t| t.name == name).unwrap().clone();
        assert_eq!(t("encoder.blocks.0.mlp.0.weight").ttype, TensorType::Q8_0);
        assert_eq!(t("decoder.token_embedding.weight").ttype, TensorType::Q8_0);
        assert_eq!(
            t("decoder.blocks.0.cross_attn.key.weight").ttype,
            TensorType::Q8_0
        );
        assert_eq!(t("encoder.conv2.weight").ttype, TensorType::F16);
        assert_eq!(t("encoder.positional_embedding").ttype, TensorType::F32);
        assert_eq!(t("encoder.blocks.0.mlp.0.bias").ttype, TensorType::F32);

        // Dequantised, the first block of a matrix is within half a step of the original.
        let original = model
            .get("encoder/layer_0/ffn/linear_0/weight")
            .unwrap()
            .to_f32()
            .unwrap();
        let at = t("encoder.blocks.0.mlp.0.weight").offset;
        let scale = half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32();
        for (i, &x) in original.iter().take(32).enumerate() {
            let q = f32::from(bytes[at + 2 + i] as i8) * scale;
            assert!((q - x).abs() <= scale * 0.51, "{i}: {q} vs {x}");
        }
        assert!(d.is_multiple_of(32));
    }

    #[test]
    fn refuses_other_specs_quantized_weights_and_mismatched_vocabularies() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        let (model, tokens) = tiny_ct2_model(&TinyModelSpec::default());

        let mut other = model.clone();
        other.spec = "TransformerSpec".into();
        let msg = convert_model(&other, &tokens, Path::new("m.bin"), &out, Weights::F16)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("WhisperSpec"), "{msg}");

        let mut quantized = model.clone();
        let w = quantized
            .variables
            .get_mut("encoder/layer_0/ffn/linear_0/weight")
            .unwrap();
        w.dtype = crate::ct2::DType::I8;
        w.data.truncate(w.data.len() / 2);
        let msg = convert_model(&quantized, &tokens, Path::new("m.bin"), &out, Weights::F16)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--quantization float16"), "{msg}");

        let mut missing = model.clone();
        missing
            .variables
            .remove("decoder/layer_0/attention/linear_2/bias");
        let msg = convert_model(&missing, &tokens, Path::new("m.bin"), &out, Weights::F16)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("decoder/layer_0/attention/linear_2/bias"),
            "{msg}"
        );

        let msg = convert_model(
            &model,
            &tokens[..1000],
            Path::new("m.bin"),
            &out,
            Weights::F16,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("1000 tokens"), "{msg}");
        assert!(!out.exists());
        assert!(!dir.path().join("out.bin.part").exists());
    }

    #[test]
    fn vocabulary_comes_from_vocabulary_txt_or_tokenizer_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokenizer.json"),
            r#"{"model":{"vocab":{"a":0,"Ġb":1}},"added_tokens":[{"id":2,"content":"<|endoftext|>"}]}"#,
        )
        .unwrap();
        assert_eq!(
            load_vocabulary(dir.path()).unwrap(),
            vec!["a", "Ġb", "<|endoftext|>"]
        );
        // An empty token (multilingual id 50256) survives; the final newline does not.
        std::fs::write(dir.path().join("vocabulary.txt"), "a\n\nc\n").unwrap();
        assert_eq!(load_vocabulary(dir.path()).unwrap(), vec!["a", "", "c"]);
        let empty = tempfile::tempdir().unwrap();
        let msg = load_vocabulary(empty.path()).unwrap_err().to_string();
        assert!(msg.contains("vocabulary.txt"), "{msg}");
    }
}
