//! A small random-weight Whisper model in whisper.cpp's format, for fast tests of the
//! whole speech path (load, mel, encode, decode) without a real model.
//!
//! The model is built as an in-memory CTranslate2 `WhisperSpec` and goes through the real
//! converter, so it also exercises [`convert_model`](crate::convert_model). Its vocabulary
//! has whisper.cpp's full English size (51864 ids: the special tokens and the plain `" "`
//! token whisper.cpp looks up are where it expects them); only the widths are small.

use crate::ct2::{Ct2Model, DType, Variable};
use crate::{vocab, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Sizes of a generated model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyModelSpec {
    /// Width of encoder and decoder (a multiple of `n_head`).
    pub n_state: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Layers in the encoder and in the decoder.
    pub n_layer: usize,
    /// Vocabulary size: 51864 (English-only) or 51865 (multilingual).
    pub n_vocab: usize,
    /// Seed of the weights.
    pub seed: u64,
}

impl Default for TinyModelSpec {
    fn default() -> Self {
        Self {
            n_state: 64,
            n_head: 2,
            n_layer: 1,
            n_vocab: 51864,
            seed: 0x5eed,
        }
    }
}

/// Writes a tiny random-weight English model (the [`TinyModelSpec::default`] sizes,
/// about 7 MB) to `path`.
pub fn write_tiny_model(path: &Path) -> Result<()> {
    write_tiny_model_with(path, &TinyModelSpec::default())
}

/// Writes a random-weight model of the given sizes to `path`.
pub fn write_tiny_model_with(path: &Path, spec: &TinyModelSpec) -> Result<()> {
    let (model, tokens) = tiny_ct2_model(spec);
    crate::convert_model(
        &model,
        &tokens,
        Path::new("<generated tiny model>"),
        path,
        crate::Weights::F16,
    )?;
    Ok(())
}

/// The generated model as CTranslate2 variables, with its token strings.
pub(crate) fn tiny_ct2_model(spec: &TinyModelSpec) -> (Ct2Model, Vec<String>) {
    let d = spec.n_state;
    let mut rng = SplitMix(spec.seed);
    let mut vars = BTreeMap::new();
    let mut put = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        let data = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        vars.insert(
            name.clone(),
            Variable {
                name,
                shape,
                dtype: DType::F16,
                data,
            },
        );
    };
    let mut random = |shape: &[usize], scale: f32| -> Vec<f32> {
        (0..shape.iter().product::<usize>())
            .map(|_| rng.uniform() * scale)
            .collect()
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let norm = |t: &mut Vec<(String, Vec<usize>, Vec<f32>)>, scope: String| {
        t.push((format!("{scope}/gamma"), vec![d], vec![1.0; d]));
        t.push((format!("{scope}/beta"), vec![d], vec![0.0; d]));
    };
    let lin = |t: &mut Vec<(String, Vec<usize>, Vec<f32>)>,
               scope: String,
               rows: usize,
               cols: usize,
               r: &mut dyn FnMut(&[usize], f32) -> Vec<f32>| {
        t.push((
            format!("{scope}/weight"),
            vec![rows, cols],
            r(&[rows, cols], 0.2),
        ));
        t.push((format!("{scope}/bias"), vec![rows], r(&[rows], 0.02)));
    };
    tensors.push((
        "encoder/conv1/weight".into(),
        vec![d, 80, 3],
        random(&[d, 80, 3], 0.1),
    ));
    tensors.push(("encoder/conv1/bias".into(), vec![d], vec![0.0; d]));
    tensors.push((
        "encoder/conv2/weight".into(),
        vec![d, d, 3],
        random(&[d, d, 3], 0.1),
    ));
    tensors.push(("encoder/conv2/bias".into(), vec![d], vec![0.0; d]));
    tensors.push((
        "encoder/position_encodings/encodings".into(),
        vec![1500, d],
        random(&[1500, d], 0.1),
    ));
    tensors.push((
        "decoder/position_encodings/encodings".into(),
        vec![448, d],
        random(&[448, d], 0.1),
    ));
    tensors.push((
        "decoder/embeddings/weight".into(),
        vec![spec.n_vocab, d],
        random(&[spec.n_vocab, d], 0.1),
    ));
    norm(&mut tensors, "encoder/layer_norm".into());
    norm(&mut tensors, "decoder/layer_norm".into());
    for stack in ["encoder", "decoder"] {
        for l in 0..spec.n_layer {
            let s = format!("{stack}/layer_{l}");
            norm(&mut tensors, format!("{s}/self_attention/layer_norm"));
            lin(
                &mut tensors,
                format!("{s}/self_attention/linear_0"),
                3 * d,
                d,
                &mut random,
            );
            lin(
                &mut tensors,
                format!("{s}/self_attention/linear_1"),
                d,
                d,
                &mut random,
            );
            norm(&mut tensors, format!("{s}/ffn/layer_norm"));
            lin(
                &mut tensors,
                format!("{s}/ffn/linear_0"),
                4 * d,
                d,
                &mut random,
            );
            lin(
                &mut tensors,
                format!("{s}/ffn/linear_1"),
                d,
                4 * d,
                &mut random,
            );
            if stack == "decoder" {
                norm(&mut tensors, format!("{s}/attention/layer_norm"));
                lin(
                    &mut tensors,
                    format!("{s}/attention/linear_0"),
                    d,
                    d,
                    &mut random,
                );
                lin(
                    &mut tensors,
                    format!("{s}/attention/linear_1"),
                    2 * d,
                    d,
                    &mut random,
                );
                lin(
                    &mut tensors,
                    format!("{s}/attention/linear_2"),
                    d,
                    d,
                    &mut random,
                );
            }
        }
    }
    for (name, shape, values) in tensors {
        put(name, shape, values);
    }
    for stack in ["encoder", "decoder"] {
        let name = format!("{stack}/num_heads");
        vars.insert(
            name.clone(),
            Variable {
                name,
                shape: vec![],
                dtype: DType::I16,
                data: (spec.n_head as i16).to_le_bytes().to_vec(),
            },
        );
    }
    let mut aliases = BTreeMap::new();
    aliases.insert(
        "decoder/projection/weight".to_owned(),
        "decoder/embeddings/weight".to_owned(),
    );
    let model = Ct2Model {
        spec: "WhisperSpec".into(),
        revision: 3,
        variables: vars,
        aliases,
    };
    (model, tiny_tokens(spec.n_vocab))
}

/// Token strings for `n_vocab` ids: the 256 single bytes, filler tokens, then the special
/// tokens at the ids whisper.cpp assumes (languages, tasks, `<|notimestamps|>`, timestamps).
fn tiny_tokens(n_vocab: usize) -> Vec<String> {
    let multilingual = n_vocab >= 51865;
    let eot = if multilingual { 50257 } else { 50256 };
    let languages = n_vocab.saturating_sub(51765 + usize::from(multilingual));
    let translate = 50357
        + if multilingual {
            languages.saturating_sub(98)
        } else {
            0
        };
    let tasks = [
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ];
    let bytes = vocab::byte_to_unicode();
    (0..n_vocab)
        .map(|id| match id {
            _ if id < 256 => bytes[id].to_string(),
            _ if id < eot => format!("tok{id}"),
            _ if id == eot => "<|endoftext|>".into(),
            _ if id == eot + 1 => "<|startoftranscript|>".into(),
            _ if id == eot + 2 => "<|en|>".into(),
            _ if id < translate => format!("<|lang{id}|>"),
            _ if id < translate + tasks.len() => tasks[id - translate].into(),
            _ => format!("<|{:.2}|>", (id - translate - tasks.len()) as f64 * 0.02),
        })
        .collect()
}

/// SplitMix64: a tiny deterministic generator (no dependency needed for test weights).
struct SplitMix(u64);

impl SplitMix {
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}
