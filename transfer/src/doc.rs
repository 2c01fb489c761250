//! A record on its way to Elasticsearch ([`Doc`]), and what its consumer must know of it to
//! commit ([`Progress`]): offsets are committed only up to the lowest offset of each
//! partition whose document is not done yet, so `kill -9` at any moment loses nothing.
//! The consumer threads create both; the bulk workers render documents and mark them done.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use logcollect::clock::Rfc3339;
use logcollect::document::{self, Placed, Position, Record};
use logcollect::record::Origin;
use logcollect::routing::Routing;
use logcollect::sync::lock;
use rdkafka::TopicPartitionList;
use rustc_hash::FxHashMap;

/// A record on its way to Elasticsearch. It is made a document only in the bulk worker that
/// sends it ([`Doc::render_into`]): rendering is spread over the workers, not left to the
/// consumer thread of its partition (one busy file is one partition).
pub struct Doc {
    /// Where it is in Kafka (its topic is in `original`).
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The record's timestamp: when the agent read the line.
    pub read_ms: i64,
    /// The record as it came, with its topic.
    pub original: Original,
    /// The progress of the consumer thread that read it, and that thread's generation then:
    /// a reference, not an `Arc`, whose count the consumer thread (a clone per record) and
    /// the bulk workers (a drop per document) would fight over on their cores.
    pub progress: &'static Progress,
    /// Which of the thread's consumers read it (counted by [`Progress::reset`]).
    pub generation: u32,
}

/// What a document takes in a request beyond its record's bytes, about: the ECS field names,
/// the times, the action with its index and id.
const RENDERED_OVERHEAD: usize = 256;

impl Doc {
    /// Its topic.
    pub fn topic(&self) -> &str {
        self.original.topic()
    }

    /// About the bytes its action and document take in a `_bulk` body, before it is rendered.
    pub fn size(&self) -> usize {
        self.original.0.len() + RENDERED_OVERHEAD
    }

    /// Writes its document under `routing`, indexed at `ingested`, to `out`, after what
    /// `head` writes knowing its index and id; returns them and what its processors could not
    /// do.
    pub fn render_into(
        &self,
        routing: &Routing,
        ingested: Rfc3339,
        out: &mut Vec<u8>,
        head: impl FnMut(&Placed, &mut Vec<u8>),
    ) -> Placed {
        let origin = Origin::of(self.original.key(), self.original.headers());
        let record = Record {
            origin: &origin,
            pos: Position {
                topic: self.topic(),
                partition: self.partition,
                offset: self.offset,
            },
            read_ms: self.read_ms,
            payload: self.original.value(),
        };
        document::render_into(routing, record, ingested, out, head)
    }
}

/// A record's topic, key, value and headers as it came: what its document is rendered from,
/// and what goes to the dead-letter topic. They are kept in one buffer, each part after its
/// length (a 4-byte little-endian count; `u32::MAX` for no key): a buffer per part and header
/// cost the consumer thread 17 allocations per record. The topic is copied too: a shared name
/// is an atomic count changed on two cores per record.
pub struct Original(Vec<u8>);

/// The length that stands for "no key".
const NO_KEY: u32 = u32::MAX;

impl Original {
    /// The record of `topic`, `key`, `value` and `headers` (a header without a value is kept
    /// empty).
    pub fn new<'a>(
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Original {
        // Room for headers (earlier agents sent six): usually one allocation in all.
        let mut bytes =
            Vec::with_capacity(topic.len() + key.map_or(0, <[u8]>::len) + value.len() + 256);
        put(&mut bytes, topic.as_bytes());
        match key {
            Some(key) => put(&mut bytes, key),
            None => bytes.extend_from_slice(&NO_KEY.to_le_bytes()),
        }
        put(&mut bytes, value);
        for (k, v) in headers {
            put(&mut bytes, k.as_bytes());
            put(&mut bytes, v);
        }
        Original(bytes)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        // Written from a `str`.
        std::str::from_utf8(self.topic_bytes()).unwrap_or_default()
    }

    /// The topic's bytes: compared without checking them again.
    fn topic_bytes(&self) -> &[u8] {
        Pieces(&self.0).next().unwrap_or_default()
    }

    /// The key.
    pub fn key(&self) -> Option<&[u8]> {
        self.after_topic().key()
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        let mut pieces = self.after_topic();
        pieces.key();
        pieces.next().unwrap_or_default()
    }

    /// Its parts from the key on.
    fn after_topic(&self) -> Pieces<'_> {
        let mut pieces = Pieces(&self.0);
        pieces.next();
        pieces
    }

    /// The headers, in their order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut pieces = self.after_topic();
        pieces.key();
        pieces.next();
        std::iter::from_fn(move || {
            let key = pieces.next()?;
            Some((std::str::from_utf8(key).unwrap_or_default(), pieces.next()?))
        })
    }
}

/// Appends `part` after its length (a Kafka record or header is far below 4 GiB).
fn put(bytes: &mut Vec<u8>, part: &[u8]) {
    bytes.extend_from_slice(&(part.len() as u32).to_le_bytes());
    bytes.extend_from_slice(part);
}

/// Reads the parts of an [`Original`] in order.
struct Pieces<'a>(&'a [u8]);

impl<'a> Pieces<'a> {
    fn len(&mut self) -> Option<u32> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_le_bytes(*len))
    }

    fn key(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        if len == NO_KEY {
            return None;
        }
        self.take(len)
    }

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        self.take(len)
    }

    fn take(&mut self, len: u32) -> Option<&'a [u8]> {
        let (part, rest) = self.0.split_at_checked(len as usize)?;
        self.0 = rest;
        Some(part)
    }
}

/// Documents a consumer thread hands to the batch thread at once: one channel message per
/// chunk rather than per document, which spares a wake-up of the batch thread per record.
pub struct Chunk {
    /// In the order they were read.
    pub docs: Vec<Doc>,
    /// The consumer had read everything there was when it sent this: the batch thread need
    /// not wait for more before sending a request.
    pub caught_up: bool,
}

/// The documents are indexed (or dead-lettered): their offsets may be committed. Each
/// consumer's progress is locked once per run of its documents and each partition looked up
/// once per run of its documents, not once per document: the consumer takes the same lock.
pub fn done(docs: &[Doc]) {
    let mut held: Option<(&Progress, MutexGuard<'_, State>)> = None;
    for run in runs(docs) {
        let [first, ..] = run else {
            continue;
        };
        let state = match &mut held {
            Some((progress, state)) if std::ptr::eq(*progress, first.progress) => state,
            _ => {
                held = None; // one lock at a time
                &mut held.insert((first.progress, first.progress.lock())).1
            }
        };
        // Documents read before the consumer was replaced, and offsets of partitions no
        // longer assigned, are ignored.
        if first.generation != state.generation {
            continue;
        }
        if let Some(part) = part_mut(&mut state.parts, first.topic(), first.partition) {
            for doc in run {
                part.pending.remove(doc.offset);
            }
        }
    }
}

/// `docs` in runs of one consumer's generation and partition.
fn runs(docs: &[Doc]) -> impl Iterator<Item = &[Doc]> {
    docs.chunk_by(|a, b| {
        std::ptr::eq(a.progress, b.progress)
            && (a.generation, a.partition) == (b.generation, b.partition)
            && a.original.topic_bytes() == b.original.topic_bytes()
    })
}

#[derive(Default)]
struct Part {
    /// Offsets read and not done yet.
    pending: Pending,
    /// Offset after the last one read.
    next: Option<i64>,
    /// Last offset committed.
    committed: Option<i64>,
}

/// Offsets of a partition read and not done yet: in the order read, which is increasing, each
/// with whether it is done, the first never done. A record read is added at the end, one done
/// is found by a binary search and dropped once those before it are. A `BTreeSet` searched
/// its nodes at every record read and done: with one partition, a twentieth of the consumer
/// thread's time.
#[derive(Default)]
struct Pending(VecDeque<(i64, bool)>);

impl Pending {
    /// Adds `offset`, read; again if it was read before (a seek back).
    fn insert(&mut self, offset: i64) {
        match self.0.back() {
            Some(&(last, _)) if last >= offset => match self.find(offset) {
                Ok(at) => self.0[at].1 = false,
                Err(at) => self.0.insert(at, (offset, false)),
            },
            _ => self.0.push_back((offset, false)),
        }
    }

    /// Marks `offset` done, if it is pending.
    fn remove(&mut self, offset: i64) {
        if let Ok(at) = self.find(offset) {
            self.0[at].1 = true;
            while self.0.front().is_some_and(|&(_, done)| done) {
                self.0.pop_front();
            }
        }
    }

    /// The lowest offset not done.
    fn first(&self) -> Option<i64> {
        self.0.front().map(|&(offset, _)| offset)
    }

    /// Where `offset` is, or would go. Offsets are mostly consecutive, so it is looked for
    /// first where it would be without gaps: over 4 partitions the binary search, each step
    /// likely a cache miss in a deque of a hundred thousand, was a fiftieth of the transfer.
    fn find(&self, offset: i64) -> Result<usize, usize> {
        let guess = self
            .0
            .front()
            .and_then(|&(first, _)| usize::try_from(offset - first).ok());
        if let Some(at) = guess.filter(|&at| self.0.get(at).is_some_and(|&(o, _)| o == offset)) {
            return Ok(at);
        }
        self.0.binary_search_by_key(&offset, |&(o, _)| o)
    }
}

/// By topic, then partition. Fx, not SipHash: looked up twice per record.
type Parts = FxHashMap<Box<str>, FxHashMap<i32, Part>>;

/// The part of `parts` for `topic`/`partition`, if it is there.
fn part_mut<'p>(parts: &'p mut Parts, topic: &str, partition: i32) -> Option<&'p mut Part> {
    parts.get_mut(topic)?.get_mut(&partition)
}

/// Per partition of one consumer thread: what was read and what is done.
#[derive(Default)]
pub struct Progress {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// How many times the thread's consumer was replaced ([`Progress::reset`]).
    generation: u32,
    parts: Parts,
}

impl Progress {
    /// The progress of a consumer thread, kept for as long as the process runs (one per
    /// thread), so that documents can refer to it without a count.
    pub fn of_thread() -> &'static Progress {
        Box::leak(Box::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Forgets everything, for the thread's next consumer; documents read before are ignored
    /// when done. Returns the new generation.
    pub fn reset(&self) -> u32 {
        let mut state = self.lock();
        state.parts.clear();
        state.generation = state.generation.wrapping_add(1);
        state.generation
    }

    /// Starts following the partitions of `tpl`, just assigned, afresh.
    pub fn assign(&self, tpl: &TopicPartitionList) {
        let parts = &mut self.lock().parts;
        for e in tpl.elements() {
            let partitions = parts.entry(e.topic().into()).or_default();
            partitions.insert(e.partition(), Part::default());
        }
    }

    /// Notes `docs` as read, under one lock for them all and one look-up per run of a
    /// partition's documents (a lock and a look-up per record were a fortieth of the
    /// transfer). Their consumer calls it before it hands them on, and commits only while it
    /// holds none not noted. Only the documents of its consumer now and of partitions it still
    /// holds count: one revoked since it was read is committed by its next owner.
    pub fn read(&self, docs: &[Doc]) {
        let state = &mut *self.lock();
        for run in runs(docs) {
            let ([first, ..], [.., last]) = (run, run) else {
                continue;
            };
            if first.generation != state.generation {
                continue;
            }
            let Some(part) = part_mut(&mut state.parts, first.topic(), first.partition) else {
                continue;
            };
            for doc in run {
                part.pending.insert(doc.offset);
            }
            part.next = Some(last.offset + 1);
        }
    }

    /// Offsets to commit (the lowest not done, or after the last read) where they moved;
    /// only partitions in `only`, if given.
    pub fn committable(&self, only: Option<&TopicPartitionList>) -> Vec<(String, i32, i64)> {
        let state = self.lock();
        state
            .parts
            .iter()
            .flat_map(|(t, partitions)| partitions.iter().map(move |(p, part)| ((t, p), part)))
            .filter(|((t, p), _)| only.is_none_or(|tpl| tpl.find_partition(t, **p).is_some()))
            .filter_map(|((t, p), part)| {
                let next = part.next?;
                let offset = part.pending.first().unwrap_or(next);
                (part.committed != Some(offset)).then(|| (t.to_string(), *p, offset))
            })
            .collect()
    }

    pub fn committed(&self, offsets: &[(String, i32, i64)]) {
        let parts = &mut self.lock().parts;
        for (t, p, o) in offsets {
            if let Some(part) = part_mut(parts, t, *p) {
                part.committed = Some(*o);
            }
        }
    }

    pub fn forget(&self, tpl: &TopicPartitionList) {
        let parts = &mut self.lock().parts;
        for e in tpl.elements() {
            if let Some(partitions) = parts.get_mut(e.topic()) {
                partitions.remove(&e.partition());
                if partitions.is_empty() {
                    parts.remove(e.topic());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_offsets() {
        let mut p = Pending::default();
        assert_eq!(p.first(), None);
        // Read with a gap (a compacted or transaction offset), done out of order.
        for offset in [5, 6, 8, 9] {
            p.insert(offset);
        }
        p.remove(6);
        p.remove(7); // never read: nothing
        assert_eq!(p.first(), Some(5));
        p.remove(5);
        assert_eq!(p.first(), Some(8));
        p.remove(9);
        assert_eq!(p.first(), Some(8));
        // Read again after a seek back: pending again, in order.
        p.insert(9);
        p.insert(3);
        assert_eq!(p.first(), Some(3));
        p.remove(3);
        p.remove(8);
        assert_eq!(p.first(), Some(9));
        p.remove(9);
        p.remove(9);
        assert_eq!(p.first(), None);
        p.insert(10);
        assert_eq!(p.first(), Some(10));
    }

    /// The record at t/`partition`/`offset`, read by consumer `generation` of `p`.
    fn record(p: &'static Progress, generation: u32, partition: i32, offset: i64) -> Doc {
        Doc {
            partition,
            offset,
            read_ms: 0,
            original: Original::new("t", None, b"", std::iter::empty()),
            progress: p,
            generation,
        }
    }

    /// Notes the records at t/`partition`/`offsets` of `p`, read in `generation`, as read.
    fn read(p: &'static Progress, generation: u32, partition: i32, offsets: &[i64]) {
        let docs: Vec<Doc> = (offsets.iter())
            .map(|&o| record(p, generation, partition, o))
            .collect();
        p.read(&docs);
    }

    /// Marks t/`partition`/`offset` of `p`, read in `generation`, done.
    fn finish(p: &'static Progress, generation: u32, partition: i32, offset: i64) {
        done(&[record(p, generation, partition, offset)]);
    }

    /// Partitions `partitions` of topic t.
    fn partitions(partitions: &[i32]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            tpl.add_partition("t", p);
        }
        tpl
    }

    #[test]
    fn commits_stop_below_the_first_unfinished_offset() {
        let p = Progress::of_thread();
        p.assign(&partitions(&[0, 1]));
        let finish = |partition, offset| finish(p, 0, partition, offset);
        // One chunk with runs of both partitions.
        let docs: Vec<Doc> = [(0, 10), (0, 11), (0, 12), (1, 7), (0, 13), (0, 14)]
            .into_iter()
            .map(|(partition, offset)| record(p, 0, partition, offset))
            .collect();
        p.read(&docs);
        finish(0, 10);
        finish(0, 12);
        let mut c = p.committable(None);
        c.sort();
        assert_eq!(c, [("t".into(), 0, 11), ("t".into(), 1, 7)]);
        p.committed(&c);
        assert!(p.committable(None).is_empty());
        finish(0, 11);
        finish(0, 13);
        finish(0, 14);
        finish(1, 7);
        let mut c = p.committable(None);
        c.sort();
        assert_eq!(c, [("t".into(), 0, 15), ("t".into(), 1, 8)]);
        // A partition that went away ignores late acknowledgements, and records read before
        // it went (noted after): its next owner commits it.
        p.forget(&partitions(&[1]));
        finish(1, 8);
        read(p, 0, 1, &[8, 9]);
        assert_eq!(p.committable(None), [("t".into(), 0, 15)]);
        // Assigned again, it starts afresh.
        p.assign(&partitions(&[1]));
        read(p, 0, 1, &[8]);
        let mut c = p.committable(None);
        c.sort();
        assert_eq!(c, [("t".into(), 0, 15), ("t".into(), 1, 8)]);
    }

    #[test]
    fn documents_of_a_replaced_consumer_are_ignored() {
        let p = Progress::of_thread();
        p.assign(&partitions(&[0]));
        read(p, 0, 0, &[5]);
        let generation = p.reset();
        assert_eq!(generation, 1);
        assert!(p.committable(None).is_empty());
        p.assign(&partitions(&[0]));
        // Read by the old consumer, noted after the new one took over: not counted.
        read(p, 0, 0, &[4]);
        read(p, generation, 0, &[5, 6]);
        // Offset 5 read by the old consumer is done: the new one's is not.
        finish(p, 0, 0, 5);
        assert_eq!(p.committable(None), [("t".into(), 0, 5)]);
        finish(p, generation, 0, 5);
        assert_eq!(p.committable(None), [("t".into(), 0, 6)]);
    }

    #[test]
    fn originals_keep_key_value_and_headers() {
        let headers = [("host", &b"web1"[..]), ("empty", b""), ("offset", b"42")];
        let o = Original::new("web", Some(b"k"), b"GET / 200", headers.iter().copied());
        assert_eq!(o.topic(), "web");
        assert_eq!(o.key(), Some(&b"k"[..]));
        assert_eq!(o.value(), b"GET / 200");
        assert_eq!(o.headers().collect::<Vec<_>>(), headers);
        let bare = Original::new("", None, b"", std::iter::empty());
        assert_eq!(
            (bare.topic(), bare.key(), bare.value()),
            ("", None, &b""[..])
        );
        assert_eq!(bare.headers().count(), 0);
        // An empty key is a key.
        assert_eq!(
            Original::new("t", Some(b""), b"v", std::iter::empty()).key(),
            Some(&b""[..])
        );
    }
}
