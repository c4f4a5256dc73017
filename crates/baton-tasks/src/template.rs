//! Workflow templates in YAML: named and versioned (`name@version`), with typed parameters
//! (a JSON Schema, checked before anything is queued) and steps whose inputs are templates
//! over the parameters and earlier steps' outputs.
//!
//! ```yaml
//! name: meeting-notes
//! version: 1
//! description: Transcribe a recording, summarise it and list the action items.
//! params:
//!   type: object
//!   required: [audio]
//!   properties:
//!     audio: { type: string, description: The recording }
//! steps:
//!   - id: transcript
//!     kind: transcribe
//!     input: { file: "{{ params.audio }}" }
//!   - id: summary
//!     kind: chat
//!     after: [transcript]
//!     input: { prompt: "Summarise:\n{{ steps.transcript.output.text }}" }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use baton_core::tasks::check_graph;
use baton_store::{NewRun, NewTask};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kinds::{resource_of, TaskSpec, KINDS};
use crate::render::names_used;
use crate::TaskError;

/// Retries of a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The first wait between attempts, in seconds; it doubles each time.
    #[serde(default = "default_backoff")]
    pub backoff_secs: f64,
}

fn default_backoff() -> f64 {
    2.0
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts: 3,
            backoff_secs: default_backoff(),
        }
    }
}

/// One step as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDoc {
    /// Its id within the template.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// The steps it waits for.
    #[serde(default)]
    pub after: Vec<String>,
    /// Its input.
    #[serde(default)]
    pub input: Value,
    /// Priority over the template's.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Retries over the template's.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Time limit of one attempt over the template's.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// A template as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDoc {
    /// Its name: lower-case letters, digits and dashes.
    pub name: String,
    /// Its version (1, 2, …).
    pub version: u32,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The parameters' JSON Schema (an object schema).
    #[serde(default)]
    pub params: Option<Value>,
    /// Priority of its tasks (higher first).
    #[serde(default)]
    pub priority: i64,
    /// Retries of its steps.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Time limit of one attempt of a step, in seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Finish within this many seconds of starting (a missed deadline is reported).
    #[serde(default)]
    pub deadline_secs: Option<u64>,
    /// A cron expression suggested for schedules of it.
    #[serde(default)]
    pub suggested_cron: Option<String>,
    /// Its steps.
    pub steps: Vec<StepDoc>,
}

/// One parameter, for forms and `templates show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamField {
    /// Its name.
    pub name: String,
    /// JSON type: string, integer, number, boolean, array, object.
    pub kind: String,
    /// A short label.
    pub title: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Its default.
    pub default: Option<Value>,
    /// Whether it must be given.
    pub required: bool,
    /// Allowed values.
    pub choices: Vec<Value>,
}

/// A parsed, checked template.
#[derive(Debug)]
pub struct Template {
    doc: TemplateDoc,
    schema: Value,
    validator: jsonschema::Validator,
    yaml: String,
}

impl Template {
    /// Parses and checks a template: YAML errors give line, column and reason; then the
    /// name, the parameter schema, the kinds, every step input (types and template syntax),
    /// the names steps use and the graph (a cycle is named).
    pub fn parse(yaml: &str) -> Result<Template, TaskError> {
        if let Some((line, reason)) = nesting_problem(yaml) {
            return Err(TaskError::Yaml {
                line,
                column: 1,
                reason,
            });
        }
        let doc: TemplateDoc = serde_yaml_ng::from_str(yaml).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            TaskError::Yaml {
                line,
                column,
                reason: e.to_string(),
            }
        })?;
        if doc.name.is_empty()
            || !doc
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || doc.name.starts_with('-')
        {
            return Err(TaskError::Template(format!(
                "template name `{}`: use lower-case letters, digits and dashes",
                doc.name
            )));
        }
        if doc.version == 0 {
            return Err(TaskError::Template("version must be 1 or more".into()));
        }
        let schema = doc
            .params
            .clone()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(TaskError::Template(
                "`params` must be a JSON Schema with `type: object`".into(),
            ));
        }
        let validator = jsonschema::validator_for(&schema).map_err(|e| {
            TaskError::Template(format!("`params` is not a valid JSON Schema: {e}"))
        })?;
        if doc.steps.is_empty() {
            return Err(TaskError::Template(
                "a template needs at least one step".into(),
            ));
        }
        let graph: Vec<(String, Vec<String>)> = doc
            .steps
            .iter()
            .map(|s| (s.id.clone(), s.after.clone()))
            .collect();
        check_graph(&graph)?;
        let ancestors = ancestors(&doc.steps);
        let properties: HashSet<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for step in &doc.steps {
            let where_ = format!("step `{}`", step.id);
            if !KINDS.contains(&step.kind.as_str()) {
                return Err(TaskError::Template(format!(
                    "{where_}: unknown kind `{}`; the kinds are {}",
                    step.kind,
                    KINDS.join(", ")
                )));
            }
            if let Some(retry) = step.retry.or(doc.retry) {
                if retry.attempts == 0 || !(0.0..=600.0).contains(&retry.backoff_secs) {
                    return Err(TaskError::Template(format!(
                        "{where_}: retry needs 1 or more attempts and a backoff of 0 to 600 s"
                    )));
                }
            }
            // Literal fields are typed now; templated strings are typed when rendered.
            TaskSpec::check_written(&step.kind, &step.input)
                .map_err(|e| TaskError::Template(format!("{where_}: {e}")))?;
            for name in names_used(&step.input, &where_)? {
                let mut parts = name.splitn(2, '.');
                let (root, field) = (parts.next().unwrap_or(""), parts.next());
                match (root, field) {
                    ("params", Some(p)) if !properties.contains(p) => {
                        return Err(TaskError::Template(format!(
                            "{where_} uses `params.{p}`, which is not a parameter of this template"
                        )))
                    }
                    ("steps", Some(s)) if !ancestors[&step.id].contains(s) => {
                        return Err(TaskError::Template(format!(
                            "{where_} uses the output of `{s}` but does not wait for it: add `{s}` to its `after`"
                        )))
                    }
                    ("params" | "steps", _) => {}
                    ("item" | "index", _) if step.kind == "batch" => {}
                    (other, _) => {
                        return Err(TaskError::Template(format!(
                            "{where_} uses `{other}`; step inputs may use `params`, `steps` (and `item`, `index` inside a batch)"
                        )))
                    }
                }
            }
        }
        if let Some(cron) = &doc.suggested_cron {
            crate::schedule::CronSchedule::parse(cron, "UTC")?;
        }
        Ok(Template {
            doc,
            schema,
            validator,
            yaml: yaml.to_owned(),
        })
    }

    /// `name@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.doc.name, self.doc.version)
    }

    /// The document as written.
    pub fn doc(&self) -> &TemplateDoc {
        &self.doc
    }

    /// The YAML text.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }

    /// The parameters' JSON Schema.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The parameters, in the schema's order of required first.
    pub fn fields(&self) -> Vec<ParamField> {
        let required: HashSet<&str> = self
            .schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields: Vec<ParamField> = self
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, p)| ParamField {
                        name: name.clone(),
                        kind: p
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("string")
                            .to_owned(),
                        title: p.get("title").and_then(Value::as_str).map(str::to_owned),
                        description: p
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        default: p.get("default").cloned(),
                        required: required.contains(name.as_str()),
                        choices: p
                            .get("enum")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        fields.sort_by_key(|f| !f.required);
        fields
    }

    /// Reads `key=value` pairs as parameters, typed by the schema (`--param n=3` is a
    /// number when the schema says so). Unknown names are refused.
    pub fn params_from_pairs(&self, pairs: &[(String, String)]) -> Result<Value, TaskError> {
        let fields: HashMap<String, ParamField> = self
            .fields()
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        let mut map = Map::new();
        for (key, raw) in pairs {
            let Some(field) = fields.get(key) else {
                return Err(self.unknown_param(key));
            };
            let value = match field.kind.as_str() {
                "integer" => raw.trim().parse::<i64>().map(Value::from).map_err(|_| {
                    TaskError::Params(format!("parameter `{key}` is a whole number, not `{raw}`"))
                })?,
                "number" => raw
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        TaskError::Params(format!("parameter `{key}` is a number, not `{raw}`"))
                    })?,
                "boolean" => match raw.trim() {
                    "true" | "yes" | "1" | "on" => Value::Bool(true),
                    "false" | "no" | "0" | "off" => Value::Bool(false),
                    _ => {
                        return Err(TaskError::Params(format!(
                            "parameter `{key}` is true or false, not `{raw}`"
                        )))
                    }
                },
                "array" | "object" => serde_json::from_str(raw).map_err(|e| {
                    TaskError::Params(format!("parameter `{key}` is JSON ({}): {e}", field.kind))
                })?,
                _ => Value::String(raw.clone()),
            };
            map.insert(key.clone(), value);
        }
        Ok(Value::Object(map))
    }

    fn unknown_param(&self, key: &str) -> TaskError {
        let names: Vec<String> = self.fields().into_iter().map(|f| f.name).collect();
        TaskError::Params(format!(
            "`{key}` is not a parameter of {}; it takes: {}",
            self.key(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ))
    }

    /// Fills defaults in and checks `params` against the schema, listing every problem.
    pub fn check_params(&self, params: &Value) -> Result<Value, TaskError> {
        let Value::Object(given) = params else {
            return Err(TaskError::Params("parameters must be an object".into()));
        };
        let fields = self.fields();
        for key in given.keys() {
            if !fields.iter().any(|f| &f.name == key) {
                return Err(self.unknown_param(key));
            }
        }
        let mut filled = given.clone();
        for field in fields {
            if let (false, Some(default)) = (filled.contains_key(&field.name), field.default) {
                filled.insert(field.name, default);
            }
        }
        let filled = Value::Object(filled);
        let problems: Vec<String> = self
            .validator
            .iter_errors(&filled)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("`{}`: {e}", at.trim_start_matches('/'))
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(TaskError::Params(format!(
                "the parameters of {} are not valid: {}",
                self.key(),
                problems.join("; ")
            )));
        }
        Ok(filled)
    }

    /// A run of this template: parameters checked (with defaults), one task per step.
    /// Inputs are stored as written and rendered when each step runs.
    pub fn instantiate(
        &self,
        params: &Value,
        origin: &str,
        now_ms: i64,
    ) -> Result<NewRun, TaskError> {
        let params = self.check_params(params)?;
        let context = serde_json::json!({ "params": params });
        let tasks = self
            .doc
            .steps
            .iter()
            .map(|step| {
                let retry = step.retry.or(self.doc.retry).unwrap_or_default();
                // A model chosen by a parameter is known now; outputs are not.
                let model_input = match step.input.get("model") {
                    Some(Value::String(m)) if m.contains("params.") && !m.contains("steps.") => {
                        let rendered = crate::render::render_input(
                            &serde_json::json!({ "model": m }),
                            &context,
                            &format!("step `{}`", step.id),
                        )?;
                        let mut input = step.input.clone();
                        input["model"] = rendered["model"].clone();
                        input
                    }
                    _ => step.input.clone(),
                };
                Ok(NewTask {
                    step: step.id.clone(),
                    kind: step.kind.clone(),
                    resource: resource_of(&step.kind, &model_input),
                    input: step.input.clone(),
                    memory_mb: 0,
                    priority: step.priority.unwrap_or(self.doc.priority),
                    deadline_ms: self.doc.deadline_secs.map(|s| now_ms + s as i64 * 1000),
                    max_attempts: retry.attempts.max(1),
                    backoff_ms: (retry.backoff_secs * 1000.0) as u64,
                    timeout_ms: step
                        .timeout_secs
                        .or(self.doc.timeout_secs)
                        .map(|s| s * 1000),
                    after: step.after.clone(),
                })
            })
            .collect::<Result<Vec<_>, TaskError>>()?;
        Ok(NewRun {
            name: self.doc.name.clone(),
            template: Some(self.key()),
            params,
            origin: origin.to_owned(),
            tasks,
        })
    }
}

/// For each step, every step it waits for directly or through others.
fn ancestors(steps: &[StepDoc]) -> BTreeMap<String, HashSet<String>> {
    let direct: HashMap<&str, &[String]> = steps
        .iter()
        .map(|s| (s.id.as_str(), s.after.as_slice()))
        .collect();
    steps
        .iter()
        .map(|s| {
            let mut seen = HashSet::new();
            let mut todo: Vec<&str> = s.after.iter().map(String::as_str).collect();
            while let Some(next) = todo.pop() {
                if seen.insert(next.to_owned()) {
                    todo.extend(
                        direct
                            .get(next)
                            .into_iter()
                            .flat_map(|a| a.iter().map(String::as_str)),
                    );
                }
            }
            (s.id.clone(), seen)
        })
        .collect()
}

/// A name with an optional `@version`.
pub fn split_key(key: &str) -> Result<(&str, Option<i64>), TaskError> {
    match key.split_once('@') {
        Some((name, version)) => version
            .parse::<i64>()
            .map(|v| (name, Some(v)))
            .map_err(|_| TaskError::Template(format!("`{key}`: the version after @ is a number"))),
        None => Ok((key, None)),
    }
}

/// Deepest nesting a template may have: flow collections (`[`, `{`), block sequences
/// opened on one line (`- - -`) and indentation (in columns, over 4).
const MAX_YAML_DEPTH: usize = 64;

/// The line and reason when `yaml` nests deeper than [`MAX_YAML_DEPTH`]. The YAML parser
/// takes time that grows with the square of the depth (19,000 nested `{` took 3 s, found by
/// the `template` fuzz target); no real template comes near the limit.
fn nesting_problem(yaml: &str) -> Option<(usize, String)> {
    let (mut depth, mut single, mut double, mut escaped) = (0usize, false, false, false);
    for (n, line) in yaml.lines().enumerate() {
        let too_deep = |what: &str| {
            Some((
                n + 1,
                format!("{what} nest deeper than {MAX_YAML_DEPTH} levels; templates are flatter than that"),
            ))
        };
        let body = line.trim_start_matches(' ');
        if !single && !double && depth == 0 {
            if (line.len() - body.len()) / 4 > MAX_YAML_DEPTH {
                return too_deep("indented blocks");
            }
            let mut rest = body;
            let mut dashes = 0;
            while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
                dashes += 1;
                rest = r.trim_start();
            }
            if dashes > MAX_YAML_DEPTH {
                return too_deep("sequences");
            }
        }
        let mut prev = ' ';
        for c in line.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if double => escaped = true,
                '"' if !single => double = !double,
                '\'' if !double => single = !single,
                '#' if !single && !double && prev.is_whitespace() => break,
                '[' | '{' if !single && !double => {
                    depth += 1;
                    if depth > MAX_YAML_DEPTH {
                        return too_deep("`[` and `{`");
                    }
                }
                ']' | '}' if !single && !double => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOTES: &str = r#"
name: notes
version: 2
params:
  type: object
  required: [audio]
  properties:
    audio: { type: string }
    words: { type: integer, default: 100, minimum: 10 }
steps:
  - id: transcript
    kind: transcribe
    input: { file: "{{ params.audio }}" }
  - id: summary
    kind: chat
    after: [transcript]
    input:
      prompt: "In {{ params.words }} words:\n{{ steps.transcript.output.text }}"
"#;

    /// Found by the `template` fuzz target: 19,000 nested `{` took 3 s to refuse.
    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let flow = format!(
            "name: x\nversion: 1\nparams: {}1{}\n",
            "{\"a\":".repeat(19_000),
            "}".repeat(19_000)
        );
        let dashes = format!("name: x\nversion: 1\nsteps:\n{}x\n", "- ".repeat(10_000));
        let indent = format!("name: x\nversion: 1\nsteps:\n{}x: 1\n", " ".repeat(400));
        for (yaml, line) in [(flow, 3), (dashes, 4), (indent, 4)] {
            match Template::parse(&yaml) {
                Err(TaskError::Yaml {
                    line: l, reason, ..
                }) => {
                    assert_eq!(l, line, "{reason}");
                    assert!(reason.contains("deeper than 64"), "{reason}");
                }
                other => panic!("{:?}", other.map(|t| t.key())),
            }
        }
        // Brackets inside quotes and comments do not count.
        let quoted = format!("{NOTES}\n# {}\n", "[".repeat(100));
        let quoted = quoted.replace(
            "name: notes",
            &format!("name: notes\ndescription: '{}'", "{".repeat(100)),
        );
        Template::parse(&quoted).unwrap();
    }

    #[test]
    fn parses_checks_and_instantiates() {
        let t = Template::parse(NOTES).unwrap();
        assert_eq!(t.key(), "notes@2");
        let params = t
            .params_from_pairs(&[
                ("audio".into(), "a.wav".into()),
                ("words".into(), "50".into()),
            ])
            .unwrap();
        assert_eq!(params, json!({"audio": "a.wav", "words": 50}));
        let run = t.instantiate(&json!({"audio": "a.wav"}), "cli", 0).unwrap();
        assert_eq!(run.params, json!({"audio": "a.wav", "words": 100}));
        assert_eq!(run.tasks[1].after, ["transcript"]);
        assert_eq!(run.tasks[1].resource, "chat:auto");
        assert_eq!(run.tasks[0].resource, "stt");
    }

    #[test]
    fn bad_params_are_refused_before_queueing() {
        let t = Template::parse(NOTES).unwrap();
        let err = t
            .check_params(&json!({"audio": "a", "speed": 2}))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`speed` is not a parameter of notes@2; it takes: audio, words"),
            "{err}"
        );
        let err = t
            .check_params(&json!({"words": 5}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"audio\" is a required property"), "{err}");
        assert!(err.contains("`words`"), "{err}");
        let err = t
            .params_from_pairs(&[("words".into(), "many".into())])
            .unwrap_err();
        assert!(err.to_string().contains("whole number"), "{err}");
    }

    #[test]
    fn yaml_errors_give_line_and_column() {
        let err = Template::parse("name: x\nversion: 1\nsteps:\n  - id: a\n    kind: [noop\n")
            .unwrap_err();
        match err {
            TaskError::Yaml { line, column, .. } => {
                assert!(line >= 5 && column > 0, "{line}:{column}")
            }
            other => panic!("{other}"),
        }
        let err = Template::parse(
            "name: x\nversion: 1\nsteps:\n  - id: a\n    kind: noop\n    inptu: {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 6") && err.contains("unknown field `inptu`"),
            "{err}"
        );
    }

    #[test]
    fn graph_and_references_are_checked() {
        let cyclic = "name: x\nversion: 1\nsteps:\n  - {id: a, kind: noop, after: [b]}\n  - {id: b, kind: noop, after: [a]}\n";
        let err = Template::parse(cyclic).unwrap_err().to_string();
        assert!(err.contains("cycle: a → b → a"), "{err}");
        let unwaited = "name: x\nversion: 1\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: write, input: {path: p, content: '{{ steps.a.output }}'}}\n";
        let err = Template::parse(unwaited).unwrap_err().to_string();
        assert!(err.contains("does not wait for it"), "{err}");
        let unknown_param = "name: x\nversion: 1\nsteps:\n  - {id: a, kind: write, input: {path: '{{ params.p }}', content: c}}\n";
        let err = Template::parse(unknown_param).unwrap_err().to_string();
        assert!(
            err.contains("`params.p`, which is not a parameter"),
            "{err}"
        );
        let bad_kind = "name: x\nversion: 1\nsteps:\n  - {id: a, kind: fly}\n";
        assert!(Template::parse(bad_kind)
            .unwrap_err()
            .to_string()
            .contains("unknown kind `fly`"));
        let bad_syntax = "name: x\nversion: 1\nsteps:\n  - {id: a, kind: write, input: {path: p, content: '{{ oops'}}\n";
        assert!(Template::parse(bad_syntax)
            .unwrap_err()
            .to_string()
            .contains("step `a`, input `content`"));
    }

    #[test]
    fn keys_split() {
        assert_eq!(split_key("a@3").unwrap(), ("a", Some(3)));
        assert_eq!(split_key("a").unwrap(), ("a", None));
        assert!(split_key("a@x").is_err());
    }
}
