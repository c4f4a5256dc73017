//! Sessions: create, list, find by id prefix, rename, delete.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::{now_ms, to_datetime};
use baton_core::SessionId;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A chat session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// A title shown in lists.
    pub title: String,
    /// The model last used in it, if any.
    pub model: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a message or a rename).
    pub updated_at: DateTime<Utc>,
    /// Memory in this session: `None` follows the global setting.
    pub memory: Option<bool>,
}

/// A session with its message count, for lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// How many messages it holds.
    pub message_count: i64,
}

/// A model's summary of a session's older turns, used in their place once the conversation
/// outgrows the context window.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TurnSummary {
    /// Its id.
    pub id: i64,
    /// The session.
    pub session_id: String,
    /// The last message it covers.
    pub through_id: i64,
    /// The summary.
    pub content: String,
    /// The model that wrote it.
    pub model: String,
    /// When it was written, ms since the epoch.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    title: String,
    model: Option<String>,
    created_at: i64,
    updated_at: i64,
    memory: Option<bool>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId(row.id),
            title: row.title,
            model: row.model,
            created_at: to_datetime(row.created_at),
            updated_at: to_datetime(row.updated_at),
            memory: row.memory,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    session: SessionRow,
    message_count: i64,
}

fn clean_title(title: &str) -> Result<String, StoreError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(StoreError::Invalid(
            "a session title cannot be empty".into(),
        ));
    }
    Ok(title.chars().take(200).collect())
}

impl Store {
    /// Creates a session with the given title.
    pub async fn create_session(&self, title: &str) -> Result<Session, StoreError> {
        let title = clean_title(title)?;
        let id = SessionId::new();
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)")
            .bind(&id.0)
            .bind(&title)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(Session {
            id,
            title,
            model: None,
            created_at: to_datetime(now),
            updated_at: to_datetime(now),
            memory: None,
        })
    }

    /// Lists sessions, most recently active first.
    pub async fn list_sessions(&self, limit: u32) -> Result<Vec<SessionSummary>, StoreError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT s.id, s.title, s.model, s.created_at, s.updated_at, s.memory,
                    (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS message_count
             FROM sessions s ORDER BY s.updated_at DESC, s.id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionSummary {
                session: r.session.into(),
                message_count: r.message_count,
            })
            .collect())
    }

    /// Finds a session by its full id, or by a unique prefix or suffix of it (lists show the
    /// last eight characters, because time-ordered ids share their leading part).
    pub async fn find_session(&self, id_or_prefix: &str) -> Result<Session, StoreError> {
        let needle = id_or_prefix.trim();
        if needle.is_empty() {
            return Err(StoreError::SessionNotFound(needle.into()));
        }
        let escaped = needle
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let rows: Vec<SessionRow> = sqlx::query_as(
            "SELECT id, title, model, created_at, updated_at, memory FROM sessions
             WHERE id = ?1 OR id LIKE ?2 ESCAPE '\\' OR id LIKE ?3 ESCAPE '\\'
             ORDER BY id = ?1 DESC LIMIT 3",
        )
        .bind(needle)
        .bind(format!("{escaped}%"))
        .bind(format!("%{escaped}"))
        .fetch_all(&self.pool)
        .await?;
        match rows.len() {
            0 => Err(StoreError::SessionNotFound(needle.into())),
            1 => Ok(rows.into_iter().next().expect("one row").into()),
            _ if rows[0].id == needle => Ok(rows.into_iter().next().expect("row").into()),
            count => Err(StoreError::AmbiguousSession {
                prefix: needle.into(),
                count,
            }),
        }
    }

    /// Renames a session.
    pub async fn rename_session(&self, id: &SessionId, title: &str) -> Result<Session, StoreError> {
        let title = clean_title(title)?;
        let done = sqlx::query("UPDATE sessions SET title = ?, updated_at = ? WHERE id = ?")
            .bind(&title)
            .bind(now_ms())
            .bind(&id.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::SessionNotFound(id.0.clone()));
        }
        self.find_session(&id.0).await
    }

    /// Turns memory on or off for a session (`None`: follow the global setting).
    pub async fn set_session_memory(
        &self,
        id: &SessionId,
        memory: Option<bool>,
    ) -> Result<Session, StoreError> {
        let done = sqlx::query("UPDATE sessions SET memory = ? WHERE id = ?")
            .bind(memory)
            .bind(&id.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::SessionNotFound(id.0.clone()));
        }
        self.find_session(&id.0).await
    }

    /// The newest summary of a session's older turns.
    pub async fn session_summary(&self, id: &SessionId) -> Result<Option<TurnSummary>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, session_id, through_id, content, model, created_at FROM session_summaries
             WHERE session_id = ? ORDER BY through_id DESC, id DESC LIMIT 1",
        )
        .bind(&id.0)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores a summary of a session's turns up to message `through_id`.
    pub async fn save_session_summary(
        &self,
        id: &SessionId,
        through_id: i64,
        content: &str,
        model: &str,
    ) -> Result<TurnSummary, StoreError> {
        Ok(sqlx::query_as(
            "INSERT INTO session_summaries (session_id, through_id, content, model, created_at)
             VALUES (?, ?, ?, ?, ?)
             RETURNING id, session_id, through_id, content, model, created_at",
        )
        .bind(&id.0)
        .bind(through_id)
        .bind(content)
        .bind(model)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes a session and its messages.
    pub async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(&id.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::SessionNotFound(id.0.clone()));
        }
        Ok(())
    }
}
