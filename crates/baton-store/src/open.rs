//! Opening the database: checks before touching anything, pragmas, migrations.

use crate::error::StoreError;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "baton.sqlite3";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A handle to Baton's database. Cheap to clone; shares one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    path: PathBuf,
}

impl Store {
    /// Starts a transaction that will write, holding SQLite's write lock from its first
    /// statement (`BEGIN IMMEDIATE`). A plain `BEGIN` that reads and then writes fails with
    /// "database is locked" (SQLITE_BUSY_SNAPSHOT, which the busy timeout cannot wait out)
    /// when another connection commits in between; waiting for the lock at the start, as
    /// the busy timeout does, cannot fail that way.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Opens (creating if needed) the database in `data_dir`, applying migrations.
    ///
    /// Refuses, without writing anything, a file that is not SQLite, a damaged database and
    /// a database from a newer Baton.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Unwritable {
            path: data_dir.to_owned(),
            reason: e.to_string(),
        })?;
        let meta = std::fs::metadata(data_dir).map_err(|e| StoreError::Unwritable {
            path: data_dir.to_owned(),
            reason: e.to_string(),
        })?;
        if meta.permissions().readonly() {
            return Err(StoreError::Unwritable {
                path: data_dir.to_owned(),
                reason: "the directory is read-only".into(),
            });
        }
        Self::open(&data_dir.join(DATABASE_FILE)).await
    }

    /// Makes sqlite-vec's functions (`vec_distance_cosine`, …) part of every SQLite connection
    /// this process opens from now on.
    fn register_sqlite_vec() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: sqlite3_vec_init has the signature SQLite's auto-extension mechanism
            // calls (db, error message, API routines); it is linked into this binary against
            // the same SQLite that sqlx uses (libsqlite3-sys, bundled).
            unsafe {
                libsqlite3_sys::sqlite3_auto_extension(Some(std::mem::transmute::<
                    *const (),
                    unsafe extern "C" fn(
                        *mut libsqlite3_sys::sqlite3,
                        *mut *mut std::os::raw::c_char,
                        *const libsqlite3_sys::sqlite3_api_routines,
                    ) -> std::os::raw::c_int,
                >(
                    sqlite_vec::sqlite3_vec_init as *const (),
                )));
            }
        });
    }

    /// Opens (creating if needed) the database file at `path`, applying migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        check_header(path)?;
        Self::register_sqlite_vec();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::from_open(path, e))?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            MigrateError::VersionMissing(_) | MigrateError::VersionTooNew(..) => {
                StoreError::TooNew {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            }
            MigrateError::Execute(inner) => StoreError::from_open(path, inner),
            other => StoreError::Corrupt {
                path: path.to_owned(),
                reason: other.to_string(),
            },
        })?;
        tracing::debug!(path = %path.display(), "database open");
        Ok(Self {
            pool,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check` and returns SQLite's findings (`["ok"]` when sound).
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// Checkpoints the WAL into the main file and closes the pool.
    pub async fn close(self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint on close failed");
        }
        self.pool.close().await;
    }
}

/// Rejects an existing non-empty file that does not start with SQLite's magic header.
fn check_header(path: &Path) -> Result<(), StoreError> {
    if path.is_dir() {
        return Err(StoreError::NotADatabase {
            path: path.to_owned(),
        });
    }
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Unwritable {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        }
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
    }
    if read == 0 {
        // An empty file is what SQLite itself creates before the first write.
        return Ok(());
    }
    if read < header.len() || &header != SQLITE_MAGIC {
        return Err(StoreError::NotADatabase {
            path: path.to_owned(),
        });
    }
    Ok(())
}
