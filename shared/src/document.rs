//! Turns a Kafka record into an Elasticsearch document, its index and its id: what the
//! transfer indexes, and what `logctl pipeline test` shows before anything is put in etcd.
//!
//! The document uses ECS field names, so Kibana's Discover and Logs work on it: `@timestamp`
//! (the event's time when a `timestamp` processor found it, else the read time),
//! `event.created` (the read time), `event.ingested` (the indexing time), `agent.*`, the
//! origin, then whatever the entry's processors add. The id is a
//! hash of where the line came from (host, file identity, byte offset, from the agent's
//! key), or of where the record is in Kafka (topic, partition, offset) for records
//! written by another producer: a record delivered twice can never become two documents.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arrayvec::ArrayVec;
use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_128;

use crate::clock::{rfc3339_ms, Rfc3339};
use crate::pipeline::fields::Frames;
use crate::pipeline::{Failure, Fields, Leaf, Pipeline};
use crate::record::Origin;
use crate::routing::{Route, Routing};

/// Name of the index template the transfer installs for its indices.
pub const TEMPLATE: &str = "logcollect";
/// Name of the index template the transfer installs for its data streams.
pub const STREAM_TEMPLATE: &str = "logcollect-streams";

/// The index template for the indices `patterns`: the types of the document's fields, so
/// that `@timestamp` is a date and the origin fields are keywords for Discover's filters.
pub fn index_template(patterns: &[String]) -> Value {
    json!({
        "index_patterns": patterns,
        "priority": 200,
        "template": { "mappings": mappings() },
    })
}

/// The index template that declares the data streams `names` (exact names, so that on
/// Elasticsearch 8 it wins over the built-in `logs-*-*` template for them only), with the
/// same field types.
pub fn stream_template(names: &[String]) -> Value {
    json!({
        "index_patterns": names,
        "priority": 200,
        "data_stream": {},
        "template": { "mappings": mappings() },
    })
}

/// The types of the document's fields.
fn mappings() -> Value {
    json!({ "properties": {
            "@timestamp": { "type": "date" },
            "message": { "type": "text" },
            "host": { "properties": { "name": { "type": "keyword" } } },
            "log": { "properties": {
                "file": { "properties": {
                    "path": { "type": "keyword" },
                    "identity": { "type": "keyword" },
                } },
                "offset": { "type": "long" },
            } },
            "event": { "properties": {
                "dataset": { "type": "keyword" },
                "created": { "type": "date" },
                "ingested": { "type": "date" },
            } },
            "agent": { "properties": {
                "name": { "type": "keyword" },
                "version": { "type": "keyword" },
            } },
            "truncated": { "type": "boolean" },
            "tags": { "type": "keyword" },
            "error": { "properties": { "message": { "type": "text" } } },
            // What processors commonly produce (ECS); a malformed address is kept, not refused.
            "source": { "properties": { "ip": { "type": "ip", "ignore_malformed": true } } },
            "client": { "properties": { "ip": { "type": "ip", "ignore_malformed": true } } },
            "user": { "properties": { "name": { "type": "keyword" } } },
            "url": { "properties": { "original": { "type": "keyword" }, "path": { "type": "keyword" } } },
            "http": { "properties": {
                "request": { "properties": { "method": { "type": "keyword" } } },
                "response": { "properties": {
                    "status_code": { "type": "long" },
                    "body": { "properties": { "bytes": { "type": "long" } } },
                } },
            } },
            "user_agent": { "properties": { "original": { "type": "keyword" } } },
            "process": { "properties": { "name": { "type": "keyword" }, "pid": { "type": "long" } } },
            "service": { "properties": { "name": { "type": "keyword" } } },
            "data_stream": { "properties": {
                "type": { "type": "keyword" },
                "dataset": { "type": "keyword" },
                "namespace": { "type": "keyword" },
            } },
    } })
}

/// Where a record is in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A document id: 32 hex digits, kept in place (not a `String` allocated per document).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DocId([u8; 32]);

impl DocId {
    /// The id's bytes, hex digits.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The document id: 32 hex digits of xxh3-128 of `line\0{host}\0{file}\0{offset}`, or of
/// `kafka\0{topic}\0{partition}\0{offset}` for a record without the agent's origin.
pub fn document_id(origin: &Origin<'_>, pos: Position<'_>) -> DocId {
    // The key is written out into a buffer kept per thread and hashed in one call: xxh3's
    // streaming state, fed piece by piece, cost 7% of rendering a plain document.
    thread_local! {
        static KEY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let digest = KEY.with_borrow_mut(|key| {
        key.clear();
        let mut number = itoa::Buffer::new();
        match (&origin.host, &origin.file, origin.offset) {
            (Some(host), Some(file), Some(offset)) => {
                for part in [&b"line"[..], host.as_bytes(), file.as_bytes()] {
                    key.extend_from_slice(part);
                    key.push(0);
                }
                key.extend_from_slice(number.format(offset).as_bytes());
            }
            _ => {
                for part in [&b"kafka"[..], pos.topic.as_bytes()] {
                    key.extend_from_slice(part);
                    key.push(0);
                }
                key.extend_from_slice(number.format(pos.partition).as_bytes());
                key.push(0);
                key.extend_from_slice(number.format(pos.offset).as_bytes());
            }
        }
        xxh3_128(key)
    });
    // Byte by byte: `format!` and its formatting machinery cost more than the hashing.
    let mut id = [0; 32];
    for (pair, byte) in id.chunks_exact_mut(2).zip(digest.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    DocId(id)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The index for a record of `topic` with timestamp `timestamp_ms`: `pattern` with
/// `{topic}`, `%Y`, `%m`, `%d`, `%H` replaced (UTC), made valid for Elasticsearch.
pub fn index_name(pattern: &str, topic: &str, timestamp_ms: i64) -> Arc<str> {
    // The name changes at most each hour: the last one is kept per thread, since a thread
    // names every record's index (formatting it anew took 7% of its time), and shared with
    // the documents (a copy each was an allocation each).
    thread_local! {
        static LAST: std::cell::RefCell<(String, String, i64, Option<Arc<str>>)> =
            Default::default();
    }
    let hour = timestamp_ms.div_euclid(3_600_000);
    LAST.with_borrow_mut(|(p, t, h, name)| match name {
        Some(name) if (p.as_str(), t.as_str(), *h) == (pattern, topic, hour) => name.clone(),
        _ => {
            (*p, *t, *h) = (pattern.to_string(), topic.to_string(), hour);
            name.insert(format_index_name(pattern, topic, timestamp_ms).into())
                .clone()
        }
    })
}

fn format_index_name(pattern: &str, topic: &str, timestamp_ms: i64) -> String {
    let t = rfc3339_ms(timestamp_ms); // YYYY-MM-DDTHH:...
    let name = pattern
        .replace("{topic}", topic)
        .replace("%Y", &t[0..4])
        .replace("%m", &t[5..7])
        .replace("%d", &t[8..10])
        .replace("%H", &t[11..13]);
    sanitize_index(&name)
}

/// Characters Elasticsearch refuses in an index or data stream name.
pub const FORBIDDEN_IN_NAMES: &str = "\\/*?\"<>|,# :";

/// Lowercase; [`FORBIDDEN_IN_NAMES`] (`\ / * ? " < > | , #`, space, `:`) become `_`; no
/// leading `-`, `_`, `+`; not `.` or `..`; at most 255 bytes.
pub fn sanitize_index(name: &str) -> String {
    let mut s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if FORBIDDEN_IN_NAMES.contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    while s.starts_with(['-', '_', '+']) {
        s.remove(0);
    }
    if s.is_empty() || s == "." || s == ".." {
        s = format!("logs{s}");
    }
    while s.len() > 255 {
        s.pop();
    }
    s
}

/// A record as the transfer reads it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Where its line came from (the agent's key).
    pub origin: &'a Origin<'a>,
    /// Where it is in Kafka.
    pub pos: Position<'a>,
    /// Its timestamp: when the agent read the line.
    pub read_ms: i64,
    /// The line.
    pub payload: &'a [u8],
}

/// A record made a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Where it goes, and what its processors could not do.
    pub placed: Placed,
    /// Its `_source`.
    pub source: Value,
}

/// Where a document goes, and what its processors could not do: all of [`Rendered`] but the
/// document, which [`render_into`] writes out instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// The index it goes to.
    pub index: Arc<str>,
    /// Its `_id`.
    pub id: DocId,
    /// What its processors could not do (recorded in it too).
    pub failures: Vec<Failure>,
}

/// The document of `record` under `routing`, indexed at `ingested`: the base document,
/// then the processors of its collect entry; the index from the (final) `@timestamp`.
pub fn render(routing: &Routing, record: Record<'_>, ingested: Rfc3339) -> Rendered {
    let route = routing.route(record.pos.topic);
    let doc = base_fields(record, ingested, route);
    let (placed, doc) = processed(route, record, doc, Steps::of(route, record));
    Rendered {
        placed,
        source: doc.into_value(),
    }
}

/// [`render`], with the document written as JSON to `out`, without a tree of objects in
/// between unless a processor needed one. A record with neither processors nor JSON decoding,
/// the common case, is written as its fields are made, each after what the base document's
/// frames say goes before it; one with processors by their plan if they have one and do not
/// fail on it. Before the document, `head` writes
/// what goes in front of it knowing where it goes (a bulk action line), so that the document
/// is written in place, not copied behind it.
pub fn render_into(
    routing: &Routing,
    record: Record<'_>,
    ingested: Rfc3339,
    out: &mut Vec<u8>,
    mut head: impl FnMut(&Placed, &mut Vec<u8>),
) -> Placed {
    let route = routing.route(record.pos.topic);
    let steps = Steps::of(route, record);
    match steps {
        Steps {
            decode_json: false,
            pipeline: None,
        } => {
            let placed = placed(route, record, record.read_ms, Vec::new());
            head(&placed, out);
            let mut json = BASE_FRAMES.writer(out);
            base(record, ingested, route, |path, leaf| {
                json.leaf(path as usize, &leaf)
            });
            json.end();
            placed
        }
        Steps {
            decode_json: false,
            pipeline: Some(pipeline),
        } => {
            let mut leaves = BaseLeaves::new();
            let shape = base_leaves(record, ingested, route, &mut leaves);
            let planned = pipeline.write_planned(shape, &leaves, record.read_ms, out, |at, out| {
                let placed = placed(route, record, at, Vec::new());
                head(&placed, out);
                placed
            });
            match planned {
                Some(placed) => placed,
                None => {
                    let mut doc = Fields::default();
                    for (path, leaf) in leaves {
                        doc.push(path, leaf);
                    }
                    processed_into(route, record, doc, steps, out, head)
                }
            }
        }
        Steps {
            decode_json: true, ..
        } => processed_into(
            route,
            record,
            base_fields(record, ingested, route),
            steps,
            out,
            head,
        ),
    }
}

/// Writes the document `doc` (a record's base document) becomes once `steps` were done, after
/// what `head` writes knowing where it goes.
fn processed_into<'a>(
    route: Route<'a>,
    record: Record<'a>,
    doc: Fields<'a>,
    steps: Steps<'a>,
    out: &mut Vec<u8>,
    mut head: impl FnMut(&Placed, &mut Vec<u8>),
) -> Placed {
    let (placed, mut doc) = processed(route, record, doc, steps);
    head(&placed, out);
    doc.write_json(out);
    placed
}

/// What is done to a record's base document: its topic's JSON decoding, its entry's
/// processors.
#[derive(Clone, Copy)]
struct Steps<'a> {
    decode_json: bool,
    pipeline: Option<&'a Pipeline>,
}

impl<'a> Steps<'a> {
    fn of(route: Route<'a>, record: Record<'_>) -> Steps<'a> {
        Steps {
            decode_json: route.decode_json(),
            pipeline: route.pipeline(record.origin.entry.as_deref()),
        }
    }
}

/// The base document of `record` as fields for processors to change.
fn base_fields<'a>(record: Record<'a>, ingested: Rfc3339, route: Route<'a>) -> Fields<'a> {
    let mut doc = Fields::default();
    base(record, ingested, route, |path, leaf| {
        doc.push(BASE_PATHS[path as usize], leaf)
    });
    doc
}

/// Puts the base document of `record` in `leaves` (on the caller's stack) and returns its
/// shape (which paths it has, a bit per [`BasePath`]). A `Fields` allocated and dropped per
/// document was a tenth of rendering one by its pipeline's plan; an array of every path's
/// leaf, each made empty first, dropped twice and returned by copy, a twentieth.
fn base_leaves<'a>(
    record: Record<'a>,
    ingested: Rfc3339,
    route: Route<'a>,
    leaves: &mut BaseLeaves<'a>,
) -> u64 {
    let mut shape = 0;
    base(record, ingested, route, |path, leaf| {
        leaves.push((BASE_PATHS[path as usize], leaf));
        shape |= 1 << path as u64;
    });
    shape
}

/// The leaves of a base document, at most one per [`BASE_PATHS`].
type BaseLeaves<'a> = ArrayVec<(&'static str, Leaf<'a>), { BASE_PATHS.len() }>;

/// The fields of `record`'s document `doc` (its base document) once `steps` were done, and
/// where it goes.
fn processed<'a>(
    route: Route<'a>,
    record: Record<'a>,
    mut doc: Fields<'a>,
    Steps {
        decode_json,
        pipeline,
    }: Steps<'a>,
) -> (Placed, Fields<'a>) {
    if decode_json {
        if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(&text_of(record.payload)) {
            doc.set("json".into(), Value::Object(obj));
        }
    }
    let failures = match pipeline {
        Some(p) => p.apply(&mut doc, record.read_ms),
        None => Vec::new(),
    };
    // Only a processor or decoded JSON can have changed the time.
    let at = match decode_json || pipeline.is_some() {
        // Read as text: made a `Value`, a time the processors set would be copied.
        true => doc
            .text("@timestamp")
            .and_then(|t| crate::clock::parse_rfc3339_ms(&t))
            .unwrap_or(record.read_ms),
        false => record.read_ms,
    };
    (placed(route, record, at, failures), doc)
}

/// A line as text, a byte that is not UTF-8 replaced by U+FFFD.
fn text_of(line: &[u8]) -> Cow<'_, str> {
    // Checked first the fast way, with SIMD (std's check was 4% of rendering a document):
    // nearly every line is UTF-8.
    match simdutf8::basic::from_utf8(line) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

/// Where `record`'s document goes: the index of its time `at`.
fn placed(route: Route<'_>, record: Record<'_>, at: i64, failures: Vec<Failure>) -> Placed {
    Placed {
        index: route.index(at),
        id: document_id(record.origin, record.pos),
        failures,
    }
}

/// A path of the base document.
#[derive(Clone, Copy)]
enum BasePath {
    Timestamp,
    AgentName,
    AgentVersion,
    DataStreamDataset,
    DataStreamNamespace,
    DataStreamType,
    EventCreated,
    EventDataset,
    EventIngested,
    HostName,
    LogFileIdentity,
    LogFilePath,
    LogOffset,
    Message,
    Truncated,
}

/// Each [`BasePath`]'s path, in path order.
const BASE_PATHS: [&str; 15] = [
    "@timestamp",
    "agent.name",
    "agent.version",
    "data_stream.dataset",
    "data_stream.namespace",
    "data_stream.type",
    "event.created",
    "event.dataset",
    "event.ingested",
    "host.name",
    "log.file.identity",
    "log.file.path",
    "log.offset",
    "message",
    "truncated",
];

/// What goes around the values of a base document, whichever of the paths it has.
static BASE_FRAMES: LazyLock<Frames> = LazyLock::new(|| Frames::new(&BASE_PATHS));

/// The document before processors, leaf by leaf in path order: time, agent, data stream,
/// event (read and indexing times, dataset), host, origin, message.
fn base<'a>(
    record: Record<'a>,
    ingested: Rfc3339,
    route: Route<'a>,
    mut push: impl FnMut(BasePath, Leaf<'a>),
) {
    use BasePath::*;
    let origin = record.origin;
    let read = Rfc3339::of(record.read_ms);
    let text = |s: &'a str| Leaf::Text(Cow::Borrowed(s));
    push(Timestamp, Leaf::Time(read));
    if let Some((name, version)) = origin.agent.as_deref().and_then(|a| a.rsplit_once('/')) {
        push(AgentName, text(name));
        push(AgentVersion, text(version));
    }
    if let Some(stream) = route.data_stream() {
        push(DataStreamDataset, text(&stream.dataset));
        push(DataStreamNamespace, text(&stream.namespace));
        push(DataStreamType, text("logs"));
    }
    push(EventCreated, Leaf::Time(read));
    push(EventDataset, text(record.pos.topic));
    push(EventIngested, Leaf::Time(ingested));
    if let Some(name) = origin.host.as_deref() {
        push(HostName, text(name));
    }
    // The identity tells one file under this path from a later one (after a rotation): the
    // lines around a line (the console's "in context") are those of the same both.
    if let Some(path) = origin.path.as_deref() {
        if let Some(identity) = origin.file.as_deref() {
            push(LogFileIdentity, text(identity));
        }
        push(LogFilePath, text(path));
    }
    if let Some(offset) = origin.offset {
        push(LogOffset, Leaf::Value(offset.into()));
    }
    push(Message, Leaf::Text(text_of(record.payload)));
    if origin.truncated {
        push(Truncated, Leaf::Value(true.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin::of(
            None,
            [
                ("host", &b"web1"[..]),
                ("path", b"/var/log/a.log"),
                ("offset", b"42"),
                ("file", b"2049:77:1700000000000"),
                ("truncated", b"true"),
                ("other", b"x"),
            ]
            .into_iter(),
        )
    }

    const POS: Position = Position {
        topic: "web",
        partition: 3,
        offset: 9,
    };

    #[test]
    fn headers_and_ids() {
        let o = origin();
        assert_eq!(o.offset, Some(42));
        assert!(o.truncated);
        let id = document_id(&o, POS);
        assert_eq!(
            id.as_str(),
            format!(
                "{:032x}",
                xxh3_128(b"line\x00web1\x002049:77:1700000000000\x0042")
            )
        );
        assert_eq!(
            document_id(&Origin::default(), POS).as_str(),
            format!("{:032x}", xxh3_128(b"kafka\x00web\x003\x009"))
        );
        // Same line, other Kafka position (a re-sent record): same id.
        assert_eq!(
            id,
            document_id(
                &o,
                Position {
                    offset: 1000,
                    ..POS
                }
            )
        );
        // Another offset in the file: another id.
        assert_ne!(
            id,
            document_id(
                &Origin {
                    offset: Some(43),
                    ..o.clone()
                },
                POS
            )
        );
        // No agent headers: the Kafka position decides.
        let none = Origin::default();
        assert_eq!(document_id(&none, POS), document_id(&none, POS));
        assert_ne!(
            document_id(&none, POS),
            document_id(&none, Position { offset: 10, ..POS })
        );
    }

    #[test]
    fn timestamps_and_indices() {
        assert_eq!(
            &*index_name("{topic}-%Y.%m.%d", "Web_Log", 1_795_765_261_318),
            "web_log-2026.11.27"
        );
        assert_eq!(
            &*index_name("logs-{topic}-%Y.%m.%d.%H", "a", 1_795_765_261_318),
            "logs-a-2026.11.27.07"
        );
        // The name kept from the last call is not reused across an hour, a topic or a pattern.
        let hour = |ms| index_name("logs-{topic}-%Y.%m.%d.%H", "a", ms).to_string();
        assert_eq!(hour(1_795_765_261_318 + 3_600_000), "logs-a-2026.11.27.08");
        assert_eq!(hour(1_795_765_261_318), "logs-a-2026.11.27.07");
        assert_eq!(
            &*index_name("logs-{topic}-%Y.%m.%d.%H", "b", 1_795_765_261_318),
            "logs-b-2026.11.27.07"
        );
        assert_eq!(&*index_name("{topic}-%Y", "b", 1_795_765_261_318), "b-2026");
        assert_eq!(sanitize_index("_My Index*:x"), "my_index__x");
        assert_eq!(sanitize_index(".."), "logs..");
    }

    #[test]
    fn ecs_document() {
        let conf = br#"[{"path":"/var/log/a.log","topic":"web","json":true},
            {"path":"/var/log/b.log","topic":"plain"},
            {"path":"/var/log/c.log","topic":"stream","data_stream":{"dataset":"app"}}]"#;
        let entries = crate::collect::parse_collect_conf("k", conf).unwrap();
        let routing = Routing::new(&entries, "{topic}-%Y.%m.%d");
        let o = Origin {
            agent: Some("web1/0.1.0".into()),
            ..origin()
        };
        let record = Record {
            origin: &o,
            pos: POS,
            read_ms: 1_795_765_261_318,
            payload: b"{\"status\":200}",
        };
        let doc = render(&routing, record, Rfc3339::of(1_795_765_262_000)).source;
        assert_eq!(
            doc,
            json!({
                "@timestamp": "2026-11-27T07:41:01.318Z",
                "message": "{\"status\":200}",
                "event": {"dataset": "web", "created": "2026-11-27T07:41:01.318Z", "ingested": "2026-11-27T07:41:02.000Z"},
                "agent": {"name": "web1", "version": "0.1.0"},
                "host": {"name": "web1"},
                "log": {"file": {"path": "/var/log/a.log", "identity": "2049:77:1700000000000"}, "offset": 42},
                "truncated": true,
                "json": {"status": 200},
            })
        );
        // Written straight (no processors, no JSON decoding) or through a `Value`: the same
        // bytes, the same index and id.
        let written = |record: Record<'_>| {
            let mut out = Vec::new();
            let placed = render_into(
                &routing,
                record,
                Rfc3339::of(1_795_765_262_000),
                &mut out,
                |_, _| {},
            );
            let by_value = render(&routing, record, Rfc3339::of(1_795_765_262_000));
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                serde_json::to_string(&by_value.source).unwrap()
            );
            assert_eq!(placed, by_value.placed);
            serde_json::from_slice::<Value>(&out).unwrap()
        };
        let plain = |topic| Record {
            pos: Position { topic, ..POS },
            ..record
        };
        let doc = written(plain("plain"));
        assert_eq!(doc["message"], "{\"status\":200}");
        assert!(doc.get("json").is_none());
        let doc = written(plain("stream"));
        assert_eq!(
            doc["data_stream"],
            json!({"type": "logs", "dataset": "app", "namespace": "default"})
        );
        let none = Origin::default();
        let doc = written(Record {
            origin: &none,
            payload: b"caf\xe9",
            ..plain("plain")
        });
        assert_eq!(doc["message"], "caf\u{fffd}");
        assert!(doc.get("host").is_none() && doc.get("log").is_none());
        let only_offset = Origin {
            offset: Some(7),
            ..Origin::default()
        };
        let doc = written(Record {
            origin: &only_offset,
            ..plain("plain")
        });
        assert_eq!(doc["log"], json!({"offset": 7}));
    }

    #[test]
    fn rendered_with_the_entry_processors() {
        let conf = br#"[{"path":"/var/log/nginx/*.log","topic":"nginx","processors":[
            {"dissect":{"tokenizer":"%{source.ip} [%{ts}] %{http.response.status_code}"}},
            {"timestamp":{"field":"ts","layouts":["%d/%b/%Y:%H:%M:%S %z"]}},
            {"convert":{"fields":{"http.response.status_code":"integer"}}},
            {"drop_fields":{"fields":["ts"]}}]},
            {"path":"/var/log/other.log","topic":"nginx"}]"#;
        let entries = crate::collect::parse_collect_conf("k", conf).unwrap();
        let routing = Routing::new(&entries, "{topic}-%Y.%m.%d");
        let origin = Origin {
            entry: Some("/var/log/nginx/*.log".into()),
            agent: Some("web1/0.1.0".into()),
            ..origin()
        };
        let record = Record {
            origin: &origin,
            pos: Position {
                topic: "nginx",
                ..POS
            },
            read_ms: 1_795_765_261_318,
            payload: b"10.1.2.3 [26/Nov/2026:23:30:00 -0100] 503",
        };
        let r = render(&routing, record, Rfc3339::of(1_795_765_262_000));
        assert_eq!(r.placed.failures, []);
        // The index follows the event's day, not the day it was read.
        assert_eq!(&*r.placed.index, "nginx-2026.11.27");
        assert_eq!(r.source["@timestamp"], "2026-11-27T00:30:00.000Z");
        assert_eq!(
            r.source["event"],
            json!({"dataset": "nginx", "created": "2026-11-27T07:41:01.318Z", "ingested": "2026-11-27T07:41:02.000Z"})
        );
        assert_eq!(
            r.source["agent"],
            json!({"name": "web1", "version": "0.1.0"})
        );
        assert_eq!(r.source["http"]["response"]["status_code"], 503);
        assert!(r.source.get("ts").is_none());
        // Another entry of the same topic has no processors.
        let other = Origin {
            entry: Some("/var/log/other.log".into()),
            ..origin.clone()
        };
        let r = render(
            &routing,
            Record {
                origin: &other,
                ..record
            },
            Rfc3339::of(0),
        );
        assert!(r.source.get("source").is_none());
        assert_eq!(r.source["@timestamp"], "2026-11-27T07:41:01.318Z");
    }

    #[test]
    fn planned_as_the_processors_apply_them() {
        // Pipelines, lines and base shapes: written by a plan where there is one, the same
        // bytes, index and id as the processors applied to the document one by one.
        let pipelines = [
            // nginx's, as in the benchmark: planned.
            r#"[{"dissect":{"tokenizer":"%{source.ip} - %{user.name} [%{ts}] \"%{http.request.method} %{url.original} %{?proto}\" %{http.response.status_code} %{http.response.body.bytes}"}},
                {"timestamp":{"field":"ts","layouts":["%d/%b/%Y:%H:%M:%S %z"]}},
                {"convert":{"fields":{"http.response.status_code":"integer","http.response.body.bytes":"integer","nothing":"integer"}}},
                {"drop_fields":{"fields":["ts"]}}]"#,
            // Names on the way of base fields, or with base fields below them; a skip,
            // padding, a name below another (put one by one); a time elsewhere.
            r#"[{"dissect":{"tokenizer":"%{host} %{message->} %{log.file} %{?h2} %{ts} %{a} %{a.b}"}},
                {"timestamp":{"field":"ts","layouts":["UNIX_MS"],"target_field":"event.start"}},
                {"convert":{"fields":{"a.b":"float","log.file":"boolean"}}}]"#,
            // Given values, renamed and dropped leaves, a base field read as a time.
            r#"[{"add_fields":{"fields":{"labels.env":"prod","n":3,"list":[1,"x"]}}},
                {"timestamp":{"field":"event.created","layouts":["%Y-%m-%dT%H:%M:%S%.3fZ"],"target_field":"event.start"}},
                {"rename":{"fields":{"labels.env":"env","message":"message.text","missing":"x"}}},
                {"convert":{"fields":{"log.offset":"keyword"}}},
                {"drop_fields":{"fields":["agent.version","n"]}}]"#,
            // The time set, then moved away: the index is that of the read time.
            r#"[{"dissect":{"tokenizer":"%{t} %{rest}"}},
                {"timestamp":{"field":"t","layouts":["UNIX"]}},
                {"rename":{"fields":{"@timestamp":"when"}}}]"#,
            // Not planned: a condition, a dissect of a dissected value, tags, an object
            // given, an object dropped, a regex, an append.
            r#"[{"dissect":{"tokenizer":"%{a} %{b}","when":{"has_fields":["message"]}}}]"#,
            r#"[{"dissect":{"tokenizer":"%{a} %{b}"}},{"dissect":{"field":"b","tokenizer":"%{c}:%{d}"}}]"#,
            r#"[{"add_fields":{"fields":{"x":1},"tags":["t"]}}]"#,
            r#"[{"add_fields":{"fields":{"o":{"k":1}}}}]"#,
            r#"[{"drop_fields":{"fields":["event"]}}]"#,
            r#"[{"regex":{"field":"message","pattern":"^(?P<first>\\S+)"}}]"#,
            r#"[{"dissect":{"tokenizer":"%{a} %{+a} %{}"}}]"#,
        ];
        let payloads: [&[u8]; 7] = [
            b"203.0.113.9 - - [28/Nov/2026:10:00:01 +0100] \"GET /a?q=\\\"x\\\" HTTP/1.1\" 200 512",
            b"203.0.113.9 - bob [28/Nov/2026:10:00:01 +0100] \"GET / HTTP/1.1\" 2x0 512",
            b"203.0.113.9 - bob [28/Nov/2026:99:00:01 +0100] \"GET / HTTP/1.1\" 200 512",
            b"h1 m   true h2 1700000000123 x 2.5",
            b"1700000000 caf\xe9 \"quoted\"\tand tab",
            b"no match at all",
            b"b1 c:d",
        ];
        let full = origin();
        let agent = Origin {
            agent: Some("web1/0.1.0".into()),
            ..origin()
        };
        let none = Origin::default();
        let (mut planned, mut all) = (0, 0);
        for (n, processors) in pipelines.iter().enumerate() {
            let conf = format!(r#"[{{"path":"/p","topic":"t","processors":{processors}}}]"#);
            let entries = crate::collect::parse_collect_conf("k", conf.as_bytes()).unwrap();
            let routing = Routing::new(&entries, "{topic}-%Y.%m.%d");
            let route = routing.route("t");
            let pipeline = route.pipeline(None).unwrap();
            // Shapes one after another, and back: a plan per shape.
            for origin in [&full, &none, &agent, &full] {
                for payload in payloads {
                    let record = Record {
                        origin,
                        pos: Position { topic: "t", ..POS },
                        // The last millisecond of a day: the index tells the read time from
                        // a time one later.
                        read_ms: 1_795_823_999_999,
                        payload,
                    };
                    let ingested = Rfc3339::of(1_795_765_262_000);
                    let head = |placed: &Placed, out: &mut Vec<u8>| {
                        out.extend_from_slice(placed.index.as_bytes());
                        out.extend_from_slice(placed.id.as_bytes());
                    };
                    let mut by_plan = Vec::new();
                    let placed = render_into(&routing, record, ingested, &mut by_plan, head);
                    let base = base_fields(record, ingested, route);
                    let (want, mut doc) = processed(route, record, base, Steps::of(route, record));
                    let mut applied = Vec::new();
                    head(&want, &mut applied);
                    doc.write_json(&mut applied);
                    let context =
                        format!("pipeline {n}, line {:?}", String::from_utf8_lossy(payload));
                    assert_eq!(
                        String::from_utf8(by_plan).unwrap(),
                        String::from_utf8(applied).unwrap(),
                        "{context}"
                    );
                    assert_eq!(placed, want, "{context}");
                    let mut base = BaseLeaves::new();
                    let shape = base_leaves(record, ingested, route, &mut base);
                    let written = pipeline.write_planned(
                        shape,
                        &base,
                        record.read_ms,
                        &mut Vec::new(),
                        |_, _| (),
                    );
                    // A plan writes exactly the documents no processor failed on.
                    if n < 4 {
                        assert_eq!(written.is_some(), want.failures.is_empty(), "{context}");
                    } else {
                        assert!(written.is_none(), "{context}");
                    }
                    planned += usize::from(written.is_some());
                    all += 1;
                }
            }
        }
        assert_eq!((planned, all), (40, 308));
    }
}
