//! Contiguous acknowledgement, per tailer session: the invariant that a file's offset is saved
//! only after Kafka acknowledged every line before it.
//!
//! Kafka acknowledges records out of order (retries, several partitions in flight). Each
//! record sent gets a [`Tag`]; a session's offset advances only over the longest prefix of its
//! records that are all acknowledged. A session whose tailer closed the file (read to its end)
//! is over once that prefix is everything: the file's registry entry can go. Pure logic, no
//! Kafka and no registry: the producer applies what an [`Advance`] says.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::Arc;

use rdkafka::util::IntoOpaque;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::tail::Source;

/// Identifies a record in its delivery report.
///
/// Both numbers wrap: a session's records in flight are far fewer than 2^32 (librdkafka holds
/// at most 20,000), and a session number comes round again only after 2^32 tailer sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The tailer session (file and generation) it belongs to.
    pub session: u32,
    /// Its place in the session's send order.
    pub seq: u32,
}

// A tag is the record's opaque pointer itself, not a pointer to a tag: nothing to allocate
// and free per line.
const _: () = assert!(usize::BITS >= 64, "a Tag is packed into a pointer");

impl IntoOpaque for Tag {
    fn into_ptr(self) -> *mut c_void {
        ((u64::from(self.session) << 32 | u64::from(self.seq)) as usize) as *mut c_void
    }

    unsafe fn from_ptr(ptr: *mut c_void) -> Tag {
        let packed = ptr as usize as u64;
        Tag {
            session: (packed >> 32) as u32,
            seq: packed as u32,
        }
    }
}

/// What the session's source is to the tracker: its session, and whether its tailer still
/// uses it.
pub trait Owner {
    /// The tailer session the source's records belong to.
    fn session(&self) -> u32;
    /// Whether no tailer sends under this source any more (it moved on to another session).
    fn retired(&self) -> bool;
}

impl Owner for Arc<Source> {
    fn session(&self) -> u32 {
        self.session
    }

    fn retired(&self) -> bool {
        // The tracker holds the last reference.
        Arc::strong_count(self) == 1
    }
}

/// What one acknowledgement (or close) changed for its session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Advance {
    /// Lines newly acknowledged as a contiguous prefix.
    pub lines: u64,
    /// The offset every line before is now acknowledged up to, if it moved.
    pub offset: Option<u64>,
    /// The tailer had closed the file and every line of it is now acknowledged.
    pub finished: bool,
}

/// Records of one session not yet all acknowledged, in send order.
struct Session<S> {
    source: S,
    /// Sequence number of the first mark.
    base: u32,
    /// Next sequence number to give out.
    next: u32,
    /// (end offset, acknowledged) per record.
    marks: VecDeque<(u64, bool)>,
    /// The tailer closed the file, read to this offset.
    closed_at: Option<u64>,
}

/// The acknowledgement state of every session with records in flight.
pub struct Acks<S> {
    /// By session number: looked up for every record sent and every acknowledgement, so
    /// hashed by Fx (a multiplication) rather than SipHash (2% of the producer thread).
    sessions: FxHashMap<u32, Session<S>>,
}

impl<S: Owner + Clone> Default for Acks<S> {
    fn default() -> Self {
        Acks {
            sessions: FxHashMap::default(),
        }
    }
}

impl<S: Owner + Clone> Acks<S> {
    fn session(&mut self, source: &S) -> &mut Session<S> {
        self.sessions
            .entry(source.session())
            .or_insert_with(|| Session {
                source: source.clone(),
                base: 0,
                next: 0,
                marks: VecDeque::new(),
                closed_at: None,
            })
    }

    /// A record of `source`'s session whose line ends at `end` is sent: its tag.
    pub fn sent(&mut self, source: &S, end: u64) -> Tag {
        let s = self.session(source);
        let tag = Tag {
            session: source.session(),
            seq: s.next,
        };
        s.next = s.next.wrapping_add(1);
        s.marks.push_back((end, false));
        tag
    }

    /// The record `tag` is acknowledged (or can never be sent, and is skipped): what moved,
    /// and the session's source. Unknown tags (of a session already over) change nothing.
    pub fn acked(&mut self, tag: Tag) -> Option<(S, Advance)> {
        self.mark(tag)?;
        self.advance(tag.session)
    }

    /// Every record of `tags` is acknowledged: what moved, once per session (as
    /// [`Acks::acked`] one by one would, summed), so that a file's offset is applied once
    /// per delivery report batch rather than once per line.
    pub fn acked_all(&mut self, tags: impl IntoIterator<Item = Tag>) -> Vec<(S, Advance)> {
        let mut touched = Vec::new();
        let mut seen = FxHashSet::default();
        for tag in tags {
            if self.mark(tag).is_some() && seen.insert(tag.session) {
                touched.push(tag.session);
            }
        }
        touched
            .into_iter()
            .filter_map(|id| self.advance(id))
            .collect()
    }

    /// Marks the record `tag` acknowledged; `None` for a tag of a session already over.
    fn mark(&mut self, tag: Tag) -> Option<()> {
        let s = self.sessions.get_mut(&tag.session)?;
        // A tag before the first mark (already acknowledged) wraps far past the last.
        let mark = s.marks.get_mut(tag.seq.wrapping_sub(s.base) as usize)?;
        mark.1 = true;
        Some(())
    }

    /// The tailer of `source` closed its file, read to `end`.
    pub fn closed(&mut self, source: &S, end: u64) -> Option<(S, Advance)> {
        self.session(source).closed_at = Some(end);
        self.advance(source.session())
    }

    fn advance(&mut self, id: u32) -> Option<(S, Advance)> {
        let s = self.sessions.get_mut(&id)?;
        let mut advance = Advance::default();
        while let Some(&(end, true)) = s.marks.front() {
            s.marks.pop_front();
            s.base = s.base.wrapping_add(1);
            advance.offset = Some(end);
            advance.lines += 1;
        }
        if s.marks.is_empty() {
            if let Some(end) = s.closed_at {
                // Past the last line (empty lines after it are not records).
                advance.offset = Some(end);
                advance.finished = true;
            }
        }
        // Decided before the source is cloned for the caller: a clone would keep it in use.
        let over = s.marks.is_empty() && (advance.finished || s.source.retired());
        let source = if over {
            self.sessions.remove(&id)?.source
        } else {
            s.source.clone()
        };
        Some((source, advance))
    }

    /// The source of session `id`, while it has records in flight.
    pub fn source(&self, id: u32) -> Option<&S> {
        self.sessions.get(&id).map(|s| &s.source)
    }

    /// The source of some session with records waiting for Kafka.
    pub fn waiting(&self) -> Option<&S> {
        self.sessions
            .values()
            .find(|s| !s.marks.is_empty())
            .map(|s| &s.source)
    }

    /// Whether no session is tracked.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// A source counted as the tailer's `Arc<Source>` is: retired once only the tracker's
    /// copies are left.
    #[derive(Clone)]
    struct Src(u32, Rc<()>);

    impl Owner for Src {
        fn session(&self) -> u32 {
            self.0
        }

        fn retired(&self) -> bool {
            Rc::strong_count(&self.1) == 1
        }
    }

    fn src(session: u32) -> Src {
        Src(session, Rc::new(()))
    }

    fn adv(lines: u64, offset: Option<u64>, finished: bool) -> Advance {
        Advance {
            lines,
            offset,
            finished,
        }
    }

    #[test]
    fn a_tag_is_its_own_opaque_pointer() {
        for tag in [
            Tag { session: 1, seq: 0 },
            Tag {
                session: u32::MAX,
                seq: u32::MAX,
            },
            Tag { session: 0, seq: 7 },
        ] {
            // SAFETY: the pointer was made by into_ptr.
            assert_eq!(unsafe { Tag::from_ptr(tag.into_ptr()) }, tag);
        }
    }

    #[test]
    fn out_of_order_acks_advance_only_over_a_contiguous_prefix() {
        let mut acks = Acks::default();
        let s = src(7);
        let tags: Vec<Tag> = [10, 20, 30, 40].map(|end| acks.sent(&s, end)).into();
        let ack = |acks: &mut Acks<Src>, i: usize| acks.acked(tags[i]).map(|(_, a)| a);
        // The third and second first: nothing before them is acknowledged yet.
        assert_eq!(ack(&mut acks, 2), Some(adv(0, None, false)));
        assert_eq!(ack(&mut acks, 1), Some(adv(0, None, false)));
        // The first: the prefix now runs to the third record's end.
        assert_eq!(ack(&mut acks, 0), Some(adv(3, Some(30), false)));
        assert_eq!(ack(&mut acks, 3), Some(adv(1, Some(40), false)));
        // A repeated report of an acknowledged record changes nothing.
        assert!(acks.acked(tags[0]).is_none());
        // The tailer is still on this session: it stays.
        assert!(!acks.is_empty());
    }

    #[test]
    fn a_closed_file_is_finished_once_all_before_its_end_is_acknowledged() {
        let mut acks = Acks::default();
        let s = src(1);
        let a = acks.sent(&s, 5);
        let b = acks.sent(&s, 9);
        // Closed at 11: an empty line after the last record.
        assert_eq!(
            acks.closed(&s, 11).map(|(_, a)| a),
            Some(adv(0, None, false))
        );
        assert_eq!(acks.acked(b).map(|(_, a)| a), Some(adv(0, None, false)));
        assert_eq!(acks.acked(a).map(|(_, a)| a), Some(adv(2, Some(11), true)));
        assert!(acks.is_empty(), "the session is over");
        // Closed with nothing in flight: finished at once.
        assert_eq!(
            acks.closed(&src(2), 3).map(|(_, a)| a),
            Some(adv(0, Some(3), true))
        );
        assert!(acks.is_empty());
    }

    #[test]
    fn a_retired_session_goes_when_nothing_is_in_flight() {
        let mut acks = Acks::default();
        let (old, new) = (src(1), src(2));
        let a = acks.sent(&old, 4);
        let b = acks.sent(&new, 6);
        assert!(acks.waiting().is_some());
        drop(old); // its tailer moved on (truncation: a new session)
        acks.acked(a);
        assert!(acks.source(1).is_none(), "retired and done: dropped");
        acks.acked(b);
        assert!(acks.source(2).is_some(), "still in use: kept");
        assert!(acks.waiting().is_none());
    }

    #[test]
    fn acknowledgements_in_one_batch_advance_each_session_once() {
        let (a, b) = (src(1), src(2));
        let mut acks = Acks::default();
        let ta: Vec<Tag> = (0..3).map(|i| acks.sent(&a, 10 * (i + 1))).collect();
        let tb: Vec<Tag> = (0..2).map(|i| acks.sent(&b, 5 * (i + 1))).collect();
        // a's second and third, b's both: a cannot move past its unacknowledged first.
        let mut moved = acks.acked_all([ta[2], tb[1], ta[1], tb[0]]);
        moved.sort_by_key(|(s, _)| s.session());
        let moved: Vec<(u32, Advance)> = moved.into_iter().map(|(s, a)| (s.session(), a)).collect();
        assert_eq!(
            moved,
            [(1, adv(0, None, false)), (2, adv(2, Some(10), false))]
        );
        // Then a's first: all three at once; a tag of no session changes nothing.
        let moved = acks.acked_all([ta[0], Tag { session: 9, seq: 0 }]);
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].1, adv(3, Some(30), false));
    }
}
