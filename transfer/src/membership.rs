//! What the consumer threads hold of the group, for `/health` and `/metrics`.
//!
//! A transfer subscribed to its topics that holds no partition for longer than its session
//! timeout is reported unhealthy: members of an earlier run may still hold them (a stalled
//! rebalance), or the group has more consumers than the topics have partitions.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use logcollect::sync::lock;

/// The group membership of every consumer thread of this transfer.
#[derive(Default)]
pub struct Membership(Mutex<State>);

#[derive(Default)]
struct State {
    /// Consumer threads subscribed to at least one topic.
    subscribed: HashSet<String>,
    /// Partitions each consumer thread holds.
    held: HashMap<String, usize>,
    /// Since when the subscribed transfer holds no partition.
    empty_since: Option<Instant>,
}

impl Membership {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// `consumer` subscribed to its topics (`true`) or has none to follow.
    pub fn subscribed(&self, consumer: &str, subscribed: bool) {
        let mut state = self.lock();
        if subscribed {
            state.subscribed.insert(consumer.to_string());
        } else {
            state.subscribed.remove(consumer);
            state.held.remove(consumer);
        }
        state.settle();
    }

    /// `consumer` holds `partitions` after a rebalance.
    pub fn held(&self, consumer: &str, partitions: usize) {
        let mut state = self.lock();
        state.held.insert(consumer.to_string(), partitions);
        state.settle();
    }

    /// Partitions the transfer holds.
    pub fn partitions(&self) -> usize {
        self.lock().held.values().sum()
    }

    /// `Err` with the reason when the subscribed transfer has held no partition for longer
    /// than `session_timeout`.
    pub fn check(&self, session_timeout: Duration) -> Result<(), String> {
        let Some(since) = self.lock().empty_since else {
            return Ok(());
        };
        let waited = since.elapsed();
        if waited <= session_timeout {
            return Ok(());
        }
        Err(format!(
            "subscribed for {} s with no partition assigned, longer than the session timeout ({} s): members of an earlier run may still hold them, or the group has more consumers than partitions",
            waited.as_secs(),
            session_timeout.as_secs()
        ))
    }
}

impl State {
    fn settle(&mut self) {
        let waiting = !self.subscribed.is_empty() && self.held.values().sum::<usize>() == 0;
        if !waiting {
            self.empty_since = None;
        } else if self.empty_since.is_none() {
            self.empty_since = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribed_without_partitions_is_reported_after_the_session_timeout() {
        let m = Membership::default();
        assert_eq!(
            m.check(Duration::ZERO),
            Ok(()),
            "not subscribed: nothing to hold"
        );
        m.subscribed("consumer-0", true);
        m.subscribed("consumer-1", true);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            m.check(Duration::from_secs(60)),
            Ok(()),
            "within the timeout"
        );
        let err = m.check(Duration::ZERO).unwrap_err();
        assert!(err.contains("no partition assigned"), "{err}");

        // One thread holding partitions is enough; losing them starts the clock again.
        m.held("consumer-1", 2);
        assert_eq!((m.partitions(), m.check(Duration::ZERO)), (2, Ok(())));
        m.held("consumer-1", 0);
        assert_eq!(m.check(Duration::from_secs(60)), Ok(()));
        assert!(m.check(Duration::ZERO).is_err());

        // No topics configured: nothing to wait for.
        m.subscribed("consumer-0", false);
        m.subscribed("consumer-1", false);
        assert_eq!(m.check(Duration::ZERO), Ok(()));
    }
}
