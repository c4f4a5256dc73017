//! `baton-llm-worker --bench-direct`: the reference for `baton bench llm`. The same
//! llama-cpp-2 calls the worker makes (tokenise, batched prompt evaluation, greedy sampling,
//! one decode per token), in a plain loop with no protocol, threads or IPC, so the CLI can
//! report decode speed through the worker as a ratio to this.

use anyhow::{bail, Context as _};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use std::num::NonZeroU32;
use std::time::Instant;

/// Usage of the bench mode.
pub const BENCH_USAGE: &str =
    "baton-llm-worker --bench-direct MODEL.gguf --threads N --prompt TEXT --tokens N\n";

/// Runs the direct loop and prints one JSON line with the timings.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut model_path = None;
    let mut threads = 1i32;
    let mut prompt = String::from("Write a long story about a lighthouse keeper.");
    let mut tokens = 128usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--threads" => threads = value()?.parse().context("--threads")?,
            "--prompt" => prompt = value()?,
            "--tokens" => tokens = value()?.parse().context("--tokens")?,
            other if model_path.is_none() && !other.starts_with("--") => {
                model_path = Some(other.to_owned())
            }
            other => bail!("unknown argument `{other}`\n{BENCH_USAGE}"),
        }
    }
    let model_path = model_path.with_context(|| format!("no model given\n{BENCH_USAGE}"))?;
    baton_llm::gguf::inspect(&model_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(false));
    let backend = LlamaBackend::init().context("llama.cpp backend")?;
    let model = LlamaModel::load_from_file(&backend, &model_path, &LlamaModelParams::default())
        .context("load model")?;
    let n_batch = 512u32;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(2048))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params).context("context")?;
    let vocab = model.vocab();
    let prompt_tokens = vocab.tokenize(prompt.as_bytes(), vocab.should_add_bos(), true);
    let mut batch = LlamaBatch::new(n_batch as usize, 1);

    let start = Instant::now();
    let last = prompt_tokens.len() - 1;
    for (i, t) in prompt_tokens.iter().enumerate() {
        batch.add(*t, i as i32, &[0], i == last).context("batch")?;
    }
    ctx.decode(&mut batch).context("prompt decode")?;
    let prompt_ms = start.elapsed().as_secs_f64() * 1000.0;

    let mut sampler = LlamaSampler::greedy();
    let mut logits_index = batch.n_tokens() - 1;
    let mut text: Vec<u8> = Vec::new();
    let start = Instant::now();
    let mut first_ms = None;
    for n in 0..tokens {
        let token = sampler.sample(&ctx, logits_index);
        let _eog = vocab.is_eog(token); // the worker checks it too; the loop keeps going
        text.extend_from_slice(&vocab.token_to_piece(token, false, None));
        if first_ms.is_none() {
            first_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
        }
        batch.clear();
        batch
            .add(token, (prompt_tokens.len() + n) as i32, &[0], true)
            .context("batch")?;
        ctx.decode(&mut batch).context("decode")?;
        logits_index = 0;
    }
    let decode_ms = start.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "threads": threads,
            "prompt_tokens": prompt_tokens.len(),
            "prompt_ms": prompt_ms,
            "decode_tokens": tokens,
            "decode_ms": decode_ms,
            "first_token_ms": first_ms,
        })
    );
    Ok(())
}
