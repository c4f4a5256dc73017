//! Model descriptors and task kinds for the registry and the router.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Conversational text generation.
    Chat,
    /// Plain text completion (base models).
    Completion,
    /// Text embeddings.
    Embedding,
    /// Speech to text.
    SpeechToText,
    /// Text to speech.
    TextToSpeech,
    /// Voice activity detection.
    VoiceActivity,
    /// Optical character recognition.
    Ocr,
    /// UI-element detection.
    ElementDetection,
}

impl TaskKind {
    /// All kinds, in a stable order.
    pub const ALL: [TaskKind; 8] = [
        TaskKind::Chat,
        TaskKind::Completion,
        TaskKind::Embedding,
        TaskKind::SpeechToText,
        TaskKind::TextToSpeech,
        TaskKind::VoiceActivity,
        TaskKind::Ocr,
        TaskKind::ElementDetection,
    ];

    /// The snake_case name used in storage and config.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Chat => "chat",
            TaskKind::Completion => "completion",
            TaskKind::Embedding => "embedding",
            TaskKind::SpeechToText => "speech_to_text",
            TaskKind::TextToSpeech => "text_to_speech",
            TaskKind::VoiceActivity => "voice_activity",
            TaskKind::Ocr => "ocr",
            TaskKind::ElementDetection => "element_detection",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = TaskKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown task kind `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The file format (and so the engine) of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// llama.cpp GGUF.
    Gguf,
    /// whisper.cpp ggml.
    WhisperGgml,
    /// ONNX, run through ONNX Runtime.
    Onnx,
    /// A model served by a remote OpenAI-compatible endpoint.
    Remote,
}

/// Everything the registry and router know about one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescriptor {
    /// Unique registry name (for example `smollm2-135m-instruct`).
    pub name: String,
    /// File format / engine family.
    pub format: ModelFormat,
    /// What it can do.
    pub tasks: Vec<TaskKind>,
    /// Architecture name from the file metadata (`llama`, `gemma3`, …).
    pub architecture: Option<String>,
    /// Parameter count, where known.
    pub parameters: Option<u64>,
    /// Context window in tokens.
    pub context_length: Option<u32>,
    /// Quantisation label (`Q4_1`, `F16`, …).
    pub quantization: Option<String>,
    /// Bytes of memory needed to run it, estimated.
    pub memory_bytes: Option<u64>,
    /// Cost per 1,000 prompt tokens in US dollars (0 for local models).
    pub cost_per_1k_prompt: f64,
    /// Cost per 1,000 generated tokens in US dollars.
    pub cost_per_1k_completion: f64,
    /// Whether the router may choose it.
    pub enabled: bool,
}
