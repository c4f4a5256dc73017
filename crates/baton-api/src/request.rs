//! A chat completion request as OpenAI clients send it, read into Baton's types.
//!
//! The body is read field by field from JSON so that every refusal names the parameter and
//! what would be accepted. Unknown fields are ignored (OpenAI clients send extras such as
//! `user`, `metadata` or `store`); parameters Baton cannot honour (`n` > 1, log
//! probabilities, tools, logit bias, audio) are refused instead of silently ignored.

use baton_core::{ChatMessage, OutputFormat, Role, SamplingOverrides};
use serde_json::{Map, Value};

/// A validated chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// The model asked for; `None` (or `auto`) is routed.
    pub model: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether the answer is streamed as server-sent events.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the token counts.
    pub include_usage: bool,
    /// The request's sampling, laid over the configured one.
    pub sampling: SamplingOverrides,
}

/// Why a request was refused: a 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The parameter at fault (OpenAI's `error.param`), when one is.
    pub param: Option<String>,
    /// What is wrong and what to send instead.
    pub message: String,
}

impl RequestError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, RequestError>;

/// The most stop strings a request may give (OpenAI's limit).
pub const MAX_STOP_STRINGS: usize = 4;

/// Reads and validates a request body.
pub fn parse(body: &[u8]) -> Result<CompletionRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError {
        param: None,
        message: format!(
            "the body is not a chat completion request ({e}); send JSON like {{\"model\": \"auto\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}"
        ),
    })?;
    let Value::Object(body) = value else {
        return Err(RequestError {
            param: None,
            message: "the body is not a chat completion request (not a JSON object); send JSON like {\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}".into(),
        });
    };
    refuse_unsupported(&body)?;
    let model = match field(&body, "model") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(RequestError::new(
                "model",
                format!(
                "`model` must be a string (a name from GET /v1/models, or \"auto\"), got {other}"
            ),
            ))
        }
    };
    let stream = boolean(&body, "stream")?.unwrap_or(false);
    let include_usage = match field(&body, "stream_options") {
        None => false,
        Some(Value::Object(o)) => boolean(o, "include_usage")
            .map_err(|_| {
                RequestError::new(
                    "stream_options.include_usage",
                    "`stream_options.include_usage` must be true or false",
                )
            })?
            .unwrap_or(false),
        Some(other) => {
            return Err(RequestError::new(
                "stream_options",
                format!(
                "`stream_options` must be an object like {{\"include_usage\": true}}, got {other}"
            ),
            ))
        }
    };
    let messages = messages(&body)?;
    let max_tokens = match positive_integer(&body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => positive_integer(&body, "max_tokens")?,
    };
    let sampling = SamplingOverrides {
        temperature: ranged(&body, "temperature", 0.0, 2.0, "between 0 and 2")?,
        top_p: match number(&body, "top_p", "greater than 0 and at most 1")? {
            Some(p) if p > 0.0 && p <= 1.0 => Some(p as f32),
            Some(p) => {
                return Err(RequestError::new(
                    "top_p",
                    format!("`top_p` must be greater than 0 and at most 1, got {p}"),
                ))
            }
            None => None,
        },
        max_tokens,
        stop: stop(&body)?,
        seed: seed(&body)?,
        presence_penalty: ranged(&body, "presence_penalty", -2.0, 2.0, "between -2 and 2")?,
        frequency_penalty: ranged(&body, "frequency_penalty", -2.0, 2.0, "between -2 and 2")?,
        format: response_format(&body)?,
    };
    Ok(CompletionRequest {
        model,
        messages,
        stream,
        include_usage,
        sampling,
    })
}

/// A field that is present and not `null`.
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

fn boolean(object: &Map<String, Value>, name: &str) -> Result<Option<bool>> {
    match field(object, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(RequestError::new(
            name,
            format!("`{name}` must be true or false, got {other}"),
        )),
    }
}

fn number(object: &Map<String, Value>, name: &str, range: &str) -> Result<Option<f64>> {
    match field(object, name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(RequestError::new(
            name,
            format!("`{name}` must be a number {range}, got {other}"),
        )),
    }
}

fn ranged(
    object: &Map<String, Value>,
    name: &str,
    low: f64,
    high: f64,
    range: &str,
) -> Result<Option<f32>> {
    match number(object, name, range)? {
        Some(v) if (low..=high).contains(&v) => Ok(Some(v as f32)),
        Some(v) => Err(RequestError::new(
            name,
            format!("`{name}` must be {range}, got {v}"),
        )),
        None => Ok(None),
    }
}

fn positive_integer(object: &Map<String, Value>, name: &str) -> Result<Option<u32>> {
    let Some(value) = field(object, name) else {
        return Ok(None);
    };
    match value.as_u64().map(u32::try_from) {
        Some(Ok(n)) if n >= 1 => Ok(Some(n)),
        _ => Err(RequestError::new(
            name,
            format!(
                "`{name}` must be a whole number of tokens from 1 to {}, got {value}",
                u32::MAX
            ),
        )),
    }
}

fn stop(object: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let bad = |got: &Value| {
        RequestError::new(
            "stop",
            format!(
                "`stop` must be a string or an array of up to {MAX_STOP_STRINGS} strings, got {got}"
            ),
        )
    };
    match field(object, "stop") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(v @ Value::Array(items)) => {
            if items.len() > MAX_STOP_STRINGS {
                return Err(RequestError::new(
                    "stop",
                    format!(
                        "`stop` may hold up to {MAX_STOP_STRINGS} strings, got {}",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .map(|s| s.as_str().map(str::to_owned).ok_or_else(|| bad(v)))
                .collect::<Result<Vec<_>>>()
                .map(Some)
        }
        Some(other) => Err(bad(other)),
    }
}

fn seed(object: &Map<String, Value>) -> Result<Option<u64>> {
    let Some(value) = field(object, "seed") else {
        return Ok(None);
    };
    // OpenAI's seed is any 64-bit integer; negative ones keep their bits.
    value
        .as_u64()
        .or_else(|| value.as_i64().map(|s| s as u64))
        .map(Some)
        .ok_or_else(|| {
            RequestError::new(
                "seed",
                format!("`seed` must be a whole number (64-bit), got {value}"),
            )
        })
}

fn response_format(object: &Map<String, Value>) -> Result<Option<OutputFormat>> {
    let Some(format) = field(object, "response_format") else {
        return Ok(None);
    };
    let kind = format.get("type").and_then(Value::as_str);
    match kind {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputFormat::JsonObject)),
        Some("json_schema") => {
            let Some(spec) = format.get("json_schema").and_then(Value::as_object) else {
                return Err(RequestError::new(
                    "response_format.json_schema",
                    "`response_format.json_schema` is missing: send {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"…\", \"schema\": {…}}}",
                ));
            };
            let schema = match spec.get("schema") {
                Some(s @ (Value::Object(_) | Value::Bool(_))) => s.clone(),
                Some(other) => {
                    return Err(RequestError::new(
                        "response_format.json_schema.schema",
                        format!("`response_format.json_schema.schema` must be a JSON Schema object, got {other}"),
                    ))
                }
                None => {
                    return Err(RequestError::new(
                        "response_format.json_schema.schema",
                        "`response_format.json_schema.schema` is missing: give the JSON Schema the answer must match",
                    ))
                }
            };
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Ok(Some(OutputFormat::JsonSchema { name, schema }))
        }
        _ => Err(RequestError::new(
            "response_format",
            format!(
                "`response_format` must be {{\"type\": \"text\"}}, {{\"type\": \"json_object\"}} or {{\"type\": \"json_schema\", \"json_schema\": {{…}}}}, got {format}"
            ),
        )),
    }
}

/// Refuses parameters Baton cannot honour, so a client is not misled by an answer that
/// silently ignored them.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<()> {
    if let Some(n) = field(body, "n") {
        match n.as_u64() {
            Some(1) => {}
            Some(k) if k > 1 => {
                return Err(RequestError::new(
                    "n",
                    format!("`n` = {k} is not supported: Baton returns one choice per request; send {k} requests (with different seeds) instead"),
                ))
            }
            _ => {
                return Err(RequestError::new(
                    "n",
                    format!("`n` must be 1 (one choice per request), got {n}"),
                ))
            }
        }
    }
    if field(body, "logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(RequestError::new(
            "logprobs",
            "`logprobs` is not supported: Baton's API does not return log probabilities; leave it out or set it to false",
        ));
    }
    if field(body, "top_logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(RequestError::new(
            "top_logprobs",
            "`top_logprobs` is not supported: Baton's API does not return log probabilities; leave it out",
        ));
    }
    for name in ["tools", "functions"] {
        if field(body, name).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(RequestError::new(
                name,
                format!("`{name}` is not supported: Baton's API has no tool or function calling; leave it out, or describe the tools in the prompt"),
            ));
        }
    }
    for name in ["tool_choice", "function_call"] {
        if field(body, name).is_some_and(|v| v.as_str() != Some("none")) {
            return Err(RequestError::new(
                name,
                format!("`{name}` is not supported: Baton's API has no tool or function calling; leave it out or send \"none\""),
            ));
        }
    }
    if field(body, "logit_bias").is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty())) {
        return Err(RequestError::new(
            "logit_bias",
            "`logit_bias` is not supported: Baton's API cannot bias token ids; leave it out (`response_format` constrains the output's shape)",
        ));
    }
    if field(body, "audio").is_some() {
        return Err(RequestError::new(
            "audio",
            "`audio` output is not supported: Baton's chat API answers in text; use `baton speak` for speech",
        ));
    }
    if let Some(modalities) = field(body, "modalities") {
        let text_only = modalities
            .as_array()
            .is_some_and(|a| a.iter().all(|m| m.as_str() == Some("text")));
        if !text_only {
            return Err(RequestError::new(
                "modalities",
                format!("`modalities` {modalities} is not supported: Baton's chat API answers in text only; send [\"text\"] or leave it out"),
            ));
        }
    }
    Ok(())
}

fn messages(body: &Map<String, Value>) -> Result<Vec<ChatMessage>> {
    let items = match field(body, "messages") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(RequestError::new(
                "messages",
                format!("`messages` must be an array of {{\"role\", \"content\"}} objects, got {other}"),
            ))
        }
        None => {
            return Err(RequestError::new(
                "messages",
                "the body is not a chat completion request (`messages` is missing); send JSON like {\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
            ))
        }
    };
    if items.is_empty() {
        return Err(RequestError::new(
            "messages",
            "`messages` is empty: send at least one message",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| message(i, item))
        .collect()
}

fn message(i: usize, item: &Value) -> Result<ChatMessage> {
    let at = format!("messages[{i}]");
    let Some(object) = item.as_object() else {
        return Err(RequestError::new(
            &at,
            format!("`{at}` must be an object like {{\"role\": \"user\", \"content\": \"hi\"}}, got {item}"),
        ));
    };
    let role = match object.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(r @ ("tool" | "function")) => {
            return Err(RequestError::new(
                &format!("{at}.role"),
                format!("`{at}.role` is `{r}`: tool and function messages are not supported (Baton's API has no tool calling)"),
            ))
        }
        other => {
            return Err(RequestError::new(
                &format!("{at}.role"),
                format!(
                    "`{at}.role` must be system, developer, user or assistant, got {}",
                    other.map_or_else(|| "nothing".to_owned(), |r| format!("`{r}`"))
                ),
            ))
        }
    };
    let content = match object.get("content") {
        Some(Value::String(s)) => s.clone(),
        // An assistant turn without text (OpenAI allows it alongside tool calls).
        None | Some(Value::Null) if role == Role::Assistant => String::new(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let where_ = format!("{at}.content[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => match part.get("text").and_then(Value::as_str) {
                        Some(t) => text.push_str(t),
                        None => {
                            return Err(RequestError::new(
                                &where_,
                                format!("`{where_}` is a text part without a `text` string"),
                            ))
                        }
                    },
                    Some(kind @ ("image_url" | "input_image" | "image")) => {
                        return Err(RequestError::new(
                            &where_,
                            format!("`{where_}` is an `{kind}` part: images are not supported, Baton's chat models read text only; send text parts (OCR an image with `baton ocr`)"),
                        ))
                    }
                    other => {
                        return Err(RequestError::new(
                            &where_,
                            format!(
                                "`{where_}` has type {}: only text parts ({{\"type\": \"text\", \"text\": \"…\"}}) are supported",
                                other.map_or_else(|| "nothing".to_owned(), |k| format!("`{k}`"))
                            ),
                        ))
                    }
                }
            }
            text
        }
        other => {
            return Err(RequestError::new(
                &format!("{at}.content"),
                format!(
                    "`{at}.content` must be a string or an array of text parts, got {}",
                    other.map_or_else(|| "nothing".to_owned(), Value::to_string)
                ),
            ))
        }
    };
    Ok(ChatMessage::new(role, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(extra: Value) -> Value {
        let mut body = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    fn ok(extra: Value) -> CompletionRequest {
        parse(with(extra).to_string().as_bytes()).unwrap()
    }

    fn refused(extra: Value) -> RequestError {
        parse(with(extra).to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn a_plain_request_keeps_the_configured_sampling() {
        let r = ok(json!({"user": "someone", "metadata": {"a": 1}, "store": false}));
        assert_eq!(r.model.as_deref(), Some("tiny"));
        assert_eq!(r.messages, vec![ChatMessage::user("hi")]);
        assert!(!r.stream && !r.include_usage);
        assert_eq!(r.sampling, SamplingOverrides::default());
    }

    #[test]
    fn sampling_parameters_are_read() {
        let r = ok(json!({
            "temperature": 0.5, "top_p": 1, "max_tokens": 9, "stop": "END", "seed": -1,
            "presence_penalty": -2, "frequency_penalty": 1.5, "stream": true,
            "stream_options": {"include_usage": true}, "n": 1, "logprobs": false,
            "tools": [], "tool_choice": "none", "logit_bias": {}, "modalities": ["text"],
            "response_format": {"type": "json_object"}
        }));
        let s = r.sampling;
        assert_eq!(
            (s.temperature, s.top_p, s.max_tokens),
            (Some(0.5), Some(1.0), Some(9))
        );
        assert_eq!(s.stop, Some(vec!["END".to_owned()]));
        assert_eq!(s.seed, Some(u64::MAX));
        assert_eq!(
            (s.presence_penalty, s.frequency_penalty),
            (Some(-2.0), Some(1.5))
        );
        assert_eq!(s.format, Some(OutputFormat::JsonObject));
        assert!(r.stream && r.include_usage);
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let r = ok(json!({"max_tokens": 9, "max_completion_tokens": 3}));
        assert_eq!(r.sampling.max_tokens, Some(3));
        assert_eq!(ok(json!({"max_tokens": null})).sampling.max_tokens, None);
    }

    #[test]
    fn response_formats_map_to_output_formats() {
        assert_eq!(
            ok(json!({"response_format": {"type": "text"}}))
                .sampling
                .format,
            None
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let r = ok(json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": true}}}));
        assert_eq!(
            r.sampling.format,
            Some(OutputFormat::JsonSchema {
                name: "thing".into(),
                schema
            })
        );
        let e = refused(
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
        );
        assert_eq!(
            e.param.as_deref(),
            Some("response_format.json_schema.schema")
        );
        let e = refused(json!({"response_format": {"type": "yaml"}}));
        assert_eq!(e.param.as_deref(), Some("response_format"));
    }

    #[test]
    fn out_of_range_values_name_the_parameter_and_the_range() {
        for (extra, param, range) in [
            (
                json!({"temperature": 2.5}),
                "temperature",
                "between 0 and 2",
            ),
            (
                json!({"temperature": -0.1}),
                "temperature",
                "between 0 and 2",
            ),
            (
                json!({"temperature": "hot"}),
                "temperature",
                "between 0 and 2",
            ),
            (json!({"top_p": 0}), "top_p", "greater than 0 and at most 1"),
            (
                json!({"top_p": 1.01}),
                "top_p",
                "greater than 0 and at most 1",
            ),
            (
                json!({"presence_penalty": 3}),
                "presence_penalty",
                "between -2 and 2",
            ),
            (
                json!({"frequency_penalty": -2.5}),
                "frequency_penalty",
                "between -2 and 2",
            ),
            (json!({"max_tokens": 0}), "max_tokens", "from 1 to"),
            (json!({"max_tokens": -5}), "max_tokens", "from 1 to"),
            (
                json!({"max_completion_tokens": 1.5}),
                "max_completion_tokens",
                "from 1 to",
            ),
            (json!({"max_tokens": 1u64 << 40}), "max_tokens", "from 1 to"),
            (
                json!({"stop": ["a", "b", "c", "d", "e"]}),
                "stop",
                "up to 4",
            ),
            (json!({"stop": [1]}), "stop", "up to 4 strings"),
            (json!({"seed": 1.5}), "seed", "whole number"),
        ] {
            let e = refused(extra.clone());
            assert_eq!(e.param.as_deref(), Some(param), "{extra}");
            assert!(
                e.message.contains(param) && e.message.contains(range),
                "{extra}: {e}"
            );
        }
    }

    #[test]
    fn unsupported_parameters_are_refused_with_a_reason() {
        for (extra, param, says) in [
            (json!({"n": 2}), "n", "one choice per request"),
            (json!({"n": 0}), "n", "must be 1"),
            (json!({"logprobs": true}), "logprobs", "log probabilities"),
            (
                json!({"top_logprobs": 3}),
                "top_logprobs",
                "log probabilities",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
                "tools",
                "tool",
            ),
            (
                json!({"functions": [{"name": "f"}]}),
                "functions",
                "function calling",
            ),
            (json!({"tool_choice": "auto"}), "tool_choice", "\"none\""),
            (json!({"logit_bias": {"42": 10}}), "logit_bias", "token ids"),
            (
                json!({"audio": {"voice": "alloy", "format": "wav"}}),
                "audio",
                "text",
            ),
            (
                json!({"modalities": ["text", "audio"]}),
                "modalities",
                "text only",
            ),
        ] {
            let e = refused(extra.clone());
            assert_eq!(e.param.as_deref(), Some(param), "{extra}");
            assert!(e.message.contains(says), "{extra}: {e}");
        }
    }

    #[test]
    fn messages_accept_text_parts_and_refuse_images() {
        let body = json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
            {"role": "assistant", "content": null},
        ]});
        let r = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.model, None);
        assert_eq!(
            r.messages,
            vec![
                ChatMessage::system("be brief"),
                ChatMessage::user("hello"),
                ChatMessage::assistant("")
            ]
        );
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[1]"));
        assert!(e.message.contains("images are not supported"), "{e}");
        for (messages, param) in [
            (json!([]), "messages"),
            (json!("hi"), "messages"),
            (
                json!([{"role": "tool", "content": "42"}]),
                "messages[0].role",
            ),
            (
                json!([{"role": "robot", "content": "x"}]),
                "messages[0].role",
            ),
            (json!([{"role": "user"}]), "messages[0].content"),
            (
                json!([{"role": "user", "content": [{"type": "text"}]}]),
                "messages[0].content[0]",
            ),
        ] {
            let body = json!({ "messages": messages });
            let e = parse(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{messages}: {e}");
        }
    }

    #[test]
    fn bodies_that_are_not_requests_say_what_to_send() {
        for body in ["{not json", "[1]", "{}"] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert!(
                e.message.contains("not a chat completion request"),
                "{body}: {e}"
            );
        }
    }
}
