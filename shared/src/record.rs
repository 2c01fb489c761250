//! The record contract between `log-agent` and `log-transfer`: the Kafka key of a line's
//! record, the headers it carries, and the file identity among them. The agent encodes them
//! ([`key`], [`identity`], [`LineHeaders`]); the transfer decodes them ([`Origin`]). Both
//! directions live here, so the two binaries cannot drift apart.

use std::borrow::Cow;
use std::io::Write;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};

use crate::kafka::KafkaSettings;

/// Header: the host name of the agent that read the line.
pub const HOST: &str = "host";
/// Header: the path the file was tailed under.
pub const PATH: &str = "path";
/// Header: the byte offset of the line's first byte in its file, in decimal.
pub const OFFSET: &str = "offset";
/// Header: the file identity, see [`identity`].
pub const FILE: &str = "file";
/// Header, present only on a line cut at `max_line_bytes`: `true`.
pub const TRUNCATED: &str = "truncated";
/// Header: the `path` of the collect entry the file belongs to (a file, directory or glob), so
/// the transfer runs that entry's processors.
pub const ENTRY: &str = "entry";
/// Header: the agent that read the line, `name/version` (ECS `agent.name`, `agent.version`).
pub const AGENT: &str = "agent";

/// Header of a dead letter: why the store refused the record.
pub const DLQ_REASON: &str = "dlq.reason";
/// Header of a dead letter: where the record was, `topic/partition/offset`.
pub const DLQ_SOURCE: &str = "dlq.source";

/// The dead-letter topic of `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// The topic of a `dlq.source` header value (`topic/partition/offset`).
pub fn dlq_source_topic(source: &str) -> Option<&str> {
    let mut parts = source.rsplitn(3, '/');
    let (_, _, topic) = (parts.next()?, parts.next()?, parts.next()?);
    Some(topic)
}

/// The file identity `dev:ino:generation`: device and inode, and when this content of the
/// inode was first seen (ms since the epoch), so new content never shares an identity.
pub fn identity(dev: u64, ino: u64, generation: i64) -> String {
    format!("{dev}:{ino}:{generation}")
}

/// The Kafka key of a file's records: host name and path, so that one file's lines stay in
/// one partition, in order.
pub fn key(host: &str, path: &str) -> Vec<u8> {
    format!("{host}{path}").into_bytes()
}

/// The settings of the agent's producer, `client.id` and the largest record aside: what
/// `lc-bare produce`, the benchmark's reference, uses too.
pub fn line_producer(kafka: &KafkaSettings, client_id: &str, max_message: usize) -> ClientConfig {
    let mut config = kafka.client();
    config
        .set("client.id", client_id)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        // Never give up on a record; the registry waits for it.
        .set("message.timeout.ms", "0")
        // Bounded memory: past either limit, send() says the queue is full. The count matters
        // for short lines: each record also holds its key and headers.
        .set("queue.buffering.max.kbytes", "16384")
        .set("queue.buffering.max.messages", "20000")
        .set("message.max.bytes", max_message.to_string());
    config
}

/// The consumer settings the transfer reads records with (and the bench's bare consumer, so
/// that the two compare): group `group_id`, offsets committed by hand, from the earliest.
pub fn line_consumer(kafka: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = kafka.client();
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Bounded memory: librdkafka's prefetch queue.
        .set("queued.max.messages.kbytes", "16384")
        // A full prefetch queue postpones the next fetch by this much (1 s by default): a
        // consumer that empties 16 MiB in less then waited with nothing to read, and indexed
        // one partition at 110k records/s in bursts of 200k/s.
        .set("fetch.queue.backoff.ms", "20");
    config
}

/// The headers of one line's record, as the agent sends them.
#[derive(Debug, Clone, Copy)]
pub struct LineHeaders<'a> {
    /// [`HOST`].
    pub host: &'a str,
    /// [`PATH`].
    pub path: &'a str,
    /// [`OFFSET`].
    pub offset: u64,
    /// [`FILE`]: the file's [`identity`].
    pub file: &'a str,
    /// [`TRUNCATED`].
    pub truncated: bool,
    /// [`ENTRY`].
    pub entry: &'a str,
    /// [`AGENT`].
    pub agent: &'a str,
}

impl LineHeaders<'_> {
    /// How many headers [`LineHeaders::fold`] gives.
    pub fn count(&self) -> usize {
        6 + usize::from(self.truncated)
    }

    /// The headers as librdkafka takes them, in a list sized for them.
    pub fn to_kafka(&self) -> OwnedHeaders {
        self.fold(
            OwnedHeaders::new_with_capacity(self.count()),
            |h, key, v| {
                h.insert(Header {
                    key,
                    value: Some(v),
                })
            },
        )
    }

    /// Folds every header, as (name, value) in the order they are sent, into `init`: the
    /// caller builds its client's header list without an intermediate one.
    pub fn fold<T>(&self, init: T, mut add: impl FnMut(T, &'static str, &[u8]) -> T) -> T {
        // Written on the stack: a `String` per line was one of the agent's allocations per line.
        let mut digits = [0u8; 20];
        let mut cursor = std::io::Cursor::new(&mut digits[..]);
        // 20 bytes hold any u64.
        let _ = write!(cursor, "{}", self.offset);
        let len = cursor.position() as usize;
        let mut acc = add(init, HOST, self.host.as_bytes());
        acc = add(acc, PATH, self.path.as_bytes());
        acc = add(acc, OFFSET, &digits[..len]);
        acc = add(acc, FILE, self.file.as_bytes());
        acc = add(acc, ENTRY, self.entry.as_bytes());
        acc = add(acc, AGENT, self.agent.as_bytes());
        if self.truncated {
            acc = add(acc, TRUNCATED, b"true");
        }
        acc
    }
}

/// What the transfer reads back from a record's headers: where its line came from. Every
/// field is optional, since records of other producers carry none of them. The texts borrow
/// from the headers where they are UTF-8 (always, from the agent): nothing is copied per record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// [`HOST`].
    pub host: Option<Cow<'a, str>>,
    /// [`PATH`].
    pub path: Option<Cow<'a, str>>,
    /// [`OFFSET`].
    pub offset: Option<u64>,
    /// [`FILE`].
    pub file: Option<Cow<'a, str>>,
    /// [`TRUNCATED`].
    pub truncated: bool,
    /// [`ENTRY`].
    pub entry: Option<Cow<'a, str>>,
    /// [`AGENT`].
    pub agent: Option<Cow<'a, str>>,
}

impl<'a> Origin<'a> {
    /// Reads the agent's headers; unknown ones are ignored.
    pub fn from_headers(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Origin<'a> {
        let mut o = Origin::default();
        for (key, value) in headers {
            let text = || String::from_utf8_lossy(value);
            match key {
                HOST => o.host = Some(text()),
                PATH => o.path = Some(text()),
                OFFSET => o.offset = text().parse().ok(),
                FILE => o.file = Some(text()),
                TRUNCATED => o.truncated = value == b"true",
                ENTRY => o.entry = Some(text()),
                AGENT => o.agent = Some(text()),
                _ => {}
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_names() {
        assert_eq!(dlq_topic("web"), "web.dlq");
        assert_eq!(dlq_source_topic("web/3/41"), Some("web"));
        assert_eq!(dlq_source_topic("a/b/3/41"), Some("a/b"));
        assert_eq!(dlq_source_topic("web/3"), None);
    }

    /// What the agent encodes, the transfer decodes to the same values.
    fn round_trip(headers: LineHeaders<'_>, want: &Origin<'_>) {
        let sent = headers.fold(Vec::new(), |mut v, k, val| {
            v.push((k, val.to_vec()));
            v
        });
        assert_eq!(sent.len(), headers.count());
        assert_eq!(
            rdkafka::message::Headers::count(&headers.to_kafka()),
            headers.count()
        );
        let got = Origin::from_headers(sent.iter().map(|(k, v)| (*k, v.as_slice())));
        assert_eq!(&got, want);
        // Borrowed from the headers, not copied.
        assert!(matches!(got.host, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn headers_round_trip() {
        let file = identity(2049, 77, 1_700_000_000_000);
        assert_eq!(file, "2049:77:1700000000000");
        let line = LineHeaders {
            host: "web1",
            path: "/var/log/a.log",
            offset: 42,
            file: &file,
            truncated: false,
            entry: "/var/log/*.log",
            agent: "web1/0.1.0",
        };
        let want = Origin {
            host: Some("web1".into()),
            path: Some("/var/log/a.log".into()),
            offset: Some(42),
            file: Some(file.as_str().into()),
            truncated: false,
            entry: Some("/var/log/*.log".into()),
            agent: Some("web1/0.1.0".into()),
        };
        round_trip(line, &want);
        let cut = LineHeaders {
            truncated: true,
            ..line
        };
        round_trip(
            cut,
            &Origin {
                truncated: true,
                ..want
            },
        );
        assert_eq!(key("web1", "/var/log/a.log"), b"web1/var/log/a.log");
    }

    #[test]
    fn foreign_and_odd_headers() {
        let o = Origin::from_headers(
            [
                ("offset", &b"not a number"[..]),
                ("other", b"x"),
                ("truncated", b"false"),
            ]
            .into_iter(),
        );
        assert_eq!(o, Origin::default());
    }
}
