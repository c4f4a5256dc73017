//! `POST /v1/embeddings`: OpenAI-compatible sentence embeddings from Baton's local model
//! (all-MiniLM-L6-v2, 384 dimensions, unit length). `input` is a string or a list of up
//! to [`MAX_INPUTS`] strings; `encoding_format` is `float` (default) or `base64`
//! (little-endian float32). Texts longer than the model's 256 tokens are cut, and `usage`
//! counts the tokens it read.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use baton_runtime::memory::EMBEDDING_MODEL;
use serde_json::{json, Value};

use crate::audit::AuditNote;
use crate::{error, error_with_param, runtime_error, AppState};

/// Most texts in one request.
pub const MAX_INPUTS: usize = 2048;

fn invalid(param: &str, message: impl Into<String>) -> Response {
    error_with_param(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some(param),
        message,
    )
}

/// The texts of `input`, or why it is not usable.
fn inputs(body: &Value) -> Result<Vec<String>, String> {
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err("`input` is an empty list; give at least one text".into())
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err("token ids are not accepted; send the texts as strings".into())
                    }
                    _ => return Err("every item of `input` must be a string".into()),
                }
            }
            texts
        }
        Some(_) => return Err("`input` must be a string or a list of strings".into()),
        None => return Err("`input` is missing".into()),
    };
    if texts.len() > MAX_INPUTS {
        return Err(format!(
            "{} texts; at most {MAX_INPUTS} per request",
            texts.len()
        ));
    }
    if texts.iter().any(|t| t.trim().is_empty()) {
        return Err("`input` holds an empty text".into());
    }
    Ok(texts)
}

/// `POST /v1/embeddings`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(note): Extension<Arc<AuditNote>>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return invalid("body", format!("the body is not valid JSON: {e}")),
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(EMBEDDING_MODEL);
    note.model(model);
    if model != EMBEDDING_MODEL {
        return error_with_param(
            StatusCode::NOT_FOUND,
            "model_not_found",
            Some("model"),
            format!("no embedding model `{model}`; this server has `{EMBEDDING_MODEL}`"),
        );
    }
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return invalid(
                "encoding_format",
                format!("`{other}` is not an encoding; use float or base64"),
            )
        }
    };
    if body
        .get("dimensions")
        .is_some_and(|d| d.as_u64() != Some(384))
    {
        return invalid(
            "dimensions",
            format!("{EMBEDDING_MODEL} has 384 dimensions and cannot give others"),
        );
    }
    let texts = match inputs(&body) {
        Ok(t) => t,
        Err(message) => return invalid("input", message),
    };
    if state.audit_prompts {
        note.prompt(texts.join("\n"));
    }
    if state
        .runtime
        .store()
        .model(EMBEDDING_MODEL)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        return error(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("the embedding model is not installed; `baton models fetch {EMBEDDING_MODEL}` installs it"),
        );
    }
    let (vectors, tokens) = match state.runtime.embed_counted(texts).await {
        Ok(v) => v,
        Err(e) => return runtime_error(&e),
    };
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(encode_base64(&bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    (
        StatusCode::OK,
        Json(json!({
            "object": "list",
            "data": data,
            "model": EMBEDDING_MODEL,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        })),
    )
        .into_response()
}

/// Standard base64 with padding.
fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked() {
        assert_eq!(inputs(&json!({"input": "hi"})).unwrap(), vec!["hi"]);
        assert_eq!(inputs(&json!({"input": ["a", "b"]})).unwrap().len(), 2);
        for bad in [
            json!({}),
            json!({"input": []}),
            json!({"input": [1, 2]}),
            json!({"input": [""]}),
            json!({"input": 5}),
            json!({"input": [null]}),
        ] {
            assert!(inputs(&bad).is_err(), "{bad}");
        }
    }
}
