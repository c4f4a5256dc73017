//! `baton bench api`: the local OpenAI-compatible API under concurrent clients. The API is
//! started in-process on a free port; for each client count N, N streaming requests go out
//! at once and, as the reference in the same run, the same N requests one after another.
//! Reported: aggregate completion tokens per second of wall time both ways, their ratio,
//! and the clients' median time to first token and decode speed.

use crate::commands::print_json;
use anyhow::Context;
use baton_api::ApiClient;
use baton_core::{ChatMessage, ChatResponse, SamplingParams};
use baton_runtime::Runtime;
use std::time::{Duration, Instant};

const PROMPT: &str = "Write a long story about a lighthouse keeper.";

/// Options of `baton bench api`.
#[derive(Debug, clap::Args)]
pub struct BenchApiArgs {
    /// Model to ask (a registered or remote model) [default: chat.default_model]
    #[arg(long)]
    pub model: Option<String>,
    /// Numbers of simultaneous clients to measure, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: Vec<u32>,
    /// The prompt; each request gets its own numbered prefix, so none reuses another's cache
    #[arg(long, default_value = PROMPT)]
    pub prompt: String,
    /// Tokens to generate per request (temperature 0)
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Rounds per client count (medians are reported)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One batch of requests (all at once, or one after another).
#[derive(Debug, Default)]
struct Batch {
    wall: Duration,
    completion_tokens: u32,
    first_token_ms: Vec<f64>,
    decode_tps: Vec<f64>,
}

impl Batch {
    fn record(&mut self, r: &ChatResponse) {
        self.completion_tokens += r.usage.completion_tokens;
        if let Some(ms) = r.first_token_ms {
            self.first_token_ms.push(ms as f64);
        }
        if let Some(tps) = r.tokens_per_second() {
            self.decode_tps.push(tps);
        }
    }

    fn aggregate_tps(&self) -> f64 {
        f64::from(self.completion_tokens) / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Measurements of one client count, over all rounds.
#[derive(Debug, Default)]
struct Side {
    aggregate_tps: Vec<f64>,
    first_token_ms: Vec<f64>,
    decode_tps: Vec<f64>,
    completion_tokens: u32,
    wall_ms: f64,
}

impl Side {
    fn add(&mut self, batch: Batch) {
        self.aggregate_tps.push(batch.aggregate_tps());
        self.completion_tokens += batch.completion_tokens;
        self.wall_ms += batch.wall.as_secs_f64() * 1000.0;
        self.first_token_ms.extend(batch.first_token_ms);
        self.decode_tps.extend(batch.decode_tps);
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "aggregate_tokens_per_sec": median(self.aggregate_tps.clone()),
            "median_first_token_ms": median(self.first_token_ms.clone()),
            "max_first_token_ms": self.first_token_ms.iter().copied().fold(0.0, f64::max),
            "median_decode_tokens_per_sec_per_client": median(self.decode_tps.clone()),
            "completion_tokens": self.completion_tokens,
            "wall_ms": self.wall_ms,
        })
    }
}

/// Numbers the requests so every prompt is distinct (no prompt-cache shortcut).
struct Prompts {
    text: String,
    next: u32,
}

impl Prompts {
    fn next(&mut self) -> Vec<ChatMessage> {
        self.next += 1;
        vec![ChatMessage::user(format!(
            "Request {}. {}",
            self.next, self.text
        ))]
    }
}

/// Runs the benchmark.
pub async fn run(args: BenchApiArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let name = args.model.unwrap_or_else(|| runtime.default_model());
    let known = runtime.model_names().await?;
    if !known.contains(&name) {
        anyhow::bail!(
            "no model `{name}`: `baton models list` shows the registered ones (known: {})",
            if known.is_empty() {
                "none; fetch one with `baton models fetch`".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let token = baton_api::new_token();
    // The measured clients come all at once: no rate limit, or it would be measured too.
    let mut options = baton_api::ServeOptions::new(&runtime.config().api, 0, token.clone());
    options.rate_limit = None;
    let server = baton_api::serve_with(runtime.clone(), options).await?;
    let result = measure(
        &args.clients,
        args.rounds,
        &name,
        &args.prompt,
        args.max_tokens,
        &server,
        &token,
        json,
    )
    .await;
    server.stop().await;
    let results = result?;
    let report = serde_json::json!({
        "model": name,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "results": results.iter().map(|(clients, concurrent, sequential)| {
            let c = median(concurrent.aggregate_tps.clone());
            let s = median(sequential.aggregate_tps.clone());
            serde_json::json!({
                "clients": clients,
                "concurrent": concurrent.json(),
                "sequential": sequential.json(),
                "concurrent_to_sequential_ratio": if s > 0.0 { c / s } else { 0.0 },
            })
        }).collect::<Vec<_>>(),
    });
    if json {
        return print_json(&report);
    }
    println!(
        "baton bench api: {name}, {} tokens per request at temperature 0, {} round(s); tok/s = completion tokens per second of wall time",
        args.max_tokens, args.rounds
    );
    println!(
        "{:>7}  {:>16}  {:>16}  {:>7}  {:>14}  {:>14}  {:>16}",
        "clients",
        "concurrent tok/s",
        "sequential tok/s",
        "ratio",
        "TTFT conc (ms)",
        "TTFT seq (ms)",
        "decode/client"
    );
    for row in report["results"].as_array().into_iter().flatten() {
        let f = |p: &str| {
            row.pointer(p)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0)
        };
        println!(
            "{:>7}  {:>16.1}  {:>16.1}  {:>7.2}  {:>14.0}  {:>14.0}  {:>10.1} tok/s",
            row["clients"].as_u64().unwrap_or(0),
            f("/concurrent/aggregate_tokens_per_sec"),
            f("/sequential/aggregate_tokens_per_sec"),
            f("/concurrent_to_sequential_ratio"),
            f("/concurrent/median_first_token_ms"),
            f("/sequential/median_first_token_ms"),
            f("/concurrent/median_decode_tokens_per_sec_per_client"),
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    clients: &[u32],
    rounds: u32,
    model: &str,
    prompt: &str,
    max_tokens: u32,
    server: &baton_api::Server,
    token: &str,
    json: bool,
) -> anyhow::Result<Vec<(u32, Side, Side)>> {
    // Requests queued behind others may wait long for their first token.
    let client = ApiClient::new(server.base_url(), token, Duration::from_secs(1800))?;
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens,
        ..SamplingParams::default()
    };
    let mut prompts = Prompts {
        text: prompt.to_owned(),
        next: 0,
    };
    let ask = |messages: Vec<ChatMessage>| {
        let (client, params, model) = (client.clone(), params.clone(), model.to_owned());
        async move {
            client
                .stream(&model, messages, params)
                .await
                .with_context(|| format!("a request to {model} through the API failed"))
        }
    };
    // Warm-up: the worker starts and loads the model outside the measurements.
    let started = Instant::now();
    ask(prompts.next()).await?;
    if !json {
        eprintln!(
            "Measuring {model} through {} (warm-up, model load included: {:.1} s) …",
            server.base_url(),
            started.elapsed().as_secs_f64()
        );
    }
    let mut results = Vec::new();
    for &n in clients {
        let (mut concurrent, mut sequential) = (Side::default(), Side::default());
        for _ in 0..rounds {
            let mut batch = Batch::default();
            let requests: Vec<_> = (0..n).map(|_| ask(prompts.next())).collect();
            let started = Instant::now();
            let responses = futures_join_all(requests).await;
            batch.wall = started.elapsed();
            for r in responses {
                batch.record(&r?);
            }
            concurrent.add(batch);

            let mut batch = Batch::default();
            let started = Instant::now();
            for _ in 0..n {
                batch.record(&ask(prompts.next()).await?);
            }
            batch.wall = started.elapsed();
            sequential.add(batch);
        }
        if !json {
            eprintln!(
                "  {n} client(s): {:.1} tok/s concurrent, {:.1} tok/s sequential",
                median(concurrent.aggregate_tps.clone()),
                median(sequential.aggregate_tps.clone())
            );
        }
        results.push((n, concurrent, sequential));
    }
    Ok(results)
}

/// Runs the futures at once (each is its own task, so they progress in parallel) and returns
/// their outputs in order.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a bench client task panicked"));
    }
    out
}
