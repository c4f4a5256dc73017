//! Store errors. Each says which file is involved and what to do.

use std::path::PathBuf;
use thiserror::Error;

/// Errors from the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory cannot be created or written.
    #[error("cannot write to the data directory {path}: {reason}. Choose a writable location with --data-dir or BATON_DATA_DIR")]
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The database path holds something that is not a SQLite database.
    #[error("{path} is not a Baton database (not a SQLite file); it was left untouched. Move it aside or choose another location with --data-dir")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The database file is damaged.
    #[error("the database {path} is damaged ({reason}); it was left untouched. Restore it from a backup or move it aside to start fresh")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        reason: String,
    },
    /// The database was written by a newer Baton.
    #[error("the database {path} was written by a newer version of Baton ({reason}); upgrade Baton or choose another --data-dir")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// What the migrator reported.
        reason: String,
    },
    /// No session matches the given id or prefix.
    #[error("no session matches `{0}`; list sessions with `baton sessions list`")]
    SessionNotFound(String),
    /// A session id prefix matches more than one session.
    #[error("`{prefix}` matches {count} sessions; give more characters of the id")]
    AmbiguousSession {
        /// The prefix given.
        prefix: String,
        /// How many sessions it matched.
        count: usize,
    },
    /// The input is not acceptable (an empty title, a bad search query).
    #[error("{0}")]
    Invalid(String),
    /// A shared task queue (Redis) could not be reached or answered wrongly.
    #[error("{0}")]
    Queue(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Classifies a low-level error met while opening `path`.
    pub(crate) fn from_open(path: &std::path::Path, err: sqlx::Error) -> Self {
        let text = err.to_string();
        let lower = text.to_lowercase();
        if lower.contains("file is not a database") || lower.contains("notadb") {
            StoreError::NotADatabase {
                path: path.to_owned(),
            }
        } else if lower.contains("malformed") || lower.contains("corrupt") {
            StoreError::Corrupt {
                path: path.to_owned(),
                reason: text,
            }
        } else if lower.contains("readonly")
            || lower.contains("read-only")
            || lower.contains("unable to open")
            || lower.contains("permission denied")
        {
            StoreError::Unwritable {
                path: path.parent().unwrap_or(path).to_owned(),
                reason: text,
            }
        } else {
            StoreError::Database(err)
        }
    }
}
