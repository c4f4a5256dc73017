//! In-process runs of the engine, for people measuring it: the same engine thread the
//! worker runs, fed through its job channel, its events read from a channel instead of
//! stdout.
//!
//! - `--schema-check MODEL.gguf`: N chat requests, each constrained to a random bounded JSON
//!   schema ([`crate::schema_gen`]), all submitted at once (the engine runs `--parallel` of
//!   them together); every output is parsed and validated against its schema.
//! - `--bench-parallel MODEL.gguf`: for each concurrency level, the same number of requests
//!   one after another and then all at once; aggregate generated tokens per second.

use crate::engine::{self, ChatJob};
use crate::schema_gen::{random_schema, validate, Rng};
use crate::{Job, Output, Shared};
use anyhow::{bail, Context as _};
use baton_core::{ChatMessage, FinishReason, OutputFormat, SamplingParams};
use baton_llm::protocol::{LoadedModel, WorkerEvent, WorkerUsage};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How a request ended.
enum Outcome {
    Done {
        text: String,
        usage: WorkerUsage,
        finish: FinishReason,
    },
    Error(String),
}

struct Harness {
    tx: Option<mpsc::Sender<Job>>,
    events: mpsc::Receiver<WorkerEvent>,
    shared: Arc<Shared>,
    engine: Option<std::thread::JoinHandle<()>>,
    outcomes: HashMap<String, Outcome>,
}

/// Options shared by both tools.
struct Common {
    model: PathBuf,
    threads: Option<u32>,
    n_ctx: u32,
    verbose: bool,
}

impl Harness {
    fn start(common: &Common, n_parallel: u32) -> anyhow::Result<(Self, LoadedModel)> {
        if common.verbose {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_env_filter(tracing_subscriber::EnvFilter::new("info,llama_cpp_2=warn"))
                .try_init();
        }
        llama_cpp_2::send_logs_to_tracing(
            llama_cpp_2::LogOptions::default().with_logs_enabled(common.verbose),
        );
        let backend =
            llama_cpp_2::llama_backend::LlamaBackend::init().context("llama.cpp backend")?;
        let (events_tx, events) = mpsc::channel();
        let shared = Arc::new(Shared::new(Output::Channel(events_tx)));
        let (tx, rx) = mpsc::channel();
        let engine_shared = shared.clone();
        let engine = std::thread::Builder::new()
            .name("llm-engine".into())
            .spawn(move || engine::run(backend, rx, engine_shared))
            .context("cannot start the engine thread")?;
        let harness = Self {
            tx: Some(tx),
            events,
            shared,
            engine: Some(engine),
            outcomes: HashMap::new(),
        };
        harness.send(Job::Load {
            id: "load".into(),
            path: common.model.clone(),
            n_ctx: common.n_ctx,
            n_gpu_layers: 0,
            chat_template: None,
            n_threads: common.threads,
            n_parallel,
        })?;
        loop {
            match harness.events.recv_timeout(Duration::from_secs(600)) {
                Ok(WorkerEvent::Loaded { metadata, .. }) => return Ok((harness, metadata)),
                Ok(WorkerEvent::Error { message, .. }) => bail!("load failed: {message}"),
                Ok(_) => {}
                Err(_) => bail!("the model did not load within 10 minutes"),
            }
        }
    }

    fn send(&self, job: Job) -> anyhow::Result<()> {
        self.tx
            .as_ref()
            .context("engine stopped")?
            .send(job)
            .ok()
            .context("the engine thread stopped")
    }

    fn submit(
        &self,
        id: &str,
        messages: Vec<ChatMessage>,
        params: SamplingParams,
    ) -> anyhow::Result<()> {
        let cancel = self
            .shared
            .register(id)
            .with_context(|| format!("request id {id} reused"))?;
        self.send(Job::Chat(ChatJob {
            id: id.to_owned(),
            messages,
            params,
            session: None,
            cancel,
            received: Instant::now(),
        }))
    }

    /// Wait until every one of `ids` ended.
    fn wait(&mut self, ids: &[String]) -> anyhow::Result<()> {
        while ids.iter().any(|id| !self.outcomes.contains_key(id)) {
            let event = self
                .events
                .recv_timeout(Duration::from_secs(600))
                .context("no event from the engine for 10 minutes")?;
            match event {
                WorkerEvent::Done {
                    id,
                    text,
                    usage,
                    finish_reason,
                } => {
                    self.outcomes.insert(
                        id,
                        Outcome::Done {
                            text,
                            usage,
                            finish: finish_reason,
                        },
                    );
                }
                WorkerEvent::Error { id, message, .. } => {
                    self.outcomes
                        .insert(id.unwrap_or_default(), Outcome::Error(message));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(engine) = self.engine.take() {
            let _ = engine.join();
        }
    }
}

/// Parse `--flag value` options; `model` is the one bare argument.
fn parse(
    args: &[String],
    usage: &str,
    mut option: impl FnMut(&str, &str) -> anyhow::Result<bool>,
) -> anyhow::Result<Common> {
    let mut model = None;
    let mut threads = None;
    let mut n_ctx = 4096;
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--verbose" | "-v" => verbose = true,
            flag if flag.starts_with("--") => {
                let value = it
                    .next()
                    .with_context(|| format!("{flag} needs a value\n{usage}"))?;
                match flag {
                    "--threads" => threads = Some(value.parse().context("--threads")?),
                    "--ctx" => n_ctx = value.parse().context("--ctx")?,
                    _ => {
                        if !option(flag, value)? {
                            bail!("unknown option `{flag}`\n{usage}");
                        }
                    }
                }
            }
            bare if model.is_none() => model = Some(PathBuf::from(bare)),
            other => bail!("unexpected argument `{other}`\n{usage}"),
        }
    }
    let model = model.with_context(|| format!("no model given\n{usage}"))?;
    baton_llm::gguf::inspect(&model).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Common {
        model,
        threads,
        n_ctx,
        verbose,
    })
}

const SCHEMA_USAGE: &str = "baton-llm-worker --schema-check MODEL.gguf [--count N] [--seed N] [--parallel N] [--threads N] [--ctx N] [--max-tokens N] [--temperature T] [--verbose]";

/// `--schema-check`: true when every output parsed and validated.
pub fn schema_check(args: &[String]) -> anyhow::Result<bool> {
    let mut count = 200u64;
    let mut seed = 1u64;
    let mut parallel = 4u32;
    let mut max_tokens = 512u32;
    let mut temperature = 0.0f32;
    let common = parse(args, SCHEMA_USAGE, |flag, value| {
        match flag {
            "--count" => count = value.parse().context("--count")?,
            "--seed" => seed = value.parse().context("--seed")?,
            "--parallel" => parallel = value.parse().context("--parallel")?,
            "--max-tokens" => max_tokens = value.parse().context("--max-tokens")?,
            "--temperature" => temperature = value.parse().context("--temperature")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let (mut harness, loaded) = Harness::start(&common, parallel)?;
    println!(
        "model {} ({} parameters), n_ctx {}, {} slots; {count} random schemas from seed {seed}, temperature {temperature}, max_tokens {max_tokens}",
        common.model.display(),
        loaded.parameters,
        loaded.n_ctx,
        loaded.n_parallel
    );
    let mut cases = Vec::new();
    let started = Instant::now();
    for i in 0..count {
        let schema = random_schema(&mut Rng::new(seed.wrapping_add(i)));
        let id = format!("case-{i}");
        let messages = vec![
            ChatMessage::system("You reply with one JSON object and nothing else."),
            ChatMessage::user(format!(
                "Fill in this JSON schema with realistic example values:\n{schema}"
            )),
        ];
        let params = SamplingParams {
            temperature,
            max_tokens,
            seed: Some(seed.wrapping_add(i)),
            format: Some(OutputFormat::JsonSchema {
                name: id.clone(),
                schema: schema.clone(),
            }),
            ..SamplingParams::default()
        };
        harness.submit(&id, messages, params)?;
        cases.push((id, schema));
    }
    let ids: Vec<String> = cases.iter().map(|(id, _)| id.clone()).collect();
    harness.wait(&ids)?;
    let wall = started.elapsed();

    let (mut valid, mut parsed, mut cut, mut errors, mut tokens) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut gen_ms = Vec::new();
    let mut failures = Vec::new();
    for (id, schema) in &cases {
        match harness.outcomes.get(id) {
            Some(Outcome::Done {
                text,
                usage,
                finish,
            }) => {
                tokens += u64::from(usage.completion_tokens);
                gen_ms.push(usage.prompt_eval_ms + usage.gen_ms);
                if *finish == FinishReason::Length {
                    cut += 1;
                }
                match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(value) => {
                        parsed += 1;
                        match validate(schema, &value) {
                            Ok(()) => valid += 1,
                            Err(why) => failures.push(format!(
                                "{id}: invalid ({why})\n  schema: {schema}\n  output: {text}"
                            )),
                        }
                    }
                    Err(err) => failures.push(format!(
                        "{id}: not JSON ({err}; finish {finish:?})\n  schema: {schema}\n  output: {text}"
                    )),
                }
                if common.verbose {
                    println!("{id}: {text}");
                }
            }
            Some(Outcome::Error(message)) => {
                errors += 1;
                failures.push(format!("{id}: error: {message}"));
            }
            None => failures.push(format!("{id}: no answer")),
        }
    }
    for failure in failures.iter().take(10) {
        println!("{failure}");
    }
    if failures.len() > 10 {
        println!("… and {} more failures", failures.len() - 10);
    }
    gen_ms.sort_unstable();
    let percentile = |p: usize| {
        gen_ms
            .get((gen_ms.len() * p / 100).min(gen_ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let secs = wall.as_secs_f64();
    println!(
        "{count} requests: {parsed} parsed as JSON, {valid} valid against their schema, {cut} cut by max_tokens, {errors} errors; {tokens} tokens in {secs:.1} s ({:.1} tok/s aggregate); per request (prompt + generation) p50 {} ms, p90 {} ms, max {} ms",
        tokens as f64 / secs.max(1e-9),
        percentile(50),
        percentile(90),
        gen_ms.last().copied().unwrap_or(0),
    );
    println!(
        "{}",
        serde_json::json!({
            "requests": count,
            "parsed": parsed,
            "valid": valid,
            "cut": cut,
            "errors": errors,
            "completion_tokens": tokens,
            "wall_s": secs,
            "parallel": loaded.n_parallel,
            "temperature": temperature,
        })
    );
    Ok(valid == count)
}

const BENCH_USAGE: &str = "baton-llm-worker --bench-parallel MODEL.gguf [--levels 1,2,4,8] [--tokens N] [--threads N] [--ctx N] [--verbose]";

const TOPICS: &[&str] = &[
    "a lighthouse keeper",
    "a lost robot",
    "a mountain village",
    "a night train",
    "an old clockmaker",
    "a desert caravan",
    "a river pilot",
    "a small bakery",
    "a chess tournament",
    "a winter garden",
    "a deep-sea diver",
    "a city library",
    "a violin maker",
    "a border crossing",
    "a school play",
    "a fishing boat",
];

/// `--bench-parallel`: prints one line (and one JSON line) per concurrency level.
pub fn bench_parallel(args: &[String]) -> anyhow::Result<bool> {
    let mut levels = vec![1u32, 2, 4, 8];
    let mut tokens = 64u32;
    let common = parse(args, BENCH_USAGE, |flag, value| {
        match flag {
            "--levels" => {
                levels = value
                    .split(',')
                    .map(|v| v.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--levels")?
            }
            "--tokens" => tokens = value.parse().context("--tokens")?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let max_level = levels.iter().copied().max().unwrap_or(1).max(1);
    let (mut harness, loaded) = Harness::start(&common, max_level)?;
    println!(
        "model {} ({} parameters), n_ctx {}, {} slots, {tokens} tokens per request, greedy",
        common.model.display(),
        loaded.parameters,
        loaded.n_ctx,
        loaded.n_parallel
    );
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: tokens,
        ..SamplingParams::default()
    };
    let mut run_no = 0usize;
    // Returns (tokens, wall seconds, decode-only tokens, decode-only seconds): the decode
    // part starts when the last request of the round produced its first token.
    let mut request =
        |harness: &mut Harness, round: &[usize]| -> anyhow::Result<(u64, f64, u64, f64)> {
            let started = Instant::now();
            let mut ids = Vec::new();
            for &n in round {
                run_no += 1;
                let id = format!("bench-{run_no}");
                let prompt = format!(
                    "Write a short story about {} (story {run_no}).",
                    TOPICS[n % TOPICS.len()]
                );
                harness.submit(&id, vec![ChatMessage::user(prompt)], params.clone())?;
                ids.push(id);
            }
            harness.wait(&ids)?;
            let wall = started.elapsed().as_secs_f64();
            let mut generated = 0;
            let mut last_first_token_ms = 0u64;
            for id in &ids {
                match harness.outcomes.get(id) {
                    Some(Outcome::Done { usage, .. }) => {
                        generated += u64::from(usage.completion_tokens);
                        last_first_token_ms =
                            last_first_token_ms.max(usage.first_token_ms.unwrap_or(0));
                    }
                    Some(Outcome::Error(message)) => bail!("{id} failed: {message}"),
                    None => bail!("{id}: no answer"),
                }
            }
            let decode_s = (wall - last_first_token_ms as f64 / 1000.0).max(1e-9);
            Ok((
                generated,
                wall,
                generated.saturating_sub(ids.len() as u64),
                decode_s,
            ))
        };
    // Warm up (first evaluation allocates buffers).
    request(&mut harness, &[0])?;
    println!(
        "level | one after another: tokens, s, tok/s (decode only) | at once: tokens, s, tok/s (decode only) | speed-up"
    );
    for &level in &levels {
        let prompts: Vec<usize> = (0..level as usize).collect();
        let (mut seq_tokens, mut seq_wall, mut seq_dec_tokens, mut seq_dec_s) =
            (0u64, 0f64, 0u64, 0f64);
        for &n in &prompts {
            let (t, w, dt, ds) = request(&mut harness, &[n])?;
            seq_tokens += t;
            seq_wall += w;
            seq_dec_tokens += dt;
            seq_dec_s += ds;
        }
        let (par_tokens, par_wall, par_dec_tokens, par_dec_s) = request(&mut harness, &prompts)?;
        let seq_rate = seq_tokens as f64 / seq_wall.max(1e-9);
        let par_rate = par_tokens as f64 / par_wall.max(1e-9);
        let seq_dec = seq_dec_tokens as f64 / seq_dec_s;
        let par_dec = par_dec_tokens as f64 / par_dec_s;
        println!(
            "{level:>5} | {seq_tokens:>6} {seq_wall:>7.2} {seq_rate:>7.1} ({seq_dec:>5.1}) | {par_tokens:>6} {par_wall:>7.2} {par_rate:>7.1} ({par_dec:>5.1}) | {:.2}x",
            par_rate / seq_rate.max(1e-9)
        );
        println!(
            "{}",
            serde_json::json!({
                "level": level,
                "sequential": {"tokens": seq_tokens, "wall_s": seq_wall, "tok_s": seq_rate, "decode_tok_s": seq_dec},
                "concurrent": {"tokens": par_tokens, "wall_s": par_wall, "tok_s": par_rate, "decode_tok_s": par_dec},
                "threads": common.threads,
            })
        );
    }
    Ok(true)
}
