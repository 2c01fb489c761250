//! The record contract between `log-agent` and `log-transfer`: the Kafka key of a line's
//! record, which says where the line came from, the file identity in it, and the partitioner
//! that keeps a file's records in one partition. The agent encodes them ([`identity`],
//! [`FileOrigin`], [`FilePartitioner`]); the transfer decodes them ([`Origin`]). Both
//! directions live here, so the two binaries cannot drift apart.

use std::borrow::Cow;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};
use rdkafka::config::ClientConfig;
use rdkafka::producer::Partitioner;

use crate::kafka::KafkaSettings;

/// Key field: the host name of the agent that read the line. The key of a line's record is
/// `name=value` pairs joined by `&` (each value percent-encoded), in this order: [`HOST`],
/// [`PATH`], [`FILE`], [`ENTRY`], [`AGENT`], [`OFFSET`], and [`TRUNCATED`] on a cut line, e.g.
/// `host=web1&path=/var/log/a.log&file=2049:77:1700000000000&entry=/var/log/*.log&agent=web1/0.1.0&offset=42`.
/// In the key rather than in headers: librdkafka allocates and frees each header of a record
/// apart, and one header cost the agent more CPU per line than 130 more bytes of key.
pub const HOST: &str = "host";
/// Key field: the path the file was tailed under.
pub const PATH: &str = "path";
/// Key field: the byte offset of the line's first byte in its file, in decimal.
pub const OFFSET: &str = "offset";
/// Key field: the file identity, see [`identity`].
pub const FILE: &str = "file";
/// Key field, present only on a line cut at `max_line_bytes`: `true`.
pub const TRUNCATED: &str = "truncated";
/// Key field: the `path` of the collect entry the file belongs to (a file, directory or
/// glob), so the transfer runs that entry's processors.
pub const ENTRY: &str = "entry";
/// Key field: the agent that read the line, `name/version` (ECS `agent.name`,
/// `agent.version`).
pub const AGENT: &str = "agent";

/// What the key percent-encodes in a value: the separators, `%`, spaces and control bytes
/// (and, as always, every byte beyond ASCII). A path stays readable.
const ESCAPED: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'&').add(b'=');

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

/// The key of one file's records, encoded once per file: from line to line only the offset
/// differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOrigin {
    /// The key up to the offset's digits.
    prefix: String,
}

impl FileOrigin {
    /// The origin of lines read by `agent` on `host` from the file `path` with the identity
    /// `file`, which the collect entry `entry` names.
    pub fn new(host: &str, path: &str, file: &str, entry: &str, agent: &str) -> FileOrigin {
        let mut prefix = String::new();
        for (name, value) in [
            (HOST, host),
            (PATH, path),
            (FILE, file),
            (ENTRY, entry),
            (AGENT, agent),
        ] {
            prefix.push_str(name);
            prefix.push('=');
            prefix.extend(utf8_percent_encode(value, ESCAPED));
            prefix.push('&');
        }
        prefix.push_str(OFFSET);
        prefix.push('=');
        FileOrigin { prefix }
    }

    /// Writes the key of the line at `offset`, `truncated` if it was cut, to `out` (emptied
    /// first): a buffer the caller keeps, so that none is allocated per line.
    pub fn key_into(&self, offset: u64, truncated: bool, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.prefix.as_bytes());
        // itoa: `write!` cost the producer thread 2% of its time per line.
        out.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
        if truncated {
            out.extend_from_slice(b"&");
            out.extend_from_slice(TRUNCATED.as_bytes());
            out.extend_from_slice(b"=true");
        }
    }
}

/// Puts a record in the partition of its file: by a hash of the key's host and path only
/// (the key up to its second `&`), so that a file's lines stay in one partition, in order,
/// although each line's key differs. The agent's producer and the bench's bare one use it.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilePartitioner;

impl FilePartitioner {
    /// The part of `key` that picks the partition: up to its second `&`, or all of it.
    fn file_part(key: &[u8]) -> &[u8] {
        match memchr::memchr_iter(b'&', key).nth(1) {
            Some(at) => &key[..at],
            None => key,
        }
    }
}

impl Partitioner for FilePartitioner {
    fn partition(
        &self,
        _topic: &str,
        key: Option<&[u8]>,
        partition_cnt: i32,
        _is_partition_available: impl Fn(i32) -> bool,
    ) -> i32 {
        let hash = xxhash_rust::xxh3::xxh3_64(Self::file_part(key.unwrap_or_default()));
        // A topic has at least one partition; the remainder fits in an i32.
        (hash % partition_cnt.max(1) as u64) as i32
    }
}

/// What the transfer reads back from a record's key (or headers): where its line came from.
/// Every field is optional, since records of other producers carry none of them. The texts
/// borrow from the record where they are UTF-8 and need no percent-decoding (the agent's,
/// unless a path has spaces or bytes beyond ASCII): nothing is copied per record.
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
    /// Where the line of a record with `key` and `headers` came from: the agent's key (one
    /// that starts with `host=`), or else the six headers of the same names that agents
    /// before it sent (records of theirs may still be in Kafka). Unknown names are ignored.
    pub fn of(
        key: Option<&'a [u8]>,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Origin<'a> {
        let mut o = Origin::default();
        match key {
            Some(key) if key.starts_with(HOST.as_bytes()) && key.get(HOST.len()) == Some(&b'=') => {
                for pair in key.split(|&b| b == b'&') {
                    let (name, value) = match memchr::memchr(b'=', pair) {
                        Some(at) => (&pair[..at], &pair[at + 1..]),
                        None => (pair, &b""[..]),
                    };
                    // Decoded only where a `%` is: the agent's values seldom hold one, and
                    // the decoder looked at each byte apart.
                    let value = match memchr::memchr(b'%', value) {
                        Some(_) => percent_decode(value).into(),
                        None => Cow::Borrowed(value),
                    };
                    o.set(name, value);
                }
            }
            _ => {
                for (name, value) in headers {
                    o.set(name.as_bytes(), Cow::Borrowed(value));
                }
            }
        }
        o
    }

    /// Sets the field `name` to `value`; an unknown name is ignored.
    fn set(&mut self, name: &[u8], value: Cow<'a, [u8]>) {
        let text = || match &value {
            // Checked as a whole first: the lossy conversion looks at each byte apart.
            Cow::Borrowed(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(bytes),
            },
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(bytes).into_owned()),
        };
        match std::str::from_utf8(name).unwrap_or_default() {
            HOST => self.host = Some(text()),
            PATH => self.path = Some(text()),
            OFFSET => self.offset = text().parse().ok(),
            FILE => self.file = Some(text()),
            TRUNCATED => self.truncated = *value == *b"true",
            ENTRY => self.entry = Some(text()),
            AGENT => self.agent = Some(text()),
            _ => {}
        }
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
    fn round_trip(origin: &FileOrigin, offset: u64, truncated: bool, want: &Origin<'_>) {
        let mut key = Vec::new();
        origin.key_into(offset, truncated, &mut key);
        let got = Origin::of(Some(&key), std::iter::empty());
        assert_eq!(&got, want);
    }

    #[test]
    fn origin_round_trip() {
        let file = identity(2049, 77, 1_700_000_000_000);
        assert_eq!(file, "2049:77:1700000000000");
        let origin = FileOrigin::new(
            "web1",
            "/var/log/a.log",
            &file,
            "/var/log/*.log",
            "web1/0.1.0",
        );
        let mut key = Vec::new();
        origin.key_into(42, false, &mut key);
        assert_eq!(
            String::from_utf8(key).unwrap(),
            "host=web1&path=/var/log/a.log&file=2049:77:1700000000000\
             &entry=/var/log/*.log&agent=web1/0.1.0&offset=42"
        );
        let want = Origin {
            host: Some("web1".into()),
            path: Some("/var/log/a.log".into()),
            offset: Some(42),
            file: Some(file.as_str().into()),
            truncated: false,
            entry: Some("/var/log/*.log".into()),
            agent: Some("web1/0.1.0".into()),
        };
        round_trip(&origin, 42, false, &want);
        let cut = Origin {
            truncated: true,
            ..want.clone()
        };
        round_trip(&origin, 42, true, &cut);
    }

    #[test]
    fn origin_escapes_its_separators() {
        let path = "/logs/a b&c=d%e\nf/caf\u{e9}.log";
        let origin = FileOrigin::new("h", path, "1:2:3", path, "h/0");
        let mut key = Vec::new();
        origin.key_into(7, false, &mut key);
        let text = String::from_utf8(key.clone()).unwrap();
        assert!(
            text.starts_with("host=h&path=/logs/a%20b%26c%3Dd%25e%0Af/caf%C3%A9.log&"),
            "{text}"
        );
        let got = Origin::of(Some(&key), std::iter::empty());
        assert_eq!(got.path.as_deref(), Some(path));
        assert_eq!(got.entry.as_deref(), Some(path));
        assert_eq!(got.offset, Some(7));
    }

    #[test]
    fn plain_origin_is_borrowed_not_copied() {
        let key = b"host=web1&path=/a.log&offset=3";
        let got = Origin::of(Some(&key[..]), std::iter::empty());
        assert!(matches!(got.host, Some(Cow::Borrowed("web1"))));
        assert!(matches!(got.path, Some(Cow::Borrowed("/a.log"))));
    }

    #[test]
    fn a_file_keeps_its_partition() {
        let p = FilePartitioner;
        let mut key = Vec::new();
        let partition = |origin: &FileOrigin, offset, key: &mut Vec<u8>| {
            origin.key_into(offset, false, key);
            p.partition("t", Some(key), 12, |_| true)
        };
        let a = FileOrigin::new("web1", "/var/log/a.log", "1:2:3", "/var/log/*.log", "w/0");
        // A later generation of the same file: another identity, the same partition.
        let a2 = FileOrigin::new("web1", "/var/log/a.log", "1:2:9", "/var/log/*.log", "w/0");
        let first = partition(&a, 0, &mut key);
        assert!((0..12).contains(&first));
        for offset in [1, 77, 1 << 40] {
            assert_eq!(partition(&a, offset, &mut key), first);
            assert_eq!(partition(&a2, offset, &mut key), first);
        }
        // Other files spread over the partitions.
        let spread: std::collections::HashSet<i32> = (0..64)
            .map(|i| {
                let f = FileOrigin::new("web1", &format!("/var/log/{i}.log"), "1:2:3", "e", "w/0");
                partition(&f, 0, &mut key)
            })
            .collect();
        assert!(spread.len() > 6, "{spread:?}");
        // A key of another form: all of it.
        assert_eq!(FilePartitioner::file_part(b"abc"), b"abc");
        assert_eq!(p.partition("t", None, 1, |_| true), 0);
    }

    #[test]
    fn headers_of_earlier_agents() {
        // Their key was host and path run together.
        let o = Origin::of(
            Some(b"web1/var/log/a.log"),
            [
                ("host", &b"web1"[..]),
                ("path", b"/var/log/a.log"),
                ("offset", b"42"),
                ("file", b"2049:77:1700000000000"),
                ("truncated", b"true"),
                ("entry", b"/var/log/*.log"),
                ("agent", b"web1/0.1.0"),
            ]
            .into_iter(),
        );
        assert_eq!(
            o,
            Origin {
                host: Some("web1".into()),
                path: Some("/var/log/a.log".into()),
                offset: Some(42),
                file: Some("2049:77:1700000000000".into()),
                truncated: true,
                entry: Some("/var/log/*.log".into()),
                agent: Some("web1/0.1.0".into()),
            }
        );
    }

    /// Bytes that are not UTF-8, raw or percent-encoded, in a key's value or a header,
    /// become U+FFFD; the rest of the value is kept.
    #[test]
    fn values_that_are_not_utf8_are_replaced_not_dropped() {
        let o = Origin::of(
            Some(b"host=web\xff1&path=/a%FF.log&offset=3"),
            std::iter::empty(),
        );
        assert_eq!(o.host.as_deref(), Some("web\u{fffd}1"));
        assert_eq!(o.path.as_deref(), Some("/a\u{fffd}.log"));
        assert_eq!(o.offset, Some(3));
        let o = Origin::of(None, [("path", &b"/b\xfe.log"[..])].into_iter());
        assert_eq!(o.path.as_deref(), Some("/b\u{fffd}.log"));
    }

    #[test]
    fn foreign_and_odd_records() {
        let o = Origin::of(
            Some(b"hostname"),
            [
                ("offset", &b"not a number"[..]),
                ("other", b"x"),
                ("truncated", b"false"),
            ]
            .into_iter(),
        );
        assert_eq!(o, Origin::default());
        let o = Origin::of(
            Some(b"host=&offset=x&nothing&other=1&truncated=no"),
            [("host", &b"ignored: the key is the agent's"[..])].into_iter(),
        );
        assert_eq!(
            o,
            Origin {
                host: Some("".into()),
                ..Origin::default()
            }
        );
    }
}
