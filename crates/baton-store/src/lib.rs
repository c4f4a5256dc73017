//! SQLite store (work in progress).
#![warn(missing_docs)]
