//! Screen captures read by OCR: text (full-text indexed), words and elements as JSON, and
//! where the image file is.

use crate::error::StoreError;
use crate::open::Store;
use crate::search::to_fts_query;
use crate::time::{now_ms, to_datetime};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stored capture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capture {
    /// Store id.
    pub id: i64,
    /// How it was taken (`region`, `screen`, `image`).
    pub source: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The stored image (PNG), if kept.
    pub image_path: Option<String>,
    /// The recognised text.
    pub text: String,
    /// OCR words with boxes (JSON array of `baton_core::OcrWord`).
    pub words: serde_json::Value,
    /// UI elements with boxes (JSON array of `baton_core::UiElement`).
    pub elements: serde_json::Value,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

/// A capture to store.
#[derive(Debug, Clone)]
pub struct NewCapture {
    /// How it was taken.
    pub source: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The stored image (PNG), if kept.
    pub image_path: Option<String>,
    /// The recognised text.
    pub text: String,
    /// OCR words (JSON array).
    pub words: serde_json::Value,
    /// UI elements (JSON array).
    pub elements: serde_json::Value,
}

/// A capture in a list: no words or elements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptureSummary {
    /// Store id.
    pub id: i64,
    /// How it was taken.
    pub source: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The first 200 characters of the text, or a search snippet with `[`…`]` around hits.
    pub excerpt: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CaptureRow {
    id: i64,
    source: String,
    width: i64,
    height: i64,
    image_path: Option<String>,
    text: String,
    words_json: String,
    elements_json: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    source: String,
    width: i64,
    height: i64,
    excerpt: String,
    created_at: i64,
}

impl From<SummaryRow> for CaptureSummary {
    fn from(r: SummaryRow) -> Self {
        Self {
            id: r.id,
            source: r.source,
            width: u32::try_from(r.width).unwrap_or(0),
            height: u32::try_from(r.height).unwrap_or(0),
            excerpt: r.excerpt,
            created_at: to_datetime(r.created_at),
        }
    }
}

fn json(text: &str, what: &str, id: i64) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("capture {id} holds invalid {what} JSON: {e}")))
}

impl Store {
    /// Stores a capture; its text becomes searchable at once.
    pub async fn add_capture(&self, capture: &NewCapture) -> Result<Capture, StoreError> {
        let now = now_ms();
        let id = sqlx::query(
            "INSERT INTO captures (source, width, height, image_path, text, words_json,
                                   elements_json, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&capture.source)
        .bind(i64::from(capture.width))
        .bind(i64::from(capture.height))
        .bind(&capture.image_path)
        .bind(&capture.text)
        .bind(capture.words.to_string())
        .bind(capture.elements.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(Capture {
            id,
            source: capture.source.clone(),
            width: capture.width,
            height: capture.height,
            image_path: capture.image_path.clone(),
            text: capture.text.clone(),
            words: capture.words.clone(),
            elements: capture.elements.clone(),
            created_at: to_datetime(now),
        })
    }

    /// One capture with its words and elements.
    pub async fn capture(&self, id: i64) -> Result<Capture, StoreError> {
        let row: Option<CaptureRow> = sqlx::query_as(
            "SELECT id, source, width, height, image_path, text, words_json, elements_json,
                    created_at
             FROM captures WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let r = row.ok_or_else(|| StoreError::Invalid(format!("no capture with id {id}")))?;
        Ok(Capture {
            id: r.id,
            source: r.source,
            width: u32::try_from(r.width).unwrap_or(0),
            height: u32::try_from(r.height).unwrap_or(0),
            image_path: r.image_path,
            text: r.text,
            words: json(&r.words_json, "words", r.id)?,
            elements: json(&r.elements_json, "elements", r.id)?,
            created_at: to_datetime(r.created_at),
        })
    }

    /// The newest captures first.
    pub async fn list_captures(&self, limit: u32) -> Result<Vec<CaptureSummary>, StoreError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT id, source, width, height, substr(text, 1, 200) AS excerpt, created_at
             FROM captures ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Full-text search over capture text, newest first, with snippets.
    pub async fn search_captures(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<CaptureSummary>, StoreError> {
        let fts = to_fts_query(query).ok_or_else(|| {
            StoreError::Invalid("the search query is empty; give at least one word".into())
        })?;
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "WITH hits AS (
                 SELECT rowid AS id, snippet(captures_fts, 0, '[', ']', '…', 12) AS excerpt
                 FROM captures_fts WHERE captures_fts MATCH ?
                 ORDER BY rowid DESC LIMIT ?
             )
             SELECT c.id, c.source, c.width, c.height, hits.excerpt, c.created_at
             FROM hits JOIN captures c ON c.id = hits.id
             ORDER BY c.id DESC",
        )
        .bind(&fts)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a capture's row (the caller removes its image file).
    pub async fn delete_capture(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM captures WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
