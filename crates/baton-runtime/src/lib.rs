//! Runtime (work in progress).
#![warn(missing_docs)]
