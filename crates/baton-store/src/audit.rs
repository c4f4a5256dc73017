//! The local API's audit log (`api_audit`, migration 0009): one row per HTTP request that
//! `baton serve` answered, refused ones included. Rows never hold prompt text unless the
//! caller puts it in [`NewApiCall::prompt`], which the API does only when the person opted
//! in (`[api] audit_prompts = true`).

use crate::error::StoreError;
use crate::open::Store;
use crate::time::to_datetime;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One API request to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiCall {
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// The peer's address (`127.0.0.1:51234`).
    pub client: String,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    /// One word: `ok`, `unauthorized`, `host_refused`, `origin_refused`, `rate_limited`,
    /// `refused` (another 4xx), `failed` (5xx) or `disconnected` (the client left before
    /// the answer ended).
    pub outcome: String,
    /// Milliseconds from arrival to the answer's last byte (or to the client leaving).
    pub duration_ms: i64,
    /// The model asked for or answering, when the request named one.
    pub model: Option<String>,
    /// The prompt's text, only when the person opted into keeping it.
    pub prompt: Option<String>,
}

/// A recorded API request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiCall {
    /// Its row id (increasing).
    pub id: i64,
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// The peer's address.
    pub client: String,
    /// The HTTP method.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
    /// How it ended, in one word (see [`NewApiCall::outcome`]).
    pub outcome: String,
    /// Milliseconds from arrival to the answer's last byte.
    pub duration_ms: i64,
    /// The model, if any.
    pub model: Option<String>,
    /// The prompt's text, only when it was opted into.
    pub prompt: Option<String>,
}

/// Which audit rows to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only requests that arrived at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first; 0 for all.
    pub limit: u32,
}

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Records API requests in one transaction; durable when this returns.
    pub async fn record_api_calls(&self, calls: &[NewApiCall]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for call in calls {
            sqlx::query(
                "INSERT INTO api_audit (at, client, method, path, status, outcome, duration_ms,
                    model, prompt)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(call.at.timestamp_millis())
            .bind(&call.client)
            .bind(&call.method)
            .bind(&call.path)
            .bind(i64::from(call.status))
            .bind(&call.outcome)
            .bind(call.duration_ms)
            .bind(&call.model)
            .bind(&call.prompt)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Recorded API requests, newest first.
    pub async fn api_calls(&self, filter: &AuditFilter) -> Result<Vec<ApiCall>, StoreError> {
        let since = filter.since.map_or(i64::MIN, |t| t.timestamp_millis());
        let limit = if filter.limit == 0 {
            -1
        } else {
            i64::from(filter.limit)
        };
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, client, method, path, status, outcome, duration_ms, model, prompt
             FROM api_audit WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, client, method, path, status, outcome, duration_ms, model, prompt)| {
                    ApiCall {
                        id,
                        at: to_datetime(at),
                        client,
                        method,
                        path,
                        status: u16::try_from(status).unwrap_or(0),
                        outcome,
                        duration_ms,
                        model,
                        prompt,
                    }
                },
            )
            .collect())
    }

    /// Deletes audit rows of requests that arrived before `before`; returns how many.
    pub async fn prune_api_calls(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM api_audit WHERE at < ?")
            .bind(before.timestamp_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at_ms: i64, status: u16, outcome: &str) -> NewApiCall {
        NewApiCall {
            at: to_datetime(at_ms),
            client: "127.0.0.1:50000".into(),
            method: "GET".into(),
            path: "/v1/models".into(),
            status,
            outcome: outcome.into(),
            duration_ms: 3,
            model: None,
            prompt: None,
        }
    }

    #[tokio::test]
    async fn calls_are_listed_newest_first_filtered_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).await.unwrap();
        assert!(store
            .api_calls(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty());
        let mut chat = call(3_000, 404, "refused");
        chat.method = "POST".into();
        chat.path = "/v1/chat/completions".into();
        chat.model = Some("nope".into());
        store
            .record_api_calls(&[
                call(1_000, 200, "ok"),
                call(2_000, 401, "unauthorized"),
                chat,
            ])
            .await
            .unwrap();
        store.record_api_calls(&[]).await.unwrap();

        let all = store.api_calls(&AuditFilter::default()).await.unwrap();
        let statuses: Vec<u16> = all.iter().map(|c| c.status).collect();
        assert_eq!(statuses, vec![404, 401, 200]);
        assert_eq!(all[0].model.as_deref(), Some("nope"));
        assert_eq!(all[0].at.timestamp_millis(), 3_000);
        assert_eq!(all[2].prompt, None);

        let recent = store
            .api_calls(&AuditFilter {
                since: Some(to_datetime(2_000)),
                limit: 0,
            })
            .await
            .unwrap();
        assert_eq!(recent.len(), 2);
        let one = store
            .api_calls(&AuditFilter {
                since: None,
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].status, 404);

        assert_eq!(store.prune_api_calls(to_datetime(2_500)).await.unwrap(), 2);
        assert_eq!(
            store
                .api_calls(&AuditFilter::default())
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
