//! Step inputs as templates: every string of a step's input is a minijinja template over
//! `params` (the run's parameters), `steps.ID.output` (earlier steps' outputs) and, inside a
//! batch, `item` and `index`. Undefined names are errors, never empty text.
//!
//! A string that is one expression and nothing else (`"{{ params.count }}"`) keeps the
//! value's type (a number stays a number, a list a list); [`render_input`] falls back to
//! text where the kind wants text. The `render` filter renders a parameter that is itself
//! a template (`"{{ params.prompt | render }}"`, where the prompt uses `item`).

use std::collections::HashSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::TaskError;

/// The template environment steps are rendered in: strict about undefined names, no HTML
/// escaping, and a `json` filter for structured values.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.add_filter("render", render_filter);
    env
}

/// Longest chain of unary operators allowed in one expression.
const MAX_UNARY_CHAIN: usize = 100;

/// Refuses template text whose expressions chain more than [`MAX_UNARY_CHAIN`] unary
/// operators (`- - - x`, `not not x`): minijinja 3.1 parses those by recursion without its
/// depth limit, so a long chain overflows the stack and ends the whole process (found by
/// the `template` fuzz target). Text outside `{{ }}` and `{% %}` is not looked at.
fn check_unary_chains(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find("{{").into_iter().chain(rest.find("{%")).min() {
        let inner = &rest[open + 2..];
        let close = inner
            .find("}}")
            .into_iter()
            .chain(inner.find("%}"))
            .min()
            .unwrap_or(inner.len());
        let (mut run, mut longest) = (0usize, 0usize);
        for word in inner[..close].split_whitespace() {
            let trimmed = word.trim_start_matches('-');
            let minuses = word.len() - trimmed.len();
            if word == "not" {
                run += 1;
            } else if minuses > 0 {
                run += minuses;
                if !trimmed.is_empty() {
                    longest = longest.max(run);
                    run = 0;
                }
            } else {
                longest = longest.max(run);
                run = 0;
            }
        }
        longest = longest.max(run);
        if longest > MAX_UNARY_CHAIN {
            return Err(format!(
                "an expression chains {longest} minus signs or `not`s; at most {MAX_UNARY_CHAIN} are allowed"
            ));
        }
        rest = &inner[close..];
    }
    Ok(())
}

/// Renders text that is itself a template over the names in scope.
fn render_filter(state: &minijinja::State, text: String) -> Result<String, minijinja::Error> {
    check_unary_chains(&text)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::SyntaxError, e))?;
    let mut context = std::collections::BTreeMap::new();
    for name in ["params", "steps", "item", "index"] {
        if let Some(value) = state.lookup(name) {
            context.insert(name, value);
        }
    }
    state.env().render_str(&text, context)
}

/// The expression of a string that is `{{ expression }}` and nothing else.
fn whole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then(|| inner.trim_matches('-').trim())
}

/// Renders every string in `input` over `context`; whole expressions keep their type (see
/// [`crate::render_task`] for the fallback to text). `where_` names the step in errors.
pub fn render_input(input: &Value, context: &Value, where_: &str) -> Result<Value, TaskError> {
    let env = environment();
    render_value(&env, input, context, where_, "", true)
}

/// Renders like [`render_input`], every template as text.
pub fn render_input_as_text(
    input: &Value,
    context: &Value,
    where_: &str,
) -> Result<Value, TaskError> {
    let env = environment();
    render_value(&env, input, context, where_, "", false)
}

fn render_value(
    env: &Environment<'_>,
    value: &Value,
    context: &Value,
    where_: &str,
    path: &str,
    typed: bool,
) -> Result<Value, TaskError> {
    Ok(match value {
        Value::String(text) if text.contains("{{") || text.contains("{%") => {
            check_unary_chains(text)
                .map_err(|e| TaskError::Template(format!("{where_}, input `{path}`: {e}")))?;
            let ctx = minijinja::Value::from(minijinja::value::Serde(context));
            if let Some(expr) = whole_expression(text).filter(|_| typed) {
                let compiled = env
                    .compile_expression(expr)
                    .map_err(|e| TaskError::Template(describe(&e, where_, path)))?;
                let value = compiled
                    .eval(ctx)
                    .map_err(|e| TaskError::Template(describe(&e, where_, path)))?;
                if value.is_undefined() {
                    return Err(TaskError::Template(format!(
                        "{where_}, input `{path}`: `{expr}` is undefined"
                    )));
                }
                serde_json::to_value(&value)
                    .map_err(|e| TaskError::Template(format!("{where_}, input `{path}`: {e}")))?
            } else {
                let rendered = env
                    .render_str(text, ctx)
                    .map_err(|e| TaskError::Template(describe(&e, where_, path)))?;
                Value::String(rendered)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| render_value(env, v, context, where_, &format!("{path}[{i}]"), typed))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let at = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    Ok((
                        k.clone(),
                        render_value(env, v, context, where_, &at, typed)?,
                    ))
                })
                .collect::<Result<_, TaskError>>()?,
        ),
        other => other.clone(),
    })
}

fn describe(error: &minijinja::Error, where_: &str, path: &str) -> String {
    let detail = error
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| error.kind().to_string());
    let line = error
        .line()
        .map(|l| format!(" (line {l} of the text)"))
        .unwrap_or_default();
    format!("{where_}, input `{path}`{line}: {detail}")
}

/// Checks the templates in `input` without rendering them: syntax, and which names they
/// use. Returns the top two levels of every name used (`params.audio`, `steps.summary`,
/// `item.name`).
pub fn names_used(input: &Value, where_: &str) -> Result<HashSet<String>, TaskError> {
    let env = environment();
    let mut names = HashSet::new();
    collect_names(&env, input, where_, "", &mut names)?;
    Ok(names)
}

fn collect_names(
    env: &Environment<'_>,
    value: &Value,
    where_: &str,
    path: &str,
    names: &mut HashSet<String>,
) -> Result<(), TaskError> {
    match value {
        Value::String(text) if text.contains("{{") || text.contains("{%") => {
            check_unary_chains(text)
                .map_err(|e| TaskError::Template(format!("{where_}, input `{path}`: {e}")))?;
            let template = env
                .template_from_str(text)
                .map_err(|e| TaskError::Template(describe(&e, where_, path)))?;
            for name in template.undeclared_variables(true) {
                let two: Vec<&str> = name.splitn(3, '.').take(2).collect();
                names.insert(two.join("."));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_names(env, v, where_, &format!("{path}[{i}]"), names)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_names(env, v, where_, &at, names)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_params_and_outputs() {
        let input = json!({"prompt": "Summarise:\n{{ steps.t.output.text }}", "n": 3, "list": ["{{ params.a }}"]});
        let ctx = json!({"params": {"a": "x"}, "steps": {"t": {"output": {"text": "hello"}}}});
        let out = render_input(&input, &ctx, "step s").unwrap();
        assert_eq!(
            out,
            json!({"prompt": "Summarise:\nhello", "n": 3, "list": ["x"]})
        );
    }

    /// Found by the `template` fuzz target: 16,000 minus signs in one expression
    /// overflowed the stack inside minijinja's parser and ended the process.
    #[test]
    fn long_unary_chains_are_refused_before_parsing() {
        let deep = format!("{{{{ params.a{} }}}}", " -".repeat(16_000));
        for text in [
            deep.clone(),
            format!("{{% if {} x %}}y{{% endif %}}", "not ".repeat(500)),
        ] {
            let input = json!({"prompt": text});
            let err = names_used(&input, "step s").unwrap_err().to_string();
            assert!(err.contains("chains") && err.contains("step s"), "{err}");
            let err = render_input(&input, &json!({"params": {"a": 1}}), "step s").unwrap_err();
            assert!(err.to_string().contains("at most 100"), "{err}");
        }
        // Dashes outside expressions (a Markdown rule) and whitespace control are fine.
        let ok = json!({"prompt": format!("{}\n{{{{- params.a -}}}} {{{{ -params.a }}}}", "-".repeat(300))});
        let out = render_input(&ok, &json!({"params": {"a": 2}}), "step s").unwrap();
        assert!(out["prompt"].as_str().unwrap().ends_with("-2-2"), "{out}");
    }

    #[test]
    fn undefined_names_and_syntax_errors_say_where() {
        let err = render_input(
            &json!({"prompt": "{{ params.nope }}"}),
            &json!({"params": {}}),
            "step s",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("step s, input `prompt`"), "{err}");
        assert!(err.contains("undefined"), "{err}");
        let err = names_used(&json!({"x": {"y": "{{ params.a "}}), "step s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("input `x.y`"), "{err}");
    }

    #[test]
    fn whole_expressions_keep_their_type_and_render_renders() {
        let ctx = json!({"params": {"n": 3, "models": ["a", "b"], "p": "Say {{ item.w }}"}, "item": {"w": "hi"}});
        let out = render_input(
            &json!({"n": "{{ params.n }}", "m": "{{ params.models }}", "t": "n={{ params.n }}", "p": "{{ params.p | render }}"}),
            &ctx,
            "s",
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"n": 3, "m": ["a", "b"], "t": "n=3", "p": "Say hi"})
        );
        let text = render_input_as_text(&json!({"n": "{{ params.n }}"}), &ctx, "s").unwrap();
        assert_eq!(text, json!({"n": "3"}));
        let err = render_input(&json!({"n": "{{ params.zz }}"}), &ctx, "s").unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
    }

    #[test]
    fn names_are_collected() {
        let names = names_used(
            &json!({"a": "{{ params.audio }} {{ steps.t.output.text }}", "b": "{% for w in item.words %}{{ w }}{% endfor %}"}),
            "s",
        )
        .unwrap();
        assert!(names.contains("params.audio"));
        assert!(names.contains("steps.t"));
        assert!(names.contains("item.words"));
    }
}
