//! Per-request samplers: the llama.cpp sampler chain built from [`SamplingParams`], with an
//! optional grammar that constrains the output ([`baton_core::OutputFormat`]).
//!
//! Order, as llama.cpp's own `common_sampler_sample` does it: the grammar applies first, so
//! the penalties, top-k, top-p, temperature and the final pick (greedy or random) only see
//! tokens the grammar allows. Applying the grammar to a whole vocabulary (150k tokens for
//! Qwen) on every token is slow, so the chain first picks from the unconstrained logits and
//! the grammar checks that one token; only when the grammar refuses it are the logits
//! restored, the grammar applied to all of them and the chain run again. With greedy
//! decoding both ways give the same token; with plain temperature sampling the
//! distribution is the same too (accept-or-resample of a proportional draw is exact).
//!
//! End-of-generation tokens pass the grammar only where the grammar may end, so a
//! constrained generation stops by itself exactly when its output is complete.

use crate::format::grammar_for;
use baton_core::SamplingParams;
use baton_llm::protocol::ErrorKind;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

/// What went wrong, for the request's error event.
pub type Failure = (ErrorKind, String);

/// Repetition penalty over the last tokens: small models (SmolLM2-135M) otherwise fall
/// into loops like "hehehe…" at ordinary temperatures. Greedy decoding goes without it.
const REPEAT_LAST_N: i32 = 64;
const REPEAT_PENALTY: f32 = 1.15;

/// The sampler of one request.
pub struct SlotSampler {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
    /// Scratch candidates (one per vocabulary token), reused between tokens.
    scratch: Vec<LlamaTokenData>,
    /// Tokens the grammar refused, so that it was applied to the whole vocabulary.
    resamples: u32,
    /// Time spent sampling.
    spent: std::time::Duration,
}

/// A sampler for `params`, and the notices to send with the request (schema keywords the
/// grammar cannot enforce). `history` is how many generated tokens the presence and
/// frequency penalties look back over (the request's whole generation).
pub fn build(
    model: &LlamaModel,
    params: &SamplingParams,
    history: usize,
) -> Result<(SlotSampler, Vec<String>), Failure> {
    let bad = |message: String| (ErrorKind::BadRequest, message);
    for (name, value) in [
        ("presence_penalty", params.presence_penalty),
        ("frequency_penalty", params.frequency_penalty),
    ] {
        if !value.is_finite() || !(-2.0..=2.0).contains(&value) {
            return Err(bad(format!("{name} must be between -2 and 2, not {value}")));
        }
    }
    if !params.temperature.is_finite() {
        return Err(bad(format!(
            "temperature must be a number, not {}",
            params.temperature
        )));
    }
    let (grammar, notices) = match &params.format {
        None => (None, Vec::new()),
        Some(format) => {
            let constraint = grammar_for(format).map_err(bad)?;
            let sampler = LlamaSampler::grammar(model, &constraint.gbnf, "root").map_err(|e| {
                bad(format!(
                    "llama.cpp refused the grammar ({e}): it may be left-recursive (a rule that starts with itself, like `root ::= root \"a\"`) or name a <token> that is not a single token of this model; see the worker log for llama.cpp's reason"
                ))
            })?;
            (Some(sampler), constraint.notices)
        }
    };
    let n_vocab = model.n_vocab();
    let mut chain = Vec::new();
    if params.temperature > 0.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            REPEAT_LAST_N,
            REPEAT_PENALTY,
            0.0,
            0.0,
        ));
    }
    if params.presence_penalty != 0.0 || params.frequency_penalty != 0.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            i32::try_from(history.max(1)).unwrap_or(i32::MAX),
            1.0,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    if params.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        let seed = params.seed.map(|s| s as u32).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
                .unwrap_or(0)
        });
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(
                i32::try_from(params.top_k).unwrap_or(i32::MAX),
            ));
        }
        if params.top_p > 0.0 && params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(seed));
    }
    let chain = if chain.len() == 1 {
        chain.pop().unwrap_or_else(LlamaSampler::greedy)
    } else {
        LlamaSampler::chain_simple(chain)
    };
    Ok((
        SlotSampler {
            chain,
            grammar,
            scratch: Vec::new(),
            resamples: 0,
            spent: std::time::Duration::ZERO,
        },
        notices,
    ))
}

fn fill(scratch: &mut Vec<LlamaTokenData>, logits: &[f32]) {
    scratch.clear();
    scratch.extend(
        logits
            .iter()
            .enumerate()
            .map(|(i, &logit)| LlamaTokenData::new(LlamaToken(i as i32), logit, 0.0)),
    );
}

impl SlotSampler {
    /// Whether a grammar constrains this request.
    pub fn constrained(&self) -> bool {
        self.grammar.is_some()
    }

    /// How often the grammar refused the chain's pick (and was applied to every token),
    /// and the time spent sampling, for the logs.
    pub fn effort(&self) -> (u32, std::time::Duration) {
        (self.resamples, self.spent)
    }

    /// Pick the next token from the logits at batch index `idx` and record it (penalty
    /// history, grammar state).
    pub fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken, Failure> {
        let started = std::time::Instant::now();
        let result = self.sample_timed(ctx, idx);
        self.spent += started.elapsed();
        result
    }

    fn sample_timed(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Result<LlamaToken, Failure> {
        let Some(grammar) = self.grammar.as_mut() else {
            return Ok(self.chain.sample(ctx, idx));
        };
        let logits = ctx.get_logits_ith(idx);
        fill(&mut self.scratch, logits);
        let mut candidates = LlamaTokenDataArray::new(std::mem::take(&mut self.scratch), false);
        candidates.apply_sampler(&mut self.chain);
        let first = candidates.selected_token();
        let allowed = first.is_some_and(|token| {
            let mut one =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
            one.apply_sampler(grammar);
            one.data.first().is_some_and(|d| d.logit().is_finite())
        });
        let token = if allowed {
            first
        } else {
            // Resample: the grammar first, then the chain over what it allows.
            self.resamples += 1;
            fill(&mut candidates.data, logits);
            candidates.selected = None;
            candidates.sorted = false;
            candidates.apply_sampler(grammar);
            if !candidates.data.iter().any(|d| d.logit().is_finite()) {
                self.scratch = candidates.data;
                return Err((
                    ErrorKind::BadRequest,
                    "the grammar allows no token of this model's vocabulary at this point of the output".into(),
                ));
            }
            candidates.apply_sampler(&mut self.chain);
            candidates.selected_token()
        };
        self.scratch = candidates.data;
        let token = token.ok_or_else(|| {
            (
                ErrorKind::Internal,
                "the sampler selected no token".to_owned(),
            )
        })?;
        self.chain.accept(token);
        grammar.try_accept(token).map_err(|e| {
            (
                ErrorKind::Internal,
                format!("the grammar could not accept the sampled token: {e}"),
            )
        })?;
        Ok(token)
    }
}
