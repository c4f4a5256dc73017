//! `baton-llm-worker`: runs one llama.cpp model and speaks Baton's worker protocol
//! ([`baton_llm::protocol`]) over stdio.
//!
//! stdout carries protocol lines only; all logs go to stderr (`BATON_LOG` or `RUST_LOG`
//! filter, default `info`). Threads: the main thread reads stdin, answers `ping`, `stats`
//! and `cancel` at once (even mid-generation) and queues `load`/`unload`/`chat` for the
//! engine thread, which owns the model and its KV cache and serves up to `n_parallel` chats
//! at once (see [`engine`]). Cancellation is an atomic flag per request, checked every step.
//!
//! Modes for people (not the runtime): `--bench-direct` (the reference loop of `baton bench
//! llm`), `--schema-check` (random JSON-schema requests through the engine, each output
//! validated) and `--bench-parallel` (aggregate speed of concurrent requests), both in
//! [`harness`].

#![warn(missing_docs)]

mod bench;
mod engine;
mod format;
mod gbnf;
mod harness;
mod prompt;
mod sampling;
#[allow(dead_code)]
mod schema_gen;
mod text;

use anyhow::Context as _;
use baton_llm::protocol::{
    to_line, ErrorKind, WorkerEvent, WorkerRequest, WorkerStats, MAX_LINE_BYTES, PROTOCOL_VERSION,
};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// Where events go.
pub enum Output {
    /// Protocol lines on stdout (the worker process).
    Stdout(std::io::Stdout),
    /// A channel (the in-process harness).
    Channel(mpsc::Sender<WorkerEvent>),
}

/// State shared by the reader and the engine thread.
pub struct Shared {
    out: Mutex<Output>,
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Counters reported by `stats`.
    pub stats: Mutex<WorkerStats>,
}

impl Shared {
    /// State for a worker writing its events to `out`.
    pub fn new(out: Output) -> Self {
        let pid = std::process::id();
        Self {
            out: Mutex::new(out),
            cancels: Mutex::new(HashMap::new()),
            stats: Mutex::new(WorkerStats {
                pid,
                ..WorkerStats::default()
            }),
        }
    }

    /// Write one event (a line on stdout, or into the harness's channel).
    pub fn emit(&self, event: &WorkerEvent) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *out {
            Output::Stdout(stdout) => {
                let line = to_line(event);
                if stdout
                    .write_all(line.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    // The supervisor is gone; nothing left to do.
                    std::process::exit(0);
                }
            }
            Output::Channel(tx) => {
                let _ = tx.send(event.clone());
            }
        }
    }

    /// A cancel flag for a new request `id`; `None` when the id is already in use.
    pub fn register(&self, id: &str) -> Option<Arc<AtomicBool>> {
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        if cancels.contains_key(id) {
            return None;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        cancels.insert(id.to_owned(), cancel.clone());
        Some(cancel)
    }

    /// Emit an error event.
    pub fn error(&self, id: Option<&str>, kind: ErrorKind, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(id = id.unwrap_or(""), ?kind, %message, "request failed");
        self.emit(&WorkerEvent::Error {
            id: id.map(str::to_owned),
            kind,
            message,
        });
    }

    /// Forget the cancel flag of a finished request.
    pub fn finished(&self, id: &str) {
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    fn stats_mut(&self) -> std::sync::MutexGuard<'_, WorkerStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Work for the engine thread.
pub enum Job {
    /// Load a model.
    Load {
        /// Request id.
        id: String,
        /// GGUF path.
        path: std::path::PathBuf,
        /// Context size (0: the model's).
        n_ctx: u32,
        /// GPU layers.
        n_gpu_layers: u32,
        /// Template override.
        chat_template: Option<String>,
        /// CPU threads.
        n_threads: Option<u32>,
        /// Slots (0: 1).
        n_parallel: u32,
    },
    /// Unload the model.
    Unload {
        /// Request id.
        id: String,
    },
    /// Generate.
    Chat(engine::ChatJob),
}

const USAGE: &str = "baton-llm-worker: runs one llama.cpp model for Baton.

It is started by Baton's runtime and speaks a JSON-lines protocol on stdin/stdout;
it is not meant to be run by hand. Logs go to stderr (filter: BATON_LOG or RUST_LOG).

Options:
  --version   print the worker and protocol versions
  --help      print this text

Tools (run by hand):
  --bench-direct MODEL.gguf [--threads N] [--prompt TEXT] [--tokens N]
      the reference decode loop of `baton bench llm`
  --schema-check MODEL.gguf [--count N] [--seed N] [--parallel N] [--threads N]
                 [--ctx N] [--max-tokens N] [--temperature T] [--verbose]
      N requests constrained to random JSON schemas, each output parsed and validated
  --bench-parallel MODEL.gguf [--levels 1,2,4,8] [--tokens N] [--threads N] [--ctx N]
      aggregate decode speed of concurrent requests versus the same one after another
";

fn main() {
    if let Some(arg) = std::env::args().nth(1) {
        match arg.as_str() {
            "--version" | "-V" => {
                println!(
                    "baton-llm-worker {} (protocol {PROTOCOL_VERSION})",
                    env!("CARGO_PKG_VERSION")
                );
                return;
            }
            "--bench-direct" => {
                let args: Vec<String> = std::env::args().skip(2).collect();
                if let Err(err) = bench::run(&args) {
                    eprintln!("baton-llm-worker: {err:#}");
                    std::process::exit(1);
                }
                return;
            }
            "--schema-check" | "--bench-parallel" => {
                let args: Vec<String> = std::env::args().skip(2).collect();
                let result = if arg == "--schema-check" {
                    harness::schema_check(&args)
                } else {
                    harness::bench_parallel(&args)
                };
                match result {
                    Ok(true) => return,
                    Ok(false) => std::process::exit(1),
                    Err(err) => {
                        eprintln!("baton-llm-worker: {err:#}");
                        std::process::exit(2);
                    }
                }
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                return;
            }
            other => {
                eprint!("unknown argument `{other}`\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if let Err(err) = run() {
        eprintln!("baton-llm-worker: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let filter = std::env::var("BATON_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,llama_cpp_2=warn".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let backend = llama_cpp_2::llama_backend::LlamaBackend::init()
        .context("cannot initialise the llama.cpp backend")?;

    let pid = std::process::id();
    let shared = Arc::new(Shared::new(Output::Stdout(std::io::stdout())));
    shared.emit(&WorkerEvent::Hello {
        protocol_version: PROTOCOL_VERSION,
        pid,
        worker_version: env!("CARGO_PKG_VERSION").into(),
    });
    tracing::info!(pid, "baton-llm-worker ready");

    let (tx, rx) = mpsc::channel::<Job>();
    let engine_shared = shared.clone();
    let engine = std::thread::Builder::new()
        .name("llm-engine".into())
        .spawn(move || engine::run(backend, rx, engine_shared))
        .context("cannot start the engine thread")?;

    read_requests(&shared, &tx);

    // stdin closed or shutdown: stop any generation and let the engine finish.
    for flag in shared
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
    {
        flag.store(true, Ordering::SeqCst);
    }
    drop(tx);
    let _ = engine.join();
    tracing::info!("baton-llm-worker exiting");
    Ok(())
}

/// Read request lines until stdin closes or a shutdown arrives.
fn read_requests(shared: &Shared, tx: &mpsc::Sender<Job>) {
    let stdin = std::io::stdin();
    let mut reader = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf);
        match read {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) => {
                tracing::error!(%err, "cannot read stdin");
                return;
            }
        }
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            // Skip the rest of the over-long line.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest);
            shared.error(
                None,
                ErrorKind::BadRequest,
                format!("request line longer than {MAX_LINE_BYTES} bytes ignored"),
            );
            continue;
        }
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let request: WorkerRequest = match serde_json::from_slice(line) {
            Ok(request) => request,
            Err(err) => {
                let id = serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
                shared.error(
                    id.as_deref(),
                    ErrorKind::BadRequest,
                    format!("not a valid protocol v{PROTOCOL_VERSION} request: {err}"),
                );
                continue;
            }
        };
        if !dispatch(shared, tx, request) {
            return;
        }
    }
}

/// Handle one request; false means shut down.
fn dispatch(shared: &Shared, tx: &mpsc::Sender<Job>, request: WorkerRequest) -> bool {
    let job = match request {
        WorkerRequest::Hello { protocol_version } => {
            if protocol_version != PROTOCOL_VERSION {
                shared.error(
                    None,
                    ErrorKind::VersionMismatch,
                    format!(
                        "supervisor speaks protocol {protocol_version}, this worker {PROTOCOL_VERSION}; rebuild the worker together with the app"
                    ),
                );
            }
            return true;
        }
        WorkerRequest::Ping { id } => {
            shared.emit(&WorkerEvent::Pong { id });
            return true;
        }
        WorkerRequest::Stats { id } => {
            let stats = shared.stats_mut().clone();
            shared.emit(&WorkerEvent::Stats { id, stats });
            return true;
        }
        WorkerRequest::Cancel { id } => {
            if let Some(flag) = shared
                .cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
            {
                tracing::info!(%id, "cancel requested");
                flag.store(true, Ordering::SeqCst);
            }
            return true;
        }
        WorkerRequest::Shutdown => return false,
        WorkerRequest::Load {
            id,
            path,
            n_ctx,
            n_gpu_layers,
            chat_template,
            n_threads,
            n_parallel,
        } => Job::Load {
            id,
            path,
            n_ctx,
            n_gpu_layers,
            chat_template,
            n_threads,
            n_parallel,
        },
        WorkerRequest::Unload { id } => Job::Unload { id },
        WorkerRequest::Chat {
            id,
            messages,
            params,
            session,
        } => {
            let Some(cancel) = shared.register(&id) else {
                shared.error(
                    Some(&id),
                    ErrorKind::BadRequest,
                    format!("request id {id} is already in use"),
                );
                return true;
            };
            Job::Chat(engine::ChatJob {
                id,
                messages,
                params,
                session,
                cancel,
                received: Instant::now(),
            })
        }
    };
    tx.send(job).is_ok()
}
