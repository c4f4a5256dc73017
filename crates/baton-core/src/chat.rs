//! Chat messages, sampling parameters, requests, streamed events and responses.

use crate::ids::{RequestId, SessionId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person using Baton.
    User,
    /// A model's answer.
    Assistant,
}

impl Role {
    /// The lowercase name used in storage, templates and the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(format!(
                "unknown role `{other}`: expected system, user or assistant"
            )),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
}

/// How tokens are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    #[serde(deserialize_with = "finite_f32")]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[serde(deserialize_with = "finite_f32")]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 disables).
    pub top_k: u32,
    /// Maximum number of generated tokens.
    pub max_tokens: u32,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Penalty (OpenAI's `presence_penalty`, -2..2) on tokens that already appeared.
    #[serde(deserialize_with = "finite_f32")]
    pub presence_penalty: f32,
    /// Penalty (OpenAI's `frequency_penalty`, -2..2) growing with how often a token appeared.
    #[serde(deserialize_with = "finite_f32")]
    pub frequency_penalty: f32,
    /// The shape the output must have (JSON, a JSON Schema, a grammar); `None`: free text.
    pub format: Option<OutputFormat>,
}

/// Reads an `f32` that must be finite: JSON numbers past `f32::MAX` (such as `1e307`)
/// would read as infinity and then be written as `null`, a line no reader takes back.
fn finite_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = <f32 as Deserialize>::deserialize(d)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "{v} is not a usable number (out of range for a 32-bit float)"
        )))
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            max_tokens: 512,
            stop: Vec::new(),
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            format: None,
        }
    }
}

/// Per-request sampling choices (an API request's fields, an evaluation's settings) laid
/// over the configured [`SamplingParams`]; `None` keeps the configured value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingOverrides {
    /// Softmax temperature; 0 means greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// Maximum number of generated tokens.
    pub max_tokens: Option<u32>,
    /// Stop strings (replace the configured ones).
    pub stop: Option<Vec<String>>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Presence penalty.
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f32>,
    /// Output format.
    pub format: Option<OutputFormat>,
}

impl SamplingOverrides {
    /// `base` with every set field replaced.
    pub fn apply(&self, base: SamplingParams) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(base.temperature),
            top_p: self.top_p.unwrap_or(base.top_p),
            top_k: base.top_k,
            max_tokens: self.max_tokens.unwrap_or(base.max_tokens),
            stop: self.stop.clone().unwrap_or(base.stop),
            seed: self.seed.or(base.seed),
            presence_penalty: self.presence_penalty.unwrap_or(base.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(base.frequency_penalty),
            format: self.format.clone().or(base.format),
        }
    }
}

/// A constraint on the generated text, enforced while sampling (local models) or asked of
/// the endpoint (remote models, which are also validated afterwards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON that matches a JSON Schema.
    JsonSchema {
        /// A name for the schema (OpenAI's `json_schema.name`).
        #[serde(default)]
        name: String,
        /// The schema.
        schema: serde_json::Value,
    },
    /// Text that matches a GBNF grammar (llama.cpp's grammar format, root rule `root`).
    Grammar {
        /// The grammar.
        grammar: String,
    },
}

/// A request for one chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Follows the request through logs and worker processes.
    pub id: RequestId,
    /// The model to use, by registry name.
    pub model: String,
    /// The conversation so far, oldest first; the last message is usually the user's.
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters.
    pub params: SamplingParams,
    /// The session this turn belongs to, so engines can reuse cached prompt state.
    pub session: Option<SessionId>,
}

impl ChatRequest {
    /// A request with default sampling and a fresh id.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            id: RequestId::new(),
            model: model.into(),
            messages,
            params: SamplingParams::default(),
            session: None,
        }
    }
}

/// Token accounting of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Of those, tokens whose evaluation was reused from a cache.
    pub cached_prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The request was cancelled.
    Cancelled,
}

/// An event streamed while a completion is generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The engine accepted the request and starts work.
    Started {
        /// The model that answers.
        model: String,
    },
    /// A piece of generated text.
    Token {
        /// The text of this piece (may be part of a word).
        text: String,
    },
    /// A notice the user should see (for example: older turns were dropped to fit the context).
    Notice {
        /// What happened, in words.
        message: String,
    },
    /// The text streamed so far is withdrawn and the answer starts again: the model failed
    /// mid-answer and a fallback model takes over.
    Restart {
        /// What happened, in words.
        reason: String,
    },
}

/// The final result of a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model that answered.
    pub model: String,
    /// The complete generated text.
    pub content: String,
    /// Token accounting.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Milliseconds from request to first token.
    pub first_token_ms: Option<u64>,
    /// Milliseconds from request to the end.
    pub total_ms: u64,
    /// Cost in US dollars, where the engine charges.
    pub cost_usd: Option<f64>,
}

impl ChatResponse {
    /// Generated tokens per second over the generation phase (after the first token).
    pub fn tokens_per_second(&self) -> Option<f64> {
        let first = self.first_token_ms?;
        let gen_ms = self.total_ms.saturating_sub(first);
        if self.usage.completion_tokens < 2 || gen_ms == 0 {
            return None;
        }
        Some(f64::from(self.usage.completion_tokens - 1) * 1000.0 / gen_ms as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips_through_strings() {
        for role in [Role::System, Role::User, Role::Assistant] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("robot".parse::<Role>().unwrap_err().contains("robot"));
    }

    #[test]
    fn events_serialize_with_a_type_tag() {
        let json = serde_json::to_string(&ChatEvent::Token { text: "hi".into() }).unwrap();
        assert_eq!(json, r#"{"type":"token","text":"hi"}"#);
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let base = SamplingParams {
            stop: vec!["END".into()],
            ..SamplingParams::default()
        };
        let o = SamplingOverrides {
            max_tokens: Some(16),
            temperature: Some(0.0),
            ..SamplingOverrides::default()
        };
        let p = o.apply(base.clone());
        assert_eq!((p.max_tokens, p.temperature), (16, 0.0));
        assert_eq!((p.top_p, p.stop.clone()), (base.top_p, base.stop.clone()));
        assert_eq!(SamplingOverrides::default().apply(base.clone()), base);
    }

    #[test]
    fn tokens_per_second_uses_the_generation_phase() {
        let response = ChatResponse {
            model: "m".into(),
            content: String::new(),
            usage: Usage {
                prompt_tokens: 10,
                cached_prompt_tokens: 0,
                completion_tokens: 11,
            },
            finish_reason: FinishReason::Stop,
            first_token_ms: Some(100),
            total_ms: 1100,
            cost_usd: None,
        };
        assert_eq!(response.tokens_per_second(), Some(10.0));
    }
}
