//! The processors of a collect entry (`"processors": [...]`), in order, with Filebeat's names:
//! parsed and validated here for every program (the agent, the transfer, `logctl`).
//!
//! - At the agent, before Kafka: `include_lines`, `exclude_lines` ([`LineFilter`]).
//! - At the transfer, on the document ([`Pipeline::apply`]): `decode_json`, `dissect`,
//!   `regex`, `timestamp`, `convert`, `add_fields`, `rename`, `drop_fields`,
//!   `truncate_fields`; each may have a `when` (`equals`, `regexp`, `has_fields`). Most
//!   pipelines are also worked out once per shape of document (`plan`), and a document they
//!   do not fail on is written by that plan ([`Pipeline::write_planned`]), the same bytes.
//!
//! A processor that fails on a document never drops it: what succeeded stays, the failure
//! goes to `error.message` and a tag `_{processor}_failure`, and the caller counts it.

mod dissect;
pub mod fields;
mod plan;
mod simple_layout;
mod timestamp;

use regex::bytes::RegexSet;
use regex::Regex;
use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::clock::Rfc3339;
use crate::collect::unknown_key;
pub use dissect::Tokenizer;
pub use fields::{write_plain, write_str, Fields, Leaf};
pub use timestamp::{parse_zone, Layout};

/// The agent's part: lines (whole events, after multiline) kept or dropped before Kafka.
#[derive(Debug, Clone, Default)]
pub struct LineFilter {
    /// In order: `true` for include_lines (keep only matches), `false` for exclude_lines.
    rules: Vec<(bool, RegexSet)>,
}

impl LineFilter {
    /// Whether `line` goes to Kafka.
    pub fn keeps(&self, line: &[u8]) -> bool {
        self.rules
            .iter()
            .all(|(include, set)| set.is_match(line) == *include)
    }

    /// Whether it keeps every line.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl PartialEq for LineFilter {
    fn eq(&self, other: &LineFilter) -> bool {
        let patterns = |f: &LineFilter| -> Vec<(bool, Vec<String>)> {
            f.rules
                .iter()
                .map(|(i, s)| (*i, s.patterns().to_vec()))
                .collect()
        };
        patterns(self) == patterns(other)
    }
}

impl Eq for LineFilter {}

impl std::hash::Hash for LineFilter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for (include, set) in &self.rules {
            include.hash(state);
            set.patterns().hash(state);
        }
    }
}

/// A collect entry's processors.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    /// What the agent does.
    pub lines: LineFilter,
    /// What the transfer does, in order.
    steps: Vec<Step>,
    /// The value as configured, for equality (a changed pipeline restarts nothing else).
    source: Value,
    /// Which pipeline this is, parsed once: what each thread's plans are kept by.
    id: u64,
}

impl PartialEq for Pipeline {
    fn eq(&self, other: &Pipeline) -> bool {
        self.source == other.source
    }
}

impl Eq for Pipeline {}

impl std::hash::Hash for Pipeline {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.to_string().hash(state);
    }
}

/// A processor's failure on one document: which processor, and what kind of failure
/// (`missing_field`, `no_match`, `bad_value`), for the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The processor's name.
    pub processor: &'static str,
    /// The kind of failure.
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
struct Step {
    name: &'static str,
    when: Option<Condition>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    DecodeJson {
        field: String,
        target: Option<String>,
        overwrite: bool,
    },
    Dissect {
        field: String,
        tokenizer: Tokenizer,
    },
    Regex {
        field: String,
        pattern: Regex,
    },
    Timestamp {
        field: String,
        layouts: Vec<Layout>,
        zone: chrono_tz::Tz,
        target: String,
    },
    Convert {
        fields: Vec<(String, Kind)>,
    },
    AddFields {
        fields: Map<String, Value>,
        tags: Vec<String>,
    },
    Rename {
        fields: Vec<(String, String)>,
    },
    DropFields {
        fields: Vec<String>,
    },
    TruncateFields {
        fields: Vec<String>,
        max_bytes: usize,
    },
}

/// A `convert` target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Float,
    Boolean,
    Keyword,
}

/// A `when` condition: all its parts must hold.
#[derive(Debug, Clone)]
enum Condition {
    Equals(Vec<(String, Value)>),
    Regexp(Vec<(String, Regex)>),
    HasFields(Vec<String>),
}

/// Every processor name, the agent's first.
const NAMES: [&str; 11] = [
    "include_lines",
    "exclude_lines",
    "decode_json",
    "dissect",
    "regex",
    "timestamp",
    "convert",
    "add_fields",
    "rename",
    "drop_fields",
    "truncate_fields",
];

impl Pipeline {
    /// Parses a `processors` value; the error names the processor (`processor 3 (dissect):
    /// ...`, counted from 0 like entries).
    pub fn parse(value: &Value) -> Result<Pipeline, String> {
        let Value::Array(items) = value else {
            return Err("processors: expected an array of {\"name\": {settings}} objects".into());
        };
        static PARSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut pipeline = Pipeline {
            source: value.clone(),
            id: PARSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Pipeline::default()
        };
        for (i, item) in items.iter().enumerate() {
            let (name, settings) = match item.as_object() {
                Some(obj) if obj.len() == 1 => obj.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", &Value::Null)),
                _ => return Err(format!("processor {i}: expected an object with one processor name, e.g. {{\"dissect\": {{...}}}}")),
            };
            let Some(&name) = NAMES.iter().find(|n| **n == name) else {
                return Err(format!(
                    "processor {i}: {}",
                    unknown_key(name, &NAMES).replacen("key", "processor", 1)
                ));
            };
            let at = |msg: String| format!("processor {i} ({name}): {msg}");
            match name {
                "include_lines" | "exclude_lines" => {
                    let set = regex_list(settings).map_err(at)?;
                    pipeline.lines.rules.push((name == "include_lines", set));
                }
                _ => pipeline.steps.push(step(name, settings).map_err(at)?),
            }
        }
        Ok(pipeline)
    }

    /// Whether there is nothing for the transfer to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the transfer's processors on `doc`, whose line was read at `read_ms`; returns
    /// the failures (also recorded in the document).
    pub fn apply<'a>(&'a self, doc: &mut Fields<'a>, read_ms: i64) -> Vec<Failure> {
        let mut failures = Vec::new();
        for step in &self.steps {
            if step.when.as_ref().is_some_and(|c| !c.holds(doc)) {
                continue;
            }
            if let Err((kind, message)) = step.op.run(doc, read_ms) {
                record_failure(doc, step.name, &message);
                failures.push(Failure {
                    processor: step.name,
                    kind,
                });
            }
        }
        failures
    }
}

/// Puts a failure into the document: `error.message` (appended), tag `_{name}_failure`.
fn record_failure(doc: &mut Fields<'_>, name: &str, message: &str) {
    let message = format!("{name}: {message}");
    let full = match doc.get("error.message").and_then(Value::as_str) {
        Some(before) => format!("{before}; {message}"),
        None => message,
    };
    doc.set("error.message".into(), json!(full));
    add_tag(doc, &format!("_{name}_failure"));
}

fn add_tag(doc: &mut Fields<'_>, tag: &str) {
    let Some(tags) = doc.get_mut("tags") else {
        doc.set("tags".into(), json!([tag]));
        return;
    };
    if !tags.is_array() {
        *tags = json!([tags.clone()]);
    }
    if let Value::Array(list) = tags {
        if !list.iter().any(|t| t == tag) {
            list.push(json!(tag));
        }
    }
}

type StepResult = Result<(), (&'static str, String)>;

fn missing(field: &str) -> (&'static str, String) {
    (
        "missing_field",
        format!("field {field:?} is missing or not text"),
    )
}

impl Op {
    fn run<'a>(&'a self, doc: &mut Fields<'a>, read_ms: i64) -> StepResult {
        match self {
            Op::DecodeJson {
                field,
                target,
                overwrite,
            } => {
                let text = text_of(doc, field)?;
                let decoded: Value = serde_json::from_str(&text)
                    .map_err(|e| ("bad_value", format!("field {field:?} is not JSON: {e}")))?;
                match (target.as_deref(), decoded) {
                    (Some(t), v) => doc.set(t.into(), v),
                    (None, Value::Object(obj)) => {
                        let doc = doc.tree();
                        for (k, v) in obj {
                            if *overwrite || !doc.contains_key(&k) {
                                doc.insert(k, v);
                            }
                        }
                    }
                    (None, other) => {
                        return Err((
                            "bad_value",
                            format!("field {field:?} is JSON but not an object: {other:.40}"),
                        ))
                    }
                }
            }
            Op::Dissect { field, tokenizer } => {
                // Cut from the record's own text, the values borrow from the record.
                let pairs = match doc.text_to_keep(field).ok_or_else(|| missing(field))? {
                    Cow::Borrowed(text) => tokenizer.dissect(text),
                    Cow::Owned(text) => tokenizer.dissect(&text).map(|pairs| {
                        let owned = |(k, v): (_, Cow<str>)| (k, Cow::Owned(v.into_owned()));
                        pairs.into_iter().map(owned).collect()
                    }),
                }
                .map_err(|e| ("no_match", e))?;
                doc.put_texts(pairs, tokenizer.in_path_order());
            }
            Op::Regex { field, pattern } => {
                let text = text_of(doc, field)?;
                let Some(caps) = pattern.captures(&text) else {
                    return Err(("no_match", format!("field {field:?} does not match")));
                };
                let found: Vec<(String, String)> = pattern
                    .capture_names()
                    .flatten()
                    .filter_map(|n| Some((n.to_string(), caps.name(n)?.as_str().to_string())))
                    .collect();
                for (k, v) in found {
                    doc.set(Cow::Owned(k), Value::String(v));
                }
            }
            Op::Timestamp {
                field,
                layouts,
                zone,
                target,
            } => {
                let text = text_of(doc, field)?;
                let ms = parse_time(layouts, *zone, &text, read_ms).ok_or_else(|| {
                    (
                        "no_match",
                        format!("{text:.60?} matches none of the layouts"),
                    )
                })?;
                doc.put(target.into(), Leaf::Time(Rfc3339::of(ms)));
            }
            Op::Convert { fields: list } => {
                let mut bad = Vec::new();
                for (field, kind) in list {
                    if doc.replace_text(field, |text| convert(text, *kind)) == Some(false) {
                        let value = doc.get(field).map(Value::to_string).unwrap_or_default();
                        bad.push(format!("{field:?} ({value}) is not {}", kind.name()));
                    }
                }
                if !bad.is_empty() {
                    return Err(("bad_value", bad.join(", ")));
                }
            }
            Op::AddFields { fields: add, tags } => {
                for (k, v) in add {
                    doc.set(k.into(), v.clone());
                }
                for tag in tags {
                    add_tag(doc, tag);
                }
            }
            Op::Rename { fields: pairs } => {
                for (from, to) in pairs {
                    if let Some(v) = doc.remove(from) {
                        doc.set(to.into(), v);
                    }
                }
            }
            Op::DropFields { fields: list } => {
                for field in list {
                    doc.remove(field);
                }
            }
            Op::TruncateFields {
                fields: list,
                max_bytes,
            } => {
                for field in list {
                    if let Some(Value::String(s)) = doc.get_mut(field) {
                        if s.len() > *max_bytes {
                            let mut end = *max_bytes;
                            while !s.is_char_boundary(end) {
                                end -= 1;
                            }
                            s.truncate(end);
                            doc.set("truncated".into(), json!(true));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The text of `field` (numbers as written), or a `missing_field` failure; borrowed from the
/// document where it can be, so that reading it copies nothing.
fn text_of<'d>(
    doc: &'d mut Fields<'_>,
    field: &str,
) -> Result<Cow<'d, str>, (&'static str, String)> {
    doc.text(field).ok_or_else(|| missing(field))
}

/// The time of `text` by the first of `layouts` that reads it.
fn parse_time(layouts: &[Layout], zone: chrono_tz::Tz, text: &str, read_ms: i64) -> Option<i64> {
    layouts
        .iter()
        .find_map(|l| l.parse_time(text, zone, read_ms))
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Integer => "an integer",
            Kind::Float => "a float",
            Kind::Boolean => "a boolean",
            Kind::Keyword => "a keyword",
        }
    }
}

/// The text of a value ([`fields::text`]) as `kind`, or `None` if it cannot be.
fn convert(text: &str, kind: Kind) -> Option<Value> {
    // Plain digits (a status, a size), as `parse` reads them, without trimming Unicode's
    // whitespace first and parsing with a sign and overflow in mind.
    if kind == Kind::Integer && (1..=18).contains(&text.len()) {
        let digits = text.as_bytes();
        if digits.iter().all(u8::is_ascii_digit) {
            return Some(Value::from(crate::clock::number(digits)));
        }
    }
    let text = text.trim();
    match kind {
        Kind::Integer => text
            .parse::<i64>()
            .ok()
            .or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .map(Value::from),
        Kind::Float => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        Kind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(json!(true)),
            "false" | "0" | "no" | "off" => Some(json!(false)),
            _ => None,
        },
        Kind::Keyword => Some(Value::String(text.to_string())),
    }
}

impl Condition {
    fn holds(&self, doc: &mut Fields<'_>) -> bool {
        match self {
            Condition::Equals(pairs) => pairs.iter().all(|(f, want)| {
                doc.get(f).is_some_and(|v| {
                    v == want || fields::text(v).is_some_and(|t| Some(t.as_ref()) == want.as_str())
                })
            }),
            Condition::Regexp(pairs) => pairs
                .iter()
                .all(|(f, re)| doc.text(f).is_some_and(|t| re.is_match(&t))),
            Condition::HasFields(list) => list.iter().all(|f| doc.get(f).is_some()),
        }
    }
}

/// The settings of processor `name`: an object with only the given keys.
fn settings<'a>(value: &'a Value, known: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(obj) = value else {
        return Err(format!("expected an object of settings, got {value}"));
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !known.contains(&k.as_str()) && *k != "when")
    {
        return Err(unknown_key(key, known));
    }
    Ok(obj)
}

fn string(obj: &Map<String, Value>, key: &str, default: Option<&str>) -> Result<String, String> {
    match (obj.get(key), default) {
        (Some(Value::String(s)), _) if !s.is_empty() => Ok(s.clone()),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!("missing {key}")),
        (Some(v), _) => Err(format!("{key}: expected a non-empty string, got {v}")),
    }
}

/// The object at `key`, with at least one member (`shape` shows one in the error).
fn non_empty_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    shape: &str,
) -> Result<&'a Map<String, Value>, String> {
    match obj.get(key).and_then(Value::as_object) {
        Some(map) if !map.is_empty() => Ok(map),
        _ => Err(format!("{key}: expected an object {shape}")),
    }
}

fn string_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match obj.get(key) {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(format!("{key}: expected non-empty strings, got {v}")),
            })
            .collect(),
        Some(v) => Err(format!(
            "{key}: expected a non-empty array of strings, got {v}"
        )),
        None => Err(format!("missing {key}")),
    }
}

fn regex_list(value: &Value) -> Result<RegexSet, String> {
    let Value::Array(list) = value else {
        return Err(format!(
            "expected an array of regular expressions, got {value}"
        ));
    };
    let mut patterns = Vec::new();
    for v in list {
        let Some(p) = v.as_str() else {
            return Err(format!("expected regular expressions as strings, got {v}"));
        };
        regex::bytes::Regex::new(p).map_err(|e| format!("{p:?}: {e}"))?;
        patterns.push(p);
    }
    if patterns.is_empty() {
        return Err("empty list".into());
    }
    RegexSet::new(patterns).map_err(|e| e.to_string())
}

fn step(name: &'static str, value: &Value) -> Result<Step, String> {
    let op = match name {
        "decode_json" => {
            let s = settings(value, &["field", "target", "overwrite_keys"])?;
            Op::DecodeJson {
                field: string(s, "field", Some("message"))?,
                target: s
                    .get("target")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                overwrite: match s.get("overwrite_keys") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(v) => {
                        return Err(format!("overwrite_keys: expected true or false, got {v}"))
                    }
                },
            }
        }
        "dissect" => {
            let s = settings(value, &["field", "tokenizer"])?;
            Op::Dissect {
                field: string(s, "field", Some("message"))?,
                tokenizer: Tokenizer::parse(&string(s, "tokenizer", None)?)
                    .map_err(|e| format!("tokenizer: {e}"))?,
            }
        }
        "regex" => {
            let s = settings(value, &["field", "pattern"])?;
            let p = string(s, "pattern", None)?;
            let pattern = Regex::new(&p).map_err(|e| format!("pattern {p:?}: {e}"))?;
            if pattern.capture_names().flatten().next().is_none() {
                return Err(format!(
                    "pattern {p:?}: no named group (?P<field>...) to set"
                ));
            }
            Op::Regex {
                field: string(s, "field", Some("message"))?,
                pattern,
            }
        }
        "timestamp" => {
            let s = settings(value, &["field", "layouts", "timezone", "target_field"])?;
            let layouts = string_list(s, "layouts")?
                .iter()
                .map(|l| Layout::parse(l))
                .collect::<Result<Vec<_>, _>>()?;
            Op::Timestamp {
                field: string(s, "field", None)?,
                layouts,
                zone: parse_zone(&string(s, "timezone", Some("UTC"))?)?,
                target: string(s, "target_field", Some("@timestamp"))?,
            }
        }
        "convert" => {
            let s = settings(value, &["fields"])?;
            let map = non_empty_object(
                s,
                "fields",
                "{\"field\": \"integer|float|boolean|keyword\"}",
            )?;
            let mut list = Vec::new();
            for (field, kind) in map {
                let kind = match kind.as_str() {
                    Some("integer" | "long") => Kind::Integer,
                    Some("float" | "double") => Kind::Float,
                    Some("boolean") => Kind::Boolean,
                    Some("keyword" | "string") => Kind::Keyword,
                    _ => {
                        return Err(format!(
                        "fields: {field:?}: type {kind} is not integer, float, boolean or keyword"
                    ))
                    }
                };
                list.push((field.clone(), kind));
            }
            Op::Convert { fields: list }
        }
        "add_fields" => {
            let s = settings(value, &["fields", "tags"])?;
            let fields = match s.get("fields") {
                None => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(v) => return Err(format!("fields: expected an object, got {v}")),
            };
            let tags = if s.contains_key("tags") {
                string_list(s, "tags")?
            } else {
                Vec::new()
            };
            if fields.is_empty() && tags.is_empty() {
                return Err("nothing to add: give fields or tags".into());
            }
            Op::AddFields { fields, tags }
        }
        "rename" => {
            let s = settings(value, &["fields"])?;
            let map = non_empty_object(s, "fields", "{\"from\": \"to\"}")?;
            let mut pairs = Vec::new();
            for (from, to) in map {
                match to.as_str() {
                    Some(to) if !to.is_empty() => pairs.push((from.clone(), to.to_string())),
                    _ => return Err(format!("fields: {from:?}: expected the new name, got {to}")),
                }
            }
            Op::Rename { fields: pairs }
        }
        "drop_fields" => {
            let s = settings(value, &["fields"])?;
            Op::DropFields {
                fields: string_list(s, "fields")?,
            }
        }
        "truncate_fields" => {
            let s = settings(value, &["fields", "max_bytes"])?;
            let max_bytes = match s.get("max_bytes").and_then(Value::as_u64) {
                Some(n) if n > 0 => n as usize,
                _ => return Err("max_bytes: expected a positive integer".into()),
            };
            Op::TruncateFields {
                fields: string_list(s, "fields")?,
                max_bytes,
            }
        }
        _ => unreachable!("only names of NAMES reach here"),
    };
    let when = match value.get("when") {
        None => None,
        Some(w) => Some(condition(w).map_err(|e| format!("when: {e}"))?),
    };
    Ok(Step { name, when, op })
}

fn condition(value: &Value) -> Result<Condition, String> {
    let obj =
        match value.as_object() {
            Some(obj) if obj.len() == 1 => obj,
            _ => return Err(
                "expected one of {\"equals\": {...}}, {\"regexp\": {...}}, {\"has_fields\": [...]}"
                    .into(),
            ),
        };
    let (kind, body) = obj
        .iter()
        .next()
        .map(|(k, v)| (k.as_str(), v))
        .unwrap_or(("", &Value::Null));
    let pairs = |body: &Value| -> Result<Vec<(String, Value)>, String> {
        match body.as_object() {
            Some(m) if !m.is_empty() => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            _ => Err(format!(
                "{kind}: expected an object {{\"field\": value}} naming at least one field"
            )),
        }
    };
    match kind {
        "equals" => Ok(Condition::Equals(pairs(body)?)),
        "regexp" => pairs(body)?
            .into_iter()
            .map(|(f, p)| {
                let p = p
                    .as_str()
                    .ok_or(format!("regexp: {f:?}: expected a regular expression"))?;
                Regex::new(p)
                    .map(|re| (f.clone(), re))
                    .map_err(|e| format!("regexp: {f:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Condition::Regexp),
        "has_fields" => {
            let list = match body.as_array() {
                Some(l) if !l.is_empty() => l,
                _ => return Err("has_fields: expected a non-empty array of field names".into()),
            };
            list.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or(format!("has_fields: expected names, got {v}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Condition::HasFields)
        }
        other => Err(format!("{:?} is not equals, regexp or has_fields", other)),
    }
}

#[cfg(test)]
mod tests;
