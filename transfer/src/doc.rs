//! A record on its way to Elasticsearch ([`Doc`]), and what its consumer must know of it to
//! commit ([`Progress`]): offsets are committed only up to the lowest offset of each
//! partition whose document is not done yet, so `kill -9` at any moment loses nothing.
//! The consumer threads create both; the batch and dead-letter code only mark documents done.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use logcollect::sync::lock;
use rdkafka::TopicPartitionList;

/// A record turned into a document, on its way to Elasticsearch.
pub struct Doc {
    /// Where it is in Kafka.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Target index.
    pub index: String,
    /// Deterministic document id.
    pub id: String,
    /// The document, serialised.
    pub source: Vec<u8>,
    /// The record's key, for the dead-letter topic.
    pub key: Option<Vec<u8>>,
    /// The record's value, for the dead-letter topic.
    pub payload: Vec<u8>,
    /// The record's headers, for the dead-letter topic.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The progress of the consumer that read it.
    pub progress: Arc<Progress>,
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
/// consumer's progress is locked once per run of its documents, not once per document: the
/// consumer takes the same lock for every record it reads.
pub fn done<'a>(docs: impl IntoIterator<Item = &'a Doc>) {
    let mut held: Option<(&Arc<Progress>, MutexGuard<'_, Parts>)> = None;
    for doc in docs {
        let parts = match &mut held {
            Some((progress, parts)) if Arc::ptr_eq(progress, &doc.progress) => parts,
            _ => {
                held = None; // one lock at a time
                &mut held.insert((&doc.progress, doc.progress.lock())).1
            }
        };
        // Offsets of partitions no longer assigned are ignored.
        if let Some(part) = parts.get_mut(&(doc.topic.to_string(), doc.partition)) {
            part.pending.remove(&doc.offset);
        }
    }
}

#[derive(Default)]
struct Part {
    /// Offsets read and not done yet.
    pending: BTreeSet<i64>,
    /// Offset after the last one read.
    next: Option<i64>,
    /// Last offset committed.
    committed: Option<i64>,
}

type Parts = HashMap<(String, i32), Part>;

/// Per partition of one consumer: what was read and what is done.
#[derive(Default)]
pub struct Progress {
    parts: Mutex<Parts>,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Parts> {
        lock(&self.parts)
    }

    pub fn read(&self, topic: &str, partition: i32, offset: i64) {
        let mut parts = self.lock();
        let part = parts.entry((topic.to_string(), partition)).or_default();
        part.pending.insert(offset);
        part.next = Some(offset + 1);
    }

    /// Offsets to commit (the lowest not done, or after the last read) where they moved;
    /// only partitions in `only`, if given.
    pub fn committable(&self, only: Option<&TopicPartitionList>) -> Vec<(String, i32, i64)> {
        let parts = self.lock();
        parts
            .iter()
            .filter(|((t, p), _)| only.is_none_or(|tpl| tpl.find_partition(t, *p).is_some()))
            .filter_map(|((t, p), part)| {
                let next = part.next?;
                let offset = part.pending.first().copied().unwrap_or(next);
                (part.committed != Some(offset)).then(|| (t.clone(), *p, offset))
            })
            .collect()
    }

    pub fn committed(&self, offsets: &[(String, i32, i64)]) {
        let mut parts = self.lock();
        for (t, p, o) in offsets {
            if let Some(part) = parts.get_mut(&(t.clone(), *p)) {
                part.committed = Some(*o);
            }
        }
    }

    pub fn forget(&self, tpl: &TopicPartitionList) {
        let mut parts = self.lock();
        for e in tpl.elements() {
            parts.remove(&(e.topic().to_string(), e.partition()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks t/`partition`/`offset` of `p` done.
    fn finish(p: &Arc<Progress>, partition: i32, offset: i64) {
        let doc = Doc {
            topic: "t".into(),
            partition,
            offset,
            index: String::new(),
            id: String::new(),
            source: Vec::new(),
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
            progress: p.clone(),
        };
        done([&doc]);
    }

    #[test]
    fn commits_stop_below_the_first_unfinished_offset() {
        let p = Arc::new(Progress::default());
        for o in 10..15 {
            p.read("t", 0, o);
        }
        p.read("t", 1, 7);
        finish(&p, 0, 10);
        finish(&p, 0, 12);
        let mut c = p.committable(None);
        c.sort();
        assert_eq!(c, [("t".into(), 0, 11), ("t".into(), 1, 7)]);
        p.committed(&c);
        assert!(p.committable(None).is_empty());
        finish(&p, 0, 11);
        finish(&p, 0, 13);
        finish(&p, 0, 14);
        finish(&p, 1, 7);
        let mut c = p.committable(None);
        c.sort();
        assert_eq!(c, [("t".into(), 0, 15), ("t".into(), 1, 8)]);
        // A partition that went away ignores late acknowledgements.
        let mut gone = TopicPartitionList::new();
        gone.add_partition("t", 1);
        p.forget(&gone);
        finish(&p, 1, 8);
        assert_eq!(p.committable(None), [("t".into(), 0, 15)]);
    }
}
