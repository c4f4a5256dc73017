//! Error types shared across engines. Every message says what happened and what to do.

use thiserror::Error;

/// Errors from a chat engine.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// The requested model is not registered or its file is missing.
    #[error("model `{model}` is not available: {hint}")]
    ModelUnavailable {
        /// The model name asked for.
        model: String,
        /// What to do about it.
        hint: String,
    },
    /// The model file exists but cannot be used.
    #[error("model `{model}` cannot be loaded: {reason}")]
    ModelInvalid {
        /// The model name.
        model: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The request itself is malformed (empty conversation, bad parameters, too long).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The engine process died or the connection broke while serving the request.
    #[error("engine `{engine}` crashed while answering: {reason}. It is being restarted; send the message again")]
    Crashed {
        /// Engine name.
        engine: String,
        /// What was observed (exit status, signal, broken pipe).
        reason: String,
    },
    /// The engine did not answer in time.
    #[error("engine `{engine}` did not answer within {seconds} s")]
    Timeout {
        /// Engine name.
        engine: String,
        /// The limit that was exceeded.
        seconds: u64,
    },
    /// The engine is temporarily refusing work (rate limit, open circuit breaker).
    #[error("engine `{engine}` is unavailable: {reason}")]
    Unavailable {
        /// Engine name.
        engine: String,
        /// Why, and when to retry if known.
        reason: String,
    },
    /// The engine reported an error.
    #[error("engine `{engine}` failed: {message}")]
    Failed {
        /// Engine name.
        engine: String,
        /// The engine's message.
        message: String,
        /// Whether retrying the same request may succeed.
        retryable: bool,
    },
}

impl EngineError {
    /// Whether the orchestrator may retry the request on the same engine.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Crashed { .. }
            | EngineError::Timeout { .. }
            | EngineError::Unavailable { .. } => true,
            EngineError::Failed { retryable, .. } => *retryable,
            EngineError::ModelUnavailable { .. }
            | EngineError::ModelInvalid { .. }
            | EngineError::InvalidRequest(_) => false,
        }
    }
}

/// Errors from speech recognition and synthesis.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpeechError {
    /// The audio input cannot be used.
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    /// No audio device is available.
    #[error("no audio device: {0}")]
    NoDevice(String),
    /// The model is missing or broken.
    #[error("speech model problem: {0}")]
    Model(String),
    /// The engine failed.
    #[error("speech engine failed: {0}")]
    Failed(String),
}

/// Errors from OCR and element detection.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum VisionError {
    /// The image cannot be used (empty, too small, too large, not an image).
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// Screen capture failed.
    #[error("screen capture failed: {0}")]
    Capture(String),
    /// A language pack or model is missing.
    #[error("vision model problem: {0}")]
    Model(String),
    /// The engine failed.
    #[error("vision engine failed: {0}")]
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_message_tells_the_user_what_to_do() {
        let err = EngineError::Crashed {
            engine: "local-llm".into(),
            reason: "killed by signal 9".into(),
        };
        let text = err.to_string();
        assert!(text.contains("signal 9") && text.contains("send the message again"));
        assert!(err.is_retryable());
        assert!(!EngineError::InvalidRequest("x".into()).is_retryable());
    }
}
