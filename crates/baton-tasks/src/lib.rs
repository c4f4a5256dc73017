//! Baton's tasks and workflows: task kinds and their typed inputs, step inputs as
//! templates, YAML workflow templates with typed parameters, and cron schedules.
//!
//! The queue itself is stored by `baton-store` (SQLite, the default) and run by the
//! runtime's worker; the scheduling decisions are pure functions in `baton_core::tasks`.
#![warn(missing_docs)]

pub mod kinds;
pub mod render;
pub mod schedule;
pub mod template;

pub use kinds::{resource_of, TaskSpec, KINDS};
pub use render::{render_input, render_input_as_text};
pub use schedule::{CronSchedule, MissedRuns};
pub use template::{split_key, ParamField, Template};

/// What is wrong with a task, a template, parameters or a schedule.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The YAML does not parse or does not have a template's shape.
    #[error("line {line}, column {column}: {reason}")]
    Yaml {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// The template is well-formed YAML but not a valid template.
    #[error("{0}")]
    Template(String),
    /// A step's input does not fit its kind.
    #[error("{0}")]
    Input(String),
    /// The parameters do not fit the template.
    #[error("{0}")]
    Params(String),
    /// The steps do not form a graph that can run.
    #[error("{0}")]
    Graph(#[from] baton_core::GraphError),
    /// A cron expression, time zone or policy is not valid.
    #[error("{0}")]
    Schedule(String),
}

/// Renders a task's input over `context` and reads it into its kind. Whole expressions keep
/// their type; when the kind refuses that (a number where it wants text), everything is
/// rendered as text and read again. A batch's own `step` is left for each item.
pub fn render_task(
    kind: &str,
    input: &serde_json::Value,
    context: &serde_json::Value,
    where_: &str,
) -> Result<(serde_json::Value, TaskSpec), TaskError> {
    let (own, inner) = match (kind, input) {
        ("batch", serde_json::Value::Object(map)) => {
            let mut own = map.clone();
            let inner = own.remove("step");
            (serde_json::Value::Object(own), inner)
        }
        _ => (input.clone(), None),
    };
    let with_inner = |mut value: serde_json::Value| {
        if let (Some(step), serde_json::Value::Object(map)) = (&inner, &mut value) {
            map.insert("step".into(), step.clone());
        }
        value
    };
    let typed = with_inner(render_input(&own, context, where_)?);
    match TaskSpec::parse(kind, &typed) {
        Ok(spec) => Ok((typed, spec)),
        Err(first) => {
            let text = with_inner(render_input_as_text(&own, context, where_)?);
            TaskSpec::parse(kind, &text)
                .map(|spec| (text, spec))
                .map_err(|_| first)
        }
    }
}

/// The form of a batch's results file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// Comma-separated values with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// A Markdown table.
    Markdown,
}

/// The results format `out` asks for by its extension.
pub fn batch_format(out: &str) -> Result<BatchFormat, TaskError> {
    let lower = out.to_lowercase();
    if lower.ends_with(".csv") {
        Ok(BatchFormat::Csv)
    } else if lower.ends_with(".jsonl") {
        Ok(BatchFormat::Jsonl)
    } else if lower.ends_with(".md") {
        Ok(BatchFormat::Markdown)
    } else {
        Err(TaskError::Input(format!(
            "batch results go to a .csv, .jsonl or .md file, not `{out}`"
        )))
    }
}

/// The templates shipped with Baton: `(file name, YAML)`.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "meeting-notes.yaml",
        include_str!("../templates/meeting-notes.yaml"),
    ),
    (
        "screen-to-table.yaml",
        include_str!("../templates/screen-to-table.yaml"),
    ),
    (
        "batch-prompt.yaml",
        include_str!("../templates/batch-prompt.yaml"),
    ),
    (
        "daily-digest.yaml",
        include_str!("../templates/daily-digest.yaml"),
    ),
    (
        "read-aloud.yaml",
        include_str!("../templates/read-aloud.yaml"),
    ),
    (
        "compare-models.yaml",
        include_str!("../templates/compare-models.yaml"),
    ),
];

/// Every built-in template, parsed.
pub fn builtin_templates() -> Vec<Template> {
    BUILTIN_TEMPLATES
        .iter()
        .map(|(file, yaml)| {
            Template::parse(yaml).unwrap_or_else(|e| panic!("built-in template {file}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_parse() {
        let templates = builtin_templates();
        assert_eq!(templates.len(), BUILTIN_TEMPLATES.len());
        for t in templates {
            assert!(
                !t.doc().description.is_empty(),
                "{} has no description",
                t.key()
            );
        }
    }

    #[test]
    fn batch_formats() {
        assert_eq!(batch_format("a/b.CSV").unwrap(), BatchFormat::Csv);
        assert_eq!(batch_format("x.md").unwrap(), BatchFormat::Markdown);
        assert!(batch_format("x.xlsx").is_err());
    }
}
