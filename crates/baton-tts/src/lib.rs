//! Baton text to speech (work in progress).
#![warn(missing_docs)]
