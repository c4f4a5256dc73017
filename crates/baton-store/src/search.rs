//! Full-text search over message text with FTS5.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::to_datetime;
use baton_core::{Role, SessionId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One message that matched a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The message's id.
    pub message_id: i64,
    /// Its session.
    pub session_id: SessionId,
    /// The session's title.
    pub session_title: String,
    /// Who wrote the message.
    pub role: Role,
    /// The matching passage with matches wrapped in `[` and `]`.
    pub snippet: String,
    /// When the message was stored.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    message_id: i64,
    session_id: String,
    session_title: String,
    role: String,
    snippet: String,
    created_at: i64,
}

/// Turns what a person types into a safe FTS5 query: every word becomes a quoted term
/// (so punctuation and FTS5 operators are taken literally), all terms must match, and a
/// trailing `*` on a word keeps its prefix meaning.
pub(crate) fn to_fts_query(input: &str) -> Option<String> {
    let terms = fts_terms(input);
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Words too common to say anything about what a text is about.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "is", "are", "was",
    "were", "be", "it", "its", "this", "that", "what", "which", "who", "when", "where", "how",
    "do", "does", "did", "i", "my", "me", "we", "our", "you", "your", "he", "she", "they", "them",
    "his", "her", "their", "from", "by", "about", "as", "if", "so", "not",
];

/// The same terms less the stopwords (all of them when nothing else is left), any of
/// which may match.
pub(crate) fn to_fts_any(input: &str) -> Option<String> {
    let terms = fts_terms(input);
    let telling: Vec<&String> = terms
        .iter()
        .filter(|t| {
            let word = t.trim_matches(|c| c == '"' || c == '*').to_lowercase();
            !STOPWORDS.contains(&word.as_str())
        })
        .collect();
    let chosen: Vec<&String> = if telling.is_empty() {
        terms.iter().collect()
    } else {
        telling
    };
    (!chosen.is_empty()).then(|| {
        chosen
            .into_iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" OR ")
    })
}

fn fts_terms(input: &str) -> Vec<String> {
    input
        .split_whitespace()
        .filter_map(|word| {
            let (body, prefix) = match word.strip_suffix('*') {
                Some(body) => (body, true),
                None => (word, false),
            };
            let body = body.trim_matches('"');
            if body.is_empty() {
                return None;
            }
            let quoted = format!("\"{}\"", body.replace('"', "\"\""));
            Some(if prefix { format!("{quoted}*") } else { quoted })
        })
        .collect()
}

impl Store {
    /// Searches message text; newest matches first.
    pub async fn search_messages(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let fts = to_fts_query(query).ok_or_else(|| {
            StoreError::Invalid("the search query is empty; give at least one word".into())
        })?;
        // Newest matches first: FTS5 walks its doclists in rowid order and stops at the
        // limit, so even a word in half of a million messages answers in milliseconds
        // (ranking every match by bm25 took up to 0.6 s at one million messages).
        let rows: Vec<HitRow> = sqlx::query_as(
            "WITH hits AS (
                 SELECT rowid AS id, snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet
                 FROM messages_fts WHERE messages_fts MATCH ?
                 ORDER BY rowid DESC LIMIT ?
             )
             SELECT m.id AS message_id, m.session_id, s.title AS session_title, m.role,
                    hits.snippet, m.created_at
             FROM hits
             JOIN messages m ON m.id = hits.id
             JOIN sessions s ON s.id = m.session_id
             ORDER BY m.id DESC",
        )
        .bind(&fts)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(SearchHit {
                    message_id: r.message_id,
                    session_id: SessionId(r.session_id),
                    session_title: r.session_title,
                    role: r.role.parse().map_err(StoreError::Invalid)?,
                    snippet: r.snippet,
                    created_at: to_datetime(r.created_at),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::to_fts_query;

    #[test]
    fn user_text_becomes_quoted_terms() {
        assert_eq!(
            to_fts_query("hello world").as_deref(),
            Some("\"hello\" \"world\"")
        );
        assert_eq!(to_fts_query("par*").as_deref(), Some("\"par\"*"));
        assert_eq!(
            to_fts_query("a\"b OR NOT").as_deref(),
            Some("\"a\"\"b\" \"OR\" \"NOT\"")
        );
        assert_eq!(to_fts_query("  \"\" * "), None);
    }
}
