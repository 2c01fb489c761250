//! The JSON values kept in etcd.
//!
//! `collect_log_conf` is an array of `{"path": ..., "topic": ...}` as in the original design,
//! with optional fields for later features. `elasticsearch_config` is
//! `{"api_key": ..., "url_address": [...]}` with optional basic-auth credentials.
//! A value is validated as a whole: one bad entry rejects it, and the caller keeps its last
//! good configuration.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};

use crate::document::FORBIDDEN_IN_NAMES;
use crate::pipeline::Pipeline;
use crate::settings::check_url;
use crate::{Error, Result};

/// Where a tailer starts in a file it sees for the first time when its entry is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartAt {
    /// At the end, as the original design did: only new lines are shipped.
    #[default]
    End,
    /// At the beginning: the whole file is shipped.
    Beginning,
}

/// One entry of `collect_log_conf`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollectEntry {
    /// A file, a directory (its regular files) or a glob.
    pub path: String,
    /// Kafka topic the lines go to.
    pub topic: String,
    /// Regex that starts a new multiline event; other lines join the previous one.
    pub multiline_start: Option<String>,
    /// How long an unfinished multiline event waits for more lines.
    pub multiline_timeout: Duration,
    /// Start position for files that exist when the entry is first applied.
    pub start: StartAt,
    /// Whether the transfer decodes lines that are JSON objects.
    pub json: bool,
    /// Elasticsearch index for this entry, instead of the transfer's pattern.
    pub index: Option<String>,
    /// The data stream its documents go to, instead of an index.
    pub data_stream: Option<DataStream>,
    /// The processors: line filters at the agent, document processors at the transfer.
    pub processors: Pipeline,
}

impl CollectEntry {
    /// Whether the agent reads `other` exactly as this one: the same file, topic, multiline,
    /// start and line filters (what only the transfer does may differ).
    pub fn same_for_agent(&self, other: &CollectEntry) -> bool {
        self.path == other.path
            && self.topic == other.topic
            && self.multiline_start == other.multiline_start
            && self.multiline_timeout == other.multiline_timeout
            && self.start == other.start
            && self.processors.lines == other.processors.lines
    }
}

/// A data stream as Elasticsearch names them: `logs-{dataset}-{namespace}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataStream {
    /// What the logs are, e.g. `nginx.access`.
    pub dataset: String,
    /// Which of them, e.g. `prod` (default `default`).
    pub namespace: String,
    /// Made once: every document of the stream names it.
    name: Arc<str>,
}

impl DataStream {
    /// The stream's name.
    pub fn name(&self) -> Arc<str> {
        self.name.clone()
    }

    fn parse(v: &Value) -> std::result::Result<DataStream, String> {
        let Value::Object(obj) = v else {
            return Err(format!("data_stream: expected an object, got {}", kind(v)));
        };
        const KEYS: [&str; 2] = ["dataset", "namespace"];
        if let Some(key) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("data_stream: {}", unknown_key(key, &KEYS)));
        }
        let part = |field: &str, default: Option<&str>| {
            let value = match (optional_str(obj, field)?, default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => return Err(format!("data_stream: missing {field}")),
            };
            check_stream_part(&value)
                .map_err(|m| format!("data_stream: {field} {value:?}: {m}"))?;
            Ok(value)
        };
        let (dataset, namespace) = (part("dataset", None)?, part("namespace", Some("default"))?);
        Ok(DataStream {
            name: format!("logs-{dataset}-{namespace}").into(),
            dataset,
            namespace,
        })
    }
}

/// Elasticsearch's rules for a data stream's dataset and namespace: lowercase, none of
/// [`FORBIDDEN_IN_NAMES`], no `-`, at most 100 bytes.
fn check_stream_part(part: &str) -> std::result::Result<(), String> {
    if part.len() > 100 {
        return Err(format!("{} bytes, at most 100", part.len()));
    }
    match part
        .chars()
        .find(|c| c.is_uppercase() || *c == '-' || FORBIDDEN_IN_NAMES.contains(*c))
    {
        Some(c) => Err(format!(
            "invalid character {c:?} (lowercase, no - or spaces)"
        )),
        None => Ok(()),
    }
}

/// The keys a collect entry may have.
const ENTRY_KEYS: [&str; 9] = [
    "path",
    "topic",
    "multiline_start",
    "multiline_timeout_ms",
    "start",
    "json",
    "index",
    "data_stream",
    "processors",
];

/// Default of `multiline_timeout_ms`.
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Parses and validates a `collect_log_conf` value read from etcd key `key`.
pub fn parse_collect_conf(key: &str, raw: &[u8]) -> Result<Vec<CollectEntry>> {
    let invalid = |msg: String| Error::Invalid {
        key: key.to_string(),
        msg,
    };
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(invalid(format!(
            "expected a JSON array of {{\"path\", \"topic\"}} objects, got {}",
            kind(&value)
        )));
    };
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // A processor's error starts with "(path)": "entry 2 (/var/log/x.log): processor 3 ...".
        let entry = parse_entry(item).map_err(|msg| {
            let sep = if msg.starts_with('(') { " " } else { ": " };
            invalid(format!("entry {i}{sep}{msg}"))
        })?;
        if !seen.insert(entry.path.clone()) {
            return Err(invalid(format!(
                "entry {i}: duplicate path {:?}",
                entry.path
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn parse_entry(item: &Value) -> std::result::Result<CollectEntry, String> {
    let Value::Object(obj) = item else {
        return Err(format!("expected an object, got {}", kind(item)));
    };
    // A typo would otherwise be a setting that silently does nothing.
    if let Some(key) = obj.keys().find(|k| !ENTRY_KEYS.contains(&k.as_str())) {
        return Err(unknown_key(key, &ENTRY_KEYS));
    }
    let path = required_str(obj, "path")?;
    let topic = required_str(obj, "topic")?;
    check_topic(&topic).map_err(|m| format!("topic {topic:?}: {m}"))?;
    let multiline_start = optional_str(obj, "multiline_start")?;
    if let Some(re) = &multiline_start {
        regex::Regex::new(re).map_err(|e| format!("multiline_start {re:?}: {e}"))?;
    }
    let multiline_timeout = match obj.get("multiline_timeout_ms") {
        None | Some(Value::Null) => DEFAULT_MULTILINE_TIMEOUT,
        Some(v) => match v.as_u64() {
            Some(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return Err(format!(
                    "multiline_timeout_ms: expected a positive integer, got {v}"
                ))
            }
        },
    };
    let start = match optional_str(obj, "start")?.as_deref() {
        None | Some("end") => StartAt::End,
        Some("beginning") => StartAt::Beginning,
        Some(other) => return Err(format!("start: {other:?} is not \"beginning\" or \"end\"")),
    };
    let json = match obj.get("json") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("json: expected true or false, got {v}")),
    };
    let index = optional_str(obj, "index")?;
    let data_stream = match obj.get("data_stream") {
        None | Some(Value::Null) => None,
        Some(v) => Some(DataStream::parse(v)?),
    };
    if index.is_some() && data_stream.is_some() {
        return Err("index and data_stream: give one, not both".into());
    }
    let processors = match obj.get("processors") {
        None | Some(Value::Null) => Pipeline::default(),
        Some(v) => Pipeline::parse(v).map_err(|e| format!("({}): {e}", path.trim()))?,
    };
    Ok(CollectEntry {
        path: path.trim().to_string(),
        topic,
        multiline_start,
        multiline_timeout,
        start,
        json,
        index,
        data_stream,
        processors,
    })
}

fn required_str(obj: &Map<String, Value>, field: &str) -> std::result::Result<String, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(format!("missing {field}")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("{field} is empty")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(format!("{field}: expected a string, got {}", kind(v))),
    }
}

fn optional_str(
    obj: &Map<String, Value>,
    field: &str,
) -> std::result::Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{field}: expected a string, got {}", kind(v))),
    }
}

/// Checks Kafka's rules for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic(topic: &str) -> std::result::Result<(), String> {
    if topic == "." || topic == ".." {
        return Err("\".\" and \"..\" are not allowed".into());
    }
    if topic.len() > 249 {
        return Err(format!("{} characters, Kafka allows 249", topic.len()));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "invalid character {c:?} (Kafka allows a-z A-Z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// `unknown key "multline_start" (did you mean "multiline_start"?)`: the nearest of `known`
/// is suggested when it is close enough to be a typo.
pub(crate) fn unknown_key(key: &str, known: &[&str]) -> String {
    match crate::typo::nearest(key, known.iter().copied()) {
        Some(k) => format!("unknown key {key:?} (did you mean {k:?}?)"),
        None => format!("unknown key {key:?} (known: {})", known.join(", ")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value of `elasticsearch_config`.
#[derive(Clone, PartialEq, Eq)]
pub struct EsConfig {
    /// Base URLs of the cluster's nodes, used round-robin.
    pub urls: Vec<String>,
    /// Sent as `Authorization: ApiKey <api_key>` when set: the `encoded` value Elasticsearch
    /// gives, or `id:api_key`, which is encoded here.
    pub api_key: Option<String>,
    /// Basic-auth user, with `password`.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
}

impl EsConfig {
    /// The `Authorization` header value, if the config has credentials.
    pub fn authorization(&self) -> Option<String> {
        if let Some(key) = &self.api_key {
            // An encoded key is base64, which has no ':'.
            return Some(if key.contains(':') {
                format!("ApiKey {}", B64.encode(key))
            } else {
                format!("ApiKey {key}")
            });
        }
        let (user, password) = (self.username.as_ref()?, self.password.as_ref()?);
        Some(format!(
            "Basic {}",
            B64.encode(format!("{user}:{password}"))
        ))
    }
}

impl fmt::Debug for EsConfig {
    // Credentials never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("EsConfig")
            .field("urls", &self.urls)
            .field("api_key", &secret(&self.api_key))
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .finish()
    }
}

/// Parses and validates an `elasticsearch_config` value read from etcd key `key`.
pub fn parse_es_config(key: &str, raw: &[u8]) -> Result<EsConfig> {
    let invalid = |msg: String| Error::Invalid {
        key: key.to_string(),
        msg,
    };
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(invalid(format!(
            "expected an object {{\"api_key\", \"url_address\"}}, got {}",
            kind(&value)
        )));
    };
    let urls = match obj.get("url_address") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|u| match u.as_str() {
                Some(s) => check_url(s)
                    .map(|()| s.trim_end_matches('/').to_string())
                    .map_err(|m| invalid(format!("url_address: {m}"))),
                None => Err(invalid(format!("url_address: expected strings, got {u}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        // A single URL as a plain string is accepted too.
        Some(Value::String(s)) => {
            check_url(s).map_err(|m| invalid(format!("url_address: {m}")))?;
            vec![s.trim_end_matches('/').to_string()]
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(invalid("url_address: missing or empty".into()))
        }
        Some(v) => {
            return Err(invalid(format!(
                "url_address: expected an array of URLs, got {}",
                kind(v)
            )))
        }
    };
    let field = |name: &str| optional_str(obj, name).map_err(invalid);
    let (username, password) = (field("username")?, field("password")?);
    if username.is_some() != password.is_some() {
        return Err(invalid("username and password go together".into()));
    }
    Ok(EsConfig {
        urls,
        api_key: field("api_key")?,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        parse_collect_conf("collect_log_conf", raw.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn original_format() {
        let e = parse_collect_conf(
            "k",
            br#"[{"path":"/var/log/a.log","topic":"web_log"},{"path":"/var/log/b/*.log","topic":"b"}]"#,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, "/var/log/a.log");
        assert_eq!(e[0].topic, "web_log");
        assert_eq!(e[0].start, StartAt::End);
        assert_eq!(e[0].multiline_timeout, DEFAULT_MULTILINE_TIMEOUT);
        assert!(!e[1].json);
    }

    #[test]
    fn optional_fields() {
        let e = parse_collect_conf(
            "k",
            br#"[{"path":"/a","topic":"t","multiline_start":"^\\d{4}-","multiline_timeout_ms":250,
                 "start":"beginning","json":true,"index":"app-logs"}]"#,
        )
        .unwrap();
        assert_eq!(e[0].multiline_start.as_deref(), Some("^\\d{4}-"));
        assert_eq!(e[0].multiline_timeout, Duration::from_millis(250));
        assert_eq!(e[0].start, StartAt::Beginning);
        assert!(e[0].json);
        assert_eq!(e[0].index.as_deref(), Some("app-logs"));
    }

    #[test]
    fn unknown_keys_and_processor_errors_are_named() {
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t"},{"path":"/b","topic":"t","multline_start":"^x"}]"#),
            "etcd key \"collect_log_conf\": entry 1: unknown key \"multline_start\" (did you mean \"multiline_start\"?)"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t","owner":"ops"}]"#),
            "etcd key \"collect_log_conf\": entry 0: unknown key \"owner\" (known: path, topic, multiline_start, multiline_timeout_ms, start, json, index, data_stream, processors)"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t","data_stream":{"dataset":"Nginx-access"}}]"#),
            "etcd key \"collect_log_conf\": entry 0: data_stream: dataset \"Nginx-access\": invalid character 'N' (lowercase, no - or spaces)"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t","data_stream":{"namespace":"prod"}}]"#),
            "etcd key \"collect_log_conf\": entry 0: data_stream: missing dataset"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t","index":"x","data_stream":{"dataset":"a"}}]"#),
            "etcd key \"collect_log_conf\": entry 0: index and data_stream: give one, not both"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t","data_stream":{"dataset":"a","namspace":"b"}}]"#),
            "etcd key \"collect_log_conf\": entry 0: data_stream: unknown key \"namspace\" (did you mean \"namespace\"?)"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t"},{"path":"/b","topic":"t"},
                    {"path":"/var/log/nginx/access.log","topic":"t","processors":[
                      {"exclude_lines":["x"]},{"add_fields":{"tags":["a"]}},{"drop_fields":{"fields":["a"]}},
                      {"dissect":{"tokenizer":"%{a}%{b}"}}]}]"#),
            "etcd key \"collect_log_conf\": entry 2 (/var/log/nginx/access.log): processor 3 (dissect): tokenizer: two keys without a delimiter between them at byte 4"
        );
    }

    #[test]
    fn precise_errors() {
        assert_eq!(
            err(r#"{"path":"/a"}"#),
            "etcd key \"collect_log_conf\": expected a JSON array of {\"path\", \"topic\"} objects, got an object"
        );
        assert!(err("[{").starts_with("etcd key \"collect_log_conf\": not valid JSON: "));
        assert_eq!(
            err(r#"[{"topic":"t"}]"#),
            "etcd key \"collect_log_conf\": entry 0: missing path"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t"},{"path":"/b","topic":""}]"#),
            "etcd key \"collect_log_conf\": entry 1: topic is empty"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"web log"}]"#),
            "etcd key \"collect_log_conf\": entry 0: topic \"web log\": invalid character ' ' (Kafka allows a-z A-Z 0-9 . _ -)"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t"},{"path":"/a","topic":"u"}]"#),
            "etcd key \"collect_log_conf\": entry 1: duplicate path \"/a\""
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":".."}]"#),
            "etcd key \"collect_log_conf\": entry 0: topic \"..\": \".\" and \"..\" are not allowed"
        );
        assert_eq!(
            err(r#"[{"path":"/a","topic":"t","start":"middle"}]"#),
            "etcd key \"collect_log_conf\": entry 0: start: \"middle\" is not \"beginning\" or \"end\""
        );
        assert!(err(r#"[{"path":"/a","topic":"t","multiline_start":"("}]"#)
            .starts_with("etcd key \"collect_log_conf\": entry 0: multiline_start \"(\": "));
        assert_eq!(
            err(r#"[{"path":5,"topic":"t"}]"#),
            "etcd key \"collect_log_conf\": entry 0: path: expected a string, got a number"
        );
        assert_eq!(
            err(r#"["x"]"#),
            "etcd key \"collect_log_conf\": entry 0: expected an object, got a string"
        );
    }

    #[test]
    fn topic_length_limit() {
        assert!(check_topic(&"a".repeat(249)).is_ok());
        assert!(check_topic(&"a".repeat(250)).is_err());
    }

    #[test]
    fn es_config() {
        let c = parse_es_config(
            "elasticsearch_config",
            br#"{"api_key":"abc","url_address":["http://127.0.0.1:9200/","https://es2:9200"]}"#,
        )
        .unwrap();
        assert_eq!(c.urls, ["http://127.0.0.1:9200", "https://es2:9200"]);
        assert_eq!(c.api_key.as_deref(), Some("abc"));
        assert!(!format!("{c:?}").contains("abc"));

        let c = parse_es_config(
            "k",
            br#"{"api_key":"","url_address":["http://h:1"],"username":"u","password":"p"}"#,
        )
        .unwrap();
        assert_eq!(c.api_key, None);
        assert_eq!(c.username.as_deref(), Some("u"));

        let e = |raw: &str| {
            parse_es_config("k", raw.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(r#"{"url_address":[]}"#),
            "etcd key \"k\": url_address: missing or empty"
        );
        assert_eq!(
            e(r#"{"url_address":["es:9200"]}"#),
            "etcd key \"k\": url_address: \"es:9200\" is not an http:// or https:// URL"
        );
        // Credentials in a URL would end up in logs: refused, and not repeated in the error.
        assert_eq!(
            e(r#"{"url_address":["https://elastic:s3cret@es1:9200/x"]}"#),
            "etcd key \"k\": url_address: \"https://…@es1:9200\" has credentials in it: \
             give them as username and password"
        );
        assert_eq!(
            e(r#"{"url_address":["http://:9200"]}"#),
            "etcd key \"k\": url_address: \"http://:9200\" has no host"
        );
        assert_eq!(
            e(r#"{"url_address":["http://h:1"],"username":"u"}"#),
            "etcd key \"k\": username and password go together"
        );
        assert!(e("[]").contains("expected an object"));
    }
}
