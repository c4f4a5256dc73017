//! Converts a CTranslate2 (faster-whisper) Whisper model directory to whisper.cpp's ggml
//! format:
//!
//! ```text
//! cargo run -p baton-whisper-convert --example convert -- CT2_DIR OUT.bin [--q8_0]
//! cargo run -p baton-whisper-convert --example convert -- --tiny OUT.bin
//! ```
//!
//! `CT2_DIR` holds `model.bin` and `vocabulary.txt` (or `tokenizer.json`), and
//! `config.json` when there is one. `--q8_0` stores the weight matrices as ggml's 8-bit blocks. `--tiny` writes the
//! random-weight test model instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let weights = if let Some(i) = args.iter().position(|a| a == "--q8_0") {
        args.remove(i);
        baton_whisper_convert::Weights::Q8_0
    } else {
        baton_whisper_convert::Weights::F16
    };
    let started = Instant::now();
    match args.as_slice() {
        [flag, out] if flag == "--tiny" => {
            match baton_whisper_convert::write_tiny_model(out.as_ref()) {
                Ok(()) => {
                    println!("wrote tiny test model {out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        [dir, out] => {
            let (dir, out) = (PathBuf::from(dir), PathBuf::from(out));
            match baton_whisper_convert::convert_dir(&dir, &out, weights) {
                Ok(r) => {
                    let h = r.hparams;
                    println!(
                        "wrote {} ({} bytes, {} tensors, {} tokens) in {:.1} s",
                        out.display(),
                        r.bytes,
                        r.tensors,
                        r.vocab_tokens,
                        started.elapsed().as_secs_f64()
                    );
                    println!(
                        "n_vocab {} ({}), width {}, heads {}/{}, layers {}/{}, audio ctx {}, text ctx {}, mels {}",
                        h.n_vocab,
                        if r.multilingual() { "multilingual" } else { "English-only" },
                        h.n_audio_state,
                        h.n_audio_head,
                        h.n_text_head,
                        h.n_audio_layer,
                        h.n_text_layer,
                        h.n_audio_ctx,
                        h.n_text_ctx,
                        h.n_mels
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: convert CT2_DIR OUT.bin [--q8_0] | convert --tiny OUT.bin");
            ExitCode::from(2)
        }
    }
}
