//! Remote engines: any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp's server,
//! OpenRouter, Baton's own `baton serve`) behind Baton's [`baton_core::Engine`] trait, and the
//! store for their API keys.
//!
//! [`RemoteEngine`] streams `/chat/completions` over server-sent events, retries with
//! exponential backoff on retryable failures only (connection errors, timeouts, 408, 429,
//! 5xx) and only before the first token reached the caller, waits as long as the endpoint's
//! rate-limit headers ask (within a cap), and accounts tokens and cost. [`KeyStore`] keeps API
//! keys in the OS keyring, or, opted into, an encrypted file; never in SQLite or logs.
#![warn(missing_docs)]

mod engine;
mod ratelimit;
mod secrets;
#[cfg(feature = "test-peer")]
pub mod test_peer;

pub use engine::{ApiKey, EndpointConfig, RemoteEngine, Timeouts};
pub use ratelimit::retry_after;
pub use secrets::{KeyStore, KeyStoreKind, SecretsError};
