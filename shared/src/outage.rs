//! Errors of a connection that is down, said when the outage starts, then at a growing
//! interval while it lasts, and once when it ends, with its length: while a broker or the
//! store is away, every retry fails, and logging each one drowned the log. A connection that
//! flaps (a 500 now and then between successes) is said at the same growing interval: an
//! outage that starts within [`FLAP`] of the last one's end keeps that one's schedule, and
//! one whose errors were all held back ends unsaid.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first repeat of an error is said after this; each later one after twice as long.
pub const FIRST_REPEAT: Duration = Duration::from_secs(30);
/// The longest time an error that goes on is not said.
pub const LONGEST_SILENCE: Duration = Duration::from_secs(600);
/// An outage that starts this soon after the last one ended continues its schedule.
pub const FLAP: Duration = FIRST_REPEAT;

/// The errors of one connection (a Kafka client, the store) since it last worked.
#[derive(Default)]
pub struct Outage {
    state: Mutex<State>,
    /// Whether an error came since the connection last worked.
    active: AtomicBool,
}

#[derive(Default)]
struct State {
    /// When the first error of this outage came.
    since: Option<Instant>,
    errors: u64,
    /// Whether an error of this outage was said (then so is its end).
    said: bool,
    /// When the last outage ended.
    last_end: Option<Instant>,
    kinds: HashMap<String, Repeats>,
}

/// One kind of error as last said.
struct Repeats {
    said_at: Instant,
    every: Duration,
    held_back: u64,
}

/// An outage that ended: how long it lasted and how many errors it brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// From its first error to the first success after it.
    pub lasted: Duration,
    /// Errors in all, said or not.
    pub errors: u64,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.errors == 1 { "" } else { "s" };
        write!(
            f,
            "an outage of {:.1} s ({} error{s})",
            self.lasted.as_secs_f64(),
            self.errors
        )
    }
}

impl Outage {
    /// Counts an error of this `kind`; whether to say it now, and if so how many like it were
    /// held back since it was last said. The first of each kind is said at once.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        let mut state = crate::sync::lock(&self.state);
        let now = Instant::now();
        if !self.active.swap(true, Ordering::Relaxed)
            && state
                .last_end
                .is_none_or(|end| now.duration_since(end) >= FLAP)
        {
            // A new outage, not a flap of the last one: every kind is said at once.
            state.kinds.clear();
        }
        state.since.get_or_insert(now);
        state.errors += 1;
        let say = match state.kinds.get_mut(kind) {
            Some(r) if now.duration_since(r.said_at) < r.every => {
                r.held_back += 1;
                None
            }
            Some(r) => {
                let held_back = std::mem::take(&mut r.held_back);
                r.said_at = now;
                r.every = (r.every * 2).min(LONGEST_SILENCE);
                Some(held_back)
            }
            None => {
                let first = Repeats {
                    said_at: now,
                    every: FIRST_REPEAT,
                    held_back: 0,
                };
                state.kinds.insert(kind.to_string(), first);
                Some(0)
            }
        };
        state.said |= say.is_some();
        say
    }

    /// The connection works: the outage, if one was on, ended. It is returned, to be said,
    /// if any of its errors was; the next error starts a new one. Cheap when there was no
    /// error: called for every record.
    pub fn recovered(&self) -> Option<Ended> {
        if !self.active.load(Ordering::Relaxed) || !self.active.swap(false, Ordering::Relaxed) {
            return None;
        }
        let mut state = crate::sync::lock(&self.state);
        let ended = (state.since.take(), std::mem::take(&mut state.errors));
        state.last_end = Some(Instant::now());
        match ended {
            (Some(since), errors) if std::mem::take(&mut state.said) => Some(Ended {
                lasted: since.elapsed(),
                errors,
            }),
            _ => None,
        }
    }
}

/// ", N more like it since it was last said" for a count held back, else nothing.
pub fn held_back(count: u64) -> String {
    match count {
        0 => String::new(),
        n => format!("; {n} more like it since it was last said"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_said_once_then_at_growing_intervals_and_the_end_with_its_length() {
        let outage = Outage::default();
        assert_eq!(outage.recovered(), None, "no outage, nothing to say");
        assert_eq!(outage.admit("refused"), Some(0));
        assert_eq!(outage.admit("refused"), None);
        assert_eq!(
            outage.admit("timed out"),
            Some(0),
            "another kind: said at once"
        );
        // Said again once FIRST_REPEAT has passed, with the count held back.
        crate::sync::lock(&outage.state)
            .kinds
            .get_mut("refused")
            .unwrap()
            .said_at -= FIRST_REPEAT;
        assert_eq!(outage.admit("refused"), Some(1));
        assert_eq!(
            crate::sync::lock(&outage.state).kinds["refused"].every,
            FIRST_REPEAT * 2
        );
        let ended = outage.recovered().expect("the outage ended");
        assert_eq!(ended.errors, 4);
        assert!(ended
            .to_string()
            .starts_with("an outage of 0.0 s (4 errors)"));
        assert_eq!(outage.recovered(), None, "said once");
        // It fails again at once: a flap, on the same schedule; all held back, its end unsaid.
        assert_eq!(outage.admit("refused"), None);
        assert_eq!(outage.recovered(), None);
        // Long after the last end: a new outage, said at once.
        if let Some(end) = crate::sync::lock(&outage.state).last_end.as_mut() {
            *end -= FLAP;
        }
        assert_eq!(outage.admit("refused"), Some(0), "a new outage");
        assert_eq!(held_back(0), "");
        assert_eq!(held_back(3), "; 3 more like it since it was last said");
    }
}
