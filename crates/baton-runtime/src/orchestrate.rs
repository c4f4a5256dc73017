//! Executing the orchestrator's decisions: routing a turn, single answers with fallback
//! chains, fan-out with a deadline and a merge, and critique-and-refine. The decisions
//! themselves (routing scores, votes, score parsing, when to stop) are pure functions in
//! `baton_core::{routing, ensemble}`; this module runs them against engines.

use crate::{Runtime, RuntimeError};
use baton_core::ensemble::{self, Ballot};
use baton_core::routing::{self, Candidate, RouteQuery, RoutingDecision};
use baton_core::{
    CancellationToken, ChatEvent, ChatMessage, ChatResponse, EngineError, EventSink, MergeStrategy,
    OrchestrationEvent, OutputFormat, RequestId, Role, SamplingOverrides, SamplingParams,
    SessionId, TaskKind,
};
use futures::future::join_all;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How an answer is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One model (with fallbacks when it fails).
    #[default]
    Single,
    /// Several models in parallel, merged into one answer.
    FanOut,
    /// A draft, critiques from other models, revisions, judged each round.
    Refine,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Single => "single",
            Mode::FanOut => "fanout",
            Mode::Refine => "refine",
        })
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "single" => Ok(Mode::Single),
            "fanout" | "fan-out" => Ok(Mode::FanOut),
            "refine" => Ok(Mode::Refine),
            other => Err(format!(
                "unknown mode `{other}`: expected single, fanout or refine"
            )),
        }
    }
}

/// What the person asked for besides the text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerOptions {
    /// A model by name; `None` or `auto` lets the router choose.
    pub model: Option<String>,
    /// How the answer is produced.
    pub mode: Mode,
    /// Sampling choices for this answer over the configured ones.
    pub sampling: SamplingOverrides,
}

impl AnswerOptions {
    /// A model (or `auto`) in a mode, with the configured sampling.
    pub fn new(model: Option<String>, mode: Mode) -> Self {
        Self {
            model,
            mode,
            sampling: SamplingOverrides::default(),
        }
    }
}

/// An answer produced without a session (the API, evaluations).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The kept answer.
    pub response: ChatResponse,
    /// The router's decision, when it chose.
    pub routed: Option<RoutingDecision>,
}

/// Receives orchestration progress. Must not block.
pub type ProgressSink<'a> = &'a (dyn Fn(OrchestrationEvent) + Send + Sync);

/// The models a turn will use, best first, and the recorded decision.
struct Plan {
    chain: Vec<String>,
    decision_id: Option<i64>,
    routed: bool,
}

fn last_user_text(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

fn available_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(u64::MAX, |kib| kib * 1024)
}

/// How far below the best model's evaluated pass rate (in the question's domain) a model
/// may be and still join a fan-out or critique a draft.
const PEER_MARGIN: f64 = 0.2;

impl Runtime {
    /// The circuit-breaker key of a model: one per local model (each has its own worker),
    /// one per remote engine.
    pub(crate) fn breaker_key(&self, model: &str, engine: &str) -> String {
        if self.specs.read().expect("spec lock").contains_key(model) {
            format!("local:{model}")
        } else {
            engine.to_owned()
        }
    }

    /// Every model "auto" may pick, with what routing needs to know; the configured default
    /// comes first so that it wins ties.
    pub async fn routing_candidates(&self) -> Result<Vec<Candidate>, RuntimeError> {
        let histories = self.store.model_histories(200).await?;
        let quality = self.store.domain_quality().await?;
        let default = self.default_model();
        let evals = |model: &str| -> Vec<routing::DomainScore> {
            quality
                .iter()
                .filter(|((m, _), _)| m == model)
                .filter_map(|((_, domain), q)| {
                    Some(routing::DomainScore {
                        domain: domain.parse().ok()?,
                        passed: q.passed,
                        total: q.total,
                        mean_secs: q.mean_ms / 1000.0,
                    })
                })
                .collect()
        };
        let speed = |model: &str| {
            quality
                .get(&(model.to_owned(), "all".to_owned()))
                .map(|q| q.tokens_per_second)
                .filter(|t| *t > 0.0)
        };
        let strengths = &self.config.routing.strengths;
        let mut out = Vec::new();
        for record in self.store.list_models().await? {
            if !record.enabled
                || !self
                    .specs
                    .read()
                    .expect("spec lock")
                    .contains_key(&record.name)
            {
                continue;
            }
            let mut tasks = record.tasks.clone();
            if record.name == default && !tasks.contains(&TaskKind::Chat) {
                tasks.push(TaskKind::Chat);
            }
            out.push(Candidate {
                available: self.breakers.available(&format!("local:{}", record.name)),
                strengths: strengths.get(&record.name).cloned().unwrap_or_default(),
                history: histories.get(&record.name).copied(),
                evals: evals(&record.name),
                tokens_per_second: speed(&record.name),
                model: record.name,
                local: true,
                tasks,
                cost_per_mtok: 0.0,
                memory_needed: u64::try_from(record.file_size).unwrap_or(0) / 10 * 12,
            });
        }
        let remotes: Vec<(String, std::sync::Arc<baton_remote::RemoteEngine>)> = self
            .remotes
            .read()
            .expect("remote lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (model, engine) in remotes {
            let c = engine.config();
            out.push(Candidate {
                available: self.breakers.available(&format!("remote:{}", c.name)),
                strengths: strengths.get(&model).cloned().unwrap_or_default(),
                history: histories.get(&model).copied(),
                evals: evals(&model),
                tokens_per_second: speed(&model),
                local: false,
                tasks: vec![TaskKind::Chat],
                cost_per_mtok: (c.input_usd_per_mtok + c.output_usd_per_mtok) / 2.0,
                memory_needed: 0,
                model,
            });
        }
        let registered: Vec<String> = self
            .engines
            .read()
            .expect("engine map lock")
            .keys()
            .cloned()
            .collect();
        for model in registered {
            if !out.iter().any(|c| c.model == model) {
                out.push(Candidate {
                    available: self.breakers.available(&model),
                    strengths: strengths.get(&model).cloned().unwrap_or_default(),
                    history: histories.get(&model).copied(),
                    evals: evals(&model),
                    tokens_per_second: speed(&model),
                    model,
                    local: false,
                    tasks: vec![TaskKind::Chat],
                    cost_per_mtok: 0.0,
                    memory_needed: 0,
                });
            }
        }
        out.sort_by_key(|c| c.model != default);
        Ok(out)
    }

    /// Routes a prompt without running it (for `baton route` and the app's "auto" hint).
    pub async fn route(&self, prompt: &str) -> Result<RoutingDecision, RuntimeError> {
        let candidates = self.routing_candidates().await?;
        let r = &self.config.routing;
        routing::route(
            &RouteQuery {
                task: TaskKind::Chat,
                prompt,
                free_memory: available_memory_bytes(),
            },
            &candidates,
            &r.rules,
            &r.canaries,
            &r.weights(),
            rand::random::<f64>(),
        )
        .map_err(|e| {
            RuntimeError::Engine(EngineError::ModelUnavailable {
                model: "auto".into(),
                hint: e.to_string(),
            })
        })
    }

    async fn plan(
        &self,
        request: &RequestId,
        session: Option<&SessionId>,
        options: &AnswerOptions,
        prompt: &str,
        on_progress: crate::ProgressSink<'_>,
    ) -> Result<Plan, RuntimeError> {
        let default = self.default_model();
        let explicit = options
            .model
            .clone()
            .filter(|m| m != "auto" && !m.is_empty());
        if let Some(model) = explicit {
            // The person chose: that model, then the local default as the safety net.
            let mut chain = vec![model.clone()];
            if model != default && self.specs.read().expect("spec lock").contains_key(&default) {
                chain.push(default);
            }
            return Ok(Plan {
                chain,
                decision_id: None,
                routed: false,
            });
        }
        let decision = self.route(prompt).await?;
        let decision_id = match self
            .store
            .record_decision(request, session, &options.mode.to_string(), &decision)
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "could not record the routing decision");
                None
            }
        };
        tracing::info!(model = %decision.model, reasons = ?decision.reasons, "routed");
        let mut chain = vec![decision.model.clone()];
        chain.extend(decision.fallbacks.iter().cloned());
        if !chain.contains(&default) && self.specs.read().expect("spec lock").contains_key(&default)
        {
            chain.push(default);
        }
        on_progress(OrchestrationEvent::Routed { decision });
        Ok(Plan {
            chain,
            decision_id,
            routed: true,
        })
    }

    /// The sampling of an answer: the configured values with `overrides` laid over them.
    pub fn answer_params(&self, overrides: &SamplingOverrides) -> SamplingParams {
        overrides.apply(SamplingParams {
            temperature: self.config.chat.temperature,
            top_p: self.config.chat.top_p,
            max_tokens: self.config.chat.max_tokens,
            ..SamplingParams::default()
        })
    }

    /// Plans and runs a turn in its mode. Returns the answer and the decision's id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn orchestrate(
        &self,
        request: &RequestId,
        session: Option<&SessionId>,
        options: &AnswerOptions,
        messages: Vec<ChatMessage>,
        on_event: EventSink<'_>,
        on_progress: crate::ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Result<(ChatResponse, Option<i64>), RuntimeError> {
        let question = last_user_text(&messages);
        let plan = self
            .plan(request, session, options, &question, on_progress)
            .await?;
        let params = self.answer_params(&options.sampling);
        let response = match options.mode {
            Mode::Single => {
                self.call_with_fallback(
                    &plan.chain,
                    plan.routed,
                    messages,
                    session,
                    &params,
                    on_event,
                    on_progress,
                    cancel,
                )
                .await?
            }
            Mode::FanOut => {
                self.fan_out(
                    &plan.chain,
                    messages,
                    session,
                    &params,
                    on_event,
                    on_progress,
                    cancel,
                )
                .await?
            }
            Mode::Refine => {
                self.refine(
                    &plan.chain,
                    messages,
                    session,
                    &params,
                    on_event,
                    on_progress,
                    cancel,
                )
                .await?
            }
        };
        Ok((response, plan.decision_id))
    }

    /// An answer without a session (the local HTTP API, evaluations): the model is routed
    /// when `options.model` is `None` or `auto`, the mode runs as in a chat turn, runs and
    /// routing decisions are recorded, nothing is stored as a conversation.
    pub async fn answer_once(
        &self,
        options: &AnswerOptions,
        messages: Vec<ChatMessage>,
        on_event: EventSink<'_>,
        on_progress: crate::ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Result<Answer, RuntimeError> {
        if messages.is_empty() {
            return Err(EngineError::InvalidRequest("`messages` is empty".into()).into());
        }
        let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
        if bytes > crate::MAX_MESSAGE_BYTES {
            return Err(EngineError::InvalidRequest(format!(
                "the messages hold {} MiB of text; the limit is 1 MiB",
                bytes >> 20
            ))
            .into());
        }
        let routed = std::sync::Mutex::new(None);
        let progress = |event: OrchestrationEvent| {
            if let OrchestrationEvent::Routed { decision } = &event {
                *routed.lock().expect("routed lock") = Some(decision.clone());
            }
            on_progress(event);
        };
        let (response, _) = self
            .orchestrate(
                &RequestId::new(),
                None,
                options,
                messages,
                on_event,
                &progress,
                cancel,
            )
            .await?;
        let routed = routed.lock().expect("routed lock").take();
        Ok(Answer { response, routed })
    }

    /// A stateless single-mode completion (the local HTTP API): `model` `None` or `auto` is
    /// routed, the chain falls back like a chat turn, runs are recorded, nothing is stored
    /// as a session.
    pub async fn complete(
        &self,
        model: Option<String>,
        messages: Vec<ChatMessage>,
        sampling: SamplingOverrides,
        on_event: EventSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, RuntimeError> {
        let options = AnswerOptions {
            model,
            mode: Mode::Single,
            sampling,
        };
        Ok(self
            .answer_once(&options, messages, on_event, &|_| {}, cancel)
            .await?
            .response)
    }

    /// Names every model a request may ask for: registered local models, then remote ones.
    pub async fn model_names(&self) -> Result<Vec<String>, RuntimeError> {
        let mut names: Vec<String> = self
            .store
            .list_models()
            .await?
            .into_iter()
            .filter(|m| m.enabled)
            .map(|m| m.name)
            .collect();
        let mut remote: Vec<String> = self
            .remotes
            .read()
            .expect("remote lock")
            .keys()
            .cloned()
            .collect();
        remote.sort();
        names.extend(remote);
        Ok(names)
    }

    /// One step of a multi-model mode: a call with progress events around it.
    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        role: &str,
        model: &str,
        round: u32,
        mode: Mode,
        messages: Vec<ChatMessage>,
        session: Option<&SessionId>,
        params: &SamplingParams,
        on_progress: crate::ProgressSink<'_>,
        cancel: CancellationToken,
        deadline: Option<Duration>,
    ) -> Result<ChatResponse, EngineError> {
        on_progress(OrchestrationEvent::Step {
            role: role.into(),
            model: model.into(),
            round,
        });
        let started = Instant::now();
        let child = cancel.child_token();
        let call = self.call(
            model,
            messages,
            session,
            params,
            &|_| {},
            child.clone(),
            mode,
            role,
        );
        let result = match deadline {
            None => call.await,
            Some(limit) => {
                tokio::pin!(call);
                tokio::select! {
                    r = &mut call => r,
                    _ = tokio::time::sleep(limit) => {
                        child.cancel();
                        let _ = call.await;
                        Err(EngineError::Timeout { engine: model.into(), seconds: limit.as_secs() })
                    }
                }
            }
        };
        let result = match result {
            Ok(r)
                if r.finish_reason == baton_core::FinishReason::Cancelled
                    && !cancel.is_cancelled() =>
            {
                Err(EngineError::Timeout {
                    engine: model.into(),
                    seconds: started.elapsed().as_secs(),
                })
            }
            other => other,
        };
        let score = match (&result, role) {
            (Ok(r), "judge") => ensemble::parse_score(&r.content),
            _ => None,
        };
        on_progress(OrchestrationEvent::StepDone {
            role: role.into(),
            model: model.into(),
            round,
            text: match &result {
                Ok(r) => r.content.clone(),
                Err(e) => e.to_string(),
            },
            ok: result.is_ok(),
            ms: started.elapsed().as_millis() as u64,
            score,
        });
        result
    }

    /// Asks `judge` to score `answer`, a second time when the first reply holds no usable
    /// score; `None` when neither does. Local judges are sampled under
    /// [`ensemble::JUDGE_GRAMMAR`], so their reply is always `Score: N` with N in 0..=10;
    /// remote ones are asked the same way and their reply is parsed.
    #[allow(clippy::too_many_arguments)]
    async fn judge(
        &self,
        judge: &str,
        question: &str,
        answer: &str,
        round: u32,
        mode: Mode,
        session: Option<&SessionId>,
        on_progress: crate::ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Option<f64> {
        let params = SamplingParams {
            temperature: 0.0,
            max_tokens: 8,
            format: Some(OutputFormat::Grammar {
                grammar: ensemble::JUDGE_GRAMMAR.into(),
            }),
            ..SamplingParams::default()
        };
        for _ in 0..2 {
            let score = self
                .step(
                    "judge",
                    judge,
                    round,
                    mode,
                    ensemble::judge_messages(question, answer),
                    session,
                    &params,
                    on_progress,
                    cancel.clone(),
                    None,
                )
                .await
                .ok()
                .and_then(|r| ensemble::parse_score(&r.content));
            if score.is_some() || cancel.is_cancelled() {
                return score;
            }
        }
        None
    }

    /// Has `judge` rate `answer` to `question` from 0 to 10 (a local judge is sampled under
    /// the score grammar); `None` when it gives no usable score.
    pub async fn score(
        &self,
        judge: &str,
        question: &str,
        answer: &str,
        cancel: CancellationToken,
    ) -> Option<f64> {
        self.judge(
            judge,
            question,
            answer,
            0,
            Mode::Single,
            None,
            &|_| {},
            cancel,
        )
        .await
    }

    /// The first `n` models of `chain` (the router's order) fit to work with its first one
    /// on `question`: where this machine's evaluation measured the question's domain, a
    /// model whose pass rate there is more than [`PEER_MARGIN`] below the best one's is left
    /// out (a weak model's answers outvote or mislead a strong one's more than they help).
    async fn peers(&self, chain: &[String], question: &str, n: usize) -> Vec<String> {
        let quality = self.store.domain_quality().await.unwrap_or_default();
        let domain = routing::classify(question).domain.to_string();
        let rate = |model: &str| {
            quality
                .get(&(model.to_owned(), domain.clone()))
                .filter(|q| q.total >= routing::MIN_EVAL_QUESTIONS)
                .map(|q| f64::from(q.passed) / f64::from(q.total))
        };
        let best = chain
            .iter()
            .filter_map(|m| rate(m))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut out: Vec<String> = chain
            .iter()
            .filter(|m| rate(m).is_none_or(|r| r >= best - PEER_MARGIN))
            .take(n)
            .cloned()
            .collect();
        if out.is_empty() {
            out.extend(chain.first().cloned());
        }
        out
    }

    fn judge_model(&self, chain: &[String]) -> String {
        let configured = &self.config.orchestration.judge_model;
        if configured.is_empty() {
            chain[0].clone()
        } else {
            configured.clone()
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fan_out(
        &self,
        chain: &[String],
        messages: Vec<ChatMessage>,
        session: Option<&SessionId>,
        params: &SamplingParams,
        on_event: EventSink<'_>,
        on_progress: crate::ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError> {
        let o = &self.config.orchestration;
        let models: Vec<String> = if o.fanout_models.is_empty() {
            self.peers(chain, &last_user_text(&messages), 3).await
        } else {
            o.fanout_models.clone()
        };
        let deadline = Duration::from_secs(o.fanout_deadline_secs);
        let started = Instant::now();
        let branches = models.iter().map(|model| {
            self.step(
                "answer",
                model,
                0,
                Mode::FanOut,
                messages.clone(),
                session,
                params,
                on_progress,
                cancel.clone(),
                Some(deadline),
            )
        });
        let results = join_all(branches).await;
        let cost: f64 = results
            .iter()
            .filter_map(|r| r.as_ref().ok().and_then(|r| r.cost_usd))
            .sum();
        let mut answers: Vec<ChatResponse> = Vec::new();
        let mut last_error = None;
        for result in results {
            match result {
                Ok(r) if !r.content.trim().is_empty() => answers.push(r),
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
        }
        if answers.is_empty() {
            return Err(last_error.unwrap_or_else(|| EngineError::Failed {
                engine: "fan-out".into(),
                message: "no model produced an answer".into(),
                retryable: true,
            }));
        }
        let question = last_user_text(&messages);
        let histories = self.store.model_histories(200).await.unwrap_or_default();
        let quality = self.store.domain_quality().await.unwrap_or_default();
        let domain = routing::classify(&question).domain.to_string();
        let weighted = o.merge == MergeStrategy::Weighted;
        // A weighted vote trusts each model as much as it earned: its evaluated pass rate
        // in the question's domain here (the router's prior), else its run history.
        let weight = |model: &str| {
            let evaluated = quality
                .get(&(model.to_owned(), domain.clone()))
                .filter(|q| q.total >= routing::MIN_EVAL_QUESTIONS)
                .map(|q| (f64::from(q.passed) + 1.0) / (f64::from(q.total) + 2.0));
            evaluated.unwrap_or_else(|| {
                histories
                    .get(model)
                    .map_or(0.5, |h| h.success_rate * (1.0 + 0.5 * h.rating))
            })
        };
        let ballots: Vec<Ballot> = answers
            .iter()
            .map(|a| Ballot {
                model: a.model.clone(),
                text: a.content.clone(),
                weight: if weighted { weight(&a.model) } else { 1.0 },
            })
            .collect();
        let voted = if o.merge == MergeStrategy::Judge {
            None
        } else {
            ensemble::vote(&ballots)
        };
        let (winner, strategy, detail) = if answers.len() == 1 {
            (
                0,
                o.merge,
                "the only model that answered in time".to_owned(),
            )
        } else if let Some(v) = voted {
            (
                v.winner,
                o.merge,
                format!(
                    "{:.1} of {:.1} votes agree ({})",
                    v.support,
                    v.total,
                    v.agreeing.join(", ")
                ),
            )
        } else {
            let judge = self.judge_model(chain);
            let mut scores = Vec::new();
            for a in &answers {
                scores.push(
                    self.judge(
                        &judge,
                        &question,
                        &a.content,
                        0,
                        Mode::FanOut,
                        session,
                        on_progress,
                        cancel.clone(),
                    )
                    .await
                    .unwrap_or(0.0),
                );
            }
            let best = ensemble::best_version(&scores).unwrap_or(0);
            let why = if o.merge == MergeStrategy::Judge {
                format!("{judge} scored it {:.1}", scores[best])
            } else {
                format!(
                    "no two answers agree; {judge} scored it {:.1}",
                    scores[best]
                )
            };
            (best, MergeStrategy::Judge, why)
        };
        let mut response = answers.swap_remove(winner);
        on_progress(OrchestrationEvent::Merged {
            strategy,
            winner: response.model.clone(),
            detail,
        });
        on_event(ChatEvent::Started {
            model: response.model.clone(),
        });
        on_event(ChatEvent::Token {
            text: response.content.clone(),
        });
        response.cost_usd = (cost > 0.0).then_some(cost);
        response.total_ms = started.elapsed().as_millis() as u64;
        Ok(response)
    }

    #[allow(clippy::too_many_arguments)]
    async fn refine(
        &self,
        chain: &[String],
        messages: Vec<ChatMessage>,
        session: Option<&SessionId>,
        params: &SamplingParams,
        on_event: EventSink<'_>,
        on_progress: crate::ProgressSink<'_>,
        cancel: CancellationToken,
    ) -> Result<ChatResponse, EngineError> {
        let o = &self.config.orchestration;
        let started = Instant::now();
        let primary = chain[0].clone();
        let critics: Vec<String> = if !o.critics.is_empty() {
            o.critics.clone()
        } else {
            let peers = self.peers(chain, &last_user_text(&messages), 3).await;
            if peers.len() > 1 {
                peers[1..].to_vec()
            } else {
                vec![primary.clone()]
            }
        };
        let judge = self.judge_model(chain);
        let question = last_user_text(&messages);
        let mode = Mode::Refine;
        let draft = self
            .step(
                "answer",
                &primary,
                0,
                mode,
                messages,
                session,
                params,
                on_progress,
                cancel.clone(),
                None,
            )
            .await?;
        let mut cost = draft.cost_usd.unwrap_or(0.0);
        // What the judge said (None: no usable score), and the same as numbers for the stop
        // rule, where no score counts as 0.
        let mut judged = vec![
            self.judge(
                &judge,
                &question,
                &draft.content,
                0,
                mode,
                session,
                on_progress,
                cancel.clone(),
            )
            .await,
        ];
        let mut scores: Vec<f64> = judged.iter().map(|s| s.unwrap_or(0.0)).collect();
        let mut versions = vec![draft];
        let mut round = 0;
        let stop = loop {
            if let Some(stop) =
                ensemble::refine_should_stop(&scores, o.refine_rounds, o.refine_min_gain)
            {
                break stop;
            }
            if cancel.is_cancelled() {
                break baton_core::RefineStop::MaxRounds;
            }
            round += 1;
            let current = versions.last().expect("a draft exists").content.clone();
            let mut critiques = Vec::new();
            for critic in &critics {
                if let Ok(c) = self
                    .step(
                        "critique",
                        critic,
                        round,
                        mode,
                        ensemble::critique_messages(&question, &current),
                        session,
                        params,
                        on_progress,
                        cancel.clone(),
                        None,
                    )
                    .await
                {
                    cost += c.cost_usd.unwrap_or(0.0);
                    critiques.push((critic.clone(), c.content));
                }
            }
            let revised = match self
                .step(
                    "revise",
                    &primary,
                    round,
                    mode,
                    ensemble::revise_messages(&question, &current, &critiques),
                    session,
                    params,
                    on_progress,
                    cancel.clone(),
                    None,
                )
                .await
            {
                Ok(r) if !r.content.trim().is_empty() => r,
                _ => break baton_core::RefineStop::NoImprovement,
            };
            cost += revised.cost_usd.unwrap_or(0.0);
            let score = self
                .judge(
                    &judge,
                    &question,
                    &revised.content,
                    round,
                    mode,
                    session,
                    on_progress,
                    cancel.clone(),
                )
                .await;
            judged.push(score);
            scores.push(score.unwrap_or(0.0));
            versions.push(revised);
        };
        let kept = ensemble::best_version(&scores).unwrap_or(0);
        on_progress(OrchestrationEvent::RefineDone {
            rounds: round,
            scores: judged,
            stop,
            kept,
        });
        let mut response = versions.swap_remove(kept);
        on_event(ChatEvent::Started {
            model: response.model.clone(),
        });
        on_event(ChatEvent::Token {
            text: response.content.clone(),
        });
        response.cost_usd = (cost > 0.0).then_some(cost);
        response.total_ms = started.elapsed().as_millis() as u64;
        Ok(response)
    }
}
