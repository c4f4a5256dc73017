//! Random bounded JSON schemas, and a validator for exactly the subset they use.
//!
//! Used by `baton-llm-worker --schema-check` and by the worker's tests (which include this
//! file with `#[path]`), so it depends on `serde_json` only.
//!
//! Every schema is an object with `additionalProperties: false` whose properties are
//! integers with `minimum`/`maximum`, booleans, string enums, strings with `maxLength`
//! (sometimes `minLength`), arrays of those with `maxItems` (sometimes `minItems`), or (at
//! the top level) a nested object of the same kinds. Every value is bounded, so a
//! constrained generation always ends by itself.

use serde_json::{json, Map, Value};

/// A small deterministic random generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// `count` distinct items of `items`, in random order.
    pub fn distinct<'a>(&mut self, items: &[&'a str], count: usize) -> Vec<&'a str> {
        let mut pool: Vec<&str> = items.to_vec();
        let mut out = Vec::new();
        while out.len() < count && !pool.is_empty() {
            let i = self.below(pool.len() as u64) as usize;
            out.push(pool.swap_remove(i));
        }
        out
    }
}

const NAMES: &[&str] = &[
    "name", "age", "city", "color", "size", "count", "active", "tags", "level", "score", "mode",
    "kind", "title", "note", "enabled", "items", "owner", "state", "priority", "region", "year",
    "label", "status", "code",
];

const WORDS: &[&str] = &[
    "red", "green", "blue", "small", "large", "on", "off", "north", "south", "alpha", "beta",
    "gamma", "low", "high", "open", "closed", "yes", "maybe",
];

/// A random schema (see the module documentation for its shape).
pub fn random_schema(rng: &mut Rng) -> Value {
    object(rng, true)
}

fn object(rng: &mut Rng, top: bool) -> Value {
    let n = if top {
        rng.range(1, 5)
    } else {
        rng.range(1, 3)
    } as usize;
    let names = rng.distinct(NAMES, n);
    let mut properties = Map::new();
    for name in &names {
        let value = if top && rng.chance(1, 8) {
            object(rng, false)
        } else {
            property(rng)
        };
        properties.insert((*name).to_owned(), value);
    }
    let required: Vec<&str> = if rng.chance(3, 4) {
        names.clone()
    } else {
        let mut some: Vec<&str> = names.iter().copied().filter(|_| rng.chance(1, 2)).collect();
        if some.is_empty() {
            some.push(names[0]);
        }
        some
    };
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => {
            let lo = rng.range(-1000, 1000);
            let hi = lo + rng.range(0, 2000);
            json!({"type": "integer", "minimum": lo, "maximum": hi})
        }
        1 => json!({"type": "boolean"}),
        2 => {
            let count = rng.range(2, 4) as usize;
            json!({"type": "string", "enum": rng.distinct(WORDS, count)})
        }
        _ => {
            let max = rng.range(1, 10);
            if rng.chance(1, 4) {
                json!({"type": "string", "minLength": rng.range(0, max.min(2)), "maxLength": max})
            } else {
                json!({"type": "string", "maxLength": max})
            }
        }
    }
}

fn property(rng: &mut Rng) -> Value {
    if rng.chance(1, 5) {
        let max = rng.range(1, 3);
        let mut array = json!({"type": "array", "items": scalar(rng), "maxItems": max});
        if rng.chance(1, 3) {
            array["minItems"] = json!(rng.range(0, 1));
        }
        array
    } else {
        scalar(rng)
    }
}

/// Check `value` against `schema` (the subset [`random_schema`] makes); the error names
/// the path and the rule broken. Unknown keywords are errors, so the validator never
/// passes something it did not check.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "$")
}

fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let rules = schema
        .as_object()
        .ok_or_else(|| format!("{path}: the schema is not an object"))?;
    for key in rules.keys() {
        if ![
            "type",
            "properties",
            "required",
            "additionalProperties",
            "minimum",
            "maximum",
            "enum",
            "minLength",
            "maxLength",
            "items",
            "minItems",
            "maxItems",
        ]
        .contains(&key.as_str())
        {
            return Err(format!("{path}: the validator does not know `{key}`"));
        }
    }
    let limit = |key: &str| rules.get(key).and_then(Value::as_f64);
    if let Some(allowed) = rules.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    match rules.get("type").and_then(Value::as_str) {
        Some("object") => {
            let object = value
                .as_object()
                .ok_or_else(|| format!("{path}: {value} is not an object"))?;
            let properties = rules
                .get("properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for name in rules
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    return Err(format!("{path}: required property `{name}` is missing"));
                }
            }
            for (name, item) in object {
                match properties.get(name) {
                    Some(sub) => check(sub, item, &format!("{path}.{name}"))?,
                    None if rules.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{path}: property `{name}` is not allowed"))
                    }
                    None => {}
                }
            }
        }
        Some("integer") => {
            let n = value
                .as_f64()
                .filter(|n| n.fract() == 0.0)
                .ok_or_else(|| format!("{path}: {value} is not an integer"))?;
            if limit("minimum").is_some_and(|min| n < min) {
                return Err(format!("{path}: {value} is below the minimum"));
            }
            if limit("maximum").is_some_and(|max| n > max) {
                return Err(format!("{path}: {value} is above the maximum"));
            }
        }
        Some("boolean") if !value.is_boolean() => {
            return Err(format!("{path}: {value} is not a boolean"));
        }
        Some("boolean") => {}
        Some("string") => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{path}: {value} is not a string"))?;
            let length = text.chars().count() as f64;
            if limit("minLength").is_some_and(|min| length < min) {
                return Err(format!("{path}: {value} is shorter than minLength"));
            }
            if limit("maxLength").is_some_and(|max| length > max) {
                return Err(format!("{path}: {value} is longer than maxLength"));
            }
        }
        Some("array") => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{path}: {value} is not an array"))?;
            let count = items.len() as f64;
            if limit("minItems").is_some_and(|min| count < min) {
                return Err(format!("{path}: fewer items than minItems"));
            }
            if limit("maxItems").is_some_and(|max| count > max) {
                return Err(format!("{path}: more items than maxItems"));
            }
            if let Some(item_schema) = rules.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "{path}: the validator does not know type `{other}`"
            ))
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_deterministic_and_bounded() {
        let a = random_schema(&mut Rng::new(7));
        let b = random_schema(&mut Rng::new(7));
        assert_eq!(a, b);
        for seed in 0..200 {
            let schema = random_schema(&mut Rng::new(seed));
            let text = schema.to_string();
            assert!(text.contains("\"additionalProperties\":false"), "{text}");
            // The validator knows every keyword used.
            let empty = json!({});
            if let Err(err) = validate(&schema, &empty) {
                assert!(err.contains("required property"), "{err}");
            }
        }
    }

    #[test]
    fn validator_catches_each_rule() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 1, "maximum": 3},
                "b": {"type": "boolean"},
                "e": {"type": "string", "enum": ["x", "y"]},
                "s": {"type": "string", "minLength": 1, "maxLength": 2},
                "a": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2, "minItems": 1}
            },
            "required": ["n"],
            "additionalProperties": false
        });
        let ok = json!({"n": 2, "b": true, "e": "x", "s": "é", "a": [false]});
        assert_eq!(validate(&schema, &ok), Ok(()));
        for bad in [
            json!({"b": true}),
            json!({"n": 4}),
            json!({"n": 1.5}),
            json!({"n": 1, "b": 1}),
            json!({"n": 1, "e": "z"}),
            json!({"n": 1, "s": ""}),
            json!({"n": 1, "s": "abc"}),
            json!({"n": 1, "a": []}),
            json!({"n": 1, "a": [true, true, true]}),
            json!({"n": 1, "a": [1]}),
            json!({"n": 1, "x": 1}),
            json!([1]),
        ] {
            assert!(validate(&schema, &bad).is_err(), "{bad}");
        }
    }
}
