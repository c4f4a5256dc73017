//! The TOML config file: typed settings, validated, with documented defaults.
//!
//! Unknown keys and bad values are rejected with the file, the key and the reason, in one
//! line. A missing file means all defaults.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The default config file, with every setting documented. `baton config show --defaults`
/// prints it; a test checks that it parses to [`Config::default`].
pub const DEFAULT_CONFIG_TOML: &str = r#"# Baton configuration. Every key is optional; these are the defaults.

[chat]
# Model used when none is chosen: a name from `baton models list`, or "auto" for the best
# chat model installed that runs comfortably on this machine (`baton doctor` says which
# and why; `baton models default NAME` or the app's first start changes the choice).
default_model = "auto"
# Instructions placed before every conversation. Empty for none.
system_prompt = "You are a helpful assistant. Answer concisely."
# Sampling temperature, 0 (deterministic) to 2.
temperature = 0.3
# Nucleus sampling mass, above 0 and at most 1.
top_p = 0.95
# Most tokens generated for one answer, 1 to 32768.
max_tokens = 512

[llm]
# Context window requested from local models, in tokens (256 to 131072).
context_length = 4096
# Seconds an idle local model stays loaded.
keep_alive_secs = 300
# Memory local models may use together, in MiB; 0 picks 60% of the machine's memory.
memory_budget_mb = 0
# Requests one local model answers at once (1 to 64), batched together: they share its
# context window. Four or more make batching pay on CPUs.
parallel = 4
# Seconds a request may wait for a free slot before it fails (1 to 86400).
queue_timeout_secs = 600

[routing]
# How "auto" picks a model: weights of measured quality (success rate, your ratings),
# speed, low cost, and a bonus for a model declared strong in the prompt's domain.
quality_weight = 1.0
speed_weight = 0.5
cost_weight = 0.5
domain_weight = 0.4
# Models declared strong in domains (code, math, writing, translation, general), e.g.
# strengths = { "ollama/qwen2.5-coder" = ["code"] }
strengths = {}
# Explicit rules, checked in order; the first match decides, e.g.
# rules = [{ domain = "code", model = "ollama/qwen2.5-coder" }, { contains = "translate", model = "ollama/llama3" }]
rules = []
# Canary / A/B splits: a share of the stable model's requests goes to the candidate, e.g.
# canaries = [{ stable = "smollm2-135m-instruct", candidate = "ollama/llama3", share = 0.1 }]
canaries = []

[orchestration]
# Fan-out: models asked in parallel; empty means the three best-ranked models.
fanout_models = []
# Seconds a fan-out waits for its slowest model before merging what arrived.
fanout_deadline_secs = 120
# How fan-out answers are merged: vote, weighted or judge.
merge = "vote"
# Model that scores answers (fan-out judge, refinement); empty means the routed model.
judge_model = ""
# Models that critique drafts in critique-and-refine; empty means the next-ranked models,
# or the primary model itself when it is the only one.
critics = []
# Revision rounds of critique-and-refine (1 to 10).
refine_rounds = 3
# A revision must raise the judged score (0-10) by this much, or refinement stops.
refine_min_gain = 0.5

[reliability]
# Circuit breaker per engine: it opens when at least `breaker_failure_rate` of the last
# `breaker_window` requests failed (once `breaker_min_requests` were made), refuses requests
# for `breaker_open_secs`, then lets one probe through.
breaker_window = 20
breaker_min_requests = 4
breaker_failure_rate = 0.5
breaker_open_secs = 30
# Remote engines: seconds to connect, to the first token, and between streamed chunks.
connect_timeout_secs = 5
first_token_timeout_secs = 60
idle_timeout_secs = 30
# Retries of a remote request that failed before its first token (0 to 10).
max_retries = 3

[voice]
# Speech recognition model (a name from `baton models list`; `baton models fetch whisper-base`).
stt_model = "whisper-base"
# Spoken language as an ISO 639-1 code (en, de, fr, …), or "auto" to detect it (once,
# from the first utterance; it is kept while the speech worker runs, and a fixed language
# makes every final text about twice as fast).
language = "auto"
# CPU threads for speech recognition (1 to 64).
threads = 2
# Voice activity model for the microphone (`baton models fetch silero-vad`).
vad_model = "silero-vad"
# Voice for reading answers aloud (`baton models fetch piper-joe-us`); espeak-ng when missing.
tts_voice = "piper-joe-us"

[secrets]
# Where API keys of remote engines are kept: "keyring" (the OS keyring) or "file" (an
# encrypted file in the data directory; passphrase from BATON_SECRETS_PASSPHRASE).
store = "keyring"

[tasks]
# Tasks one worker (the app's, `baton serve`'s or `baton worker`) runs at once (1 to 64).
concurrency = 2
# Seconds a running task's lease lasts; its worker renews it every third of that. A task
# whose worker died is taken up again when its lease expires (5 to 3600).
lease_secs = 30
# Attempts of a step unless its template says otherwise (1 to 100), and the first wait
# between them in seconds (it doubles each time).
attempts = 3
backoff_secs = 2.0
# Where task outputs with relative paths go: the run's folder under this one; empty means
# "outputs" in the data directory.
output_dir = ""

[queue]
# Where the task queue lives: empty for the embedded one in the data directory (SQLite),
# or a Redis server shared by workers on several machines, e.g. "redis://10.0.0.5:6379/0".
# `--queue URL` on the command line (or BATON_QUEUE) overrides it.
url = ""
# The prefix of Baton's keys on that server (several queues may share one).
prefix = "baton"

[memory]
# Memory: past conversations, screen captures, task outputs and the documents you add
# (`baton docs add`) are searched for what a new message means, and the best snippets are
# given to the model as numbered sources. On or off for every session that does not set
# its own (the app's Settings and `baton memory on|off` override this).
enabled = true
# Whether memory snippets may be sent to remote engines (they leave this machine). Off:
# answers from remote engines get no memory.
remote = false
# Snippets given to the model at most (0 to 20), and the tokens they may take together.
snippets = 4
memory_tokens = 600
# When a conversation outgrows the context window, its older turns are summarised by the
# model (the summary is stored and shown as such); the summary may take this many tokens.
# The rest of the window goes to the system prompt, memory, the answer (chat.max_tokens)
# and the most recent turns.
summary_tokens = 400

[api]
# The local OpenAI-compatible API (`baton serve`). Its bearer token lives in the key store
# named under [secrets]: `baton serve --show-token` prints it, `--rotate-token` replaces it.
# Web pages allowed to call it, as origins (scheme://host[:port]), e.g.
# allowed_origins = ["http://localhost:5173"]; they get CORS headers. A request from any
# other web page (an `Origin` header not listed) is refused with 403. Empty: none may.
allowed_origins = []
# Requests one client (its address and token) may make per minute (1 to 1000000), and how
# many it may make at once above that pace (1 to 100000). Beyond them it gets 429 with a
# Retry-After header.
requests_per_minute = 600
burst = 100
# Keep the prompts' text in the audit log (`baton audit`). Off, a row says when, which
# client, which path, the status, the duration and the model, never what was asked.
audit_prompts = false
# Days audit rows are kept (0 keeps them forever).
audit_days = 90

[logging]
# Level of the log file: error, warn, info, debug or trace.
level = "info"
# Daily log files kept before the oldest is deleted (1 to 365).
max_files = 7
"#;

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Chat defaults.
    pub chat: ChatConfig,
    /// Local LLM engine settings.
    pub llm: LlmConfig,
    /// How "auto" chooses a model.
    pub routing: RoutingConfig,
    /// Fan-out and critique-and-refine settings.
    pub orchestration: OrchestrationConfig,
    /// Timeouts, retries and circuit breakers.
    pub reliability: ReliabilityConfig,
    /// Speech recognition and synthesis.
    pub voice: VoiceConfig,
    /// Where API keys are kept.
    pub secrets: SecretsConfig,
    /// The task queue and its workers.
    pub tasks: TasksConfig,
    /// Where the task queue lives.
    pub queue: QueueConfig,
    /// Retrieval from memory and the context window's budget.
    pub memory: MemoryConfig,
    /// The local API (`baton serve`): web origins, rate limits, the audit log.
    pub api: ApiConfig,
    /// Log file settings.
    pub logging: LoggingConfig,
}

/// The task queue and its workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// Tasks one worker runs at once.
    pub concurrency: usize,
    /// Seconds a lease lasts.
    pub lease_secs: u64,
    /// Default attempts of a step.
    pub attempts: u32,
    /// Default first backoff, seconds.
    pub backoff_secs: f64,
    /// Where relative task outputs go (empty: `outputs` in the data directory).
    pub output_dir: String,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            lease_secs: 30,
            attempts: 3,
            backoff_secs: 2.0,
            output_dir: String::new(),
        }
    }
}

/// Retrieval from memory into conversations and the context window's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Memory for sessions that do not set their own.
    pub enabled: bool,
    /// Whether memory snippets may go to remote engines.
    pub remote: bool,
    /// Snippets given to the model at most.
    pub snippets: u32,
    /// Tokens the snippets may take together.
    pub memory_tokens: u32,
    /// Tokens a summary of older turns may take.
    pub summary_tokens: u32,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            remote: false,
            snippets: 4,
            memory_tokens: 600,
            summary_tokens: 400,
        }
    }
}

/// The local OpenAI-compatible API (`baton serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Web origins (`scheme://host[:port]`) allowed to call the API, with CORS headers.
    pub allowed_origins: Vec<String>,
    /// Requests one client may make per minute.
    pub requests_per_minute: u32,
    /// Requests one client may make at once above that pace.
    pub burst: u32,
    /// Whether the audit log keeps the prompts' text.
    pub audit_prompts: bool,
    /// Days audit rows are kept (0: forever).
    pub audit_days: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            requests_per_minute: 600,
            burst: 100,
            audit_prompts: false,
            audit_days: 90,
        }
    }
}

/// Where the task queue lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Empty for the embedded queue; else `redis://HOST:PORT/DB`.
    pub url: String,
    /// The prefix of the queue's keys on a shared server.
    pub prefix: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            prefix: "baton".into(),
        }
    }
}

/// How "auto" chooses a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Weight of measured quality.
    pub quality_weight: f64,
    /// Weight of measured speed.
    pub speed_weight: f64,
    /// Weight of low cost.
    pub cost_weight: f64,
    /// Bonus for domain strength.
    pub domain_weight: f64,
    /// Domains each model is declared strong in.
    pub strengths: std::collections::BTreeMap<String, Vec<baton_core::Domain>>,
    /// Explicit rules, first match wins.
    pub rules: Vec<baton_core::RoutingRule>,
    /// Canary / A/B splits.
    pub canaries: Vec<baton_core::routing::CanarySplit>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            quality_weight: 1.0,
            speed_weight: 0.5,
            cost_weight: 0.5,
            domain_weight: 0.4,
            strengths: Default::default(),
            rules: Vec::new(),
            canaries: Vec::new(),
        }
    }
}

impl RoutingConfig {
    /// The weights as the router takes them.
    pub fn weights(&self) -> baton_core::routing::RoutingWeights {
        baton_core::routing::RoutingWeights {
            quality: self.quality_weight,
            speed: self.speed_weight,
            cost: self.cost_weight,
            domain: self.domain_weight,
        }
    }
}

/// Fan-out and critique-and-refine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestrationConfig {
    /// Models asked in parallel (empty: the three best-ranked).
    pub fanout_models: Vec<String>,
    /// Seconds a fan-out waits before merging what arrived.
    pub fanout_deadline_secs: u64,
    /// Merge strategy.
    pub merge: baton_core::MergeStrategy,
    /// Judge model (empty: the routed model).
    pub judge_model: String,
    /// Critic models (empty: next-ranked, or the primary itself).
    pub critics: Vec<String>,
    /// Revision rounds.
    pub refine_rounds: u32,
    /// Minimum judged-score gain for refinement to go on.
    pub refine_min_gain: f64,
}

impl Default for OrchestrationConfig {
    fn default() -> Self {
        Self {
            fanout_models: Vec::new(),
            fanout_deadline_secs: 120,
            merge: baton_core::MergeStrategy::Vote,
            judge_model: String::new(),
            critics: Vec::new(),
            refine_rounds: 3,
            refine_min_gain: 0.5,
        }
    }
}

/// Timeouts, retries and circuit breakers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReliabilityConfig {
    /// Outcomes a breaker measures.
    pub breaker_window: usize,
    /// Outcomes needed before a breaker may open.
    pub breaker_min_requests: usize,
    /// Failure share that opens a breaker.
    pub breaker_failure_rate: f64,
    /// Seconds an open breaker refuses requests.
    pub breaker_open_secs: u64,
    /// Seconds to connect to a remote engine.
    pub connect_timeout_secs: u64,
    /// Seconds to a remote engine's first token.
    pub first_token_timeout_secs: u64,
    /// Seconds between streamed chunks.
    pub idle_timeout_secs: u64,
    /// Retries before the first token.
    pub max_retries: usize,
}

impl Default for ReliabilityConfig {
    fn default() -> Self {
        Self {
            breaker_window: 20,
            breaker_min_requests: 4,
            breaker_failure_rate: 0.5,
            breaker_open_secs: 30,
            connect_timeout_secs: 5,
            first_token_timeout_secs: 60,
            idle_timeout_secs: 30,
            max_retries: 3,
        }
    }
}

impl ReliabilityConfig {
    /// The breaker policy these settings describe.
    pub fn breaker(&self) -> baton_core::BreakerPolicy {
        baton_core::BreakerPolicy {
            window: self.breaker_window,
            min_requests: self.breaker_min_requests,
            failure_rate: self.breaker_failure_rate,
            open_ms: self.breaker_open_secs * 1000,
            probes_to_close: 1,
        }
    }
}

/// Speech recognition and synthesis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceConfig {
    /// Speech recognition model.
    pub stt_model: String,
    /// Spoken language, or `auto`.
    pub language: String,
    /// CPU threads for speech recognition.
    pub threads: u32,
    /// Voice activity model.
    pub vad_model: String,
    /// Voice for reading aloud.
    pub tts_voice: String,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            stt_model: "whisper-base".into(),
            language: "auto".into(),
            threads: 2,
            vad_model: "silero-vad".into(),
            tts_voice: "piper-joe-us".into(),
        }
    }
}

impl VoiceConfig {
    /// The language to ask for: `None` detects it.
    pub fn language(&self) -> Option<String> {
        let l = self.language.trim();
        (!l.is_empty() && l != "auto").then(|| l.to_owned())
    }
}

/// Where API keys are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// `keyring` or `file`.
    pub store: String,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            store: "keyring".into(),
        }
    }
}

/// Chat defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Model used when none is chosen.
    pub default_model: String,
    /// Instructions placed before every conversation.
    pub system_prompt: String,
    /// Sampling temperature.
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Most tokens generated for one answer.
    pub max_tokens: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            default_model: "auto".into(),
            system_prompt: "You are a helpful assistant. Answer concisely.".into(),
            temperature: 0.3,
            top_p: 0.95,
            max_tokens: 512,
        }
    }
}

/// Local LLM engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Context window requested from local models.
    pub context_length: u32,
    /// Seconds an idle model stays loaded.
    pub keep_alive_secs: u64,
    /// Memory budget for loaded models in MiB (0: automatic).
    pub memory_budget_mb: u64,
    /// Requests one local model serves at once (slots sharing its context window).
    pub parallel: u32,
    /// Seconds a request may wait for a free slot before it fails.
    pub queue_timeout_secs: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            context_length: 4096,
            keep_alive_secs: 300,
            memory_budget_mb: 0,
            parallel: 4,
            queue_timeout_secs: 600,
        }
    }
}

/// Log file settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Level of the log file.
    pub level: String,
    /// Daily files kept.
    pub max_files: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            max_files: 7,
        }
    }
}

/// A config file that cannot be used. Display is one line naming the file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {file}: {reason}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TOML is malformed or has unknown keys or wrongly typed values.
    #[error("config file {file}, line {line}: {message}. Fix it, or see the defaults with `baton config show --defaults`")]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong, with the key when known.
        message: String,
    },
    /// A value is out of range.
    #[error("config file {file}: `{key}` {reason}. Fix it, or see the defaults with `baton config show --defaults`")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The dotted key.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
}

impl Config {
    /// Loads and validates `file`; a missing file gives the defaults.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ConfigError::Read {
                    file: file.to_owned(),
                    reason: e.to_string(),
                })
            }
        };
        Self::parse(&text, file)
    }

    /// Parses and validates config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1);
            let message = inner.message().trim().replace('\n', " ");
            let message = if key.is_empty() || key == "." {
                message
            } else {
                format!("`{key}`: {message}")
            };
            ConfigError::Parse {
                file: file.to_owned(),
                line,
                message,
            }
        })?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let chat = &self.chat;
        if chat.default_model.trim().is_empty() {
            return Err(invalid("chat.default_model", "must name a model".into()));
        }
        if !(0.0..=2.0).contains(&chat.temperature) {
            return Err(invalid(
                "chat.temperature",
                format!("must be between 0 and 2, not {}", chat.temperature),
            ));
        }
        if !(chat.top_p > 0.0 && chat.top_p <= 1.0) {
            return Err(invalid(
                "chat.top_p",
                format!("must be above 0 and at most 1, not {}", chat.top_p),
            ));
        }
        if !(1..=32_768).contains(&chat.max_tokens) {
            return Err(invalid(
                "chat.max_tokens",
                format!("must be between 1 and 32768, not {}", chat.max_tokens),
            ));
        }
        if !(1..=64).contains(&self.llm.parallel) {
            return Err(invalid(
                "llm.parallel",
                format!("must be between 1 and 64, not {}", self.llm.parallel),
            ));
        }
        if !(1..=86_400).contains(&self.llm.queue_timeout_secs) {
            return Err(invalid(
                "llm.queue_timeout_secs",
                format!(
                    "must be between 1 and 86400 seconds, not {}",
                    self.llm.queue_timeout_secs
                ),
            ));
        }
        if !(256..=131_072).contains(&self.llm.context_length) {
            return Err(invalid(
                "llm.context_length",
                format!(
                    "must be between 256 and 131072, not {}",
                    self.llm.context_length
                ),
            ));
        }
        let o = &self.orchestration;
        if !(1..=baton_core::ensemble::MAX_REFINE_ROUNDS).contains(&o.refine_rounds) {
            return Err(invalid(
                "orchestration.refine_rounds",
                format!("must be between 1 and 10, not {}", o.refine_rounds),
            ));
        }
        if o.fanout_deadline_secs == 0 {
            return Err(invalid(
                "orchestration.fanout_deadline_secs",
                "must be at least 1".into(),
            ));
        }
        let r = &self.reliability;
        if !(r.breaker_failure_rate > 0.0 && r.breaker_failure_rate <= 1.0) {
            return Err(invalid(
                "reliability.breaker_failure_rate",
                format!(
                    "must be above 0 and at most 1, not {}",
                    r.breaker_failure_rate
                ),
            ));
        }
        if r.breaker_window == 0 || r.max_retries > 10 {
            return Err(invalid(
                "reliability",
                "breaker_window must be at least 1 and max_retries at most 10".into(),
            ));
        }
        if let Some(c) = self
            .routing
            .canaries
            .iter()
            .find(|c| !(0.0..=1.0).contains(&c.share))
        {
            return Err(invalid(
                "routing.canaries",
                format!(
                    "share of {} must be between 0 and 1, not {}",
                    c.candidate, c.share
                ),
            ));
        }
        if !(1..=64).contains(&self.voice.threads) {
            return Err(invalid(
                "voice.threads",
                format!("must be between 1 and 64, not {}", self.voice.threads),
            ));
        }
        let lang = self.voice.language.as_str();
        if lang != "auto" && !(lang.len() == 2 && lang.chars().all(|c| c.is_ascii_lowercase())) {
            return Err(invalid(
                "voice.language",
                format!("must be `auto` or a two-letter ISO 639-1 code such as en, not `{lang}`"),
            ));
        }
        if !["keyring", "file"].contains(&self.secrets.store.as_str()) {
            return Err(invalid(
                "secrets.store",
                format!("must be keyring or file, not `{}`", self.secrets.store),
            ));
        }
        const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
        if !LEVELS.contains(&self.logging.level.as_str()) {
            return Err(invalid(
                "logging.level",
                format!(
                    "must be one of {}, not `{}`",
                    LEVELS.join(", "),
                    self.logging.level
                ),
            ));
        }
        let t = &self.tasks;
        if !(1..=64).contains(&t.concurrency) {
            return Err(invalid(
                "tasks.concurrency",
                format!("must be between 1 and 64, not {}", t.concurrency),
            ));
        }
        if !(5..=3600).contains(&t.lease_secs) {
            return Err(invalid(
                "tasks.lease_secs",
                format!("must be between 5 and 3600, not {}", t.lease_secs),
            ));
        }
        if !(1..=100).contains(&t.attempts) {
            return Err(invalid(
                "tasks.attempts",
                format!("must be between 1 and 100, not {}", t.attempts),
            ));
        }
        if !(0.0..=600.0).contains(&t.backoff_secs) {
            return Err(invalid(
                "tasks.backoff_secs",
                format!("must be between 0 and 600, not {}", t.backoff_secs),
            ));
        }
        let q = &self.queue;
        if !q.url.is_empty() && !q.url.starts_with("redis://") {
            return Err(invalid(
                "queue.url",
                format!(
                    "must be empty (the embedded queue) or a Redis address redis://HOST:PORT/DB, not `{}`",
                    q.url
                ),
            ));
        }
        if q.prefix.is_empty() || q.prefix.contains(char::is_whitespace) {
            return Err(invalid(
                "queue.prefix",
                format!("must be a word without spaces, not `{}`", q.prefix),
            ));
        }
        let m = &self.memory;
        if m.memory_tokens > 16_384 || m.summary_tokens > 16_384 {
            return Err(invalid(
                "memory.memory_tokens",
                "memory_tokens and summary_tokens must be at most 16384".into(),
            ));
        }
        if m.snippets > 20 {
            return Err(invalid(
                "memory.snippets",
                format!("must be between 0 and 20, not {}", m.snippets),
            ));
        }
        let a = &self.api;
        if let Some(origin) = a.allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(invalid(
                "api.allowed_origins",
                format!(
                    "holds `{origin}`, which is not a web origin: write each one as scheme://host[:port], such as http://localhost:5173, with no path, no trailing slash and no wildcard"
                ),
            ));
        }
        if !(1..=1_000_000).contains(&a.requests_per_minute) {
            return Err(invalid(
                "api.requests_per_minute",
                format!(
                    "must be between 1 and 1000000, not {}",
                    a.requests_per_minute
                ),
            ));
        }
        if !(1..=100_000).contains(&a.burst) {
            return Err(invalid(
                "api.burst",
                format!("must be between 1 and 100000, not {}", a.burst),
            ));
        }
        if !(1..=365).contains(&self.logging.max_files) {
            return Err(invalid(
                "logging.max_files",
                format!("must be between 1 and 365, not {}", self.logging.max_files),
            ));
        }
        Ok(())
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// Whether `text` is a web origin as browsers send it: `scheme://host[:port]`, nothing more.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let host_ok = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '*', '@'])
        && !rest.chars().any(|c| c.is_whitespace() || c.is_control());
    scheme_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/home/u/.config/baton/config.toml"))
    }

    #[test]
    fn documented_defaults_are_the_defaults() {
        assert_eq!(parse(DEFAULT_CONFIG_TOML).unwrap(), Config::default());
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(
            parse(&Config::default().to_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let c = parse("[chat]\ntemperature = 0.2\n").unwrap();
        assert_eq!(c.chat.temperature, 0.2);
        assert_eq!(c.chat.max_tokens, 512);
    }

    #[test]
    fn unknown_keys_are_rejected_with_key_line_and_file() {
        let err = parse("[chat]\ntemperature = 0.2\ntemprature = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.toml") && err.contains("line 3") && err.contains("temprature"),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
        let err = parse("[colour]\nx = 1\n").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        let err = parse("[chat]\ntemperature = 5.0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`chat.temperature` must be between 0 and 2"),
            "{err}"
        );
        let err = parse("[chat]\nmax_tokens = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat.max_tokens") && err.contains("line 2"),
            "{err}"
        );
        let err = parse("[logging]\nlevel = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("logging.level"), "{err}");
        let err = parse("[api]\nallowed_origins = [\"*\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.allowed_origins") && err.contains("scheme://host"),
            "{err}"
        );
        let c = parse(
            "[api]\nallowed_origins = [\"http://localhost:5173\", \"chrome-extension://abc\"]\n",
        )
        .unwrap();
        assert_eq!(c.api.allowed_origins.len(), 2);
        for bad in [
            "http://a.example/",
            "a.example",
            "https://a.example/path",
            "null",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
        let err = parse("[api]\nrequests_per_minute = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("api.requests_per_minute"), "{err}");
        let err = parse("this is not toml").unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains('\n'), "{err}");
    }
}
