//! The worker protocol: typed messages between the supervisor and `baton-llm-worker`.
//!
//! Transport: JSON lines over the worker's stdio. The supervisor writes one
//! [`WorkerRequest`] per line to the worker's stdin; the worker writes one [`WorkerEvent`]
//! per line to its stdout (and logs only to stderr). Every message is an object with a
//! `type` tag; every request that expects an answer carries an `id` that its events repeat.
//!
//! Versioning: the worker greets with [`WorkerEvent::Hello`] carrying
//! [`PROTOCOL_VERSION`] as soon as it starts; the supervisor answers with
//! [`WorkerRequest::Hello`] carrying its own version and refuses a worker whose version
//! differs. Bump [`PROTOCOL_VERSION`] on any incompatible change.
//!
//! A conversation, one line each:
//!
//! ```text
//! <- {"type":"hello","protocol_version":2,"pid":4242,"worker_version":"0.1.0"}
//! -> {"type":"hello","protocol_version":2}
//! -> {"type":"load","id":"l1","path":"/m/smol.gguf","n_ctx":4096,"n_gpu_layers":0,"n_parallel":4}
//! <- {"type":"loaded","id":"l1","metadata":{...}}
//! -> {"type":"chat","id":"r1","messages":[...],"params":{...},"session":"s1"}
//! <- {"type":"token","id":"r1","text":"Par","t_ms":41}
//! -> {"type":"cancel","id":"r1"}
//! <- {"type":"done","id":"r1","usage":{...},"finish_reason":"cancelled","text":"Par"}
//! ```
//!
//! Parallel requests (version 2): a worker serves up to `n_parallel` chat requests at once
//! (one llama.cpp sequence each, decoded together in one batch per step). Events of
//! different requests interleave; each carries its request's id. A chat that finds every
//! slot busy waits in a first-in-first-out queue: the worker says so with
//! [`WorkerEvent::Queued`] and, once it starts, [`WorkerEvent::Admitted`].
//!
//! Changes in version 2: `load.n_parallel`, `loaded.metadata.n_parallel`, the `queued` and
//! `admitted` events, and the slot and queue counters in [`WorkerStats`]. Chat requests
//! may also carry `params.format` (JSON object, JSON schema, GBNF grammar) and the
//! presence/frequency penalties of [`SamplingParams`], which the worker enforces.

use baton_core::{ChatMessage, FinishReason, SamplingParams};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Version of this protocol. Worker and supervisor must agree exactly.
pub const PROTOCOL_VERSION: u32 = 2;

/// Most parallel slots a worker accepts in [`WorkerRequest::Load`].
pub const MAX_PARALLEL: u32 = 64;

/// Longest request line the worker accepts, in bytes (16 MiB). Longer lines are answered
/// with a [`ErrorKind::BadRequest`] error and skipped.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// A message from the supervisor to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerRequest {
    /// Handshake: the supervisor's protocol version.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        protocol_version: u32,
    },
    /// Load a model, replacing any loaded one. Answered by [`WorkerEvent::Loaded`] or an
    /// [`WorkerEvent::Error`].
    Load {
        /// Request id.
        id: String,
        /// Path of the GGUF file.
        path: PathBuf,
        /// Context window to allocate, in tokens (0: the model's training context).
        n_ctx: u32,
        /// Layers to offload to the GPU (0 on CPU-only builds).
        n_gpu_layers: u32,
        /// A chat template (llama.cpp template name such as `chatml`, or the template
        /// text) used instead of the one in the model's metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_template: Option<String>,
        /// CPU threads for evaluation; absent: half the available cores (at least 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_threads: Option<u32>,
        /// Chat requests served at once (slots, one llama.cpp sequence each; at most
        /// [`MAX_PARALLEL`]). 0 or absent: 1. All slots share one KV cache of `n_ctx`
        /// tokens, and each request may use up to `n_ctx` of it.
        #[serde(default)]
        n_parallel: u32,
    },
    /// Unload the model and free its memory. Answered by [`WorkerEvent::Unloaded`].
    Unload {
        /// Request id.
        id: String,
    },
    /// Generate a chat completion. Answered by [`WorkerEvent::Token`]s, maybe
    /// [`WorkerEvent::Notice`]s, and one [`WorkerEvent::Done`] or [`WorkerEvent::Error`].
    Chat {
        /// Request id (the runtime's [`baton_core::RequestId`]).
        id: String,
        /// The conversation, oldest first.
        messages: Vec<ChatMessage>,
        /// Sampling parameters.
        #[serde(default)]
        params: SamplingParams,
        /// Session key: turns of one session reuse the evaluated prompt prefix.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Stop the generation of request `id` as soon as possible; it then ends with
    /// [`WorkerEvent::Done`] and [`FinishReason::Cancelled`]. Unknown ids are ignored.
    Cancel {
        /// The request to stop.
        id: String,
    },
    /// Liveness check, answered by [`WorkerEvent::Pong`] even while generating.
    Ping {
        /// Request id.
        id: String,
    },
    /// Ask for [`WorkerEvent::Stats`].
    Stats {
        /// Request id.
        id: String,
    },
    /// Exit cleanly (closing stdin does the same).
    Shutdown,
}

/// What kind of error a worker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request line was not valid JSON or not a known request.
    BadRequest,
    /// The supervisor speaks another protocol version.
    VersionMismatch,
    /// A chat arrived but no model is loaded.
    NoModel,
    /// The model file is missing, not a GGUF file, truncated or refused by llama.cpp.
    ModelLoad,
    /// The model has no chat template and none was given.
    NoChatTemplate,
    /// The prompt does not fit the context window even with all history dropped.
    ContextOverflow,
    /// Anything else that went wrong inside the worker.
    Internal,
}

/// A message from the worker to the supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// Sent once at start-up: the worker is ready for requests.
    Hello {
        /// The worker's [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The worker's process id.
        pid: u32,
        /// The worker binary's crate version.
        worker_version: String,
    },
    /// A model was loaded.
    Loaded {
        /// The load request's id.
        id: String,
        /// What llama.cpp reports about the model.
        metadata: LoadedModel,
    },
    /// The model was unloaded.
    Unloaded {
        /// The unload request's id.
        id: String,
    },
    /// The chat request waits: every slot is busy (it is in the worker's queue), or its
    /// slot waits for room in the KV cache the slots share (also after it was preempted
    /// mid-generation to make room). [`WorkerEvent::Admitted`] follows when it starts.
    /// Waiting has no time limit in the worker; the supervisor applies its queue timeout.
    Queued {
        /// The chat request's id.
        id: String,
        /// Its place in line (1: next).
        position: u32,
    },
    /// A waiting chat request starts (again) now (sent only after
    /// [`WorkerEvent::Queued`]).
    Admitted {
        /// The chat request's id.
        id: String,
    },
    /// A piece of generated text.
    Token {
        /// The chat request's id.
        id: String,
        /// Text (whole UTF-8 characters; may be part of a word).
        text: String,
        /// Milliseconds since the worker received the request.
        t_ms: u64,
    },
    /// A chat request finished.
    Done {
        /// The chat request's id.
        id: String,
        /// The complete generated text.
        text: String,
        /// Token accounting and timings.
        usage: WorkerUsage,
        /// Why generation stopped.
        finish_reason: FinishReason,
    },
    /// Something the user should know (for example: older turns were dropped).
    Notice {
        /// The request it concerns.
        id: String,
        /// What happened, in words.
        message: String,
    },
    /// A request failed. `id` is absent when the request line could not be parsed.
    Error {
        /// The failed request's id, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Error category.
        kind: ErrorKind,
        /// What went wrong and what to do.
        message: String,
    },
    /// Answer to [`WorkerRequest::Ping`].
    Pong {
        /// The ping's id.
        id: String,
    },
    /// Answer to [`WorkerRequest::Stats`].
    Stats {
        /// The stats request's id.
        id: String,
        /// The numbers.
        stats: WorkerStats,
    },
}

impl WorkerEvent {
    /// The request id this event answers, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            WorkerEvent::Hello { .. } => None,
            WorkerEvent::Error { id, .. } => id.as_deref(),
            WorkerEvent::Loaded { id, .. }
            | WorkerEvent::Unloaded { id }
            | WorkerEvent::Token { id, .. }
            | WorkerEvent::Queued { id, .. }
            | WorkerEvent::Admitted { id }
            | WorkerEvent::Done { id, .. }
            | WorkerEvent::Notice { id, .. }
            | WorkerEvent::Pong { id }
            | WorkerEvent::Stats { id, .. } => Some(id),
        }
    }

    /// Whether this event ends the request it answers (no more events follow for its id).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            WorkerEvent::Token { .. }
                | WorkerEvent::Notice { .. }
                | WorkerEvent::Hello { .. }
                | WorkerEvent::Queued { .. }
                | WorkerEvent::Admitted { .. }
        )
    }
}

/// Token accounting and timings of one chat request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerUsage {
    /// Tokens in the prompt (after any history was dropped).
    pub prompt_tokens: u32,
    /// Of those, tokens whose evaluation was reused from the KV cache.
    pub cached_prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Milliseconds spent evaluating the uncached part of the prompt.
    pub prompt_eval_ms: u64,
    /// Milliseconds spent generating.
    pub gen_ms: u64,
    /// Milliseconds from receiving the request to the first token, if one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<u64>,
    /// Conversation turns dropped to fit the context window.
    #[serde(default)]
    pub dropped_turns: u32,
}

/// What the worker knows about a loaded model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedModel {
    /// The file that was loaded.
    pub path: PathBuf,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// Parameter count.
    pub parameters: u64,
    /// Bytes of weights.
    pub size_bytes: u64,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Context the model was trained with.
    pub n_ctx_train: u32,
    /// Context window allocated.
    pub n_ctx: u32,
    /// Layers offloaded to a GPU.
    pub n_gpu_layers: u32,
    /// Chat requests served at once (slots sharing the `n_ctx`-token KV cache).
    #[serde(default)]
    pub n_parallel: u32,
    /// Whether a chat template is available (from the file or the override).
    pub has_chat_template: bool,
    /// Milliseconds the load took.
    pub load_ms: u64,
}

/// Counters of a worker process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// The worker's process id.
    pub pid: u32,
    /// The loaded model, if any.
    pub model: Option<PathBuf>,
    /// Chat requests handled (counted when they start; any outcome).
    pub requests: u64,
    /// Tokens generated in total.
    pub tokens_generated: u64,
    /// Prompt tokens reused from the KV cache in total.
    pub cached_prompt_tokens: u64,
    /// Tokens currently held in the KV cache (all slots together).
    pub kv_tokens: u32,
    /// Whether a generation is running now.
    pub busy: bool,
    /// Chat requests holding a slot now.
    #[serde(default)]
    pub active_requests: u32,
    /// Chat requests waiting for a slot.
    #[serde(default)]
    pub queued_requests: u32,
    /// Slots of the loaded model (0 when none is loaded).
    #[serde(default)]
    pub n_parallel: u32,
    /// Times a running request was preempted because the slots together outgrew the
    /// shared KV cache (it resumed later). Often non-zero: the context is too small for
    /// the parallel load; raise `n_ctx` or lower `n_parallel`.
    #[serde(default)]
    pub preemptions: u64,
}

/// Serialise a message as one protocol line (JSON plus `\n`).
pub fn to_line<T: Serialize>(message: &T) -> String {
    // Serialising these plain enums cannot fail (no maps with non-string keys, no
    // non-finite floats are rejected by serde_json; a NaN becomes null).
    let mut line = serde_json::to_string(message).unwrap_or_else(|err| {
        format!(r#"{{"type":"error","kind":"internal","message":"serialise: {err}"}}"#)
    });
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let request = WorkerRequest::Chat {
            id: "r1".into(),
            messages: vec![ChatMessage::user("hi")],
            params: SamplingParams::default(),
            session: Some("s".into()),
        };
        let line = to_line(&request);
        assert!(line.ends_with('\n') && line.starts_with(r#"{"type":"chat""#));
        let back: WorkerRequest = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn chat_params_default_when_missing() {
        let request: WorkerRequest =
            serde_json::from_str(r#"{"type":"chat","id":"x","messages":[]}"#).unwrap();
        match request {
            WorkerRequest::Chat {
                params, session, ..
            } => {
                assert_eq!(params, SamplingParams::default());
                assert_eq!(session, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn load_without_n_parallel_means_one_slot() {
        let request: WorkerRequest = serde_json::from_str(
            r#"{"type":"load","id":"l","path":"/m.gguf","n_ctx":0,"n_gpu_layers":0}"#,
        )
        .unwrap();
        match request {
            WorkerRequest::Load { n_parallel, .. } => assert_eq!(n_parallel, 0),
            other => panic!("unexpected {other:?}"),
        }
        let metadata: LoadedModel = serde_json::from_str(
            r#"{"path":"/m","architecture":null,"name":null,"parameters":1,"size_bytes":1,"n_layer":1,"n_vocab":1,"n_ctx_train":1,"n_ctx":1,"n_gpu_layers":0,"has_chat_template":true,"load_ms":1}"#,
        )
        .unwrap();
        assert_eq!(metadata.n_parallel, 0);
    }

    #[test]
    fn queue_events_are_not_terminal() {
        for event in [
            WorkerEvent::Queued {
                id: "q".into(),
                position: 2,
            },
            WorkerEvent::Admitted { id: "q".into() },
        ] {
            assert_eq!(event.request_id(), Some("q"));
            assert!(!event.is_terminal());
            let line = to_line(&event);
            let back: WorkerEvent = serde_json::from_str(line.trim()).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn events_know_their_ids_and_terminality() {
        let token = WorkerEvent::Token {
            id: "a".into(),
            text: "x".into(),
            t_ms: 1,
        };
        assert_eq!(token.request_id(), Some("a"));
        assert!(!token.is_terminal());
        let done = WorkerEvent::Done {
            id: "a".into(),
            text: String::new(),
            usage: WorkerUsage::default(),
            finish_reason: FinishReason::Stop,
        };
        assert!(done.is_terminal());
        let json = serde_json::to_string(&done).unwrap();
        assert!(json.contains(r#""finish_reason":"stop""#), "{json}");
    }
}
