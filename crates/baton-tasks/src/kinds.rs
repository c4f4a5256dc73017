//! Task kinds and their typed inputs.
//!
//! A task is stored as its kind's name and an input object whose strings may be templates
//! (see [`crate::render`]). Once rendered, the input is read into the kind's struct here;
//! unknown fields and wrong types are refused with the field's name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TaskError;

/// Every kind, as written in templates and `baton tasks add`.
pub const KINDS: &[&str] = &[
    "chat",
    "transcribe",
    "speak",
    "ocr",
    "batch",
    "approval",
    "collect",
    "write",
    "noop",
];

/// Ask a chat model (any mode; a named model or `auto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatInput {
    /// The question or instruction.
    pub prompt: String,
    /// A system prompt in place of the configured one.
    #[serde(default)]
    pub system: Option<String>,
    /// A model name, or `auto` (the default) for the router's choice.
    #[serde(default)]
    pub model: Option<String>,
    /// `single` (default), `fanout` or `refine`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The most tokens to write.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// A JSON Schema the answer must follow.
    #[serde(default)]
    pub json_schema: Option<Value>,
    /// Compare these models instead of asking one: each answers, a judge rates each
    /// answer 0-10, and the best-rated answer is the output.
    #[serde(default)]
    pub compare: Option<Vec<String>>,
    /// The judge of a comparison (a model name, or `auto`).
    #[serde(default)]
    pub judge: Option<String>,
}

/// Transcribe an audio file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscribeInput {
    /// WAV, MP3, FLAC or OGG.
    pub file: String,
    /// A language code, or none for the configured one.
    #[serde(default)]
    pub language: Option<String>,
    /// A speech model in place of the configured one.
    #[serde(default)]
    pub model: Option<String>,
}

/// Speak text into a WAV file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakInput {
    /// The text (or `text_file`).
    #[serde(default)]
    pub text: Option<String>,
    /// A text file to read instead of `text`.
    #[serde(default)]
    pub text_file: Option<String>,
    /// The WAV file to write.
    pub out: String,
}

/// Read the text (and optionally the UI elements) of an image or a screen region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcrInput {
    /// An image file (PNG, JPEG, …).
    #[serde(default)]
    pub image: Option<String>,
    /// A screen region `X,Y,W,H` in physical pixels, captured when the task runs.
    #[serde(default)]
    pub region: Option<String>,
    /// Also detect buttons, fields and other UI elements.
    #[serde(default)]
    pub elements: bool,
}

/// One step run over every row of a CSV/JSONL file or every file matching a glob, with a
/// concurrency limit, the results collected into one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// A `.csv` or `.jsonl` file (one item per row), or a glob of files (`dir/*.wav`).
    pub over: String,
    /// The step run per item; its strings may use `item` (a row's columns by name, or
    /// `item.path` / `item.name` for a file) and `index`.
    pub step: StepSpec,
    /// How many items run at once (default 2).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// The results file: `.csv`, `.jsonl` or `.md`.
    pub out: String,
    /// The most items to take (all when absent).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A step inside a batch: a kind and its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Its kind (not `batch` or `approval`).
    pub kind: String,
    /// Its input.
    pub input: Value,
}

/// Wait for a person to approve, edit or reject what the previous step produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// What the person is asked.
    #[serde(default)]
    pub message: Option<String>,
}

/// Gather what Baton saw in a period (conversations, OCR captures) as text for a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectInput {
    /// How far back, in hours (default 24).
    #[serde(default)]
    pub hours: Option<u32>,
    /// The most characters to collect (default 12,000), newest kept.
    #[serde(default)]
    pub max_chars: Option<usize>,
}

/// Write text to a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteInput {
    /// The file (its folder is created).
    pub path: String,
    /// The text.
    pub content: String,
}

/// Do nothing for a while (queue benchmarks, pacing a workflow).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopInput {
    /// How long, in milliseconds.
    #[serde(default)]
    pub sleep_ms: u64,
}

/// A task's input read into its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskSpec {
    /// See [`ChatInput`].
    Chat(ChatInput),
    /// See [`TranscribeInput`].
    Transcribe(TranscribeInput),
    /// See [`SpeakInput`].
    Speak(SpeakInput),
    /// See [`OcrInput`].
    Ocr(OcrInput),
    /// See [`BatchInput`].
    Batch(Box<BatchInput>),
    /// See [`ApprovalInput`].
    Approval(ApprovalInput),
    /// See [`CollectInput`].
    Collect(CollectInput),
    /// See [`WriteInput`].
    Write(WriteInput),
    /// See [`NoopInput`].
    Noop(NoopInput),
}

/// A typed-input error and the path of the field it is about (`.` for the whole input).
struct FieldError {
    path: String,
    error: TaskError,
}

fn read<T: serde::de::DeserializeOwned>(kind: &str, input: &Value) -> Result<T, FieldError> {
    let input = if input.is_null() {
        Value::Object(Default::default())
    } else {
        input.clone()
    };
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        FieldError {
            error: TaskError::Input(format!("{kind} input{field}: {}", e.inner())),
            path,
        }
    })
}

/// The value at a serde path (`step.input.model`, `list[2]`).
fn value_at<'a>(input: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = input;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !name.is_empty() {
            at = at.get(name)?;
        }
        if let Some(i) = index {
            at = at.get(i)?;
        }
    }
    Some(at)
}

impl TaskSpec {
    /// Reads `input` as the input of `kind`.
    pub fn parse(kind: &str, input: &Value) -> Result<TaskSpec, TaskError> {
        Self::parse_at(kind, input).map_err(|e| e.error)
    }

    /// Checks an input as written in a template, before rendering: unknown fields and
    /// wrong literal types are refused; a field holding a template is typed when rendered.
    pub fn check_written(kind: &str, input: &Value) -> Result<(), TaskError> {
        match Self::parse_at(kind, input) {
            Ok(_) => Ok(()),
            Err(e) => match value_at(input, &e.path) {
                Some(Value::String(s)) if s.contains("{{") || s.contains("{%") => Ok(()),
                _ => Err(e.error),
            },
        }
    }

    fn parse_at(kind: &str, input: &Value) -> Result<TaskSpec, FieldError> {
        let spec = match kind {
            "chat" => TaskSpec::Chat(read(kind, input)?),
            "transcribe" => TaskSpec::Transcribe(read(kind, input)?),
            "speak" => TaskSpec::Speak(read(kind, input)?),
            "ocr" => TaskSpec::Ocr(read(kind, input)?),
            "batch" => TaskSpec::Batch(Box::new(read(kind, input)?)),
            "approval" => TaskSpec::Approval(read(kind, input)?),
            "collect" => TaskSpec::Collect(read(kind, input)?),
            "write" => TaskSpec::Write(read(kind, input)?),
            "noop" => TaskSpec::Noop(read(kind, input)?),
            other => {
                return Err(FieldError {
                    path: ".".into(),
                    error: TaskError::Input(format!(
                        "unknown task kind `{other}`; the kinds are {}",
                        KINDS.join(", ")
                    )),
                })
            }
        };
        spec.check().map_err(|error| FieldError {
            path: ".".into(),
            error,
        })?;
        Ok(spec)
    }

    /// Checks what serde cannot: one of two fields, allowed values.
    fn check(&self) -> Result<(), TaskError> {
        match self {
            TaskSpec::Chat(c) => {
                if c.compare.as_ref().is_some_and(|m| m.len() < 2) {
                    return Err(TaskError::Input(
                        "a comparison needs two or more models in `compare`".into(),
                    ));
                }
                if let Some(mode) = &c.mode {
                    if !matches!(mode.as_str(), "single" | "fanout" | "refine") {
                        return Err(TaskError::Input(format!(
                            "chat mode `{mode}` is not single, fanout or refine"
                        )));
                    }
                }
            }
            TaskSpec::Speak(s) if s.text.is_some() == s.text_file.is_some() => {
                return Err(TaskError::Input(
                    "speak needs `text` or `text_file` (one of them)".into(),
                ));
            }
            TaskSpec::Ocr(o) if o.image.is_some() == o.region.is_some() => {
                return Err(TaskError::Input(
                    "ocr needs `image` or `region` (one of them)".into(),
                ));
            }
            TaskSpec::Batch(b) => {
                if matches!(b.step.kind.as_str(), "batch" | "approval") {
                    return Err(TaskError::Input(format!(
                        "a batch cannot run `{}` steps per item",
                        b.step.kind
                    )));
                }
                if !KINDS.contains(&b.step.kind.as_str()) {
                    return Err(TaskError::Input(format!(
                        "unknown task kind `{}` in the batch step; the kinds are {}",
                        b.step.kind,
                        KINDS.join(", ")
                    )));
                }
                if b.concurrency == Some(0) {
                    return Err(TaskError::Input(
                        "batch concurrency must be at least 1".into(),
                    ));
                }
                if !b.out.contains("{{") {
                    crate::batch_format(&b.out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a task of `kind` with this (rendered or literal) input runs on: `chat:MODEL`
/// (`chat:auto` when routed), `stt`, `tts`, `ocr`, `person` or `none`. Workers take only
/// tasks whose resource they have.
pub fn resource_of(kind: &str, input: &Value) -> String {
    match kind {
        "chat" => {
            let model = input
                .get("model")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty() && !m.contains("{{"))
                .unwrap_or("auto");
            format!("chat:{model}")
        }
        "transcribe" => "stt".into(),
        "speak" => "tts".into(),
        "ocr" => "ocr".into(),
        "approval" => "person".into(),
        "batch" => match input.get("step") {
            Some(step) => resource_of(
                step.get("kind").and_then(Value::as_str).unwrap_or("noop"),
                step.get("input").unwrap_or(&Value::Null),
            ),
            None => "none".into(),
        },
        _ => "none".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_typed_and_errors_name_the_field() {
        let spec = TaskSpec::parse("chat", &json!({"prompt": "hi", "model": "auto"})).unwrap();
        assert!(matches!(spec, TaskSpec::Chat(ChatInput { ref prompt, .. }) if prompt == "hi"));
        let err = TaskSpec::parse("chat", &json!({"prompt": "hi", "modle": "x"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `modle`"), "{err}");
        let err = TaskSpec::parse("noop", &json!({"sleep_ms": "ten"})).unwrap_err();
        assert!(err.to_string().contains("`sleep_ms`"), "{err}");
        let err = TaskSpec::parse("speak", &json!({"out": "a.wav"})).unwrap_err();
        assert!(err.to_string().contains("one of them"), "{err}");
        let err = TaskSpec::parse("dance", &json!({})).unwrap_err();
        assert!(
            err.to_string().contains("unknown task kind `dance`"),
            "{err}"
        );
        assert!(TaskSpec::parse("noop", &Value::Null).is_ok());
    }

    #[test]
    fn resources_follow_kind_and_model() {
        assert_eq!(resource_of("chat", &json!({"model": "qwen"})), "chat:qwen");
        assert_eq!(
            resource_of("chat", &json!({"model": "{{ params.m }}"})),
            "chat:auto"
        );
        assert_eq!(resource_of("transcribe", &json!({})), "stt");
        assert_eq!(
            resource_of(
                "batch",
                &json!({"step": {"kind": "chat", "input": {"model": "m"}}})
            ),
            "chat:m"
        );
        assert_eq!(resource_of("write", &json!({})), "none");
    }
}
