//! The types the UI sees. They mirror the runtime's and the store's types with camelCase
//! names and `specta` derives, so `ui/src/bindings.ts` is generated from them and the UI
//! cannot drift from the Rust side. Conversions only copy fields; no logic lives here.

use baton_core::{ChatEvent, FinishReason, OrchestrationEvent};
use baton_runtime::{RuntimeError, TurnOutcome, Verification};
use baton_store::{Message, MessageSource, ModelRecord, SessionSummary, StoreError};
use serde::{Deserialize, Serialize};
use specta::Type;

/// A chat session as listed in the sidebar.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Full session id.
    pub id: String,
    /// Title shown in the sidebar.
    pub title: String,
    /// Model last used, if any.
    pub model: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// Number of messages.
    pub message_count: i32,
    /// Memory in this session: on, off, or `None` to follow Settings → Memory.
    pub memory: Option<bool>,
}

impl From<SessionSummary> for SessionInfo {
    fn from(s: SessionSummary) -> Self {
        Self {
            id: s.session.id.0,
            title: s.session.title,
            model: s.session.model,
            created_at: s.session.created_at.to_rfc3339(),
            updated_at: s.session.updated_at.to_rfc3339(),
            message_count: i32::try_from(s.message_count).unwrap_or(i32::MAX),
            memory: s.session.memory,
        }
    }
}

impl From<baton_store::Session> for SessionInfo {
    fn from(s: baton_store::Session) -> Self {
        SessionSummary {
            session: s,
            message_count: 0,
        }
        .into()
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// Instructions to the model.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl From<baton_core::Role> for MessageRole {
    fn from(r: baton_core::Role) -> Self {
        match r {
            baton_core::Role::System => Self::System,
            baton_core::Role::User => Self::User,
            baton_core::Role::Assistant => Self::Assistant,
        }
    }
}

/// A stored message with the measurements of the run that produced it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MessageInfo {
    /// Store id.
    pub id: f64,
    /// Session it belongs to.
    pub session_id: String,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text (Markdown for answers).
    pub content: String,
    /// Model that answered.
    pub model: Option<String>,
    /// Prompt tokens of the run.
    pub prompt_tokens: Option<f64>,
    /// Generated tokens.
    pub completion_tokens: Option<f64>,
    /// Total time of the run in milliseconds.
    pub latency_ms: Option<f64>,
    /// Time to the first token in milliseconds.
    pub first_token_ms: Option<f64>,
    /// Generation speed.
    pub tokens_per_second: Option<f64>,
    /// Cost in US dollars (remote engines).
    pub cost_usd: Option<f64>,
    /// How the answer was produced: `single`, `fanout` or `refine`.
    pub mode: Option<String>,
    /// The person's rating: 1 (thumbs up), -1 (down) or none.
    pub rating: Option<i32>,
    /// What memory gave the model for this answer, numbered as the answer cites them.
    pub sources: Vec<SourceInfo>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A snippet from memory that an answer was given, shown under it as `[n]`.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    /// Its number in the answer (1, 2, …).
    pub n: u32,
    /// `message`, `capture`, `chunk` (of a document) or `task`.
    pub kind: String,
    /// The row it came from (the message's or the capture's id).
    pub ref_id: f64,
    /// The session's title, the capture's source, the document's file name or the task.
    pub title: String,
    /// The snippet the model was given.
    pub text: String,
    /// The session to open (messages).
    pub session_id: Option<String>,
    /// The document's path, the task's id or the capture's id.
    pub location: Option<String>,
}

impl From<MessageSource> for SourceInfo {
    fn from(s: MessageSource) -> Self {
        Self {
            n: s.n,
            kind: s.kind,
            ref_id: s.ref_id as f64,
            title: s.title,
            text: s.text,
            session_id: s.session_id,
            location: s.location,
        }
    }
}

impl From<Message> for MessageInfo {
    fn from(m: Message) -> Self {
        Self {
            id: m.id as f64,
            session_id: m.session_id.0,
            role: m.role.into(),
            content: m.content,
            model: m.model,
            prompt_tokens: m.prompt_tokens.map(|v| v as f64),
            completion_tokens: m.completion_tokens.map(|v| v as f64),
            latency_ms: m.latency_ms.map(|v| v as f64),
            first_token_ms: m.first_token_ms.map(|v| v as f64),
            tokens_per_second: m.tokens_per_second,
            cost_usd: m.cost_usd,
            mode: m.mode,
            rating: m.rating.map(|r| r as i32),
            sources: m.sources.into_iter().map(Into::into).collect(),
            created_at: m.created_at.to_rfc3339(),
        }
    }
}

/// A registered model.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// Registry name.
    pub name: String,
    /// File path.
    pub path: String,
    /// `gguf`, `onnx`, …
    pub format: String,
    /// Tasks it serves (`chat`, `completion`, …).
    pub tasks: Vec<String>,
    /// Architecture from the file's metadata.
    pub architecture: Option<String>,
    /// Parameter count.
    pub parameters: Option<f64>,
    /// Trained context length.
    pub context_length: Option<f64>,
    /// Quantisation.
    pub quantization: Option<String>,
    /// File size in bytes.
    pub file_size: f64,
    /// Where it came from.
    pub source: Option<String>,
    /// Its licence.
    pub license: Option<String>,
    /// Whether it is enabled.
    pub enabled: bool,
}

fn to_json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<ModelRecord> for ModelInfo {
    fn from(m: ModelRecord) -> Self {
        Self {
            format: to_json_name(&m.format),
            tasks: m.tasks.iter().map(to_json_name).collect(),
            name: m.name,
            path: m.path,
            architecture: m.architecture,
            parameters: m.parameters.map(|v| v as f64),
            context_length: m.context_length.map(|v| v as f64),
            quantization: m.quantization,
            file_size: m.file_size as f64,
            source: m.source,
            license: m.license,
            enabled: m.enabled,
        }
    }
}

/// What verifying a model found.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelCheck {
    /// The model.
    pub name: String,
    /// Intact and unchanged.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl From<Verification> for ModelCheck {
    fn from(v: Verification) -> Self {
        Self {
            name: v.name,
            ok: v.ok,
            detail: v.detail,
        }
    }
}

/// One event of a streaming answer.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StreamEvent {
    /// The engine accepted the request.
    Started {
        /// The model answering.
        model: String,
    },
    /// Generated text.
    Token {
        /// The text.
        text: String,
    },
    /// Something the person should know (context trimmed, a fallback, …).
    Notice {
        /// The message.
        message: String,
    },
    /// The text streamed so far is withdrawn: a fallback model answers from the start.
    Restart {
        /// What happened.
        reason: String,
    },
    /// A step of the orchestration (routing, a branch, a critique, a judge's score).
    Step {
        /// The step.
        step: StepInfo,
    },
}

impl From<ChatEvent> for StreamEvent {
    fn from(e: ChatEvent) -> Self {
        match e {
            ChatEvent::Started { model } => Self::Started { model },
            ChatEvent::Token { text } => Self::Token { text },
            ChatEvent::Notice { message } => Self::Notice { message },
            ChatEvent::Restart { reason } => Self::Restart { reason },
        }
    }
}

/// One step of how an answer was made, for the collapsible list under it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    /// `routed`, `step`, `stepDone`, `fallback`, `merged` or `refineDone`.
    pub kind: String,
    /// One line for people.
    pub title: String,
    /// The full text behind it (a critique, an answer, routing reasons), if any.
    pub detail: Option<String>,
    /// Whether the step went well.
    pub ok: bool,
    /// A judge's score, for judge steps.
    pub score: Option<f64>,
    /// The model involved, if one.
    pub model: Option<String>,
    /// The critique-and-refine round (0 for the draft and other modes).
    pub round: i32,
}

impl From<OrchestrationEvent> for StepInfo {
    fn from(e: OrchestrationEvent) -> Self {
        let title = match &e {
            OrchestrationEvent::Routed { decision } => format!("auto → {}", decision.model),
            other => other.summary().trim().to_owned(),
        };
        let (kind, detail, ok, score, model, round) = match e {
            OrchestrationEvent::Routed { decision } => (
                "routed",
                Some(decision.reasons.join("\n")),
                true,
                None,
                Some(decision.model),
                0,
            ),
            OrchestrationEvent::Step { model, round, .. } => {
                ("step", None, true, None, Some(model), round)
            }
            OrchestrationEvent::StepDone {
                model,
                round,
                text,
                ok,
                score,
                ..
            } => ("stepDone", Some(text), ok, score, Some(model), round),
            OrchestrationEvent::Fallback { to, reason, .. } => {
                ("fallback", Some(reason), false, None, Some(to), 0)
            }
            OrchestrationEvent::Merged { winner, .. } => {
                ("merged", None, true, None, Some(winner), 0)
            }
            OrchestrationEvent::RefineDone { rounds, .. } => {
                ("refineDone", None, true, None, None, rounds)
            }
        };
        Self {
            kind: kind.into(),
            title,
            detail,
            ok,
            score,
            model,
            round: round as i32,
        }
    }
}

/// How answers are produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum AnswerMode {
    /// One model, with fallbacks.
    #[default]
    Single,
    /// Several models in parallel, merged.
    FanOut,
    /// Critique-and-refine rounds.
    Refine,
}

impl From<AnswerMode> for baton_runtime::Mode {
    fn from(m: AnswerMode) -> Self {
        match m {
            AnswerMode::Single => Self::Single,
            AnswerMode::FanOut => Self::FanOut,
            AnswerMode::Refine => Self::Refine,
        }
    }
}

/// Figures for one model or mode in the statistics view.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// Model or mode name.
    pub key: String,
    /// Runs recorded.
    pub runs: f64,
    /// Runs that failed.
    pub errors: f64,
    /// Share of finished runs that succeeded (0..1).
    pub success_rate: f64,
    /// Median latency in ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency in ms.
    pub p95_ms: Option<f64>,
    /// Mean tokens per second.
    pub tokens_per_second: Option<f64>,
    /// Total cost in US dollars.
    pub cost_usd: f64,
    /// Thumbs up.
    pub thumbs_up: f64,
    /// Thumbs down.
    pub thumbs_down: f64,
}

impl From<baton_store::UsageStats> for UsageRow {
    fn from(s: baton_store::UsageStats) -> Self {
        Self {
            key: s.key,
            runs: s.runs as f64,
            errors: s.errors as f64,
            success_rate: s.success_rate,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            tokens_per_second: s.tokens_per_second,
            cost_usd: s.cost_usd,
            thumbs_up: s.thumbs_up as f64,
            thumbs_down: s.thumbs_down as f64,
        }
    }
}

/// Everything the statistics view shows.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StatsInfo {
    /// Per model.
    pub models: Vec<UsageRow>,
    /// Per mode.
    pub modes: Vec<UsageRow>,
    /// Routed answers the person rated.
    pub routed_rated: f64,
    /// Of those, rated up.
    pub routed_up: f64,
    /// Routing decisions recorded.
    pub decisions: f64,
    /// Decisions sent to a canary model.
    pub canary_decisions: f64,
    /// Remote engines with their health.
    pub engines: Vec<EngineInfo>,
}

/// A remote engine as the UI lists it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EngineInfo {
    /// Its name.
    pub name: String,
    /// Base URL.
    pub base_url: String,
    /// Its models as Baton names them (`ENGINE/MODEL`).
    pub models: Vec<String>,
    /// Circuit breaker: `closed`, `open` or `half-open`.
    pub breaker: String,
    /// Failure rate over the breaker's window (0..1).
    pub failure_rate: f64,
    /// US dollars per million prompt tokens.
    pub input_usd_per_mtok: f64,
    /// US dollars per million generated tokens.
    pub output_usd_per_mtok: f64,
    /// Where its API key is kept: `none`, `keyring` or `file` (the key itself never
    /// reaches the UI).
    pub key_store: String,
    /// Whether the router may use it.
    pub enabled: bool,
    /// RFC 3339 time it was added.
    pub added_at: String,
}

impl From<baton_runtime::EngineStatus> for EngineInfo {
    fn from(e: baton_runtime::EngineStatus) -> Self {
        Self {
            models: e
                .record
                .models
                .iter()
                .map(|m| format!("{}/{m}", e.record.name))
                .collect(),
            input_usd_per_mtok: e.record.input_usd_per_mtok,
            output_usd_per_mtok: e.record.output_usd_per_mtok,
            key_store: e.record.key_store,
            enabled: e.record.enabled,
            added_at: e.record.added_at.to_rfc3339(),
            name: e.record.name,
            base_url: e.record.base_url,
            breaker: e.breaker,
            failure_rate: e.failure_rate,
        }
    }
}

/// A remote engine to add, as the Settings form fills it. The API key is only read: it goes
/// to the runtime's key store and is never logged or sent back (`Debug` redacts it).
#[derive(Clone, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct NewEngine {
    /// Short name; its models become `NAME/MODEL`.
    pub name: String,
    /// Base URL up to the API version, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// API key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// Models to use; empty means every model the endpoint lists.
    pub models: Vec<String>,
    /// US dollars per million prompt tokens.
    pub input_usd_per_mtok: f64,
    /// US dollars per million generated tokens.
    pub output_usd_per_mtok: f64,
}

impl std::fmt::Debug for NewEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEngine")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("models", &self.models)
            .field("input_usd_per_mtok", &self.input_usd_per_mtok)
            .field("output_usd_per_mtok", &self.output_usd_per_mtok)
            .finish()
    }
}

impl From<NewEngine> for baton_runtime::AddEngine {
    fn from(e: NewEngine) -> Self {
        Self {
            name: e.name,
            base_url: e.base_url,
            api_key: e.api_key,
            models: e.models,
            input_usd_per_mtok: e.input_usd_per_mtok,
            output_usd_per_mtok: e.output_usd_per_mtok,
        }
    }
}

/// What testing a remote engine found.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EngineTestInfo {
    /// The engine.
    pub name: String,
    /// Whether it can take requests now.
    pub ready: bool,
    /// Round-trip time of the check in milliseconds.
    pub latency_ms: f64,
    /// What it answered (its model count and names).
    pub detail: String,
    /// The engine's health after the check (its breaker counts the outcome).
    pub engine: Option<EngineInfo>,
}

/// A chat model's fit on this machine, for the model choice.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelFitInfo {
    /// Manifest name.
    pub name: String,
    /// File size in bytes.
    pub size: f64,
    /// Quality rank from the manifest (higher is better).
    pub rank: u32,
    /// Whether it is installed.
    pub installed: bool,
    /// Whether it runs comfortably here.
    pub fits: bool,
    /// Why, in words.
    pub why: String,
    /// Decode speed measured on this machine, tokens per second.
    pub measured_tokens_per_second: Option<f64>,
    /// Pass rate over the built-in evaluation (0..1), where measured.
    pub eval_pass_rate: Option<f64>,
}

impl From<baton_runtime::ModelFit> for ModelFitInfo {
    fn from(f: baton_runtime::ModelFit) -> Self {
        Self {
            name: f.name,
            size: f.size as f64,
            rank: f.rank,
            installed: f.installed,
            fits: f.fits,
            why: f.why,
            measured_tokens_per_second: f.measured_tokens_per_second,
            eval_pass_rate: f.eval_pass_rate,
        }
    }
}

/// The chat models this machine can run, and where the person's choice stands.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelChoice {
    /// Every chat model of the manifest with its fit here, best first.
    pub models: Vec<ModelFitInfo>,
    /// The best model that fits this machine (installed or not).
    pub recommended: Option<String>,
    /// The chat model used when none is chosen now.
    pub current: String,
    /// The model the config file pins (`chat.default_model`), when it is not `auto`: the
    /// choice is then made there.
    pub pinned: Option<String>,
    /// Whether the person has chosen a model (stored in the settings).
    pub chosen: bool,
    /// Whether the window should ask now: `auto` in the config, no choice stored, not put
    /// off with "Decide later", and more than one model fits.
    pub ask: bool,
    /// This machine in words (cores, memory, GPU).
    pub machine: String,
}

/// Pass rate, time and cost of one model in one mode on one domain, with its 95% interval.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EvalScoreInfo {
    /// The model asked for (`auto` when routed).
    pub model: String,
    /// `single`, `fanout` or `refine`.
    pub mode: String,
    /// The domain, or `all`.
    pub domain: String,
    /// Answers that passed.
    pub passed: u32,
    /// Answers scored.
    pub total: u32,
    /// The pass rate (0..1).
    pub rate: f64,
    /// Lower bound of the 95% (Wilson) interval.
    pub low: Option<f64>,
    /// Upper bound of the 95% interval.
    pub high: Option<f64>,
    /// Mean milliseconds per answer.
    pub mean_ms: f64,
    /// Mean generation speed, where measured.
    pub tokens_per_second: Option<f64>,
    /// Total cost in US dollars.
    pub cost_usd: f64,
}

impl From<baton_store::EvalScore> for EvalScoreInfo {
    fn from(s: baton_store::EvalScore) -> Self {
        let interval = baton_eval::wilson_interval(s.passed, s.total);
        Self {
            rate: s.rate(),
            low: interval.map(|i| i.low),
            high: interval.map(|i| i.high),
            model: s.model,
            mode: s.mode,
            domain: s.domain,
            passed: s.passed,
            total: s.total,
            mean_ms: s.mean_ms,
            tokens_per_second: s.tokens_per_second,
            cost_usd: s.cost_usd,
        }
    }
}

/// An evaluation run as listed.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EvalRunInfo {
    /// Its id.
    pub id: f64,
    /// Question sets.
    pub sets: Vec<String>,
    /// `model/mode` labels.
    pub targets: Vec<String>,
    /// The machine it ran on.
    pub machine: String,
    /// `running`, `done`, `cancelled` or `failed`.
    pub status: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// Answers scored.
    pub results: f64,
}

impl From<baton_store::EvalRun> for EvalRunInfo {
    fn from(r: baton_store::EvalRun) -> Self {
        Self {
            id: r.id as f64,
            sets: r.sets,
            targets: r.targets,
            machine: r.machine,
            status: r.status,
            started_at: r.started_at.to_rfc3339(),
            finished_at: r.finished_at.map(|t| t.to_rfc3339()),
            results: r.results as f64,
        }
    }
}

/// Progress of an evaluation started in the window.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EvalProgressInfo {
    /// The run is recorded and starts.
    #[serde(rename_all = "camelCase")]
    Started {
        /// Its id.
        run_id: f64,
        /// Answers it will score.
        total: u32,
        /// The models it evaluates.
        models: Vec<String>,
    },
    /// One answer was scored and stored.
    #[serde(rename_all = "camelCase")]
    Scored {
        /// Answers scored so far.
        done: u32,
        /// Answers in the run.
        total: u32,
        /// Of those, passed.
        passed: u32,
        /// The model that answered.
        model: String,
        /// The question's id.
        item_id: String,
        /// The question's domain.
        domain: String,
        /// Whether this answer passed.
        ok: bool,
    },
}

/// How an evaluation started in the window ended.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct EvalReportInfo {
    /// The run's id.
    pub run_id: f64,
    /// Answers scored.
    pub answers: u32,
    /// Of those, passed.
    pub passed: u32,
    /// Whether it was cancelled before the end.
    pub cancelled: bool,
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum TurnEnd {
    /// The model finished.
    Stop,
    /// The token limit was reached.
    Length,
    /// The person stopped it.
    Cancelled,
}

/// What a completed turn stored.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TurnResult {
    /// The stored question (absent when regenerating).
    pub user: Option<MessageInfo>,
    /// The stored answer.
    pub assistant: MessageInfo,
    /// How the generation ended.
    pub end: TurnEnd,
}

impl From<TurnOutcome> for TurnResult {
    fn from(t: TurnOutcome) -> Self {
        Self {
            user: t.user.map(Into::into),
            assistant: t.assistant.into(),
            end: match t.response.finish_reason {
                FinishReason::Stop => TurnEnd::Stop,
                FinishReason::Length => TurnEnd::Length,
                FinishReason::Cancelled => TurnEnd::Cancelled,
            },
        }
    }
}

/// The colour theme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum ThemeChoice {
    /// Follow the system.
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

/// Global keyboard shortcuts (accelerator strings such as `CommandOrControl+Shift+Space`;
/// empty for none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase", default)]
pub struct Shortcuts {
    /// Shows and focuses the window.
    pub show_window: String,
    /// Opens a new chat.
    pub new_chat: String,
    /// Captures the screen to read a region.
    pub ocr_region: String,
    /// Listens while held (push to talk).
    pub push_to_talk: String,
}

impl Default for Shortcuts {
    fn default() -> Self {
        Self {
            show_window: "CommandOrControl+Shift+Space".into(),
            new_chat: "CommandOrControl+Shift+N".into(),
            ocr_region: "CommandOrControl+Shift+O".into(),
            push_to_talk: "CommandOrControl+Shift+M".into(),
        }
    }
}

/// The person's UI preferences, kept in the store's settings table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase", default)]
pub struct Preferences {
    /// Colour theme.
    pub theme: ThemeChoice,
    /// The model new messages use; `None` means "auto" (the router chooses).
    pub model: Option<String>,
    /// How new messages are answered.
    pub mode: AnswerMode,
    /// Global shortcuts.
    pub shortcuts: Shortcuts,
    /// Voice input and reading aloud.
    pub voice: VoicePreferences,
}

/// What happens to the text heard by voice input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum AfterSpeech {
    /// It is sent as a message.
    #[default]
    Send,
    /// It is put into the composer to be edited and sent by hand.
    Insert,
}

/// Voice preferences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase", default)]
pub struct VoicePreferences {
    /// What happens to the text heard.
    pub after_speech: AfterSpeech,
    /// Whether answers are read aloud as they stream.
    pub auto_speak: bool,
}

/// Voice input as it happens, for the composer: sent to the window as an event, whoever
/// started it (the mic button, the push-to-talk shortcut, the tray).
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum VoiceInput {
    /// Listening starts (the microphone opens, the speech model loads).
    Starting {
        /// Whether it listens while a key is held (push to talk), or until the end of
        /// the first utterance.
        hold: bool,
    },
    /// The microphone is open.
    Listening {
        /// Its name.
        device: String,
    },
    /// The input level (0..1), about every 50 ms.
    Level {
        /// RMS level.
        level: f32,
    },
    /// Speech began.
    SpeechStarted,
    /// The utterance's text so far.
    Partial {
        /// The text.
        text: String,
    },
    /// An utterance's final text.
    Final {
        /// The text.
        text: String,
    },
    /// Listening ended (stopped, released, or after the utterance).
    Ended {
        /// Why it failed, when it did.
        error: Option<AppError>,
    },
}

/// Reading aloud started or ended: sent to the window as an event.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct ReadAloud {
    /// The message being read (`None`: an answer read as it streams).
    pub message_id: Option<f64>,
    /// Whether it is being read now.
    pub playing: bool,
    /// The voice used, when it started.
    pub voice: Option<String>,
    /// A problem met while reading (a sentence that could not be spoken).
    pub error: Option<String>,
}

/// Preferences as saved, with what applying them found.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PreferencesState {
    /// The saved preferences.
    pub preferences: Preferences,
    /// Shortcuts that could not be registered, with the reason.
    pub shortcut_errors: Vec<String>,
}

/// A problem the UI shows, with what to do about it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AppError {
    /// What kind of problem (`modelUnavailable`, `notFound`, `invalid`, `startup`, …).
    pub kind: String,
    /// The message, which says what to do.
    pub message: String,
}

impl AppError {
    /// An error of `kind` with `message`.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl From<RuntimeError> for AppError {
    fn from(e: RuntimeError) -> Self {
        use baton_core::EngineError;
        let kind = match &e {
            RuntimeError::Config(_) => "config",
            RuntimeError::Store(StoreError::SessionNotFound(_)) => "notFound",
            RuntimeError::Store(StoreError::Invalid(_)) => "invalid",
            RuntimeError::Store(_) => "store",
            RuntimeError::Engine(EngineError::ModelUnavailable { .. }) => "modelUnavailable",
            RuntimeError::Engine(EngineError::InvalidRequest(_)) => "invalid",
            RuntimeError::Engine(_) => "engine",
            RuntimeError::Model(_) => "model",
            RuntimeError::Speech(baton_core::SpeechError::Model(_)) => "speechModel",
            RuntimeError::Speech(baton_core::SpeechError::NoDevice(_)) => "noDevice",
            RuntimeError::Speech(_) => "speech",
            RuntimeError::Task(_) => "invalid",
        };
        Self::new(kind, e.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        RuntimeError::Store(e).into()
    }
}

/// Where Baton keeps its files.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct DataPaths {
    /// The database directory.
    pub data_dir: String,
    /// The config file.
    pub config_file: String,
    /// Fetched models.
    pub models_dir: String,
}

/// What the window needs to know at start: whether the runtime opened, and if not why.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Baton's version.
    pub version: String,
    /// Where files live.
    pub paths: DataPaths,
    /// The runtime failed to open: the window shows this instead of the chat.
    pub startup_error: Option<AppError>,
    /// The configured default model.
    pub default_model: String,
    /// Whether a system tray icon was created (closing the window then hides it).
    pub tray: bool,
}

/// A quick action from the tray, a global shortcut or `baton-app --action`.
#[derive(Debug, Clone, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum AppAction {
    /// Start a new chat.
    NewChat,
    /// Start a new chat about the clipboard's text.
    AskClipboard {
        /// The clipboard's text (empty when it held none).
        text: String,
    },
    /// Focus the search box.
    Search,
    /// Show a capture that was just read.
    ShowCapture {
        /// Its store id.
        id: f64,
    },
    /// Listen to the microphone until the end of the utterance (the tray's "Push to talk",
    /// `--action push-to-talk`).
    Listen,
    /// Show the Tasks view (the tray's "Tasks", `--action tasks`, an approval waiting).
    ShowTasks,
    /// "OCR a region" failed; the message says why and what to do.
    CaptureFailed {
        /// The message.
        message: String,
    },
}

/// A model Baton can fetch from its packages, and whether it is installed.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FetchableModel {
    /// Registry name.
    pub name: String,
    /// What it is for (`chat`, `completion`, …).
    pub task: String,
    /// Download size of the installed file in bytes.
    pub size: f64,
    /// Licence of the weights.
    pub licence: String,
    /// Whether `make run` fetches it by default.
    pub default: bool,
    /// Whether it is registered already.
    pub registered: bool,
}

/// Progress of a model fetch: `done` of `total` bytes in the current stage.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FetchProgressInfo {
    /// The model.
    pub model: String,
    /// `checking`, `downloading`, `extracting` or `registering`.
    pub stage: String,
    /// Bytes done in this stage.
    pub done: f64,
    /// Bytes in this stage.
    pub total: f64,
}

impl From<baton_runtime::FetchProgress> for FetchProgressInfo {
    fn from(p: baton_runtime::FetchProgress) -> Self {
        Self {
            stage: to_json_name(&p.stage),
            model: p.model,
            done: p.done as f64,
            total: p.total as f64,
        }
    }
}

/// A screenshot waiting for its region to be selected.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PendingCapture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The image as a `data:image/png;base64,…` URL.
    pub image: String,
}

/// A rectangle in pixels of a capture's image.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BoxInfo {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl From<baton_core::BoundingBox> for BoxInfo {
    fn from(b: baton_core::BoundingBox) -> Self {
        Self {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

/// A word OCR read.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct WordInfo {
    /// The text.
    pub text: String,
    /// Where it is.
    pub bbox: BoxInfo,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Index of its line.
    pub line: u32,
}

/// A UI element found in a capture.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ElementInfo {
    /// `button`, `text_field`, `checkbox`, `radio`, `link`, `label`, `icon`…
    pub kind: String,
    /// Where it is.
    pub bbox: BoxInfo,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Its text, if any.
    pub text: Option<String>,
}

/// A stored capture with what was read from it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CaptureInfo {
    /// Store id.
    pub id: f64,
    /// How it was taken (`region`, …).
    pub source: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The text, lines joined with newlines.
    pub text: String,
    /// Words with boxes.
    pub words: Vec<WordInfo>,
    /// UI elements with boxes.
    pub elements: Vec<ElementInfo>,
    /// RFC 3339 time it was taken.
    pub created_at: String,
    /// The image as a data URL (absent when its file is gone).
    pub image: Option<String>,
}

/// Reads the words and elements stored as JSON with a capture.
pub fn capture_boxes(
    words: serde_json::Value,
    elements: serde_json::Value,
) -> (Vec<WordInfo>, Vec<ElementInfo>) {
    let words: Vec<baton_core::OcrWord> = serde_json::from_value(words).unwrap_or_default();
    let elements: Vec<baton_core::UiElement> = serde_json::from_value(elements).unwrap_or_default();
    (
        words
            .into_iter()
            .map(|w| WordInfo {
                text: w.text,
                bbox: w.bbox.into(),
                confidence: w.confidence,
                line: u32::try_from(w.line).unwrap_or(u32::MAX),
            })
            .collect(),
        elements
            .into_iter()
            .map(|e| ElementInfo {
                kind: to_json_name(&e.kind),
                bbox: e.bbox.into(),
                confidence: e.confidence,
                text: e.text,
            })
            .collect(),
    )
}

/// A capture in the history list.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CaptureSummaryInfo {
    /// Store id.
    pub id: f64,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The start of the text, or a search snippet with `[`…`]` around hits.
    pub excerpt: String,
    /// RFC 3339 time it was taken.
    pub created_at: String,
}

impl From<baton_store::CaptureSummary> for CaptureSummaryInfo {
    fn from(c: baton_store::CaptureSummary) -> Self {
        Self {
            id: c.id as f64,
            width: c.width,
            height: c.height,
            excerpt: c.excerpt,
            created_at: c.created_at.to_rfc3339(),
        }
    }
}
