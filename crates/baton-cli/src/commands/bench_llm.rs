//! `baton bench llm`: prompt and decode speed through the worker, time to first token cold
//! and warm, and the ratio of decode speed through the worker to a direct in-process
//! llama-cpp-2 loop (`baton-llm-worker --bench-direct`) on the same model and threads.

use crate::commands::print_json;
use anyhow::Context;
use baton_core::{
    CancellationToken, ChatMessage, ChatRequest, ChatResponse, Engine, SamplingParams,
};
use baton_llm::{LocalLlmConfig, LocalLlmEngine, ModelSpec};
use baton_runtime::Runtime;
use std::collections::HashMap;
use std::sync::Arc;

/// Options of `baton bench llm`.
#[derive(Debug, clap::Args)]
pub struct BenchLlmArgs {
    /// Registered model to measure [default: chat.default_model]
    #[arg(long)]
    pub model: Option<String>,
    /// CPU threads for both the worker and the direct loop
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Tokens to generate per run
    #[arg(long, default_value_t = 128)]
    pub tokens: u32,
    /// Decode runs per side (the median is reported)
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

const PROMPT: &str = "Write a long story about a lighthouse keeper.";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn ask(
    engine: &LocalLlmEngine,
    model: &str,
    text: &str,
    tokens: u32,
) -> anyhow::Result<ChatResponse> {
    let mut request = ChatRequest::new(model, vec![ChatMessage::user(text)]);
    request.params = SamplingParams {
        temperature: 0.0,
        max_tokens: tokens,
        ..SamplingParams::default()
    };
    Ok(engine
        .chat(request, &|_| {}, CancellationToken::new())
        .await?)
}

fn decode_tps(r: &ChatResponse) -> f64 {
    r.tokens_per_second().unwrap_or(0.0)
}

/// Runs the benchmark.
pub async fn run(args: BenchLlmArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let name = args.model.unwrap_or_else(|| runtime.default_model());
    let record = runtime.model(&name).await?;
    let mut spec = ModelSpec::new(&record.path, 2048);
    if let Some(t) = &record.chat_template_override {
        spec = spec.with_chat_template(t.clone());
    }
    let models: HashMap<String, ModelSpec> = [(name.clone(), spec)].into();
    let config = LocalLlmConfig {
        n_threads: Some(args.threads),
        ..LocalLlmConfig::default()
    };
    let engine = LocalLlmEngine::new(Arc::new(models), config);
    let worker = engine.worker_binary()?;
    if !json {
        eprintln!(
            "Measuring {name} with {} thread(s), {} tokens per run …",
            args.threads, args.tokens
        );
    }

    // Cold: worker start and model load included.
    let cold = ask(&engine, &name, PROMPT, args.tokens).await?;
    // Warm, same prompt: the evaluated prefix is reused.
    let warm_cached = ask(&engine, &name, PROMPT, args.tokens).await?;
    // Warm, new prompt: the whole prompt is evaluated.
    let warm = ask(
        &engine,
        &name,
        "Describe, in detail, how a bicycle works and how to repair one.",
        args.tokens,
    )
    .await?;
    let prompt_tps = if warm.usage.cached_prompt_tokens < warm.usage.prompt_tokens {
        f64::from(warm.usage.prompt_tokens - warm.usage.cached_prompt_tokens) * 1000.0
            / warm.first_token_ms.unwrap_or(1).max(1) as f64
    } else {
        0.0
    };
    let mut worker_tps = vec![decode_tps(&cold), decode_tps(&warm_cached)];
    let mut generated = cold.usage.completion_tokens;
    for _ in 2..args.runs.max(2) {
        let r = ask(&engine, &name, PROMPT, args.tokens).await?;
        generated = r.usage.completion_tokens;
        worker_tps.push(decode_tps(&r));
    }
    engine.shutdown().await;

    // The reference: the same calls in a plain loop, as many tokens as the worker produced.
    let mut direct_tps = Vec::new();
    for _ in 0..args.runs.max(2) {
        let out = tokio::process::Command::new(&worker)
            .arg("--bench-direct")
            .arg(&record.path)
            .args(["--threads", &args.threads.to_string()])
            .args(["--tokens", &generated.max(2).to_string()])
            .args(["--prompt", PROMPT])
            .output()
            .await
            .with_context(|| format!("cannot run {}", worker.display()))?;
        if !out.status.success() {
            anyhow::bail!(
                "the direct reference failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("reference output")?;
        let tokens = v["decode_tokens"].as_f64().unwrap_or(0.0);
        let first = v["first_token_ms"].as_f64().unwrap_or(0.0);
        let ms = v["decode_ms"].as_f64().unwrap_or(1.0);
        // Same definition as ChatResponse::tokens_per_second: tokens after the first.
        direct_tps.push((tokens - 1.0) * 1000.0 / (ms - first).max(1e-6));
    }
    let worker_median = median(worker_tps);
    let direct_median = median(direct_tps);
    let ratio = if direct_median > 0.0 {
        worker_median / direct_median
    } else {
        0.0
    };
    let report = serde_json::json!({
        "model": name,
        "threads": args.threads,
        "tokens_per_run": generated,
        "prompt_tokens_per_sec": prompt_tps,
        "decode_tokens_per_sec_worker": worker_median,
        "decode_tokens_per_sec_direct": direct_median,
        "worker_to_direct_ratio": ratio,
        "first_token_ms_cold": cold.first_token_ms,
        "first_token_ms_warm": warm.first_token_ms,
        "first_token_ms_warm_prefix_reused": warm_cached.first_token_ms,
        "prefix_tokens_reused": warm_cached.usage.cached_prompt_tokens,
        "prompt_tokens": warm_cached.usage.prompt_tokens,
    });
    if json {
        return print_json(&report);
    }
    println!(
        "baton bench llm: {name}, {} thread(s), {generated} tokens per run",
        args.threads
    );
    println!("  prompt evaluation            {prompt_tps:>8.1} tok/s");
    println!(
        "  decode through the worker    {worker_median:>8.1} tok/s   (median of {})",
        args.runs.max(2)
    );
    println!("  decode, direct llama-cpp-2   {direct_median:>8.1} tok/s   (reference, same model and threads)");
    println!("  worker / direct              {ratio:>8.3}");
    println!(
        "  first token, cold            {:>8} ms   (worker start and model load included)",
        cold.first_token_ms.unwrap_or(0)
    );
    println!(
        "  first token, warm            {:>8} ms",
        warm.first_token_ms.unwrap_or(0)
    );
    println!(
        "  first token, prefix reused   {:>8} ms   ({}/{} prompt tokens from cache)",
        warm_cached.first_token_ms.unwrap_or(0),
        warm_cached.usage.cached_prompt_tokens,
        warm_cached.usage.prompt_tokens
    );
    Ok(())
}
