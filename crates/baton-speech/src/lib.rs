//! Baton audio input (work in progress).
#![warn(missing_docs)]
