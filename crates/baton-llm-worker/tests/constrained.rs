//! Constrained output (JSON schemas, any JSON object, GBNF grammars) and the presence and
//! frequency penalties, through the worker's protocol with the tiny generated model.

mod common;
#[allow(dead_code)]
#[path = "../src/schema_gen.rs"]
mod schema_gen;

use baton_core::{ChatMessage, FinishReason, OutputFormat, SamplingParams};
use baton_llm::protocol::{ErrorKind, WorkerEvent, WorkerRequest, WorkerUsage};
use common::{models, RawWorker};
use schema_gen::{random_schema, validate, Rng};
use serde_json::{json, Value};

fn chat(id: &str, user: &str, params: SamplingParams) -> WorkerRequest {
    WorkerRequest::Chat {
        id: id.into(),
        messages: vec![ChatMessage::user(user)],
        params,
        session: None,
    }
}

fn params(format: Option<OutputFormat>, temperature: f32, max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature,
        max_tokens,
        seed: Some(7),
        format,
        ..SamplingParams::default()
    }
}

fn schema_format(schema: Value) -> Option<OutputFormat> {
    Some(OutputFormat::JsonSchema {
        name: "test".into(),
        schema,
    })
}

fn done(events: &[WorkerEvent]) -> (String, WorkerUsage, FinishReason) {
    match events.last() {
        Some(WorkerEvent::Done {
            text,
            usage,
            finish_reason,
            ..
        }) => (text.clone(), *usage, *finish_reason),
        other => panic!("expected done, got {other:?}"),
    }
}

fn bad_request(events: &[WorkerEvent]) -> String {
    match events.last() {
        Some(WorkerEvent::Error { kind, message, .. }) => {
            assert_eq!(*kind, ErrorKind::BadRequest, "{message}");
            message.clone()
        }
        other => panic!("expected a bad-request error, got {other:?}"),
    }
}

fn worker(n_parallel: u32) -> RawWorker {
    let mut w = RawWorker::start(&[]);
    match w.load_parallel(&models().chat, 2048, None, n_parallel) {
        WorkerEvent::Loaded { metadata, .. } => assert_eq!(metadata.n_parallel, n_parallel),
        other => panic!("load failed: {other:?}"),
    }
    w
}

/// 64 random bounded schemas (seeded, so the run is reproducible), half greedy and half
/// sampled, four at a time: every output parses and validates against its schema, and
/// ends by itself (the grammar allows the end-of-generation token only when the JSON is
/// complete).
#[test]
fn random_schemas_give_json_that_validates() {
    let mut w = worker(4);
    let cases: Vec<(String, Value)> = (0..64u64)
        .map(|i| (format!("s{i}"), random_schema(&mut Rng::new(1000 + i))))
        .collect();
    for (i, (id, schema)) in cases.iter().enumerate() {
        let temperature = if i % 2 == 0 { 0.0 } else { 0.9 };
        let mut p = params(schema_format(schema.clone()), temperature, 1024);
        p.seed = Some(i as u64);
        w.send(&chat(id, "fill in the form", p));
    }
    let ids: Vec<String> = cases.iter().map(|(id, _)| id.clone()).collect();
    let events = w.collect(&ids);
    for (id, schema) in &cases {
        let (text, usage, finish) = done(&events[id]);
        assert_eq!(
            finish,
            FinishReason::Stop,
            "{id} did not end by itself ({usage:?}): {text}\nschema: {schema}"
        );
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{id}: not JSON ({e}): {text}\nschema: {schema}"));
        if let Err(why) = validate(schema, &value) {
            panic!("{id}: {why}\noutput: {text}\nschema: {schema}");
        }
        assert!(usage.completion_tokens > 0);
    }
}

#[test]
fn gbnf_grammars_constrain_the_text() {
    let mut w = worker(2);
    let yes_no = Some(OutputFormat::Grammar {
        grammar: r#"root ::= "yes" | "no""#.into(),
    });
    for (i, temperature) in [0.0, 0.5, 1.0, 1.5].into_iter().enumerate() {
        let id = format!("yn{i}");
        let mut p = params(yes_no.clone(), temperature, 50);
        p.seed = Some(i as u64);
        w.send(&chat(&id, "yes or no?", p));
        let (text, _, finish) = done(&w.until_end(&id));
        assert!(text == "yes" || text == "no", "{text:?}");
        assert_eq!(finish, FinishReason::Stop);
    }
    let code = Some(OutputFormat::Grammar {
        grammar: "# a code\nroot ::= [0-9]{3} \"-\" letter letter\nletter ::= [a-z]\n".into(),
    });
    w.send(&chat("code", "a code please", params(code, 0.8, 50)));
    let (text, _, finish) = done(&w.until_end("code"));
    let bytes = text.as_bytes();
    assert_eq!(finish, FinishReason::Stop);
    assert!(
        bytes.len() == 6
            && bytes[..3].iter().all(u8::is_ascii_digit)
            && bytes[3] == b'-'
            && bytes[4..].iter().all(u8::is_ascii_lowercase),
        "{text:?}"
    );
}

#[test]
fn invalid_grammars_and_schemas_are_bad_requests_and_the_worker_keeps_serving() {
    let mut w = worker(2);
    let cases: Vec<(Option<OutputFormat>, &[&str])> = vec![
        (
            Some(OutputFormat::Grammar {
                grammar: "root ::= \"a\" missing".into(),
            }),
            &["the grammar is not valid GBNF", "rule `missing`", "line 1"],
        ),
        (
            Some(OutputFormat::Grammar {
                grammar: "start ::= \"a\"".into(),
            }),
            &["no `root` rule"],
        ),
        (
            // Syntax fine, but llama.cpp refuses left recursion.
            Some(OutputFormat::Grammar {
                grammar: "root ::= root \"a\" | \"b\"".into(),
            }),
            &["llama.cpp refused the grammar", "left-recursive"],
        ),
        (
            schema_format(json!({"type": "object", "properties": {"a": {"type": "wat"}}})),
            &[
                "the JSON schema could not be turned into a grammar",
                "at #/properties/a: unrecognized type `wat`",
                "supported: type (object",
            ],
        ),
        (
            schema_format(json!({"$ref": "https://example.com/schema.json"})),
            &["only references into the same document"],
        ),
        (
            schema_format(json!({"type": "string", "pattern": "^(ab$"})),
            &["llama.cpp refused it", "pattern"],
        ),
    ];
    for (i, (format, expected)) in cases.into_iter().enumerate() {
        let id = format!("bad{i}");
        w.send(&chat(&id, "hi", params(format, 0.0, 8)));
        let message = bad_request(&w.until_end(&id));
        for part in expected {
            assert!(message.contains(part), "{id}: {message}");
        }
    }
    let mut penalty = params(None, 0.0, 8);
    penalty.presence_penalty = 5.0;
    w.send(&chat("pen", "hi", penalty));
    let message = bad_request(&w.until_end("pen"));
    assert!(
        message.contains("presence_penalty must be between -2 and 2"),
        "{message}"
    );

    // The worker still serves, constrained and free requests alike.
    assert!(w.alive());
    w.send(&chat("free", "hi", params(None, 0.0, 5)));
    let (_, usage, finish) = done(&w.until_end("free"));
    assert_eq!((usage.completion_tokens, finish), (5, FinishReason::Length));
    let format = schema_format(json!({
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": false
    }));
    w.send(&chat("good", "hi", params(format, 0.0, 64)));
    let (text, _, finish) = done(&w.until_end("good"));
    assert_eq!(finish, FinishReason::Stop);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(value["ok"].is_boolean(), "{text}");
}

#[test]
fn cut_outputs_end_with_length_and_unenforced_keywords_are_noticed() {
    let mut w = worker(1);
    let format = schema_format(json!({
        "type": "object",
        "properties": {"story": {"type": "string", "maxLength": 200}},
        "required": ["story"],
        "additionalProperties": false
    }));
    w.send(&chat("cut", "a story", params(format, 0.0, 6)));
    let (text, usage, finish) = done(&w.until_end("cut"));
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(usage.completion_tokens, 6);
    assert!(text.starts_with('{'), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    // Keywords llama.cpp cannot enforce are named in a notice; the rest still holds.
    let format = schema_format(json!({
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "maxItems": 3,
        "uniqueItems": true
    }));
    w.send(&chat("unique", "numbers", params(format, 0.0, 64)));
    let events = w.until_end("unique");
    let notice = events
        .iter()
        .find_map(|e| match e {
            WorkerEvent::Notice { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("a notice about uniqueItems");
    assert!(notice.contains("`uniqueItems` at #"), "{notice}");
    let (text, _, finish) = done(&events);
    assert_eq!(finish, FinishReason::Stop);
    let value: Value = serde_json::from_str(&text).unwrap();
    let items = value.as_array().expect("an array");
    assert!(items.len() <= 3, "{text}");
    assert!(items
        .iter()
        .all(|n| n.as_i64().is_some_and(|n| (0..=9).contains(&n))));
}

#[test]
fn json_object_format_starts_an_object() {
    let mut w = worker(1);
    w.send(&chat(
        "obj",
        "any object",
        params(Some(OutputFormat::JsonObject), 0.0, 40),
    ));
    let (text, usage, finish) = done(&w.until_end("obj"));
    assert!(text.starts_with('{'), "{text}");
    // The random tiny model rarely closes its strings: either it finished a whole object or
    // it was cut by max_tokens.
    match finish {
        FinishReason::Stop => assert!(
            serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_object()),
            "{text}"
        ),
        FinishReason::Length => assert_eq!(usage.completion_tokens, 40),
        other => panic!("{other:?}"),
    }
}

#[test]
fn presence_and_frequency_penalties_change_greedy_output() {
    let mut w = worker(1);
    let mut texts = Vec::new();
    for (i, (presence, frequency)) in [(0.0, 0.0), (0.0, 2.0), (2.0, 0.0), (0.0, 0.0)]
        .into_iter()
        .enumerate()
    {
        let id = format!("p{i}");
        let mut p = params(None, 0.0, 64);
        p.presence_penalty = presence;
        p.frequency_penalty = frequency;
        w.send(&chat(&id, "hello world", p));
        let (text, usage, _) = done(&w.until_end(&id));
        assert_eq!(usage.completion_tokens, 64);
        texts.push(text);
    }
    // Greedy without penalties is deterministic; with them, the tiny model's repetitive
    // output changes.
    assert_eq!(texts[0], texts[3]);
    assert_ne!(texts[0], texts[1], "frequency penalty had no effect");
    assert_ne!(texts[0], texts[2], "presence penalty had no effect");
}
