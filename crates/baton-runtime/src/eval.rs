//! Evaluations: question sets ([`baton_eval`]) run over models and modes, every answer
//! scored by its item's checker and stored (committed one by one, so a cancelled or crashed
//! run keeps what it measured). The stored pass rates per domain are the router's prior.

use crate::orchestrate::{AnswerOptions, Mode};
use crate::{Runtime, RuntimeError};
use baton_core::{CancellationToken, ChatMessage, SamplingOverrides};
use baton_eval::{EvalItem, EvalSet};
use baton_store::{EvalResult, EvalScore};
use std::time::Instant;

/// One model (or `auto`) in one mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalTarget {
    /// A registered model, a remote `engine/model`, or `auto` (routed per question).
    pub model: String,
    /// The mode its answers are produced in.
    pub mode: Mode,
}

impl EvalTarget {
    /// `model/mode`, as runs list their targets.
    pub fn label(&self) -> String {
        format!("{}/{}", self.model, self.mode)
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    /// The question sets.
    pub sets: Vec<EvalSet>,
    /// Every target answers every question.
    pub targets: Vec<EvalTarget>,
    /// At most this many questions per set (the first ones), for a quick look.
    pub limit: Option<usize>,
}

impl EvalPlan {
    /// The questions that run, with their set's name.
    pub fn items(&self) -> Vec<(&str, &EvalItem)> {
        self.sets
            .iter()
            .flat_map(|s| {
                let n = self.limit.unwrap_or(usize::MAX);
                s.items.iter().take(n).map(move |i| (s.name.as_str(), i))
            })
            .collect()
    }
}

/// Progress of a run.
#[derive(Debug, Clone)]
pub enum EvalProgress {
    /// The run is recorded and starts.
    Started {
        /// Its id in the store.
        run_id: i64,
        /// Answers it will score.
        total: usize,
    },
    /// One answer was scored and stored.
    Scored {
        /// Answers scored so far.
        done: usize,
        /// Answers in the run.
        total: usize,
        /// The result.
        result: Box<EvalResult>,
    },
}

/// A finished (or cancelled) run.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Its id in the store.
    pub run_id: i64,
    /// Every scored answer.
    pub results: Vec<EvalResult>,
    /// Per target and domain, over this run's answers.
    pub scores: Vec<EvalScore>,
    /// Whether it was cancelled before the end.
    pub cancelled: bool,
}

/// Tokens an answer may take, per domain: room for a function or a few sentences, and
/// little for one-word answers (small models otherwise ramble on).
fn max_tokens(domain: &str) -> u32 {
    match domain {
        "code" => 400,
        "writing" => 220,
        "math" => 160,
        _ => 96,
    }
}

impl Runtime {
    /// What an evaluation runs: every model in `models` (empty: every enabled chat model)
    /// in single mode, and the router (`auto`) for each ensemble mode, which chooses its
    /// members itself. Fails when no chat model is installed.
    pub async fn eval_targets(
        &self,
        models: &[String],
        modes: &[Mode],
    ) -> Result<Vec<EvalTarget>, RuntimeError> {
        let models: Vec<String> = if models.is_empty() {
            self.models()
                .await?
                .into_iter()
                .filter(|m| m.enabled && m.tasks.contains(&baton_core::TaskKind::Chat))
                .map(|m| m.name)
                .collect()
        } else {
            models.to_vec()
        };
        if models.is_empty() {
            return Err(RuntimeError::Engine(baton_core::EngineError::ModelUnavailable {
                model: "chat".into(),
                hint: "no chat model is installed; fetch one first (`baton models fetch --recommended` or Settings → Models)".into(),
            }));
        }
        let mut out = Vec::new();
        for &mode in modes {
            if mode == Mode::Single {
                out.extend(models.iter().map(|m| EvalTarget {
                    model: m.clone(),
                    mode,
                }));
            } else {
                out.push(EvalTarget {
                    model: "auto".into(),
                    mode,
                });
            }
        }
        Ok(out)
    }

    /// A line describing this machine for evaluation records: cores, memory, GPU.
    pub fn machine_summary(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ram = crate::models::total_memory_bytes().unwrap_or(0);
        let gpu = match self.gpu_report().devices.first() {
            Some(d) => format!("GPU {}", d.name),
            None => "no GPU".into(),
        };
        format!(
            "{cores} cores, {:.0} GiB RAM, {gpu}",
            ram as f64 / f64::from(1u32 << 30)
        )
    }

    /// Runs `plan`: every target answers every question (greedy sampling, so runs are
    /// repeatable), each answer is checked and stored before the next question. Ends early
    /// when `cancel` fires; what was scored stays.
    pub async fn run_eval(
        &self,
        plan: &EvalPlan,
        on_progress: &(dyn Fn(EvalProgress) + Send + Sync),
        cancel: CancellationToken,
    ) -> Result<EvalReport, RuntimeError> {
        if plan.targets.is_empty() {
            return Err(RuntimeError::Model(
                "nothing to evaluate: name at least one model (or auto)".into(),
            ));
        }
        let items = plan.items();
        let total = items.len() * plan.targets.len();
        let sets: Vec<String> = plan.sets.iter().map(|s| s.name.clone()).collect();
        let labels: Vec<String> = plan.targets.iter().map(EvalTarget::label).collect();
        let run_id = self
            .store
            .create_eval_run(&sets, &labels, &self.machine_summary())
            .await?;
        on_progress(EvalProgress::Started { run_id, total });
        let mut results = Vec::with_capacity(total);
        let mut cancelled = false;
        'targets: for target in &plan.targets {
            for (set, item) in &items {
                if cancel.is_cancelled() {
                    cancelled = true;
                    break 'targets;
                }
                let result = self
                    .eval_one(run_id, target, set, item, cancel.child_token())
                    .await;
                if cancel.is_cancelled() {
                    cancelled = true;
                    break 'targets;
                }
                self.store.add_eval_result(&result).await?;
                results.push(result.clone());
                on_progress(EvalProgress::Scored {
                    done: results.len(),
                    total,
                    result: Box::new(result),
                });
            }
        }
        self.store
            .finish_eval_run(run_id, if cancelled { "cancelled" } else { "done" })
            .await?;
        let scores = baton_store::summarize_eval(&results);
        Ok(EvalReport {
            run_id,
            results,
            scores,
            cancelled,
        })
    }

    async fn eval_one(
        &self,
        run_id: i64,
        target: &EvalTarget,
        set: &str,
        item: &EvalItem,
        cancel: CancellationToken,
    ) -> EvalResult {
        let options = AnswerOptions {
            model: Some(target.model.clone()),
            mode: target.mode,
            sampling: SamplingOverrides {
                temperature: Some(0.0),
                max_tokens: Some(max_tokens(&item.domain)),
                seed: Some(0),
                ..SamplingOverrides::default()
            },
        };
        let span =
            tracing::info_span!("eval", run = run_id, item = %item.id, target = %target.label());
        let started = Instant::now();
        let answer = tracing::Instrument::instrument(
            self.answer_once(
                &options,
                vec![ChatMessage::user(item.prompt.clone())],
                &|_| {},
                &|_| {},
                cancel,
            ),
            span,
        )
        .await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let mut result = EvalResult {
            run_id,
            set_name: set.to_owned(),
            item_id: item.id.clone(),
            domain: item.domain.clone(),
            model: target.model.clone(),
            mode: target.mode.to_string(),
            answered_by: None,
            passed: false,
            detail: String::new(),
            answer: String::new(),
            error: None,
            latency_ms,
            completion_tokens: None,
            tokens_per_second: None,
            cost_usd: None,
        };
        match answer {
            Ok(a) => {
                let r = a.response;
                let check = item.check.clone();
                let text = r.content.clone();
                let outcome = tokio::task::spawn_blocking(move || baton_eval::check(&check, &text))
                    .await
                    .unwrap_or_else(|e| baton_eval::CheckOutcome {
                        passed: false,
                        detail: format!("the checker failed: {e}"),
                    });
                result.passed = outcome.passed;
                result.detail = outcome.detail;
                result.answered_by = Some(r.model.clone());
                result.completion_tokens = Some(i64::from(r.usage.completion_tokens));
                result.tokens_per_second = r.tokens_per_second();
                result.cost_usd = r.cost_usd;
                result.answer = r.content;
            }
            Err(e) => {
                result.detail = "no answer".into();
                result.error = Some(e.to_string());
            }
        }
        result
    }
}
