//! Baton's SQLite store.
//!
//! One SQLite file (WAL mode, foreign keys on, a busy timeout, `synchronous = FULL`) holds
//! sessions, messages, model runs, settings, the model registry and OCR captures, with FTS5
//! indexes over message and capture text that triggers keep in sync. Migrations are embedded with `sqlx::migrate!`; every query is a
//! runtime-checked `sqlx::query*` call, so the crate builds without a live `DATABASE_URL`.
//!
//! Invariant: a write the user would miss (a message, a run record) is committed before
//! the call that makes it returns.
#![warn(missing_docs)]

mod audit;
mod captures;
mod documents;
mod engines;
mod error;
mod eval;
mod memory;
mod messages;
mod models;
mod open;
mod queue;
mod runs;
mod search;
mod sessions;
mod settings;
mod stats;
mod tasks;
mod time;

pub use audit::{ApiCall, AuditFilter, NewApiCall};
pub use captures::{Capture, CaptureSummary, NewCapture};
pub use documents::{DocContent, DocFile, DocRoot, Document};
pub use engines::EngineRecord;
pub use error::StoreError;
pub use eval::{summarize as summarize_eval, DomainQuality, EvalResult, EvalRun, EvalScore};
pub use memory::{EmbeddingCounts, MemoryItem, PendingText, VectorHit, WordHit};
pub use messages::{Message, MessageSource, NewMessage};
pub use models::ModelRecord;
pub use open::{Store, DATABASE_FILE};
pub use queue::{TaskQueue, WorkerInfo};
pub use runs::{ModelRun, RunStatus};
pub use search::SearchHit;
pub use sessions::{Session, SessionSummary, TurnSummary};
pub use stats::{percentile, Stats, UsageStats};
pub use tasks::{
    Activity, NewRun, NewTask, RunSummary, ScheduleRecord, TaskEvent, TaskFilter, TaskLog,
    TaskRecord, TemplateRecord, MAX_BACKOFF_MS,
};
