//! Local LLM engine (work in progress).
#![warn(missing_docs)]
