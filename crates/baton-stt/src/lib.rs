//! Baton's speech recognition, client side: the [`protocol`] spoken with
//! `baton-stt-worker` (the only binary that links whisper.cpp) and [`SttEngine`], the
//! supervisor that starts the worker, loads the model, streams audio to it, and turns a
//! dead worker into an error for that utterance only (the next one starts a fresh worker).
//!
//! This crate has no native code: whisper.cpp and llama.cpp both vendor ggml and must never
//! meet in one binary, so the runtime, the CLI and the app only ever talk to the worker.
#![warn(missing_docs)]

pub mod protocol;
mod supervisor;

pub use supervisor::{find_worker, SttConfig, SttEngine, Utterance, WORKER_ENV};
