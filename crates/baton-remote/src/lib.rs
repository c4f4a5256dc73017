//! Remote OpenAI-compatible engines (work in progress).
#![warn(missing_docs)]
