//! Baton speech recognition client (work in progress).
#![warn(missing_docs)]
