//! Baton's domain core.
//!
//! The types and traits every other crate implements or consumes: chat messages and
//! streaming events, the [`Engine`] trait for chat models (local worker or remote
//! endpoint), speech ([`Recognizer`], [`Synthesizer`]), vision ([`OcrEngine`],
//! [`ElementDetector`]), model descriptors and task kinds.
//!
//! Architecture invariant: this crate is pure. It has no native dependencies and performs
//! no I/O (no files, sockets, processes or clocks beyond what callers pass in), so
//! everything here is testable without a model, a window or a database.
#![warn(missing_docs)]

pub mod breaker;
pub mod chat;
pub mod engine;
pub mod ensemble;
pub mod error;
pub mod ids;
pub mod memory;
pub mod model;
pub mod routing;
pub mod speech;
pub mod tasks;
pub mod vision;

pub use breaker::{BreakerPolicy, BreakerState, CircuitBreaker};
pub use chat::{
    ChatEvent, ChatMessage, ChatRequest, ChatResponse, FinishReason, OutputFormat, Role,
    SamplingOverrides, SamplingParams, Usage,
};
pub use engine::{CancellationToken, Engine, EngineHealth, EventSink};
pub use ensemble::{MergeStrategy, OrchestrationEvent, RefineStop};
pub use error::{EngineError, SpeechError, VisionError};
pub use ids::{RequestId, SessionId};
pub use model::{ModelDescriptor, ModelFormat, TaskKind};
pub use routing::{Candidate, Domain, RoutingDecision, RoutingRule};
pub use speech::{
    AudioBuffer, Recognizer, Synthesizer, TranscribeOptions, Transcript, TranscriptSegment,
};
pub use tasks::{GraphError, TaskState};
pub use vision::{
    BoundingBox, ElementDetector, ElementKind, Image, OcrEngine, OcrOptions, OcrResult, OcrWord,
    UiElement,
};
