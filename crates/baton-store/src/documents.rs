//! Documents the person added to memory: the folders and files (roots), every file seen
//! under them (indexed with its chunks, or skipped with the reason) and the chunks, which
//! are searched by words (FTS5) and embedded like messages. A file's new chunks replace
//! its old ones in one transaction, so a crash leaves either the old or the new text.

use serde::Serialize;

use crate::error::StoreError;
use crate::open::Store;
use crate::time::now_ms;

/// A folder or file the person added, with what was found under it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DocRoot {
    /// Its id.
    pub id: i64,
    /// The absolute path.
    pub path: String,
    /// When it was added, ms since the epoch.
    pub added_at: i64,
    /// Files indexed.
    pub indexed: i64,
    /// Files skipped (each with its reason).
    pub skipped: i64,
    /// Chunks in all.
    pub chunks: i64,
    /// Bytes on disk of the indexed files.
    pub bytes: i64,
}

/// One file under a root.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Document {
    /// Its id.
    pub id: i64,
    /// The root it was found under.
    pub root_id: i64,
    /// The absolute path.
    pub path: String,
    /// `text`, `markdown`, `pdf`, `code` or `other`.
    pub format: String,
    /// Bytes on disk when last read.
    pub size: i64,
    /// Modification time when last read, ms since the epoch.
    pub modified_ms: i64,
    /// A hash of the extracted text.
    pub hash: String,
    /// `indexed` or `skipped`.
    pub state: String,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// Chunks stored.
    pub chunks: i64,
    /// Characters of text extracted.
    pub chars: i64,
    /// When it was last read, ms since the epoch.
    pub indexed_at: i64,
}

/// What reading a file gave.
#[derive(Debug, Clone, PartialEq)]
pub enum DocContent {
    /// Its text, cut into chunks.
    Indexed {
        /// A hash of the whole text (unchanged text keeps its chunks and vectors).
        hash: String,
        /// Characters of text.
        chars: i64,
        /// The chunks, in order.
        chunks: Vec<String>,
    },
    /// Not indexed, and why (binary, empty, too large, unreadable).
    Skipped(String),
}

/// A file as it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct DocFile {
    /// The absolute path.
    pub path: String,
    /// `text`, `markdown`, `pdf`, `code` or `other`.
    pub format: String,
    /// Bytes on disk.
    pub size: i64,
    /// Modification time, ms since the epoch.
    pub modified_ms: i64,
    /// What it held.
    pub content: DocContent,
}

const ROOT_SUMMARY: &str = "SELECT r.id, r.path, r.added_at,
        COUNT(d.id) FILTER (WHERE d.state = 'indexed') AS indexed,
        COUNT(d.id) FILTER (WHERE d.state = 'skipped') AS skipped,
        COALESCE(SUM(d.chunks), 0) AS chunks,
        COALESCE(SUM(d.size) FILTER (WHERE d.state = 'indexed'), 0) AS bytes
   FROM doc_roots r LEFT JOIN documents d ON d.root_id = r.id";

const DOCUMENT_COLUMNS: &str = "id, root_id, path, format, size, modified_ms, hash, state, reason,
        chunks, chars, indexed_at";

impl Store {
    /// Adds a folder or file to memory (an absolute path); adding it again returns it.
    pub async fn add_doc_root(&self, path: &str) -> Result<DocRoot, StoreError> {
        sqlx::query(
            "INSERT INTO doc_roots (path, added_at) VALUES (?, ?) ON CONFLICT(path) DO NOTHING",
        )
        .bind(path)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.doc_root(path)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("`{path}` was not added")))
    }

    /// A root by its path or id.
    pub async fn doc_root(&self, path_or_id: &str) -> Result<Option<DocRoot>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "{ROOT_SUMMARY} WHERE r.path = ?1 OR CAST(r.id AS TEXT) = ?1 GROUP BY r.id"
        ))
        .bind(path_or_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every root, oldest first, with its counts.
    pub async fn doc_roots(&self) -> Result<Vec<DocRoot>, StoreError> {
        Ok(
            sqlx::query_as(&format!("{ROOT_SUMMARY} GROUP BY r.id ORDER BY r.id"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Removes a root with its documents, chunks and their vectors. Returns whether it
    /// existed.
    pub async fn remove_doc_root(&self, id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM doc_roots WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// The files found under a root, by path.
    pub async fn documents(&self, root_id: i64) -> Result<Vec<Document>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE root_id = ? ORDER BY path"
        ))
        .bind(root_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A file by its path.
    pub async fn document(&self, path: &str) -> Result<Option<Document>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE path = ?"
        ))
        .bind(path)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a file as read, in one transaction: its chunks replace the old ones unless
    /// the text is unchanged (then the chunks and their vectors stay).
    pub async fn save_document(&self, root_id: i64, file: &DocFile) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let old: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, hash, state FROM documents WHERE path = ?")
                .bind(&file.path)
                .fetch_optional(&mut *tx)
                .await?;
        let (state, reason, hash, chars, chunks) = match &file.content {
            DocContent::Indexed {
                hash,
                chars,
                chunks,
            } => ("indexed", None, hash.as_str(), *chars, Some(chunks)),
            DocContent::Skipped(reason) => ("skipped", Some(reason.as_str()), "", 0, None),
        };
        let unchanged = old
            .as_ref()
            .is_some_and(|(_, h, s)| s == "indexed" && state == "indexed" && h == hash);
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO documents (root_id, path, format, size, modified_ms, hash, state, reason,
                                    chunks, chars, indexed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(path) DO UPDATE SET root_id = ?1, format = ?3, size = ?4,
                modified_ms = ?5, hash = ?6, state = ?7, reason = ?8, chunks = ?9, chars = ?10,
                indexed_at = ?11
             RETURNING id",
        )
        .bind(root_id)
        .bind(&file.path)
        .bind(&file.format)
        .bind(file.size)
        .bind(file.modified_ms)
        .bind(hash)
        .bind(state)
        .bind(reason)
        .bind(chunks.map_or(0, |c| c.len() as i64))
        .bind(chars)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if !unchanged {
            sqlx::query("DELETE FROM doc_chunks WHERE document_id = ?")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            for (seq, text) in chunks.into_iter().flatten().enumerate() {
                sqlx::query("INSERT INTO doc_chunks (document_id, seq, text) VALUES (?, ?, ?)")
                    .bind(id.0)
                    .bind(seq as i64)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(id.0)
    }

    /// Forgets a file (it disappeared), with its chunks and vectors. Returns whether it was
    /// known.
    pub async fn remove_document(&self, path: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM documents WHERE path = ?")
            .bind(path)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}
