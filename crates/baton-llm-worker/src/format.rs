//! Output formats ([`OutputFormat`]) turned into GBNF grammars for llama.cpp's grammar
//! sampler, with errors that say what is wrong.
//!
//! - `JsonObject`: [`JSON_OBJECT_GBNF`], any JSON object.
//! - `JsonSchema`: llama.cpp's `json_schema_to_grammar`, after [`lint_schema`] checked the
//!   schema the same way llama.cpp's schema reader does (its own reasons are lost behind
//!   the C API) and listed the keywords the grammar cannot enforce.
//! - `Grammar`: the caller's GBNF, checked by [`crate::gbnf::check`].
//!
//! Every grammar here produces strictly parseable JSON strings: `\u` escapes of UTF-16
//! surrogates (`\uD800`…`\uDFFF`, which strict parsers refuse when unpaired) are left out;
//! characters outside the Basic Multilingual Plane are written as themselves instead.

use baton_core::OutputFormat;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Any JSON object (llama.cpp's `grammars/json.gbnf` with the root an object).
pub const JSON_OBJECT_GBNF: &str = r#"root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" char* "\"" ws
char   ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" hex4)
hex4   ::= [0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [0-9]{0,15})? ws
ws     ::= | " " | "\n" [ \t]{0,20}
"#;

/// What llama.cpp's schema conversion supports, for error messages.
pub const SUPPORTED_SCHEMA: &str = "type (object, array, string, integer, number, boolean, null, or a list of them), properties, required, additionalProperties, items, prefixItems, minItems, maxItems, enum, const, minLength, maxLength, pattern (anchored with ^ and $), format (date, time, date-time, uuid), minimum, maximum, exclusiveMinimum, exclusiveMaximum (on integers), anyOf, oneOf, allOf, and $ref into the same document (#/$defs/…)";

/// Keywords that llama.cpp's conversion ignores: the output may break them.
const UNENFORCED: &[&str] = &[
    "multipleOf",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
];

/// `"u" [0-9a-fA-F]{4}` as llama.cpp's schema conversion writes it, and its replacement
/// without surrogates.
const ANY_HEX4: &str = r#""u" [0-9a-fA-F]{4}"#;
const NON_SURROGATE_HEX4: &str =
    r#""u" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2})"#;

/// A grammar for one request, and what the user should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The GBNF grammar (root rule `root`).
    pub gbnf: String,
    /// Things the grammar does not enforce (sent as notices).
    pub notices: Vec<String>,
}

/// The grammar for `format`; the error (a bad request) says what is wrong.
pub fn grammar_for(format: &OutputFormat) -> Result<Constraint, String> {
    match format {
        OutputFormat::JsonObject => Ok(Constraint {
            gbnf: JSON_OBJECT_GBNF.to_owned(),
            notices: Vec::new(),
        }),
        OutputFormat::Grammar { grammar } => {
            crate::gbnf::check(grammar, "root")
                .map_err(|e| format!("the grammar is not valid GBNF: {e}"))?;
            Ok(Constraint {
                gbnf: grammar.clone(),
                notices: Vec::new(),
            })
        }
        OutputFormat::JsonSchema { schema, .. } => {
            let unenforced = lint_schema(schema).map_err(|e| {
                format!(
                    "the JSON schema could not be turned into a grammar: {e}; supported: {SUPPORTED_SCHEMA}"
                )
            })?;
            let text = serde_json::to_string(schema).map_err(|e| e.to_string())?;
            let gbnf = llama_cpp_2::json_schema_to_grammar(&text).map_err(|e| {
                format!(
                    "the JSON schema could not be turned into a grammar: llama.cpp refused it ({e}; an invalid `pattern` regular expression is the usual cause); supported: {SUPPORTED_SCHEMA}"
                )
            })?;
            let gbnf = gbnf.replace(ANY_HEX4, NON_SURROGATE_HEX4);
            // The converter's output is valid GBNF; a failure here is a bug worth a clear
            // message rather than llama.cpp's silent refusal.
            crate::gbnf::check(&gbnf, "root").map_err(|e| {
                format!("the grammar made from the JSON schema is not valid GBNF ({e})")
            })?;
            let notices = if unenforced.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "the output is constrained to the JSON schema except for {}, which generation cannot enforce",
                    unenforced.into_iter().collect::<Vec<_>>().join(", ")
                )]
            };
            Ok(Constraint { gbnf, notices })
        }
    }
}

/// Check `schema` as llama.cpp's schema reader (`common/json-schema.cpp`) does, with the
/// same JSON-pointer paths in its messages. Returns the keywords (with their paths) that
/// the grammar will not enforce.
pub fn lint_schema(schema: &Value) -> Result<BTreeSet<String>, String> {
    let mut lint = Lint {
        root: schema,
        refs: BTreeSet::new(),
        unenforced: BTreeSet::new(),
    };
    lint.node(schema, "#")?;
    Ok(lint.unenforced)
}

struct Lint<'a> {
    root: &'a Value,
    refs: BTreeSet<String>,
    unenforced: BTreeSet<String>,
}

fn fail<T>(path: &str, message: impl std::fmt::Display) -> Result<T, String> {
    Err(format!("at {path}: {message}"))
}

fn count(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= i32::MAX as u64 => Ok(Some(n)),
            _ => fail(path, format!("{key} must be a non-negative integer")),
        },
    }
}

fn bound(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) => Ok(Some(n)),
            None => fail(path, format!("{key} must be a number")),
        },
    }
}

impl Lint<'_> {
    fn node(&mut self, schema: &Value, path: &str) -> Result<(), String> {
        let Some(obj) = schema.as_object() else {
            return fail(
                path,
                format!(
                    "a schema must be a JSON object, not `{schema}` (write {{}} for any value)"
                ),
            );
        };
        for key in obj.keys() {
            if UNENFORCED.contains(&key.as_str()) {
                self.unenforced.insert(format!("`{key}` at {path}"));
            }
        }
        if let Some(reference) = obj.get("$ref") {
            return self.reference(reference, path);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(alternatives) = obj.get(key) {
                return self.alternatives(alternatives, &format!("{path}/{key}"));
            }
        }
        let ty = obj.get("type").unwrap_or(&Value::Null);
        if let Value::Array(types) = ty {
            if types.is_empty() {
                return fail(path, "type must not be empty");
            }
            for (i, t) in types.iter().enumerate() {
                let mut alternative = obj.clone();
                alternative.insert("type".into(), t.clone());
                self.node(&Value::Object(alternative), &format!("{path}/type/{i}"))?;
            }
            return Ok(());
        }
        if obj.contains_key("const") {
            return Ok(());
        }
        if let Some(values) = obj.get("enum") {
            return match values.as_array() {
                Some(values) if !values.is_empty() => Ok(()),
                _ => fail(path, "enum must be a non-empty array"),
            };
        }
        let type_name = match ty {
            Value::Null => "",
            Value::String(s) => s.as_str(),
            _ => return fail(path, "type must be a string or an array of strings"),
        };
        let has_properties = obj.contains_key("properties")
            || obj
                .get("additionalProperties")
                .is_some_and(|a| a != &Value::Bool(true));
        match type_name {
            "" if has_properties => self.object(obj, path),
            "" if obj.contains_key("allOf") => self.all_of(obj, path),
            "" if obj.contains_key("items") || obj.contains_key("prefixItems") => {
                self.array(obj, path)
            }
            "" if ["pattern", "minLength", "maxLength", "format"]
                .iter()
                .any(|k| obj.contains_key(*k)) =>
            {
                self.string(obj, path)
            }
            "" => Ok(()),
            "object" if !has_properties && obj.contains_key("allOf") => self.all_of(obj, path),
            "object" => self.object(obj, path),
            "string" if obj.contains_key("allOf") => self.all_of(obj, path),
            "string" => self.string(obj, path),
            "array" => self.array(obj, path),
            "integer" => {
                let min = bound(obj, "minimum", path)?
                    .map(f64::ceil)
                    .or(bound(obj, "exclusiveMinimum", path)?.map(|m| m.floor() + 1.0));
                let max = bound(obj, "maximum", path)?
                    .map(f64::floor)
                    .or(bound(obj, "exclusiveMaximum", path)?.map(|m| m.ceil() - 1.0));
                if let (Some(min), Some(max)) = (min, max) {
                    if min > max {
                        return fail(
                            path,
                            format!("no integer lies between the minimum {min} and the maximum {max}"),
                        );
                    }
                }
                Ok(())
            }
            "number" => {
                for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
                    if obj.contains_key(key) {
                        self.unenforced
                            .insert(format!("`{key}` on a number at {path}"));
                    }
                }
                Ok(())
            }
            "boolean" | "null" => Ok(()),
            other => fail(
                path,
                format!(
                    "unrecognized type `{other}` (types: object, array, string, integer, number, boolean, null)"
                ),
            ),
        }
    }

    fn reference(&mut self, reference: &Value, path: &str) -> Result<(), String> {
        let Some(reference) = reference.as_str() else {
            return fail(path, "$ref must be a string");
        };
        if !reference.starts_with("#/") {
            return fail(
                path,
                format!(
                    "unsupported $ref `{reference}`: only references into the same document (`#/$defs/…`) are supported"
                ),
            );
        }
        if !self.refs.insert(reference.to_owned()) {
            return Ok(());
        }
        let mut target = self.root;
        for part in reference[2..].split('/') {
            target = match target {
                Value::Object(map) if map.contains_key(part) => &map[part],
                Value::Array(items) => {
                    match part.parse::<usize>().ok().and_then(|i| items.get(i)) {
                        Some(item) => item,
                        None => {
                            return fail(
                                path,
                                format!(
                                    "cannot resolve $ref `{reference}`: `{part}` is out of range"
                                ),
                            )
                        }
                    }
                }
                _ => {
                    return fail(
                        path,
                        format!("cannot resolve $ref `{reference}`: `{part}` not found"),
                    )
                }
            };
        }
        self.node(target, reference)
    }

    fn alternatives(&mut self, alternatives: &Value, path: &str) -> Result<(), String> {
        match alternatives.as_array() {
            None => fail(path, "must be an array of schemas"),
            Some(items) if items.is_empty() => fail(path, "must not be empty"),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.node(item, &format!("{path}/{i}"))?;
                }
                Ok(())
            }
        }
    }

    fn all_of(&mut self, obj: &Map<String, Value>, path: &str) -> Result<(), String> {
        self.alternatives(&obj["allOf"], &format!("{path}/allOf"))
    }

    fn object(&mut self, obj: &Map<String, Value>, path: &str) -> Result<(), String> {
        if let Some(properties) = obj.get("properties") {
            let Some(properties) = properties.as_object() else {
                return fail(path, "properties must be an object");
            };
            for (name, property) in properties {
                self.node(property, &format!("{path}/properties/{name}"))?;
            }
        }
        match obj.get("additionalProperties") {
            None | Some(Value::Bool(_)) => Ok(()),
            Some(schema @ Value::Object(_)) => {
                self.node(schema, &format!("{path}/additionalProperties"))
            }
            Some(_) => fail(path, "additionalProperties must be a boolean or a schema"),
        }
    }

    fn array(&mut self, obj: &Map<String, Value>, path: &str) -> Result<(), String> {
        let key = if obj.contains_key("items") {
            Some("items")
        } else if obj.contains_key("prefixItems") {
            Some("prefixItems")
        } else {
            None
        };
        if let Some(key) = key {
            match &obj[key] {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.node(item, &format!("{path}/{key}/{i}"))?;
                    }
                    return Ok(());
                }
                item => self.node(item, &format!("{path}/{key}"))?,
            }
        }
        let min = count(obj, "minItems", path)?;
        let max = count(obj, "maxItems", path)?;
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return fail(path, format!("minItems {min} is above maxItems {max}"));
            }
        }
        Ok(())
    }

    fn string(&mut self, obj: &Map<String, Value>, path: &str) -> Result<(), String> {
        if let Some(pattern) = obj.get("pattern") {
            let Some(pattern) = pattern.as_str() else {
                return fail(path, "pattern must be a string");
            };
            if pattern.len() < 2 || !pattern.starts_with('^') || !pattern.ends_with('$') {
                self.unenforced.insert(format!(
                    "`pattern` {pattern:?} at {path} (only patterns anchored with ^ and $ are enforced)"
                ));
            }
        }
        if let Some(format) = obj.get("format") {
            if !format.is_string() {
                return fail(path, "format must be a string");
            }
        }
        let min = count(obj, "minLength", path)?;
        let max = count(obj, "maxLength", path)?;
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return fail(path, format!("minLength {min} is above maxLength {max}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema_error(schema: Value) -> String {
        grammar_for(&OutputFormat::JsonSchema {
            name: "t".into(),
            schema,
        })
        .unwrap_err()
    }

    #[test]
    fn schemas_become_grammars_without_surrogate_escapes() {
        let constraint = grammar_for(&OutputFormat::JsonSchema {
            name: "t".into(),
            schema: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 5},
                    "n": {"type": "integer", "minimum": 1, "maximum": 12},
                    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}
                },
                "required": ["name", "n"],
                "additionalProperties": false
            }),
        })
        .unwrap();
        assert!(constraint.gbnf.contains("root ::="), "{}", constraint.gbnf);
        assert!(!constraint.gbnf.contains(ANY_HEX4), "{}", constraint.gbnf);
        assert!(
            constraint.gbnf.contains("[dD] [0-7]"),
            "{}",
            constraint.gbnf
        );
        assert!(constraint.notices.is_empty());
    }

    #[test]
    fn bad_schemas_say_what_is_wrong() {
        let cases = [
            (json!(true), "a schema must be a JSON object"),
            (json!({"type": "text"}), "unrecognized type `text`"),
            (
                json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 2}}}),
                "at #/properties/a: no integer lies between",
            ),
            (
                json!({"$ref": "https://example.com/s.json"}),
                "only references into the same document",
            ),
            (json!({"$ref": "#/$defs/missing"}), "`$defs` not found"),
            (json!({"enum": []}), "enum must be a non-empty array"),
            (json!({"anyOf": []}), "must not be empty"),
            (
                json!({"type": "array", "maxItems": -1}),
                "maxItems must be a non-negative integer",
            ),
            (
                json!({"type": "object", "properties": []}),
                "properties must be an object",
            ),
        ];
        for (schema, expected) in cases {
            let err = schema_error(schema.clone());
            assert!(err.contains(expected), "{schema}: {err}");
            assert!(
                err.starts_with("the JSON schema could not be turned into a grammar: "),
                "{err}"
            );
            assert!(err.contains("supported: type (object"), "{err}");
        }
    }

    #[test]
    fn refs_and_unenforced_keywords() {
        let constraint = grammar_for(&OutputFormat::JsonSchema {
            name: "t".into(),
            schema: json!({
                "$defs": {"item": {"type": "integer", "multipleOf": 3}},
                "type": "array",
                "items": {"$ref": "#/$defs/item"},
                "uniqueItems": true
            }),
        })
        .unwrap();
        assert_eq!(constraint.notices.len(), 1);
        let notice = &constraint.notices[0];
        assert!(notice.contains("`multipleOf` at #/$defs/item"), "{notice}");
        assert!(notice.contains("`uniqueItems` at #"), "{notice}");
    }

    #[test]
    fn grammars_are_checked() {
        let err = grammar_for(&OutputFormat::Grammar {
            grammar: "root ::= \"a\" b".into(),
        })
        .unwrap_err();
        assert!(err.starts_with("the grammar is not valid GBNF: "), "{err}");
        assert!(err.contains("rule `b`"), "{err}");
        assert!(grammar_for(&OutputFormat::JsonObject).is_ok());
    }
}
