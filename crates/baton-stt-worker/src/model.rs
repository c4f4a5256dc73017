//! Loading a whisper.cpp model, after checking its file in Rust so that a wrong, corrupt
//! or truncated file gives an error naming it instead of a crash inside whisper.cpp.

use anyhow::{bail, Context as _, Result};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use whisper_rs::{WhisperContext, WhisperContextParameters};

const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Checks the structure of a whisper.cpp ggml model file: magic, hyper-parameters, filter
/// bank, vocabulary, and that every tensor lies inside the file and all are present.
pub fn check_model_file(path: &Path) -> Result<()> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .with_context(|| format!("{shown}: cannot open the model file"))?;
    let len = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let fix = "download or convert the model again (baton-whisper-convert)";
    let bad =
        |what: String| anyhow::anyhow!("{shown}: not a valid whisper.cpp model: {what}; {fix}");
    let i32_ = |r: &mut BufReader<std::fs::File>, what: &str| -> Result<i32> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)
            .map_err(|_| anyhow::anyhow!("{shown}: model file is truncated ({what}); {fix}"))?;
        Ok(i32::from_le_bytes(b))
    };
    if len < 64 || i32_(&mut r, "magic")? as u32 != GGML_MAGIC {
        bail!(
            "{shown}: not a whisper.cpp ggml model (wrong magic number); use a ggml-*.bin model \
             (GGUF and CTranslate2 files must be converted first)"
        );
    }
    let mut hp = [0i32; 11];
    for v in &mut hp {
        *v = i32_(&mut r, "hparams")?;
    }
    let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, _ftype] =
        hp;
    let in_range = |v: i32, lo: i32, hi: i32| (lo..=hi).contains(&v);
    if !in_range(n_vocab, 51_864, 52_000)
        || !in_range(n_audio_ctx, 1, 1 << 16)
        || !in_range(n_text_ctx, 1, 1 << 16)
        || !in_range(n_audio_state, 1, 1 << 14)
        || n_text_state != n_audio_state
        || !in_range(n_audio_head, 1, 1024)
        || !in_range(n_text_head, 1, 1024)
        || n_audio_state % n_audio_head != 0
        || n_text_state % n_text_head != 0
        || !in_range(n_audio_layer, 1, 256)
        || !in_range(n_text_layer, 1, 256)
        || !in_range(n_mels, 1, 512)
    {
        return Err(bad(format!("implausible hyper-parameters {hp:?}")));
    }
    let n_mel = i32_(&mut r, "filters")?;
    let n_fft = i32_(&mut r, "filters")?;
    if n_mel != n_mels || !in_range(n_fft, 1, 4096) {
        return Err(bad(format!("mel filter bank {n_mel} x {n_fft}")));
    }
    r.seek_relative(i64::from(n_mel) * i64::from(n_fft) * 4)?;
    let vocab = i32_(&mut r, "vocabulary")?;
    if !in_range(vocab, 0, n_vocab) {
        return Err(bad(format!(
            "{vocab} vocabulary entries for n_vocab {n_vocab}"
        )));
    }
    for _ in 0..vocab {
        let l = i32_(&mut r, "vocabulary")?;
        if !in_range(l, 0, 1024) {
            return Err(bad(format!("vocabulary token of {l} bytes")));
        }
        r.seek_relative(i64::from(l))?;
    }
    let expected = 11 + 15 * i64::from(n_audio_layer) + 24 * i64::from(n_text_layer);
    let mut tensors = 0i64;
    loop {
        let pos = r.stream_position()?;
        if pos == len {
            break;
        }
        if pos > len {
            bail!("{shown}: model file is truncated (vocabulary); {fix}");
        }
        let n_dims = i32_(&mut r, "tensor header")?;
        let name_len = i32_(&mut r, "tensor header")?;
        let ttype = i32_(&mut r, "tensor header")?;
        if !in_range(n_dims, 1, 4) || !in_range(name_len, 1, 256) {
            return Err(bad(format!("tensor header at offset {pos}")));
        }
        let mut n: i64 = 1;
        for _ in 0..n_dims {
            let ne = i32_(&mut r, "tensor header")?;
            if ne < 1 {
                return Err(bad(format!("tensor extent {ne} at offset {pos}")));
            }
            n = n.saturating_mul(i64::from(ne));
        }
        // (block size, bytes per block) of the ggml types whisper.cpp files use.
        let Some((block, bytes)) = (match ttype {
            0 => Some((1, 4)),
            1 => Some((1, 2)),
            2 => Some((32, 18)),
            3 => Some((32, 20)),
            6 => Some((32, 22)),
            7 => Some((32, 24)),
            8 => Some((32, 34)),
            _ => None,
        }) else {
            // A type this check does not know: leave the rest to whisper.cpp.
            return Ok(());
        };
        let size = n / block * bytes;
        r.seek_relative(i64::from(name_len))?;
        let data_at = r.stream_position()?;
        if data_at as i64 + size > len as i64 {
            bail!(
                "{shown}: model file is truncated (tensor {} of {expected} ends past the end of \
                 the file); {fix}",
                tensors + 1
            );
        }
        r.seek(SeekFrom::Start(data_at + size as u64))?;
        tensors += 1;
    }
    if tensors != expected {
        return Err(bad(format!("{tensors} tensors, expected {expected}")));
    }
    Ok(())
}

/// Checks and loads a model (CPU only), with flash attention when `flash_attn`.
pub fn load(path: &Path, flash_attn: bool) -> Result<WhisperContext> {
    check_model_file(path)?;
    let mut params = WhisperContextParameters::default();
    params.use_gpu(false);
    params.flash_attn(flash_attn);
    WhisperContext::new_with_params(path, params).map_err(|e| {
        anyhow::anyhow!(
            "{}: whisper.cpp could not load the model ({e}); download or convert it again",
            path.display()
        )
    })
}
