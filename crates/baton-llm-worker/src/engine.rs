//! The engine thread: owns the llama.cpp model and context, and serves several chat
//! requests at once with multi-sequence batching (continuous batching, as llama.cpp's
//! server does it).
//!
//! **Slots.** A loaded model has `n_parallel` slots; slot *i* owns llama.cpp sequence *i*.
//! A request holds one slot from admission to its end; requests that find every slot busy
//! wait in a first-in-first-out queue. Each slot keeps the tokens its sequence holds in the
//! KV cache after its request ends, so the next request whose prompt shares a prefix with
//! them (a session's next turn) evaluates only the rest: a new request takes the free slot
//! its session used last, else one whose cache it mostly reuses, else an empty slot, else
//! the one unused the longest ([`Engine::choose_slot`]).
//!
//! **One KV pool.** The context is created with `kv_unified`: one pool of `n_ctx` cells
//! that all sequences share, so every request may use up to `n_ctx` tokens, as with one
//! slot. (Partitioned streams would give each slot only `n_ctx / n_parallel`: a 4096-token
//! model loaded with 4 slots would refuse a 2000-token conversation it handles alone, and
//! the memory a model needs would no longer follow from `n_ctx`.) The price is that slots
//! compete for cells; the scheduler accounts for them (see [`Engine::make_room`]): idle
//! slots' caches are dropped first (least recently used), a request starts evaluating its
//! prompt only when its whole prompt fits, and when running requests outgrow the pool the
//! one admitted last is preempted: its sequence is cleared and it waits, with its sampler,
//! text and generated tokens kept, until there is room to evaluate its prompt and output
//! again and go on (vLLM's recompute preemption).
//!
//! **Steps.** Each step admits queued requests into free slots, then builds one
//! [`LlamaBatch`]: one token for every generating slot, and prompt chunks for slots still
//! evaluating their prompt, first come first served, within [`N_BATCH`] tokens per step (and
//! at most `PROMPT_CHUNK_WHILE_GENERATING` prompt tokens while others generate) so a long
//! prompt does not stall the others; one `decode`; then every slot whose last token
//! was in the batch samples at its own logits index with its own sampler, streams its
//! text, and ends on end-of-generation, a stop string, `max_tokens`, a full context or a
//! cancel. A decode failure fails the requests in that batch (their sequences are
//! cleared); a fatal one fails every request and resets the cache. A panic in one request's
//! preparation or sampling fails that request only.

use crate::prompt::{fit, FitError};
use crate::sampling::{self, Failure, SlotSampler};
use crate::text::TextStream;
use crate::{Job, Shared};
use baton_core::{ChatMessage, FinishReason, SamplingParams};
use baton_llm::protocol::{ErrorKind, LoadedModel, WorkerEvent, WorkerUsage, MAX_PARALLEL};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most tokens evaluated per decode call (all slots together).
pub const N_BATCH: u32 = 512;

/// Most prompt tokens per step while other requests are generating: a step's duration is
/// the pause between their tokens (and how long a cancel may wait), so a long prompt is
/// evaluated in smaller pieces then; alone it takes [`N_BATCH`] at a time.
const PROMPT_CHUNK_WHILE_GENERATING: usize = 128;

/// A chat request handed to the engine thread.
pub struct ChatJob {
    /// Request id.
    pub id: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters.
    pub params: SamplingParams,
    /// Session key: its next turn prefers the slot that holds its cache.
    pub session: Option<String>,
    /// Set by `cancel`.
    pub cancel: Arc<AtomicBool>,
    /// When the reader received it.
    pub received: Instant,
}

impl ChatJob {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

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
                n_parallel,
            } => {
                let started = Instant::now();
                let n_parallel = match n_parallel {
                    0 => 1,
                    n if n > MAX_PARALLEL => {
                        shared.error(
                            Some(&id),
                            ErrorKind::BadRequest,
                            format!("n_parallel {n} is too large: at most {MAX_PARALLEL} requests can run at once"),
                        );
                        continue;
                    }
                    n => n,
                };
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
                    n_parallel,
                    started,
                };
                next = serve(&backend, &model, load, &rx, &shared);
                shared.stats_mut_model(None, 0);
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
    fn stats_mut_model(&self, model: Option<PathBuf>, n_parallel: u32) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.model = model;
        stats.kv_tokens = 0;
        stats.n_parallel = n_parallel;
        stats.busy = false;
        stats.active_requests = 0;
        stats.queued_requests = 0;
    }
}

struct Loaded {
    id: String,
    path: PathBuf,
    n_ctx: u32,
    n_gpu_layers: u32,
    chat_template: Option<String>,
    n_threads: Option<u32>,
    n_parallel: u32,
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

/// CPU threads: the request's, else half the available cores.
fn thread_count(requested: Option<u32>) -> i32 {
    match requested.filter(|n| *n > 0) {
        Some(n) => n.min(256) as i32,
        // llama.cpp's own default is the physical core count, usually half the logical
        // count; on small busy machines fewer threads also avoid spin-wait contention
        // (measured: 1 thread ~110 tok/s vs 2 threads ~6 tok/s on a loaded 2-core VM).
        None => (std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            / 2)
        .clamp(1, 16) as i32,
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
    let threads = thread_count(load.n_threads);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(N_BATCH)
        .with_n_ubatch(N_BATCH)
        .with_n_seq_max(load.n_parallel)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let ctx = match model.new_context(backend, params) {
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
    let metadata = LoadedModel {
        path: load.path.clone(),
        name: model.meta_val_str("general.name").ok(),
        architecture: model.meta_val_str("general.architecture").ok(),
        parameters: model.n_params(),
        size_bytes: model.size(),
        n_layer: model.n_layer(),
        n_vocab: u32::try_from(model.n_vocab()).unwrap_or(0),
        n_ctx_train: model.n_ctx_train(),
        n_ctx: ctx.n_ctx(),
        n_gpu_layers: load.n_gpu_layers,
        n_parallel: load.n_parallel,
        has_chat_template: template.is_some(),
        load_ms: load.started.elapsed().as_millis() as u64,
    };
    tracing::info!(?metadata, threads, "model loaded");
    shared.emit(&WorkerEvent::Loaded {
        id: load.id.clone(),
        metadata,
    });
    shared.stats_mut_model(Some(load.path.clone()), load.n_parallel);

    let mut engine = Engine::new(
        model,
        ctx,
        template,
        file_label(&load.path),
        load.n_parallel,
        shared,
    );
    // A load or unload waits until the requests before it have finished.
    let mut deferred: Option<Job> = None;
    let mut closed = false;
    loop {
        if deferred.is_none() && !closed {
            if engine.idle() {
                match rx.recv() {
                    Ok(job) => deferred = engine.take(job),
                    Err(_) => closed = true,
                }
            }
            while deferred.is_none() && !closed {
                match rx.try_recv() {
                    Ok(job) => deferred = engine.take(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => closed = true,
                }
            }
        }
        if engine.idle() {
            match deferred.take() {
                Some(Job::Unload { id }) => {
                    drop(engine);
                    shared.emit(&WorkerEvent::Unloaded { id });
                    return None;
                }
                Some(job) => return Some(job),
                None if closed => return None,
                None => continue,
            }
        }
        engine.step();
    }
}

/// A request waiting for a slot.
struct Waiting {
    job: ChatJob,
    /// Whether it was told it is queued.
    notified: bool,
}

/// A request in a slot.
struct Run {
    job: ChatJob,
    span: tracing::Span,
    /// Tokens that must be in the sequence before the next sample: the prompt, then every
    /// sampled token (the last one not decoded yet).
    want: Vec<LlamaToken>,
    prompt_len: usize,
    /// Prompt tokens reused from the slot's cache at admission.
    cached: usize,
    dropped: u32,
    sampler: SlotSampler,
    stream: TextStream,
    max_new: usize,
    generated: usize,
    /// Admission order (preemption takes the latest first).
    order: u64,
    /// Not decoding: waits for room in the KV cache (new, or preempted).
    waiting: bool,
    /// Told it waits ([`WorkerEvent::Queued`]); told again when it starts.
    notified: bool,
    preemptions: u32,
    eval_start: Instant,
    prompt_eval_ms: Option<u64>,
    gen_start: Option<Instant>,
    first_token_ms: Option<u64>,
}

struct Slot {
    seq: i32,
    /// Tokens whose keys and values sequence `seq` holds, from position 0.
    cache: Vec<LlamaToken>,
    /// Step when it was last used (for least-recently-used choices).
    last_used: u64,
    /// Session of the last request it served.
    session: Option<String>,
    run: Option<Box<Run>>,
}

/// What one slot contributes to a batch.
struct Scheduled {
    slot: usize,
    /// Tokens of `want` added to the batch (from `cache.len()`).
    count: usize,
    /// Batch index of the logits to sample from, when the batch completes `want`.
    logits: Option<i32>,
}

/// The scheduler: slots, queue and the context they share.
struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: Option<LlamaChatTemplate>,
    label: String,
    shared: &'m Shared,
    slots: Vec<Slot>,
    queue: VecDeque<Waiting>,
    batch: LlamaBatch<'static>,
    n_ctx: usize,
    step_no: u64,
    admissions: u64,
    delay: Option<Duration>,
    /// Test knob: the decode call (counted from 1) that fails as if llama.cpp had.
    fail_decode_at: Option<u64>,
    decodes: u64,
}

impl<'m> Engine<'m> {
    fn new(
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        template: Option<LlamaChatTemplate>,
        label: String,
        n_parallel: u32,
        shared: &'m Shared,
    ) -> Self {
        let n_ctx = ctx.n_ctx() as usize;
        Self {
            model,
            ctx,
            template,
            label,
            shared,
            slots: (0..n_parallel)
                .map(|i| Slot {
                    seq: i as i32,
                    cache: Vec::new(),
                    last_used: 0,
                    session: None,
                    run: None,
                })
                .collect(),
            queue: VecDeque::new(),
            batch: LlamaBatch::new(N_BATCH as usize, 1),
            n_ctx,
            step_no: 0,
            admissions: 0,
            delay: test_delay(),
            fail_decode_at: std::env::var("BATON_LLM_WORKER_TEST_FAIL_DECODE")
                .ok()
                .and_then(|v| v.parse().ok()),
            decodes: 0,
        }
    }

    /// No request running or queued.
    fn idle(&self) -> bool {
        self.queue.is_empty() && self.slots.iter().all(|s| s.run.is_none())
    }

    /// Queue a chat; other jobs are returned (they wait until the engine is idle).
    fn take(&mut self, job: Job) -> Option<Job> {
        match job {
            Job::Chat(job) => {
                self.shared.stats_mut().requests += 1;
                self.queue.push_back(Waiting {
                    job,
                    notified: false,
                });
                None
            }
            other => Some(other),
        }
    }

    fn step(&mut self) {
        self.step_no += 1;
        self.drop_cancelled_queue();
        self.admit();
        self.update_stats();
        self.notify_queued();
        for i in 0..self.slots.len() {
            let cancelled = self.slots[i]
                .run
                .as_ref()
                .is_some_and(|r| r.job.cancelled());
            if cancelled {
                self.finish(i, FinishReason::Cancelled);
            }
        }
        if self.slots.iter().any(|s| s.run.is_some()) {
            self.make_room();
            let scheduled = self.build_batch();
            if !scheduled.is_empty() {
                self.decode_and_sample(scheduled);
            }
        }
        self.update_stats();
    }

    fn drop_cancelled_queue(&mut self) {
        let (cancelled, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|w| w.job.cancelled());
        self.queue = kept.into();
        for waiting in cancelled {
            let job = waiting.job;
            tracing::info!(request_id = %job.id, "cancelled while queued");
            self.shared.emit(&WorkerEvent::Done {
                id: job.id.clone(),
                text: String::new(),
                usage: WorkerUsage::default(),
                finish_reason: FinishReason::Cancelled,
            });
            self.shared.finished(&job.id);
        }
    }

    /// Move queued requests into free slots, in order.
    fn admit(&mut self) {
        while self.slots.iter().any(|s| s.run.is_none()) {
            let Some(waiting) = self.queue.pop_front() else {
                break;
            };
            let job = waiting.job;
            let span = tracing::info_span!("chat", request_id = %job.id, session = job.session.as_deref().unwrap_or(""));
            let _enter = span.enter();
            let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| self.prepare(&job)))
                .unwrap_or_else(|_| {
                    Err((
                        ErrorKind::Internal,
                        "preparing the request panicked; see the worker log".to_owned(),
                    ))
                });
            let prepared = match prepared {
                Ok(prepared) => prepared,
                Err((kind, message)) => {
                    self.shared.error(Some(&job.id), kind, message);
                    self.shared.finished(&job.id);
                    continue;
                }
            };
            let slot = self.choose_slot(&prepared.tokens, job.session.as_deref());
            let keep = self.trim_cache(slot, &prepared.tokens);
            self.slots[slot].session = job.session.clone();
            tracing::debug!(
                slot,
                prompt_tokens = prepared.tokens.len(),
                cached = keep,
                "admitted"
            );
            self.admissions += 1;
            let max_new = prepared.max_new;
            drop(_enter);
            self.slots[slot].run = Some(Box::new(Run {
                stream: TextStream::new(&job.params.stop),
                prompt_len: prepared.tokens.len(),
                want: prepared.tokens,
                cached: keep,
                dropped: prepared.dropped,
                sampler: prepared.sampler,
                max_new,
                generated: 0,
                order: self.admissions,
                waiting: true,
                notified: waiting.notified,
                preemptions: 0,
                eval_start: Instant::now(),
                prompt_eval_ms: None,
                gen_start: None,
                first_token_ms: None,
                span,
                job,
            }));
        }
    }

    /// Tell newly queued requests that they wait (after the counters were updated).
    fn notify_queued(&mut self) {
        for (i, waiting) in self.queue.iter_mut().enumerate() {
            if !waiting.notified {
                waiting.notified = true;
                tracing::info!(request_id = %waiting.job.id, position = i + 1, "every slot is busy; queued");
                self.shared.emit(&WorkerEvent::Queued {
                    id: waiting.job.id.clone(),
                    position: i as u32 + 1,
                });
            }
        }
    }

    /// The free slot for a request: the one its session used last, else the one whose
    /// cache it reuses more of than it destroys (the common prefix is longer than the rest
    /// of that cache: a repeated prompt, a shared long system prompt) or, between requests
    /// without a session, that covers most of its prompt, else an empty slot,
    /// else the least recently used. A new conversation that only shares a system prompt's
    /// first words thus leaves other conversations' caches alone.
    fn choose_slot(&self, tokens: &[LlamaToken], session: Option<&str>) -> usize {
        let free = || {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.run.is_none())
        };
        if let Some(session) = session {
            if let Some((i, _)) = free().find(|(_, s)| s.session.as_deref() == Some(session)) {
                return i;
            }
        }
        // Worth taking: it reuses more than it destroys, or (neither belongs to a session:
        // a stateless client repeating its prompt) it covers most of the new prompt.
        let best = free()
            .filter_map(|(i, s)| {
                let common = common_prefix(&s.cache, tokens);
                let reuses_more = 2 * common > s.cache.len();
                let stateless = s.session.is_none() && session.is_none();
                let covers_prompt = common > 0 && 2 * common >= tokens.len();
                (reuses_more || (stateless && covers_prompt)).then_some((common, i))
            })
            .max_by_key(|&(common, i)| (common, std::cmp::Reverse(i)));
        if let Some((_, i)) = best {
            return i;
        }
        free()
            .min_by_key(|(i, s)| (!s.cache.is_empty(), s.last_used, *i))
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Keep the part of the slot's cache shared with `tokens` (never all of `tokens`: the
    /// last prompt token is evaluated again so that its logits exist); returns its length.
    fn trim_cache(&mut self, slot: usize, tokens: &[LlamaToken]) -> usize {
        let s = &mut self.slots[slot];
        let keep = common_prefix(&s.cache, tokens).min(tokens.len().saturating_sub(1));
        if keep < s.cache.len() {
            let removed = self
                .ctx
                .clear_kv_cache_seq(Some(s.seq as u32), Some(keep as u32), None)
                .unwrap_or(false);
            if !removed {
                // Some memories (recurrent models) cannot drop a tail: start the sequence over.
                let _ = self.ctx.clear_kv_cache_seq(Some(s.seq as u32), None, None);
                s.cache.clear();
                return 0;
            }
            s.cache.truncate(keep);
        }
        keep
    }

    /// Drop the whole cache of a slot.
    fn clear_slot(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if !s.cache.is_empty() {
            let _ = self.ctx.clear_kv_cache_seq(Some(s.seq as u32), None, None);
            s.cache.clear();
        }
        if let Some(run) = s.run.as_mut().filter(|r| r.prompt_eval_ms.is_none()) {
            // Its reused prefix is gone: the whole prompt will be evaluated.
            run.cached = 0;
        }
    }

    /// Render, fit and tokenize the conversation, and build the sampler.
    fn prepare(&self, job: &ChatJob) -> Result<Prepared, Failure> {
        let label = &self.label;
        let template = self.template.as_ref().ok_or_else(|| {
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
        let model = self.model;
        let vocab = model.vocab();
        let n_ctx = self.n_ctx;
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
            let add_bos = vocab.should_add_bos()
                && !bos_text.as_deref().is_some_and(|b| prompt.starts_with(b));
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
        let tokens = fitted.rendered;
        if tokens.is_empty() {
            return Err((ErrorKind::BadRequest, "the prompt is empty".into()));
        }
        let max_new = max_tokens.min(n_ctx - tokens.len());
        let (sampler, notices) = sampling::build(model, &job.params, max_new)?;
        if fitted.dropped > 0 {
            let message = format!(
                "dropped the {} oldest turn(s) of the conversation to fit the {n_ctx}-token context",
                fitted.dropped
            );
            tracing::info!(dropped = fitted.dropped, "{message}");
            self.shared.emit(&WorkerEvent::Notice {
                id: job.id.clone(),
                message,
            });
        }
        for message in notices {
            self.shared.emit(&WorkerEvent::Notice {
                id: job.id.clone(),
                message,
            });
        }
        if sampler.constrained() {
            tracing::debug!("output constrained by a grammar");
        }
        Ok(Prepared {
            tokens,
            dropped: fitted.dropped,
            max_new,
            sampler,
        })
    }

    /// Cells the slots need after this step's decode: running requests their whole
    /// `want`, everything else what it holds now.
    fn occupancy(&self) -> usize {
        self.slots
            .iter()
            .map(|s| match &s.run {
                Some(run) if !run.waiting => run.want.len(),
                _ => s.cache.len(),
            })
            .sum()
    }

    /// Keep the slots within the KV pool: free cells when running requests outgrow it,
    /// then let waiting requests (new or preempted) start, oldest first, when their whole
    /// prompt fits.
    fn make_room(&mut self) {
        let pool = self.n_ctx;
        while self.occupancy() > pool {
            if let Some(i) = self.evictable(None) {
                self.clear_slot(i);
                continue;
            }
            // Preempt the running request admitted last (never the only one: a single
            // request always fits, its output stops at n_ctx).
            let running: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].run.as_ref().is_some_and(|r| !r.waiting))
                .collect();
            if running.len() <= 1 {
                break;
            }
            let Some(&victim) = running
                .iter()
                .max_by_key(|&&i| self.slots[i].run.as_ref().map_or(0, |r| r.order))
            else {
                break;
            };
            self.preempt(victim);
        }
        loop {
            let next = (0..self.slots.len())
                .filter(|&i| self.slots[i].run.as_ref().is_some_and(|r| r.waiting))
                .min_by_key(|&i| self.slots[i].run.as_ref().map_or(0, |r| r.order));
            let Some(i) = next else { break };
            let (need, steps) = {
                let run = self.slots[i]
                    .run
                    .as_ref()
                    .map(|r| r.want.len())
                    .unwrap_or(0);
                let need = run.saturating_sub(self.slots[i].cache.len());
                (need, need.div_ceil(PROMPT_CHUNK_WHILE_GENERATING))
            };
            let running = self
                .slots
                .iter()
                .filter(|s| s.run.as_ref().is_some_and(|r| !r.waiting))
                .count();
            // Room for its prompt, and for the others to grow while it is evaluated.
            let fits = |e: &Self| e.occupancy() + need + running * steps <= pool;
            let reclaimable: usize = (0..self.slots.len())
                .filter(|&j| j != i && self.slots[j].run.as_ref().is_none_or(|r| r.waiting))
                .map(|j| self.slots[j].cache.len())
                .sum();
            if running > 0 && self.occupancy() - reclaimable + need + running * steps > pool {
                // Even dropping every idle cache would not make room: wait, and keep them.
                break;
            }
            while !fits(self) {
                match self.evictable(Some(i)) {
                    Some(j) => self.clear_slot(j),
                    None => break,
                }
            }
            if !fits(self) && running > 0 {
                break;
            }
            if let Some(run) = self.slots[i].run.as_mut() {
                run.waiting = false;
                if run.notified {
                    run.notified = false;
                    self.shared.emit(&WorkerEvent::Admitted {
                        id: run.job.id.clone(),
                    });
                }
                if run.preemptions > 0 {
                    let _e = run.span.enter();
                    tracing::info!(
                        tokens = run.want.len(),
                        "resuming after preemption: evaluating the prompt and output so far again"
                    );
                }
            }
        }
        // Those still waiting for room (admitted, or preempted) are told so, once.
        let mut waiting: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].run.as_ref().is_some_and(|r| r.waiting))
            .collect();
        waiting.sort_by_key(|&i| self.slots[i].run.as_ref().map_or(0, |r| r.order));
        for (rank, i) in waiting.into_iter().enumerate() {
            if let Some(run) = self.slots[i].run.as_mut().filter(|r| !r.notified) {
                run.notified = true;
                let _e = run.span.enter();
                tracing::info!(
                    position = rank + 1,
                    "waiting for room in the shared KV cache"
                );
                self.shared.emit(&WorkerEvent::Queued {
                    id: run.job.id.clone(),
                    position: rank as u32 + 1,
                });
            }
        }
    }

    /// A slot whose cache can be dropped: an idle one (least recently used first), else a
    /// waiting request's other than `except` (admitted last first).
    fn evictable(&self, except: Option<usize>) -> Option<usize> {
        let idle = (0..self.slots.len())
            .filter(|&i| self.slots[i].run.is_none() && !self.slots[i].cache.is_empty())
            .min_by_key(|&i| self.slots[i].last_used);
        idle.or_else(|| {
            (0..self.slots.len())
                .filter(|&i| {
                    Some(i) != except
                        && !self.slots[i].cache.is_empty()
                        && self.slots[i].run.as_ref().is_some_and(|r| r.waiting)
                })
                .max_by_key(|&i| self.slots[i].run.as_ref().map_or(0, |r| r.order))
        })
    }

    fn preempt(&mut self, slot: usize) {
        self.shared.stats_mut().preemptions += 1;
        if let Some(run) = self.slots[slot].run.as_mut() {
            run.waiting = true;
            run.preemptions += 1;
            let _e = run.span.enter();
            tracing::info!(
                tokens = run.want.len(),
                pool = self.n_ctx,
                "the shared KV cache is full: preempting this request until there is room"
            );
        }
        self.clear_slot(slot);
    }

    /// One token for every generating slot, then prompt chunks, oldest request first.
    fn build_batch(&mut self) -> Vec<Scheduled> {
        self.batch.clear();
        let mut order: Vec<(bool, u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let run = s.run.as_ref().filter(|r| !r.waiting)?;
                let need = run.want.len() - s.cache.len();
                (need > 0).then_some((need > 1, run.order, i))
            })
            .collect();
        order.sort_unstable();
        let generating = order.iter().filter(|(prompt, _, _)| !prompt).count();
        let mut budget = N_BATCH as usize;
        let mut prompt_budget = if generating > 0 {
            PROMPT_CHUNK_WHILE_GENERATING
        } else {
            N_BATCH as usize
        };
        let mut scheduled = Vec::new();
        for (_, _, i) in order {
            if budget == 0 {
                break;
            }
            let slot = &self.slots[i];
            let Some(run) = slot.run.as_ref() else {
                continue;
            };
            let start = slot.cache.len();
            let need = run.want.len() - start;
            let count = if need > 1 {
                let count = need.min(budget).min(prompt_budget);
                prompt_budget -= count;
                count
            } else {
                need.min(budget)
            };
            if count == 0 {
                continue;
            }
            let completes = start + count == run.want.len();
            let mut logits = None;
            for (offset, token) in run.want[start..start + count].iter().enumerate() {
                let last = completes && offset + 1 == count;
                if last {
                    logits = Some(self.batch.n_tokens());
                }
                if let Err(err) = self
                    .batch
                    .add(*token, (start + offset) as i32, &[slot.seq], last)
                {
                    tracing::error!(%err, "batch full");
                    break;
                }
            }
            budget -= count;
            scheduled.push(Scheduled {
                slot: i,
                count,
                logits,
            });
        }
        scheduled
    }

    fn decode_and_sample(&mut self, scheduled: Vec<Scheduled>) {
        self.decodes += 1;
        let result = if self.fail_decode_at == Some(self.decodes) {
            tracing::warn!("BATON_LLM_WORKER_TEST_FAIL_DECODE: failing this decode");
            Ok(Err(DecodeError::Unknown(-3)))
        } else {
            std::panic::catch_unwind(AssertUnwindSafe(|| self.ctx.decode(&mut self.batch)))
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(DecodeError::NoKvCacheSlot)) if scheduled.len() > 1 => {
                // Nothing was kept; the accounting missed (fragmentation?): make room by
                // preempting the latest request in the batch and retry next step.
                let victim = scheduled
                    .iter()
                    .map(|s| s.slot)
                    .max_by_key(|&i| self.slots[i].run.as_ref().map_or(0, |r| r.order));
                tracing::warn!("llama.cpp found no room in the KV cache for the batch");
                if let Some(victim) = victim {
                    self.preempt(victim);
                }
                return;
            }
            Ok(Err(err)) => {
                let fatal = matches!(err, DecodeError::Unknown(code) if code < -1);
                let message = format!("llama.cpp could not evaluate the batch: {err}");
                tracing::error!(%message, fatal, "decode failed");
                self.fail_batch(&scheduled, &message, fatal);
                return;
            }
            Err(_) => {
                self.fail_batch(&scheduled, "evaluating the batch panicked", true);
                return;
            }
        }
        let mut sampled = false;
        for s in scheduled {
            let slot = &mut self.slots[s.slot];
            let Some(run) = slot.run.as_ref() else {
                continue;
            };
            let start = slot.cache.len();
            slot.cache
                .extend_from_slice(&run.want[start..start + s.count]);
            slot.last_used = self.step_no;
            if let Some(index) = s.logits {
                sampled = true;
                self.sample(s.slot, index);
            }
        }
        if sampled {
            if let Some(delay) = self.delay {
                std::thread::sleep(delay);
            }
        }
    }

    /// Fail the requests of a failed batch and clear their sequences; when the context is
    /// unusable (`reset`), fail every request and clear the whole cache.
    fn fail_batch(&mut self, scheduled: &[Scheduled], message: &str, reset: bool) {
        let victims: Vec<usize> = if reset {
            (0..self.slots.len())
                .filter(|&i| self.slots[i].run.is_some())
                .collect()
        } else {
            scheduled.iter().map(|s| s.slot).collect()
        };
        for i in victims {
            self.fail(
                i,
                (
                    ErrorKind::Internal,
                    format!("generation failed: {message}; the request can be retried"),
                ),
            );
        }
        if reset {
            self.ctx.clear_kv_cache();
            for slot in &mut self.slots {
                slot.cache.clear();
            }
        }
    }

    /// Sample the next token of the request in `slot` from logits `index`.
    fn sample(&mut self, slot: usize, index: i32) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.sample_inner(slot, index)))
            .unwrap_or_else(|_| {
                Err((
                    ErrorKind::Internal,
                    "generation panicked; see the worker log".to_owned(),
                ))
            });
        match outcome {
            Ok(None) => {}
            Ok(Some(reason)) => self.finish(slot, reason),
            Err(failure) => self.fail(slot, failure),
        }
    }

    /// Returns the finish reason when the request ends here.
    fn sample_inner(&mut self, slot: usize, index: i32) -> Result<Option<FinishReason>, Failure> {
        let vocab = self.model.vocab();
        let n_ctx = self.n_ctx;
        let shared = self.shared;
        let Some(run) = self.slots[slot].run.as_mut() else {
            return Ok(None);
        };
        let _enter = run.span.clone().entered();
        if run.prompt_eval_ms.is_none() {
            run.prompt_eval_ms = Some(run.eval_start.elapsed().as_millis() as u64);
            run.gen_start = Some(Instant::now());
        }
        if run.generated >= run.max_new {
            return Ok(Some(FinishReason::Length));
        }
        let token = run.sampler.sample(&self.ctx, index)?;
        if vocab.is_eog(token) {
            return Ok(Some(FinishReason::Stop));
        }
        run.generated += 1;
        let piece = vocab.token_to_piece(token, false, None);
        let text = run.stream.push(&piece);
        emit_text(shared, run, text);
        if run.stream.stopped() {
            return Ok(Some(FinishReason::Stop));
        }
        let pos = run.want.len();
        if pos + 1 >= n_ctx || run.generated >= run.max_new {
            return Ok(Some(FinishReason::Length));
        }
        run.want.push(token);
        Ok(None)
    }

    /// End the request in `slot` normally; its slot keeps the cache for the next one.
    fn finish(&mut self, slot: usize, finish_reason: FinishReason) {
        let Some(mut run) = self.slots[slot].run.take() else {
            return;
        };
        self.slots[slot].last_used = self.step_no;
        let _enter = run.span.clone().entered();
        let rest = run.stream.finish();
        emit_text(self.shared, &mut run, rest);
        let prompt_eval_ms = run
            .prompt_eval_ms
            .unwrap_or_else(|| run.eval_start.elapsed().as_millis() as u64);
        let gen_ms = run
            .gen_start
            .map_or(0, |start| start.elapsed().as_millis() as u64);
        let usage = WorkerUsage {
            prompt_tokens: run.prompt_len as u32,
            cached_prompt_tokens: run.cached as u32,
            completion_tokens: run.generated as u32,
            prompt_eval_ms,
            gen_ms,
            first_token_ms: run.first_token_ms,
            dropped_turns: run.dropped,
        };
        {
            let mut stats = self.shared.stats_mut();
            stats.tokens_generated += run.generated as u64;
            stats.cached_prompt_tokens += run.cached as u64;
        }
        // Counters are current before the client hears of the end.
        self.update_stats();
        let (grammar_resamples, sampling) = run.sampler.effort();
        tracing::info!(
            prompt_tokens = run.prompt_len,
            cached_prompt_tokens = run.cached,
            completion_tokens = run.generated,
            prompt_eval_ms,
            gen_ms,
            sampling_ms = sampling.as_millis() as u64,
            grammar_resamples,
            preemptions = run.preemptions,
            ?finish_reason,
            "chat finished"
        );
        self.shared.emit(&WorkerEvent::Done {
            id: run.job.id.clone(),
            text: run.stream.text().to_owned(),
            usage,
            finish_reason,
        });
        self.shared.finished(&run.job.id);
    }

    /// End the request in `slot` with an error; its sequence is cleared.
    fn fail(&mut self, slot: usize, (kind, message): Failure) {
        let Some(run) = self.slots[slot].run.take() else {
            return;
        };
        self.slots[slot].last_used = self.step_no;
        self.clear_slot(slot);
        self.update_stats();
        let _enter = run.span.enter();
        self.shared.error(Some(&run.job.id), kind, message);
        self.shared.finished(&run.job.id);
    }

    fn update_stats(&self) {
        let active = self.slots.iter().filter(|s| s.run.is_some()).count() as u32;
        let mut stats = self.shared.stats_mut();
        stats.busy = active > 0;
        stats.active_requests = active;
        stats.queued_requests = self.queue.len() as u32;
        stats.kv_tokens = self.slots.iter().map(|s| s.cache.len() as u32).sum();
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        // Requests still here when the model goes away (a panic unwinding) get an answer.
        for i in 0..self.slots.len() {
            self.fail(
                i,
                (
                    ErrorKind::Internal,
                    "the model was unloaded during the request".into(),
                ),
            );
        }
        for waiting in std::mem::take(&mut self.queue) {
            self.shared.error(
                Some(&waiting.job.id),
                ErrorKind::Internal,
                "the model was unloaded while the request was queued",
            );
            self.shared.finished(&waiting.job.id);
        }
    }
}

/// What [`Engine::prepare`] makes of a request.
struct Prepared {
    tokens: Vec<LlamaToken>,
    dropped: u32,
    max_new: usize,
    sampler: SlotSampler,
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn emit_text(shared: &Shared, run: &mut Run, text: String) {
    if text.is_empty() {
        return;
    }
    let t_ms = run.job.received.elapsed().as_millis() as u64;
    run.first_token_ms.get_or_insert(t_ms);
    shared.emit(&WorkerEvent::Token {
        id: run.job.id.clone(),
        text,
        t_ms,
    });
}

/// Test knob: `BATON_LLM_WORKER_TEST_DELAY_MS` sleeps after each step that generated
/// tokens, so tests with a tiny model can cancel or kill mid-generation deterministically.
/// (Another, `BATON_LLM_WORKER_TEST_FAIL_DECODE=N`, makes the N-th decode call fail as a
/// fatal llama.cpp error would.)
fn test_delay() -> Option<Duration> {
    std::env::var("BATON_LLM_WORKER_TEST_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}
