//! Telling a producer that no longer sends from a Kafka that is away.
//!
//! librdkafka (2.12) can stop sending without an error: seen now and then when a single
//! Apache Kafka node frozen for about 30 s fences its own broker on waking and gives the
//! partitions new leader epochs; its records then wait forever. When records have waited
//! [`STUCK_AFTER`] for any acknowledgement, a fresh producer (the probe) asks Kafka for the
//! topic's metadata every [`PROBE_EVERY`]; once Kafka has answered it, with a leader for every
//! partition, for as long again while the records still wait, the probe is handed over to
//! take the old producer's place. A Kafka that answers nobody is simply waited for.

use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::delivery::Kafka;

/// See [`StuckWatch::after`].
pub const STUCK_AFTER: Duration = Duration::from_secs(20);
/// How often the probe asks, and how long it waits for an answer.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The probe, while records wait long.
pub struct StuckWatch {
    probe: Option<Probe>,
    /// How long records may wait before the probe starts, and how long Kafka may answer it
    /// while the records still wait before the producer is taken for stuck.
    pub after: Duration,
}

struct Probe {
    kafka: Kafka,
    /// Since when Kafka has answered every probe, while the records kept waiting.
    answering_since: Option<Instant>,
    next_at: Instant,
}

impl Default for StuckWatch {
    fn default() -> Self {
        StuckWatch {
            probe: None,
            after: STUCK_AFTER,
        }
    }
}

impl StuckWatch {
    /// Called on every turn of the producer loop. `waiting`: how long records have waited
    /// for any delivery report (`None`: nothing in flight); `topic`: one they wait on;
    /// `fresh`: a new producer. Returns the producer to take over when the current one is
    /// stuck.
    pub fn check(
        &mut self,
        waiting: Option<Duration>,
        topic: Option<&str>,
        fresh: impl FnOnce() -> Option<Kafka>,
    ) -> Option<Kafka> {
        let (Some(waited), Some(topic)) = (waiting, topic) else {
            self.probe = None;
            return None;
        };
        if waited < self.after {
            self.probe = None;
            return None;
        }
        if self.probe.is_none() {
            self.probe = Some(Probe {
                kafka: fresh()?,
                answering_since: None,
                next_at: Instant::now(),
            });
        }
        let probe = self.probe.as_mut()?;
        if Instant::now() < probe.next_at {
            return None;
        }
        let answered = probe
            .kafka
            .client()
            .fetch_metadata(Some(topic), PROBE_EVERY)
            .is_ok_and(|md| {
                md.topics().first().is_some_and(|t| {
                    !t.partitions().is_empty() && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            });
        probe.next_at = Instant::now() + PROBE_EVERY;
        if !answered {
            probe.answering_since = None;
            return None;
        }
        let since = *probe.answering_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.after {
            return None;
        }
        self.probe.take().map(|p| p.kafka)
    }
}
