//! Messages: append (committed before returning), list, bulk import.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::{now_ms, to_datetime};
use baton_core::{Role, SessionId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Its row id (increases with time).
    pub id: i64,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// The model that wrote it (assistant messages).
    pub model: Option<String>,
    /// Prompt tokens of the turn.
    pub prompt_tokens: Option<i64>,
    /// Generated tokens.
    pub completion_tokens: Option<i64>,
    /// Milliseconds from request to the complete answer.
    pub latency_ms: Option<i64>,
    /// Milliseconds to the first token.
    pub first_token_ms: Option<i64>,
    /// Generation speed.
    pub tokens_per_second: Option<f64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// The orchestration mode that produced it (`single`, `fanout`, `refine`).
    pub mode: Option<String>,
    /// The user's rating: 1 (thumbs up), -1 (down) or none.
    pub rating: Option<i64>,
    /// What memory gave the model for this answer, numbered as the answer cites them.
    pub sources: Vec<MessageSource>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A snippet from memory that an answer was given, shown under it as `[n]`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MessageSource {
    /// Its number in the answer's context (1, 2, …).
    pub n: u32,
    /// `message`, `capture`, `chunk` or `task`.
    pub kind: String,
    /// The row it came from.
    pub ref_id: i64,
    /// The session's title, the capture's source, the document's file name or the task.
    pub title: String,
    /// The snippet the model was given.
    pub text: String,
    /// The session to open (messages).
    pub session_id: Option<String>,
    /// The document's path, the task's id or the capture's id.
    pub location: Option<String>,
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewMessage {
    /// Who wrote it.
    pub role: Option<Role>,
    /// The text.
    pub content: String,
    /// The model that wrote it.
    pub model: Option<String>,
    /// Prompt tokens of the turn.
    pub prompt_tokens: Option<i64>,
    /// Generated tokens.
    pub completion_tokens: Option<i64>,
    /// Milliseconds from request to the complete answer.
    pub latency_ms: Option<i64>,
    /// Milliseconds to the first token.
    pub first_token_ms: Option<i64>,
    /// Generation speed.
    pub tokens_per_second: Option<f64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// The orchestration mode that produced it.
    pub mode: Option<String>,
    /// What memory gave the model (assistant messages).
    pub sources: Vec<MessageSource>,
}

impl NewMessage {
    /// A message with just a role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role: Some(role),
            content: content.into(),
            ..Self::default()
        }
    }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    session_id: String,
    role: String,
    content: String,
    model: Option<String>,
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    latency_ms: Option<i64>,
    first_token_ms: Option<i64>,
    tokens_per_second: Option<f64>,
    cost_usd: Option<f64>,
    mode: Option<String>,
    rating: Option<i64>,
    sources: Option<String>,
    created_at: i64,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;

    fn try_from(row: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            id: row.id,
            session_id: SessionId(row.session_id),
            role: row.role.parse().map_err(StoreError::Invalid)?,
            content: row.content,
            model: row.model,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            latency_ms: row.latency_ms,
            first_token_ms: row.first_token_ms,
            tokens_per_second: row.tokens_per_second,
            cost_usd: row.cost_usd,
            mode: row.mode,
            rating: row.rating,
            // Written by this crate; an unreadable list shows no sources rather than no message.
            sources: row
                .sources
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            created_at: to_datetime(row.created_at),
        })
    }
}

const INSERT_MESSAGE: &str =
    "INSERT INTO messages (session_id, role, content, model, prompt_tokens,
        completion_tokens, latency_ms, first_token_ms, tokens_per_second, cost_usd, mode, sources,
        created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

async fn insert_message<'e, E>(
    executor: E,
    session: &SessionId,
    message: &NewMessage,
    now: i64,
) -> Result<i64, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let role = message
        .role
        .ok_or_else(|| StoreError::Invalid("a message needs a role".into()))?;
    let done = sqlx::query(INSERT_MESSAGE)
        .bind(&session.0)
        .bind(role.as_str())
        .bind(&message.content)
        .bind(&message.model)
        .bind(message.prompt_tokens)
        .bind(message.completion_tokens)
        .bind(message.latency_ms)
        .bind(message.first_token_ms)
        .bind(message.tokens_per_second)
        .bind(message.cost_usd)
        .bind(&message.mode)
        .bind(if message.sources.is_empty() {
            None
        } else {
            serde_json::to_string(&message.sources).ok()
        })
        .bind(now)
        .execute(executor)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::SessionNotFound(session.0.clone())
            }
            _ => StoreError::Database(e),
        })?;
    Ok(done.last_insert_rowid())
}

impl Store {
    /// Appends a message to a session. Returns only after the transaction is durable.
    pub async fn append_message(
        &self,
        session: &SessionId,
        message: NewMessage,
    ) -> Result<Message, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id = insert_message(&mut *tx, session, &message, now).await?;
        let model_update = if message.role == Some(Role::Assistant) {
            message.model.clone()
        } else {
            None
        };
        sqlx::query("UPDATE sessions SET updated_at = ?, model = COALESCE(?, model) WHERE id = ?")
            .bind(now)
            .bind(&model_update)
            .bind(&session.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Message {
            id,
            session_id: session.clone(),
            role: message.role.expect("checked by insert_message"),
            content: message.content,
            model: message.model,
            prompt_tokens: message.prompt_tokens,
            completion_tokens: message.completion_tokens,
            latency_ms: message.latency_ms,
            first_token_ms: message.first_token_ms,
            tokens_per_second: message.tokens_per_second,
            cost_usd: message.cost_usd,
            mode: message.mode,
            rating: None,
            sources: message.sources,
            created_at: to_datetime(now),
        })
    }

    /// Appends many messages to one session in a single transaction (imports, benchmarks).
    pub async fn import_messages(
        &self,
        session: &SessionId,
        messages: &[NewMessage],
    ) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for message in messages {
            insert_message(&mut *tx, session, message, now).await?;
        }
        sqlx::query("UPDATE sessions SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(&session.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(messages.len())
    }

    /// All messages of a session, oldest first.
    pub async fn messages(&self, session: &SessionId) -> Result<Vec<Message>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT id, session_id, role, content, model, prompt_tokens, completion_tokens,
                    latency_ms, first_token_ms, tokens_per_second, cost_usd, mode, rating,
                    sources, created_at
             FROM messages WHERE session_id = ? ORDER BY id",
        )
        .bind(&session.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Message::try_from).collect()
    }

    /// Rates an assistant message: `Some(1)` thumbs up, `Some(-1)` down, `None` clears.
    pub async fn rate_message(&self, id: i64, rating: Option<i64>) -> Result<(), StoreError> {
        if rating.is_some_and(|r| r != 1 && r != -1) {
            return Err(StoreError::Invalid(
                "a rating is 1 (up) or -1 (down)".into(),
            ));
        }
        let done =
            sqlx::query("UPDATE messages SET rating = ? WHERE id = ? AND role = 'assistant'")
                .bind(rating)
                .bind(id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!(
                "there is no answer with id {id} to rate"
            )));
        }
        Ok(())
    }

    /// Number of messages in the whole database.
    pub async fn message_count(&self) -> Result<i64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }
}
