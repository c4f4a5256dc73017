//! Baton's local LLM engine, without any native code.
//!
//! - [`protocol`]: the typed, versioned JSON-lines protocol spoken with `baton-llm-worker`.
//! - [`gguf`]: a pure-Rust GGUF metadata reader and validator (rejects truncated and
//!   corrupt files before llama.cpp sees them).
//! - [`gpu`]: CUDA device probing through `cudarc` (libcuda loaded at run time) and the
//!   GPU-offload decision.
//! - [`supervisor`]: [`LocalLlmEngine`], the [`baton_core::Engine`] that starts, supervises
//!   and restarts worker processes, one per loaded model, with keep-alive and LRU eviction.
//!
//! Using the engine (the runtime resolves names through its registry instead of a map):
//!
//! ```no_run
//! use baton_core::{CancellationToken, ChatEvent, ChatMessage, ChatRequest, Engine};
//! use baton_llm::{LocalLlmConfig, LocalLlmEngine, ModelSpec};
//! use std::{collections::HashMap, sync::Arc};
//!
//! # async fn demo() -> Result<(), baton_core::EngineError> {
//! let mut models = HashMap::new();
//! models.insert(
//!     "smollm2-135m-instruct".to_owned(),
//!     ModelSpec::new("/models/SmolLM2-135M-Instruct.Q4_1.gguf", 4096),
//! );
//! let engine = LocalLlmEngine::new(Arc::new(models), LocalLlmConfig::default());
//! let request = ChatRequest::new(
//!     "smollm2-135m-instruct",
//!     vec![ChatMessage::user("What is the capital of France?")],
//! );
//! let print = |event: ChatEvent| {
//!     if let ChatEvent::Token { text } = event {
//!         print!("{text}");
//!     }
//! };
//! let response = engine.chat(request, &print, CancellationToken::new()).await?;
//! println!("\n{} tokens", response.usage.completion_tokens);
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Architecture invariant: this crate never links llama.cpp. The runtime, CLI and desktop
//! app depend on it; native inference happens only in the `baton-llm-worker` process, so a
//! crash there cannot take the app down (and llama.cpp's ggml cannot collide with
//! whisper.cpp's).
#![warn(missing_docs)]

pub mod gguf;
pub mod gpu;
pub mod protocol;
pub mod supervisor;
mod worker;

pub use gguf::{inspect, GgufError, GgufInfo};
pub use gpu::{choose_gpu_layers, GpuReport};
pub use protocol::{LoadedModel, WorkerStats, PROTOCOL_VERSION};
pub use supervisor::{
    find_worker, FnResolver, LoadedModelStatus, LocalLlmConfig, LocalLlmEngine, ModelResolver,
    ModelSpec, DEFAULT_N_PARALLEL, WORKER_BINARY, WORKER_ENV,
};
