//! Counters the transfer exposes on `/metrics` (Prometheus text) and `/health`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use logcollect::clock::{now_ms, rfc3339_ms};
use logcollect::fleet::{Nudge, PartitionReport, Status};
use logcollect::http::{describe, escape_label, ErrorCounts};
use logcollect::pipeline::Failure;
use logcollect::sync::lock;

use crate::membership::Membership;

/// Upper bounds of the bulk latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Everything `/metrics` shows.
#[derive(Default)]
pub struct Metrics {
    /// Documents indexed.
    pub indexed: AtomicU64,
    /// Documents found already indexed under their id: re-deliveries, not written again.
    pub existed: AtomicU64,
    /// Document attempts answered "try again".
    pub retried: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Request body bytes sent to the store, as sent (gzip-compressed when `gzip` is on).
    pub store_sent_bytes: AtomicU64,
    /// Times a consumer thread paused its partitions, the batch thread being behind.
    pub consumer_pauses: AtomicU64,
    /// `mod_revision` of the collect configuration in force.
    pub config_revision: AtomicI64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    partitions: Mutex<BTreeMap<(String, i32), (i64, i64)>>,
    /// What the consumer threads hold of the group.
    pub membership: Membership,
    errors: ErrorCounts,
    /// The last bulk request that failed as a whole: when, and why.
    last_bulk_error: Mutex<Option<(String, String)>>,
    /// Writes the status at once when a bulk request fails for a new reason.
    pub nudge: Nudge,
    /// Processor failures by (processor, kind).
    processor_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Records the duration of one bulk request.
    pub fn bulk_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// The committed offset of a partition.
    pub fn committed(&self, topic: &str, partition: i32, offset: i64) {
        self.update_partition(topic, partition, |p| p.0 = offset);
    }

    /// A committed offset of a partition seen in librdkafka's statistics, which may be older
    /// than the last commit: it never moves the offset back.
    pub fn committed_at_least(&self, topic: &str, partition: i32, offset: i64) {
        self.update_partition(topic, partition, |p| p.0 = p.0.max(offset));
    }

    /// The consumer lag of a partition (high watermark minus committed offset).
    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.update_partition(topic, partition, |p| p.1 = lag);
    }

    /// Stops reporting a partition this process no longer consumes.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let mut partitions = lock(&self.partitions);
        partitions.remove(&(topic.to_string(), partition));
    }

    fn update_partition(&self, topic: &str, partition: i32, update: impl FnOnce(&mut (i64, i64))) {
        let mut partitions = lock(&self.partitions);
        update(partitions.entry((topic.into(), partition)).or_default());
    }

    /// A bulk request failed as a whole (it is sent again): counted, and kept for the status,
    /// which is written at once when the reason is not the last one's (an operator looking at
    /// `logctl status` sees a new failure now; a repeated one waits for the next beat).
    pub fn bulk_failed(&self, reason: &str) {
        self.error("bulk");
        let at = rfc3339_ms(now_ms());
        let previous = lock(&self.last_bulk_error).replace((at, reason.to_string()));
        if previous.is_none_or(|(_, last)| last != reason) {
            self.nudge.now();
        }
    }

    /// The partitions held, the counters and the last bulk error, for the transfer's status.
    pub fn status(&self) -> Status {
        let partitions: Vec<PartitionReport> = lock(&self.partitions)
            .iter()
            .map(|((topic, partition), &(committed, lag))| PartitionReport {
                topic: topic.clone(),
                partition: *partition,
                committed,
                lag,
            })
            .collect();
        Status {
            lag: partitions.iter().map(|p| p.lag.max(0)).sum(),
            partitions,
            indexed: self.indexed.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            last_bulk_error: lock(&self.last_bulk_error)
                .as_ref()
                .map(|(at, reason)| format!("{at}: {reason}")),
            errors: self.errors.snapshot(),
            ..Status::default()
        }
    }

    /// Counts a processor's failure on a document (the document is indexed all the same).
    pub fn processor_failed(&self, failure: &Failure) {
        *lock(&self.processor_failures)
            .entry((failure.processor, failure.kind))
            .or_default() += 1;
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: &'static str) {
        self.errors.count(kind);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in [
            (
                "documents_indexed_total",
                "Documents indexed.",
                &self.indexed,
            ),
            (
                "documents_already_indexed_total",
                "Documents delivered again and found already indexed under their id (not written twice).",
                &self.existed,
            ),
            (
                "documents_retried_total",
                "Document attempts answered 429, 5xx or not at all.",
                &self.retried,
            ),
            (
                "documents_dead_lettered_total",
                "Records sent to a dead-letter topic.",
                &self.dead_lettered,
            ),
            (
                "store_sent_bytes_total",
                "Request body bytes sent to the store, as sent (gzip-compressed when gzip is on).",
                &self.store_sent_bytes,
            ),
            (
                "consumer_pauses_total",
                "Times a consumer thread paused its partitions because the batch thread was behind.",
                &self.consumer_pauses,
            ),
        ] {
            let name = format!("logcollect_transfer_{name}");
            describe(&mut out, &name, "counter", help);
            let _ = writeln!(out, "{name} {}", v.load(Relaxed));
        }
        let name = "logcollect_transfer_bulk_seconds";
        describe(&mut out, name, "histogram", "Duration of _bulk requests.");
        for (bound, count) in BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        let partitions = lock(&self.partitions);
        for (metric, help, pick) in [
            ("committed_offset", "Committed offset per partition.", 0),
            (
                "consumer_lag",
                "High watermark minus committed offset per partition.",
                1,
            ),
        ] {
            let name = format!("logcollect_transfer_{metric}");
            describe(&mut out, &name, "gauge", help);
            for ((topic, p), v) in partitions.iter() {
                let value = if pick == 0 { v.0 } else { v.1 };
                let _ = writeln!(
                    out,
                    "{name}{{topic=\"{}\",partition=\"{p}\"}} {value}",
                    escape_label(topic)
                );
            }
        }
        drop(partitions);
        describe(
            &mut out,
            "logcollect_transfer_config_revision",
            "gauge",
            "etcd mod_revision of the collect configuration in force.",
        );
        let _ = writeln!(
            out,
            "logcollect_transfer_config_revision {}",
            self.config_revision.load(Relaxed)
        );
        describe(
            &mut out,
            "logcollect_transfer_partitions_assigned",
            "gauge",
            "Partitions the consumer threads hold.",
        );
        let _ = writeln!(
            out,
            "logcollect_transfer_partitions_assigned {}",
            self.membership.partitions()
        );
        self.errors
            .render(&mut out, "logcollect_transfer_errors_total");
        let name = "logcollect_transfer_processor_failures_total";
        describe(
            &mut out,
            name,
            "counter",
            "Documents a processor failed on (indexed all the same, tagged _PROCESSOR_failure).",
        );
        for ((processor, kind), n) in lock(&self.processor_failures).iter() {
            let _ = writeln!(
                out,
                "{name}{{processor=\"{processor}\",kind=\"{kind}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_failure_of_a_new_reason_nudges_the_heartbeat_once() {
        let metrics = Metrics::default();
        let nudged = || metrics.nudge.receiver().try_recv().is_ok();
        metrics.bulk_failed("HTTP 401: wrong key");
        assert!(nudged());
        metrics.bulk_failed("HTTP 401: wrong key");
        assert!(!nudged(), "the same reason again waits for the next beat");
        metrics.bulk_failed("HTTP 503: unavailable");
        assert!(nudged());
        let error = metrics.status().last_bulk_error.unwrap_or_default();
        assert!(error.ends_with("Z: HTTP 503: unavailable"), "{error}");
    }

    #[test]
    fn committed_offsets_from_statistics_never_move_back() {
        let metrics = Metrics::default();
        let committed = |partition| {
            let status = metrics.status();
            let p = status.partitions.iter().find(|p| p.partition == partition);
            p.map(|p| p.committed)
        };
        metrics.committed("web", 0, 3000);
        // A snapshot taken before the last commit was answered.
        metrics.committed_at_least("web", 0, 2500);
        assert_eq!(committed(0), Some(3000));
        // A partition taken over after its last owner committed everything: known only from
        // the statistics.
        metrics.committed_at_least("web", 1, 1000);
        assert_eq!(committed(1), Some(1000));
        metrics.committed_at_least("web", 1, 1200);
        assert_eq!(committed(1), Some(1200));
    }
}
