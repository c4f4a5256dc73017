//! Vectors of stored texts (messages, captures, document chunks, task outputs) for search by meaning: which rows still
//! need one, storing a batch, and the nearest rows to a query vector. Distances are
//! computed inside SQLite by sqlite-vec (`vec_distance_cosine`), registered for every
//! connection the store opens.

use serde::Serialize;

use crate::error::StoreError;
use crate::open::Store;
use crate::time::now_ms;

/// A stored text that has no vector for a model yet.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PendingText {
    /// `message`, `capture`, `chunk` (of a document) or `task` (an output).
    pub kind: String,
    /// Its row id.
    pub ref_id: i64,
    /// The text to embed.
    pub text: String,
}

/// A row near a query by meaning.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct VectorHit {
    /// `message`, `capture`, `chunk` (of a document) or `task` (an output).
    pub kind: String,
    /// Its row id.
    pub ref_id: i64,
    /// Cosine distance to the query (0 the same direction, 2 opposite).
    pub distance: f64,
}

/// A row that matched by its words.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WordHit {
    /// `message`, `capture`, `chunk` (of a document) or `task` (an output).
    pub kind: String,
    /// Its row id.
    pub ref_id: i64,
    /// The matching passage, matches in `[` `]`.
    pub snippet: String,
    /// bm25 (lower is better).
    pub rank: f64,
}

/// A stored text with where it came from, for showing a hit.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MemoryItem {
    /// `message`, `capture`, `chunk` (of a document) or `task` (an output).
    pub kind: String,
    /// Its row id.
    pub ref_id: i64,
    /// The whole text.
    pub text: String,
    /// The session's title, the capture's source, the document's file name or the task.
    pub title: String,
    /// The session id (messages).
    pub session_id: Option<String>,
    /// Where to open it: the document's path, the task's id, the capture's id.
    pub location: Option<String>,
    /// Who wrote it (messages): `user` or `assistant`.
    pub role: Option<String>,
    /// When it was stored, ms since the epoch.
    pub created_at: i64,
}

/// How far the back-fill has got for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EmbeddingCounts {
    /// Texts with a vector.
    pub embedded: i64,
    /// Texts in all.
    pub total: i64,
}

/// A vector as sqlite-vec reads it: little-endian float32.
fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

const PENDING: &str = "SELECT 'message' AS kind, m.id AS ref_id, m.content AS text FROM messages m
       WHERE m.role != 'system' AND m.content != ''
         AND NOT EXISTS (SELECT 1 FROM embeddings e
                         WHERE e.kind = 'message' AND e.ref_id = m.id AND e.model = ?1)
     UNION ALL
     SELECT 'capture', c.id, c.text FROM captures c
       WHERE c.text != ''
         AND NOT EXISTS (SELECT 1 FROM embeddings e
                         WHERE e.kind = 'capture' AND e.ref_id = c.id AND e.model = ?1)
     UNION ALL
     SELECT 'chunk', d.id, d.text FROM doc_chunks d
       WHERE d.text != ''
         AND NOT EXISTS (SELECT 1 FROM embeddings e
                         WHERE e.kind = 'chunk' AND e.ref_id = d.id AND e.model = ?1)
     UNION ALL
     SELECT 'task', t.rowid, t.text FROM task_outputs_fts t
       WHERE t.text != ''
         AND NOT EXISTS (SELECT 1 FROM embeddings e
                         WHERE e.kind = 'task' AND e.ref_id = t.rowid AND e.model = ?1)";

/// The current text of a row of each kind (`?1` its id, `?2` the text to compare).
fn current_text_sql(kind: &str) -> Result<&'static str, StoreError> {
    Ok(match kind {
        "message" => "SELECT 1 FROM messages WHERE id = ?1 AND content = ?2",
        "capture" => "SELECT 1 FROM captures WHERE id = ?1 AND text = ?2",
        "chunk" => "SELECT 1 FROM doc_chunks WHERE id = ?1 AND text = ?2",
        "task" => "SELECT 1 FROM task_outputs_fts WHERE rowid = ?1 AND text = ?2",
        other => return Err(StoreError::Invalid(format!("no texts of kind `{other}`"))),
    })
}

impl Store {
    /// Up to `limit` texts that have no vector for `model`, oldest first.
    pub async fn pending_embeddings(
        &self,
        model: &str,
        limit: u32,
    ) -> Result<Vec<PendingText>, StoreError> {
        Ok(sqlx::query_as(&format!("{PENDING} ORDER BY 2 LIMIT ?2"))
            .bind(model)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Texts with and without a vector for `model`.
    pub async fn embedding_counts(&self, model: &str) -> Result<EmbeddingCounts, StoreError> {
        let (embedded,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM embeddings WHERE model = ?")
            .bind(model)
            .fetch_one(&self.pool)
            .await?;
        let (pending,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM ({PENDING})"))
            .bind(model)
            .fetch_one(&self.pool)
            .await?;
        Ok(EmbeddingCounts {
            embedded,
            total: embedded + pending,
        })
    }

    /// Stores vectors of `model` for texts, in one transaction. A text deleted or changed
    /// meanwhile gets none (it is embedded again from its new words by the next round).
    pub async fn save_embeddings(
        &self,
        model: &str,
        items: &[(PendingText, Vec<f32>)],
    ) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut saved = 0;
        for (text, vector) in items {
            let current: Option<(i64,)> = sqlx::query_as(current_text_sql(&text.kind)?)
                .bind(text.ref_id)
                .bind(&text.text)
                .fetch_optional(&mut *tx)
                .await?;
            if current.is_none() {
                continue;
            }
            sqlx::query(
                "INSERT INTO embeddings (kind, ref_id, model, vector, created_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT(kind, ref_id, model) DO UPDATE SET vector = excluded.vector,
                    created_at = excluded.created_at",
            )
            .bind(&text.kind)
            .bind(text.ref_id)
            .bind(model)
            .bind(to_blob(vector))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            saved += 1;
        }
        tx.commit().await?;
        Ok(saved)
    }

    /// Rows whose text holds any of the words of `query` (FTS5, prefixes with `word*`),
    /// best bm25 first, optionally of one kind.
    pub async fn words_ranked(
        &self,
        query: &str,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WordHit>, StoreError> {
        let Some(any) = crate::search::to_fts_any(query) else {
            return Err(StoreError::Invalid(
                "the search query is empty; give at least one word".into(),
            ));
        };
        // Any word may match (ranked by how well): people do not remember every word.
        Ok(sqlx::query_as(
            "SELECT * FROM (
                SELECT 'message' AS kind, f.rowid AS ref_id,
                       snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet, f.rank AS rank
                  FROM messages_fts f JOIN messages m ON m.id = f.rowid
                 WHERE messages_fts MATCH ?1 AND m.role != 'system' AND (?2 IS NULL OR ?2 = 'message')
                UNION ALL
                SELECT 'capture', f.rowid, snippet(captures_fts, 0, '[', ']', '…', 12), f.rank
                  FROM captures_fts f
                 WHERE captures_fts MATCH ?1 AND (?2 IS NULL OR ?2 = 'capture')
                UNION ALL
                SELECT 'chunk', f.rowid, snippet(doc_chunks_fts, 0, '[', ']', '…', 12), f.rank
                  FROM doc_chunks_fts f
                 WHERE doc_chunks_fts MATCH ?1 AND (?2 IS NULL OR ?2 = 'chunk')
                UNION ALL
                SELECT 'task', f.rowid, snippet(task_outputs_fts, 0, '[', ']', '…', 12), f.rank
                  FROM task_outputs_fts f
                 WHERE task_outputs_fts MATCH ?1 AND (?2 IS NULL OR ?2 = 'task')
             ) ORDER BY rank LIMIT ?3",
        )
        .bind(any)
        .bind(kind)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The texts behind hits, in the order asked (rows gone meanwhile are left out).
    pub async fn memory_items(
        &self,
        hits: &[(String, i64)],
    ) -> Result<Vec<MemoryItem>, StoreError> {
        let mut out = Vec::with_capacity(hits.len());
        for (kind, id) in hits {
            let sql = match kind.as_str() {
                "message" => {
                    "SELECT 'message' AS kind, m.id AS ref_id, m.content AS text, s.title AS title,
                            m.session_id AS session_id, NULL AS location, m.role AS role, m.created_at AS created_at
                       FROM messages m JOIN sessions s ON s.id = m.session_id WHERE m.id = ?"
                }
                "capture" => {
                    "SELECT 'capture' AS kind, id AS ref_id, text, 'screen capture (' || source || ')' AS title,
                            NULL AS session_id, CAST(id AS TEXT) AS location, NULL AS role, created_at
                       FROM captures WHERE id = ?"
                }
                "chunk" => {
                    "SELECT 'chunk' AS kind, c.id AS ref_id, c.text AS text,
                            replace(d.path, rtrim(d.path, replace(d.path, '/', '')), '') AS title,
                            NULL AS session_id, d.path AS location, NULL AS role, d.indexed_at AS created_at
                       FROM doc_chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?"
                }
                "task" => {
                    "SELECT 'task' AS kind, t.rowid AS ref_id, f.text AS text,
                            'task ' || t.step || ' (' || t.kind || ')' AS title, NULL AS session_id,
                            t.id AS location, NULL AS role, COALESCE(t.finished_at, t.created_at) AS created_at
                       FROM tasks t JOIN task_outputs_fts f ON f.rowid = t.rowid WHERE t.rowid = ?"
                }
                _ => continue,
            };
            if let Some(item) = sqlx::query_as::<_, MemoryItem>(sql)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
            {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Drops the vectors of every model but `keep` (after the embedding model changed).
    pub async fn drop_other_embeddings(&self, keep: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM embeddings WHERE model != ?")
            .bind(keep)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// The `limit` rows nearest to `query` (a unit vector of `model`), nearest first,
    /// optionally of one kind.
    pub async fn nearest(
        &self,
        model: &str,
        query: &[f32],
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorHit>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT kind, ref_id, vec_distance_cosine(vector, ?1) AS distance FROM embeddings
             WHERE model = ?2 AND (?3 IS NULL OR kind = ?3)
             ORDER BY distance LIMIT ?4",
        )
        .bind(to_blob(query))
        .bind(model)
        .bind(kind)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.pool)
        .await?)
    }
}
