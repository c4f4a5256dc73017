//! The engine thread: owns the llama.cpp model, its context and the KV-cache bookkeeping.
//!
//! KV-cache reuse: the context keeps one sequence; `cache` lists the tokens whose keys and
//! values it holds. A new prompt shares a prefix with it (the previous turn's prompt and
//! answer, when it is the same session); only the tokens after that prefix are evaluated.

use crate::prompt::{fit, FitError};
use crate::text::TextStream;
use crate::{Job, Shared};
use baton_core::{ChatMessage, FinishReason, SamplingParams};
use baton_llm::protocol::{ErrorKind, LoadedModel, WorkerEvent, WorkerUsage};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Most tokens evaluated per decode call.
const N_BATCH: u32 = 512;

/// A chat request handed to the engine thread.
pub struct ChatJob {
    /// Request id.
    pub id: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters.
    pub params: SamplingParams,
    /// Session key (logged; the cache is shared by prefix).
    pub session: Option<String>,
    /// Set by `cancel`.
    pub cancel: Arc<AtomicBool>,
    /// When the reader received it.
    pub received: Instant,
}

type Failure = (ErrorKind, String);

/// The engine thread's main loop.
pub fn run(backend: LlamaBackend, rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Load {
                id,
                path,
                n_ctx,
                n_gpu_layers,
                chat_template,
                n_threads,
            } => {
                let started = Instant::now();
                let model = match load_model(&backend, &path, n_gpu_layers) {
                    Ok(model) => model,
                    Err((kind, message)) => {
                        shared.error(Some(&id), kind, message);
                        continue;
                    }
                };
                let load = Loaded {
                    id,
                    path,
                    n_ctx,
                    n_gpu_layers,
                    chat_template,
                    n_threads,
                    started,
                };
                next = serve(&backend, &model, load, &rx, &shared);
                shared.stats_mut_model(None);
            }
            Job::Unload { id } => shared.emit(&WorkerEvent::Unloaded { id }),
            Job::Chat(job) => {
                shared.error(
                    Some(&job.id),
                    ErrorKind::NoModel,
                    "no model is loaded in this worker; send load first",
                );
                shared.finished(&job.id);
            }
        }
    }
}

impl Shared {
    fn stats_mut_model(&self, model: Option<PathBuf>) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.model = model;
        stats.kv_tokens = 0;
    }
}

struct Loaded {
    id: String,
    path: PathBuf,
    n_ctx: u32,
    n_gpu_layers: u32,
    chat_template: Option<String>,
    n_threads: Option<u32>,
    started: Instant,
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn load_model(
    backend: &LlamaBackend,
    path: &Path,
    n_gpu_layers: u32,
) -> Result<LlamaModel, Failure> {
    // Validate in Rust first: llama.cpp's own checks are weaker and its messages terse.
    let info = baton_llm::gguf::inspect(path).map_err(|e| (ErrorKind::ModelLoad, e.to_string()))?;
    tracing::info!(
        path = %path.display(),
        architecture = info.architecture.as_deref().unwrap_or("?"),
        parameters = info.parameters,
        quantization = info.quantization.as_deref().unwrap_or("?"),
        "loading model"
    );
    let params = LlamaModelParams::default().with_n_gpu_layers(n_gpu_layers);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        LlamaModel::load_from_file(backend, path, &params)
    }));
    match result {
        Ok(Ok(model)) => Ok(model),
        Ok(Err(err)) => Err((
            ErrorKind::ModelLoad,
            format!(
                "llama.cpp could not load {} ({err}); the architecture `{}` may be unsupported by this llama.cpp build or the file is damaged: see the worker log",
                path.display(),
                info.architecture.as_deref().unwrap_or("unknown")
            ),
        )),
        Err(_) => Err((
            ErrorKind::ModelLoad,
            format!("loading {} panicked; see the worker log", path.display()),
        )),
    }
}

/// Serve requests with `model` loaded until another load, an unload or the end of input.
/// Returns the job that ended the service, if it must be handled by the caller.
fn serve(
    backend: &LlamaBackend,
    model: &LlamaModel,
    load: Loaded,
    rx: &mpsc::Receiver<Job>,
    shared: &Shared,
) -> Option<Job> {
    let n_ctx = if load.n_ctx == 0 {
        model.n_ctx_train()
    } else {
        load.n_ctx
    };
    let threads = match load.n_threads.filter(|n| *n > 0) {
        Some(n) => n.min(256) as i32,
        // llama.cpp's own default is the physical core count, usually half the logical
        // count; on small busy machines fewer threads also avoid spin-wait contention
        // (measured: 1 thread ~110 tok/s vs 2 threads ~6 tok/s on a loaded 2-core VM).
        None => (std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            / 2)
        .clamp(1, 16) as i32,
    };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(N_BATCH)
        .with_n_ubatch(N_BATCH)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(err) => {
            shared.error(
                Some(&load.id),
                ErrorKind::ModelLoad,
                format!(
                    "cannot create a {n_ctx}-token context for {}: {err}; try a smaller context",
                    load.path.display()
                ),
            );
            return None;
        }
    };
    let template = match &load.chat_template {
        Some(text) => LlamaChatTemplate::new(text).ok(),
        None => model.chat_template(None).ok(),
    };
    let architecture = model.meta_val_str("general.architecture").ok();
    let metadata = LoadedModel {
        path: load.path.clone(),
        name: model.meta_val_str("general.name").ok(),
        architecture,
        parameters: model.n_params(),
        size_bytes: model.size(),
        n_layer: model.n_layer(),
        n_vocab: u32::try_from(model.n_vocab()).unwrap_or(0),
        n_ctx_train: model.n_ctx_train(),
        n_ctx: ctx.n_ctx(),
        n_gpu_layers: load.n_gpu_layers,
        has_chat_template: template.is_some(),
        load_ms: load.started.elapsed().as_millis() as u64,
    };
    tracing::info!(?metadata, "model loaded");
    shared.emit(&WorkerEvent::Loaded {
        id: load.id.clone(),
        metadata,
    });
    shared.stats_mut_model(Some(load.path.clone()));

    let label = file_label(&load.path);
    let mut cache: Vec<LlamaToken> = Vec::new();
    loop {
        let job = rx.recv().ok()?;
        match job {
            Job::Chat(job) => {
                let id = job.id.clone();
                let span = tracing::info_span!("chat", request_id = %id, session = job.session.as_deref().unwrap_or(""));
                let _enter = span.enter();
                {
                    let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
                    stats.busy = true;
                    stats.requests += 1;
                }
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    chat(
                        model,
                        &mut ctx,
                        template.as_ref(),
                        &label,
                        &mut cache,
                        &job,
                        shared,
                    )
                }));
                let failure = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(failure)) => Some(failure),
                    Err(_) => {
                        // State of the cache is unknown after a panic: start afresh.
                        ctx.clear_kv_cache();
                        cache.clear();
                        Some((
                            ErrorKind::Internal,
                            "generation panicked; see the worker log".to_owned(),
                        ))
                    }
                };
                {
                    let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
                    stats.busy = false;
                    stats.kv_tokens = cache.len() as u32;
                }
                if let Some((kind, message)) = failure {
                    shared.error(Some(&id), kind, message);
                }
                shared.finished(&id);
            }
            Job::Unload { id } => {
                drop(ctx);
                shared.emit(&WorkerEvent::Unloaded { id });
                return None;
            }
            load @ Job::Load { .. } => return Some(load),
        }
    }
}

/// Repetition penalty over the last tokens: small models (SmolLM2-135M) otherwise fall
/// into loops like "hehehe…" at ordinary temperatures.
const REPEAT_LAST_N: i32 = 64;
const REPEAT_PENALTY: f32 = 1.15;

fn make_sampler(params: &SamplingParams, n_vocab: i32) -> LlamaSampler {
    if params.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let seed = params.seed.map(|s| s as u32).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0)
    });
    let mut chain = vec![LlamaSampler::penalties(
        n_vocab,
        REPEAT_LAST_N,
        REPEAT_PENALTY,
        0.0,
        0.0,
    )];
    if params.top_k > 0 {
        chain.push(LlamaSampler::top_k(
            i32::try_from(params.top_k).unwrap_or(i32::MAX),
        ));
    }
    if params.top_p > 0.0 && params.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(params.top_p, 1));
    }
    chain.push(LlamaSampler::temp(params.temperature));
    chain.push(LlamaSampler::dist(seed));
    LlamaSampler::chain_simple(chain)
}

fn internal(what: &str, err: impl std::fmt::Display) -> Failure {
    (ErrorKind::Internal, format!("{what}: {err}"))
}

fn chat(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    template: Option<&LlamaChatTemplate>,
    label: &str,
    cache: &mut Vec<LlamaToken>,
    job: &ChatJob,
    shared: &Shared,
) -> Result<(), Failure> {
    let template = template.ok_or_else(|| {
        (
            ErrorKind::NoChatTemplate,
            format!(
                "model {label} has no chat template; pass --chat-template (for example `chatml`) or use completion"
            ),
        )
    })?;
    if job.messages.is_empty() {
        return Err((ErrorKind::BadRequest, "the conversation is empty".into()));
    }
    let vocab = model.vocab();
    let n_ctx = ctx.n_ctx() as usize;
    let max_tokens = job.params.max_tokens.max(1) as usize;
    let reserve = max_tokens.min(n_ctx / 2);
    let bos_text = vocab
        .text(vocab.bos())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| !t.is_empty());

    let render = |messages: &[ChatMessage]| -> Result<(Vec<LlamaToken>, usize), Failure> {
        let chat: Vec<LlamaChatMessage> = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                (
                    ErrorKind::BadRequest,
                    format!("message text is invalid: {e}"),
                )
            })?;
        let prompt = model.apply_chat_template(template, &chat, true).map_err(|e| {
            (
                ErrorKind::NoChatTemplate,
                format!("the chat template of {label} cannot be applied by llama.cpp ({e}); pass a supported one with --chat-template (for example `chatml`)"),
            )
        })?;
        let add_bos =
            vocab.should_add_bos() && !bos_text.as_deref().is_some_and(|b| prompt.starts_with(b));
        let tokens = vocab.tokenize(prompt.as_bytes(), add_bos, true);
        let n = tokens.len();
        Ok((tokens, n))
    };
    let fitted = match fit(&job.messages, n_ctx, reserve, render) {
        Ok(fitted) => fitted,
        Err(FitError::Render(failure)) => return Err(failure),
        Err(FitError::TooLong { tokens }) => {
            return Err((
                ErrorKind::ContextOverflow,
                format!(
                    "the prompt is {tokens} tokens but the context window of {label} is {n_ctx}: even with all earlier turns dropped it does not fit; shorten the message or load the model with a larger context"
                ),
            ))
        }
    };
    if fitted.dropped > 0 {
        let message = format!(
            "dropped the {} oldest turn(s) of the conversation to fit the {n_ctx}-token context",
            fitted.dropped
        );
        tracing::info!(dropped = fitted.dropped, "{message}");
        shared.emit(&WorkerEvent::Notice {
            id: job.id.clone(),
            message,
        });
    }
    let tokens = fitted.rendered;
    if tokens.is_empty() {
        return Err((ErrorKind::BadRequest, "the prompt is empty".into()));
    }

    // Reuse the common prefix of the KV cache; at least the last prompt token is evaluated
    // again so that its logits exist.
    let common = cache
        .iter()
        .zip(&tokens)
        .take_while(|(a, b)| a == b)
        .count();
    let mut keep = common.min(tokens.len() - 1);
    let removed = ctx
        .clear_kv_cache_seq(Some(0), Some(keep as u32), None)
        .unwrap_or(false);
    if !removed {
        ctx.clear_kv_cache();
        keep = 0;
    }
    cache.truncate(keep);
    tracing::debug!(
        prompt_tokens = tokens.len(),
        cached = keep,
        "evaluating prompt"
    );

    let eval_start = Instant::now();
    let mut batch = LlamaBatch::new(N_BATCH as usize, 1);
    let last_index = tokens.len() - 1;
    for (chunk_no, chunk) in tokens[keep..].chunks(N_BATCH as usize).enumerate() {
        if job.cancel.load(Ordering::SeqCst) {
            return done(
                job,
                shared,
                String::new(),
                usage(&tokens, keep, 0, eval_start, None, &fitted.dropped),
                FinishReason::Cancelled,
            );
        }
        batch.clear();
        for (offset, token) in chunk.iter().enumerate() {
            let pos = keep + chunk_no * N_BATCH as usize + offset;
            batch
                .add(*token, pos as i32, &[0], pos == last_index)
                .map_err(|e| internal("batch", e))?;
        }
        if let Err(err) = ctx.decode(&mut batch) {
            ctx.clear_kv_cache();
            cache.clear();
            return Err(internal("prompt evaluation failed", err));
        }
        cache.extend_from_slice(chunk);
    }
    let prompt_eval_ms = eval_start.elapsed().as_millis() as u64;

    let gen_start = Instant::now();
    let mut sampler = make_sampler(&job.params, model.n_vocab());
    let mut stream = TextStream::new(&job.params.stop);
    let max_new = max_tokens.min(n_ctx - tokens.len());
    let mut generated = 0usize;
    let mut logits_index = batch.n_tokens() - 1;
    let mut first_token_ms = None;
    let delay = test_delay();
    let emit = |text: String, first_token_ms: &mut Option<u64>| {
        if text.is_empty() {
            return;
        }
        let t_ms = job.received.elapsed().as_millis() as u64;
        first_token_ms.get_or_insert(t_ms);
        shared.emit(&WorkerEvent::Token {
            id: job.id.clone(),
            text,
            t_ms,
        });
    };
    let finish = loop {
        if job.cancel.load(Ordering::SeqCst) {
            break FinishReason::Cancelled;
        }
        if generated >= max_new {
            break FinishReason::Length;
        }
        let token = sampler.sample(ctx, logits_index);
        if vocab.is_eog(token) {
            break FinishReason::Stop;
        }
        generated += 1;
        let piece = vocab.token_to_piece(token, false, None);
        let text = stream.push(&piece);
        emit(text, &mut first_token_ms);
        if stream.stopped() {
            break FinishReason::Stop;
        }
        let pos = cache.len();
        if pos + 1 >= n_ctx || generated >= max_new {
            break FinishReason::Length;
        }
        batch.clear();
        batch
            .add(token, pos as i32, &[0], true)
            .map_err(|e| internal("batch", e))?;
        if let Err(err) = ctx.decode(&mut batch) {
            ctx.clear_kv_cache();
            cache.clear();
            return Err(internal("generation failed", err));
        }
        cache.push(token);
        logits_index = 0;
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
    };
    let rest = stream.finish();
    emit(rest, &mut first_token_ms);
    let gen_ms = gen_start.elapsed().as_millis() as u64;
    let mut u = usage(
        &tokens,
        keep,
        generated,
        eval_start,
        first_token_ms,
        &fitted.dropped,
    );
    u.prompt_eval_ms = prompt_eval_ms;
    u.gen_ms = gen_ms;
    {
        let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.tokens_generated += generated as u64;
        stats.cached_prompt_tokens += keep as u64;
        stats.kv_tokens = cache.len() as u32;
    }
    tracing::info!(
        prompt_tokens = tokens.len(),
        cached_prompt_tokens = keep,
        completion_tokens = generated,
        prompt_eval_ms,
        gen_ms,
        ?finish,
        "chat finished"
    );
    done(job, shared, stream.text().to_owned(), u, finish)
}

fn usage(
    tokens: &[LlamaToken],
    cached: usize,
    generated: usize,
    eval_start: Instant,
    first_token_ms: Option<u64>,
    dropped: &u32,
) -> WorkerUsage {
    WorkerUsage {
        prompt_tokens: tokens.len() as u32,
        cached_prompt_tokens: cached as u32,
        completion_tokens: generated as u32,
        prompt_eval_ms: eval_start.elapsed().as_millis() as u64,
        gen_ms: 0,
        first_token_ms,
        dropped_turns: *dropped,
    }
}

fn done(
    job: &ChatJob,
    shared: &Shared,
    text: String,
    usage: WorkerUsage,
    finish_reason: FinishReason,
) -> Result<(), Failure> {
    shared.stats.lock().unwrap_or_else(|p| p.into_inner()).busy = false;
    shared.emit(&WorkerEvent::Done {
        id: job.id.clone(),
        text,
        usage,
        finish_reason,
    });
    Ok(())
}

/// Test knob: `BATON_LLM_WORKER_TEST_DELAY_MS` sleeps after each generated token, so tests
/// with a tiny model can cancel or kill mid-generation deterministically.
fn test_delay() -> Option<std::time::Duration> {
    std::env::var("BATON_LLM_WORKER_TEST_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis)
}
