//! Evaluation runs and their scored answers, and the per-domain pass rates routing reads.

use crate::error::StoreError;
use crate::open::Store;
use crate::time::{now_ms, to_datetime};
use serde::Serialize;
use std::collections::BTreeMap;

/// One scored answer of an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EvalResult {
    /// The run it belongs to.
    pub run_id: i64,
    /// The question set.
    pub set_name: String,
    /// The question's id in its set.
    pub item_id: String,
    /// The question's domain.
    pub domain: String,
    /// The model asked for (`auto` when the router chose).
    pub model: String,
    /// The mode (`single`, `fanout`, `refine`).
    pub mode: String,
    /// The model whose answer was kept.
    pub answered_by: Option<String>,
    /// Whether the answer passed the check.
    pub passed: bool,
    /// Why it passed or failed.
    pub detail: String,
    /// The answer.
    pub answer: String,
    /// The engine error when there was no answer.
    pub error: Option<String>,
    /// Milliseconds from question to answer.
    pub latency_ms: i64,
    /// Tokens generated.
    pub completion_tokens: Option<i64>,
    /// Generation speed.
    pub tokens_per_second: Option<f64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
}

/// An evaluation run as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalRun {
    /// Its id.
    pub id: i64,
    /// Question sets.
    pub sets: Vec<String>,
    /// `model/mode` labels.
    pub targets: Vec<String>,
    /// The machine it ran on.
    pub machine: String,
    /// `running`, `done`, `cancelled` or `failed`.
    pub status: String,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When it ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Answers scored so far.
    pub results: i64,
}

/// Pass rate, time and cost of one model in one mode on one domain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalScore {
    /// The model asked for.
    pub model: String,
    /// The mode.
    pub mode: String,
    /// The domain (`all` for the total over every domain).
    pub domain: String,
    /// Answers that passed.
    pub passed: u32,
    /// Answers scored.
    pub total: u32,
    /// Mean latency in milliseconds.
    pub mean_ms: f64,
    /// Mean generation speed in tokens per second, where measured.
    pub tokens_per_second: Option<f64>,
    /// Total cost in US dollars.
    pub cost_usd: f64,
}

impl EvalScore {
    /// The pass rate in [0, 1].
    pub fn rate(&self) -> f64 {
        f64::from(self.passed) / f64::from(self.total.max(1))
    }
}

/// What routing knows about a model in a domain from evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct DomainQuality {
    /// Answers that passed.
    pub passed: u32,
    /// Answers scored.
    pub total: u32,
    /// Mean milliseconds per answer.
    pub mean_ms: f64,
    /// Mean generation speed, tokens per second (0 when not measured).
    pub tokens_per_second: f64,
}

/// `eval_runs` columns as read: id, sets, targets, machine, status, started, finished,
/// results.
type RunRow = (i64, String, String, String, String, i64, Option<i64>, i64);

impl Store {
    /// Starts recording an evaluation run; returns its id.
    pub async fn create_eval_run(
        &self,
        sets: &[String],
        targets: &[String],
        machine: &str,
    ) -> Result<i64, StoreError> {
        let id = sqlx::query(
            "INSERT INTO eval_runs (sets, targets, machine, status, started_at)
             VALUES (?, ?, ?, 'running', ?)",
        )
        .bind(serde_json::to_string(sets).unwrap_or_default())
        .bind(serde_json::to_string(targets).unwrap_or_default())
        .bind(machine)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Records one scored answer (committed before it returns). A second result for the
    /// same run, question, model and mode replaces the first.
    pub async fn add_eval_result(&self, r: &EvalResult) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO eval_results (run_id, set_name, item_id, domain, model, mode,
                 answered_by, passed, detail, answer, error, latency_ms, completion_tokens,
                 tokens_per_second, cost_usd, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.run_id)
        .bind(&r.set_name)
        .bind(&r.item_id)
        .bind(&r.domain)
        .bind(&r.model)
        .bind(&r.mode)
        .bind(&r.answered_by)
        .bind(r.passed)
        .bind(&r.detail)
        .bind(&r.answer)
        .bind(&r.error)
        .bind(r.latency_ms)
        .bind(r.completion_tokens)
        .bind(r.tokens_per_second)
        .bind(r.cost_usd)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a run `done`, `cancelled` or `failed`.
    pub async fn finish_eval_run(&self, id: i64, status: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE eval_runs SET status = ?, finished_at = ? WHERE id = ?")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a run and its results; false when there was none.
    pub async fn delete_eval_run(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM eval_runs WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The most recent runs, newest first.
    pub async fn eval_runs(&self, limit: u32) -> Result<Vec<EvalRun>, StoreError> {
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT r.id, r.sets, r.targets, r.machine, r.status, r.started_at, r.finished_at,
                        (SELECT COUNT(*) FROM eval_results e WHERE e.run_id = r.id)
                 FROM eval_runs r ORDER BY r.id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, sets, targets, machine, status, started, finished, results)| EvalRun {
                    id,
                    sets: serde_json::from_str(&sets).unwrap_or_default(),
                    targets: serde_json::from_str(&targets).unwrap_or_default(),
                    machine,
                    status,
                    started_at: to_datetime(started),
                    finished_at: finished.map(to_datetime),
                    results,
                },
            )
            .collect())
    }

    /// Every scored answer of a run, in the order they were recorded.
    pub async fn eval_results(&self, run_id: i64) -> Result<Vec<EvalResult>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT run_id, set_name, item_id, domain, model, mode, answered_by, passed, detail,
                    answer, error, latency_ms, completion_tokens, tokens_per_second, cost_usd
             FROM eval_results WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest result of every (question, model, mode) over all runs: what each target
    /// scores now, whichever run measured it last.
    pub async fn latest_eval_results(&self) -> Result<Vec<EvalResult>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT run_id, set_name, item_id, domain, model, mode, answered_by, passed, detail,
                    answer, error, latency_ms, completion_tokens, tokens_per_second, cost_usd
             FROM (SELECT *, ROW_NUMBER() OVER (
                       PARTITION BY set_name, item_id, model, mode ORDER BY id DESC) AS n
                   FROM eval_results)
             WHERE n = 1 ORDER BY model, mode, set_name, item_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Pass rate, latency, speed and cost per model, mode and domain (plus `all`), over
    /// the latest result of every question.
    pub async fn eval_scores(&self) -> Result<Vec<EvalScore>, StoreError> {
        Ok(summarize(&self.latest_eval_results().await?))
    }

    /// Per model and domain (plus `all`), the single-mode pass rate, latency and speed of
    /// the latest results: the router's prior for "how good is this model at this kind of
    /// question here, and how fast".
    pub async fn domain_quality(
        &self,
    ) -> Result<BTreeMap<(String, String), DomainQuality>, StoreError> {
        Ok(self
            .eval_scores()
            .await?
            .into_iter()
            .filter(|s| s.mode == "single" && s.model != "auto")
            .map(|s| {
                (
                    (s.model, s.domain),
                    DomainQuality {
                        passed: s.passed,
                        total: s.total,
                        mean_ms: s.mean_ms,
                        tokens_per_second: s.tokens_per_second.unwrap_or(0.0),
                    },
                )
            })
            .collect())
    }
}

/// Groups results into [`EvalScore`]s per (model, mode, domain), with an `all` domain per
/// (model, mode).
pub fn summarize(results: &[EvalResult]) -> Vec<EvalScore> {
    #[derive(Default)]
    struct Acc {
        passed: u32,
        total: u32,
        ms: f64,
        speeds: Vec<f64>,
        cost: f64,
    }
    let mut acc: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for r in results {
        for domain in [r.domain.as_str(), "all"] {
            let a = acc
                .entry((r.model.clone(), r.mode.clone(), domain.to_owned()))
                .or_default();
            a.total += 1;
            a.passed += u32::from(r.passed);
            a.ms += r.latency_ms as f64;
            a.speeds.extend(r.tokens_per_second);
            a.cost += r.cost_usd.unwrap_or(0.0);
        }
    }
    acc.into_iter()
        .map(|((model, mode, domain), a)| EvalScore {
            model,
            mode,
            domain,
            passed: a.passed,
            total: a.total,
            mean_ms: a.ms / f64::from(a.total.max(1)),
            tokens_per_second: (!a.speeds.is_empty())
                .then(|| a.speeds.iter().sum::<f64>() / a.speeds.len() as f64),
            cost_usd: a.cost,
        })
        .collect()
}
