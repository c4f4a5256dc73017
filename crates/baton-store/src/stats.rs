//! Analytics over recorded runs, ratings and routing decisions.

use crate::error::StoreError;
use crate::open::Store;
use baton_core::routing::ModelHistory;
use serde::Serialize;
use std::collections::BTreeMap;

/// Figures for one model or one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct UsageStats {
    /// The model or mode name.
    pub key: String,
    /// Runs recorded.
    pub runs: u64,
    /// Runs that produced an answer.
    pub ok: u64,
    /// Runs that failed.
    pub errors: u64,
    /// Fraction of finished runs (ok or error) that succeeded.
    pub success_rate: f64,
    /// Median latency of successful runs in milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: Option<f64>,
    /// Mean generation speed in tokens per second.
    pub tokens_per_second: Option<f64>,
    /// Total cost in US dollars.
    pub cost_usd: f64,
    /// Answers rated up.
    pub thumbs_up: u64,
    /// Answers rated down.
    pub thumbs_down: u64,
}

/// Everything `baton stats` and the app's statistics view show.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Stats {
    /// Per model.
    pub models: Vec<UsageStats>,
    /// Per mode (`single`, `fanout`, `refine`).
    pub modes: Vec<UsageStats>,
    /// Routed answers the user rated.
    pub routed_rated: u64,
    /// Of those, rated up: the router's selection accuracy is `routed_up / routed_rated`.
    pub routed_up: u64,
    /// Routing decisions recorded.
    pub decisions: u64,
    /// Decisions that went to a canary model.
    pub canary_decisions: u64,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    model: String,
    mode: String,
    status: String,
    completion_tokens: Option<i64>,
    first_token_ms: Option<i64>,
    total_ms: Option<i64>,
    cost_usd: Option<f64>,
}

/// The value at quantile `q` (0..=1) of sorted values, by nearest rank.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Default)]
struct Acc {
    stats: UsageStats,
    latencies: Vec<f64>,
    speeds: Vec<f64>,
}

impl Acc {
    fn add(&mut self, row: &RunRow) {
        let s = &mut self.stats;
        s.runs += 1;
        s.cost_usd += row.cost_usd.unwrap_or(0.0);
        match row.status.as_str() {
            "ok" => {
                s.ok += 1;
                if let Some(ms) = row.total_ms {
                    self.latencies.push(ms as f64);
                }
                if let (Some(tokens), Some(first), Some(total)) =
                    (row.completion_tokens, row.first_token_ms, row.total_ms)
                {
                    if tokens > 1 && total > first {
                        self.speeds
                            .push((tokens - 1) as f64 * 1000.0 / (total - first) as f64);
                    }
                }
            }
            "error" => s.errors += 1,
            _ => {}
        }
    }

    fn finish(mut self, key: String) -> UsageStats {
        self.latencies.sort_by(f64::total_cmp);
        let finished = self.stats.ok + self.stats.errors;
        UsageStats {
            key,
            success_rate: if finished == 0 {
                0.0
            } else {
                self.stats.ok as f64 / finished as f64
            },
            p50_ms: percentile(&self.latencies, 0.5),
            p95_ms: percentile(&self.latencies, 0.95),
            tokens_per_second: (!self.speeds.is_empty())
                .then(|| self.speeds.iter().sum::<f64>() / self.speeds.len() as f64),
            ..self.stats
        }
    }
}

impl Store {
    /// Per-model and per-mode analytics over all recorded runs, ratings and decisions.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT model, mode, status, completion_tokens, first_token_ms, total_ms, cost_usd
             FROM model_runs",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_model: BTreeMap<String, Acc> = BTreeMap::new();
        let mut by_mode: BTreeMap<String, Acc> = BTreeMap::new();
        for row in &rows {
            by_model.entry(row.model.clone()).or_default().add(row);
            by_mode.entry(row.mode.clone()).or_default().add(row);
        }
        let ratings: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT COALESCE(model, ''), COALESCE(mode, 'single'),
                    SUM(rating = 1), SUM(rating = -1)
             FROM messages WHERE rating IS NOT NULL GROUP BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await?;
        for (model, mode, up, down) in ratings {
            for acc in [
                by_model.entry(model).or_default(),
                by_mode.entry(mode).or_default(),
            ] {
                acc.stats.thumbs_up += up as u64;
                acc.stats.thumbs_down += down as u64;
            }
        }
        let (decisions, canary, rated, up): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(d.canary_of IS NOT NULL), 0),
                    COALESCE(SUM(m.rating IS NOT NULL), 0), COALESCE(SUM(m.rating = 1), 0)
             FROM routing_decisions d LEFT JOIN messages m ON m.id = d.message_id",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Stats {
            models: by_model.into_iter().map(|(k, a)| a.finish(k)).collect(),
            modes: by_mode.into_iter().map(|(k, a)| a.finish(k)).collect(),
            routed_rated: rated as u64,
            routed_up: up as u64,
            decisions: decisions as u64,
            canary_decisions: canary as u64,
        })
    }

    /// What routing needs to know about each model: its last `window` runs and its ratings.
    pub async fn model_histories(
        &self,
        window: u32,
    ) -> Result<BTreeMap<String, ModelHistory>, StoreError> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT model, status, total_ms FROM (
                 SELECT model, status, total_ms,
                        ROW_NUMBER() OVER (PARTITION BY model ORDER BY id DESC) AS n
                 FROM model_runs WHERE status != 'cancelled')
             WHERE n <= ?",
        )
        .bind(window)
        .fetch_all(&self.pool)
        .await?;
        let mut acc: BTreeMap<String, (u32, u32, Vec<f64>)> = BTreeMap::new();
        for (model, status, ms) in rows {
            let entry = acc.entry(model).or_default();
            entry.0 += 1;
            if status == "ok" {
                entry.1 += 1;
                entry.2.extend(ms.map(|v| v as f64));
            }
        }
        let ratings: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT model, SUM(rating = 1), COUNT(*) FROM messages
             WHERE rating IS NOT NULL AND model IS NOT NULL GROUP BY model",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for (model, (runs, ok, mut latencies)) in acc {
            latencies.sort_by(f64::total_cmp);
            out.insert(
                model,
                ModelHistory {
                    runs,
                    success_rate: f64::from(ok) / f64::from(runs.max(1)),
                    p50_latency_ms: percentile(&latencies, 0.5).unwrap_or(0.0),
                    rating: 0.0,
                    rated: 0,
                },
            );
        }
        for (model, up, rated) in ratings {
            let h = out.entry(model).or_default();
            h.rated = rated as u32;
            h.rating = (2.0 * up as f64 - rated as f64) / rated.max(1) as f64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 0.5), Some(5.0));
        assert_eq!(percentile(&v, 0.95), Some(10.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
