//! Command-line definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Baton: a local-first AI assistant and model orchestrator.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Directory for the database and user data [default: $XDG_DATA_HOME/baton]
    #[arg(long, global = true, env = "BATON_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Config file [default: $XDG_CONFIG_HOME/baton/config.toml]
    #[arg(long, global = true, env = "BATON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The task queue for tasks, templates, schedules, worker and serve: redis://HOST:PORT/DB
    /// for a shared Redis server, "" for the embedded one [default: the config's [queue] url]
    #[arg(long, global = true, env = "BATON_QUEUE", value_name = "URL")]
    pub queue: Option<String>,

    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Also log to stderr (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Chat with a model: one question, or an interactive session without one
    Chat(crate::commands::chat::ChatArgs),
    /// Manage chat sessions: list, create, show, rename, delete, search, export
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Manage local models: list, add, remove, info, verify
    #[command(subcommand)]
    Models(crate::commands::models::ModelsCommand),
    /// Check what Baton found on this machine (worker, models, GPU)
    Doctor,
    /// Show the configuration and where it lives
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure performance and print figures
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Read the text in an image, a monitor or a screen region (Tesseract + OpenCV)
    Ocr(crate::commands::vision::OcrArgs),
    /// Find UI elements (buttons, fields, checkboxes, links…) in an image or on screen
    Elements(crate::commands::vision::ElementsArgs),
    /// Transcribe an audio file (WAV, MP3, FLAC, OGG at any rate) with whisper.cpp
    Transcribe {
        /// The audio file
        file: std::path::PathBuf,
        /// Speech model [default: voice.stt_model]
        #[arg(long, short)]
        model: Option<String>,
        /// Spoken language (ISO 639-1) or `auto` [default: voice.language]
        #[arg(long, short)]
        language: Option<String>,
    },
    /// Listen to the microphone and print what is said (partial text while speaking)
    Listen(crate::commands::voice::ListenArgs),
    /// Speak text aloud (Piper voice, espeak-ng as fallback), or write it to a WAV file
    Speak(crate::commands::voice::SpeakArgs),
    /// Manage remote OpenAI-compatible engines: add, list, remove, test
    #[command(subcommand)]
    Engines(crate::commands::engines::EnginesCommand),
    /// Show which model "auto" would pick for a prompt, and why
    Route {
        /// The prompt
        #[arg(required = true, num_args = 1..)]
        prompt: Vec<String>,
    },
    /// Evaluate models and modes on question sets; list, show and compare runs
    Eval(crate::commands::eval::EvalArgs),
    /// Success rate, latency, speed, cost and ratings per model and per mode
    Stats,
    /// Serve the local OpenAI-compatible API on 127.0.0.1 (chat completions, models,
    /// embeddings, tasks)
    ///
    /// Clients send `Authorization: Bearer TOKEN`. The token is kept in the key store that
    /// [secrets] in the config names: created on first use, printed by --show-token and
    /// replaced by --rotate-token (a running server refuses the old token within a second,
    /// no restart needed). Requests from web pages are refused unless their origin is listed
    /// in [api] allowed_origins; each client is rate-limited ([api] requests_per_minute and
    /// burst); every request, refused or not, goes to the audit log (`baton audit`).
    Serve(crate::commands::serve::ServeArgs),
    /// The local API's audit log: every request `baton serve` got, newest first
    Audit(crate::commands::audit::AuditArgs),
    /// Search messages, captures, documents and task outputs by their words and meaning
    Search(crate::commands::memory::SearchArgs),
    /// Memory: on or off, for remote engines, per session; the vectors of stored texts
    #[command(subcommand)]
    Memory(crate::commands::memory::MemoryCommand),
    /// Documents in memory: add, list, remove, reindex, watch
    #[command(subcommand)]
    Docs(crate::commands::memory::DocsCommand),
    /// The task queue: add, list, show, logs, watch, cancel, retry, approve, reject, pause, resume, move
    #[command(subcommand)]
    Tasks(crate::commands::tasks::TasksCommand),
    /// Workflow templates in YAML: list, show, validate, import, export, run
    #[command(subcommand)]
    Templates(crate::commands::tasks::TemplatesCommand),
    /// Cron schedules that run templates: list, add, enable, disable, remove
    #[command(subcommand)]
    Schedules(crate::commands::tasks::SchedulesCommand),
    /// Run the task queue headless (the app and `baton serve` run one too)
    Worker(crate::commands::tasks::WorkerArgs),
    /// Rate an answer (its id is in `baton sessions show` and `baton chat --json`)
    Rate {
        /// The answer's message id
        message: i64,
        /// up, down or clear
        rating: String,
    },
}

/// `baton sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, most recently active first
    List {
        /// Most sessions to list
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Create a session
    New {
        /// Its title
        title: String,
    },
    /// Print a session's messages
    Show {
        /// Session id or a unique prefix of it
        id: String,
    },
    /// Rename a session
    Rename {
        /// Session id or a unique prefix of it
        id: String,
        /// The new title
        title: String,
    },
    /// Delete a session and its messages
    Delete {
        /// Session id or a unique prefix of it
        id: String,
    },
    /// Full-text search over all messages
    Search {
        /// Words to find (all must match; `word*` matches a prefix)
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// Most results
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Export a session to Markdown or JSON
    Export {
        /// Session id or a unique prefix of it
        id: String,
        /// Output format
        #[arg(long, short, value_enum, default_value_t = ExportFormat::Markdown)]
        format: ExportFormat,
        /// Write to this file instead of standard output
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Add a message to a session without running a model (notes, imports)
    Append(AppendArgs),
}

/// Arguments of `baton sessions append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// Session id or a unique prefix of it
    pub id: String,
    /// The text; `-` reads it from standard input
    pub text: String,
    /// Who wrote it
    #[arg(long, value_enum, default_value_t = RoleArg::User)]
    pub role: RoleArg,
}

/// Message roles on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Instructions
    System,
    /// The person
    User,
    /// A model
    Assistant,
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    /// Markdown document
    Markdown,
    /// JSON document
    Json,
}

/// `baton config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration
    Show {
        /// Print the documented defaults instead
        #[arg(long)]
        defaults: bool,
    },
    /// Print where the config file, data and logs live
    Path,
}

/// `baton bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Insert rate and full-text search latency over a large message table
    Store {
        /// Messages to insert
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Search queries to time
        #[arg(long, default_value_t = 500)]
        queries: u32,
        /// Directory for the benchmark database [default: a temporary directory]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Local LLM speed: prompt and decode tok/s, first-token time, worker vs direct ratio
    Llm(crate::commands::bench_llm::BenchLlmArgs),
    /// Speech recognition: real-time factor and end-of-speech-to-text latency, worker vs direct
    Stt(crate::commands::bench_stt::BenchSttArgs),
    /// OCR and element detection time on a 1920x1080 screenshot, against the tesseract CLI
    Ocr(crate::commands::vision::BenchOcrArgs),
    /// The local API under N simultaneous streaming clients against N one after another
    Api(crate::commands::bench_api::BenchApiArgs),
    /// The task queue: no-op throughput and dispatch latency against a plain database loop
    Tasks(crate::commands::bench_tasks::BenchTasksArgs),
    /// Memory: retrieval by words, meaning and both; embedding throughput; query latency
    Memory(crate::commands::bench_memory::BenchMemoryArgs),
}
