//! Counters the agent exposes on `/metrics` (Prometheus text) and `/health`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use logcollect::clock::rfc3339_ms;
use logcollect::fleet::{FileReport, Status, MAX_FILES};
use logcollect::http::{describe, escape_label, ErrorCounts};
use logcollect::sync::lock;

use crate::registry::Entry;

/// Per-file counters, updated by the file's tailer (read side) and the producer (acks).
#[derive(Default)]
pub struct FileStats {
    /// Lines (or multiline events) read and sent to the producer.
    pub lines_read: AtomicU64,
    /// Lines acknowledged by Kafka, or excluded (done without being sent).
    pub lines_acked: AtomicU64,
    /// Lines the entry's `include_lines`/`exclude_lines` kept from Kafka.
    pub lines_excluded: AtomicU64,
    /// File size when last looked at.
    pub size: AtomicU64,
    /// Offset up to which every line is acknowledged.
    pub acked_offset: AtomicU64,
    /// When Kafka last acknowledged a line of it (ms since the epoch; 0: not yet).
    pub last_ack_ms: AtomicI64,
    topic: Mutex<Arc<str>>,
    /// Tailers reading the file now (see [`Tailing`]); the status lists only these files.
    tailers: AtomicU32,
}

impl FileStats {
    fn bytes_behind(&self) -> u64 {
        self.size
            .load(Relaxed)
            .saturating_sub(self.acked_offset.load(Relaxed))
    }
}

/// Held by a tailer while it reads the file: the file is in the agent's status.
pub struct Tailing(Arc<FileStats>);

impl Tailing {
    /// Counts a tailer of the file of `stats`.
    pub fn new(stats: Arc<FileStats>) -> Tailing {
        stats.tailers.fetch_add(1, Relaxed);
        Tailing(stats)
    }
}

impl Drop for Tailing {
    fn drop(&mut self) {
        self.0.tailers.fetch_sub(1, Relaxed);
    }
}

/// Everything `/metrics` shows.
#[derive(Default)]
pub struct Metrics {
    files: Mutex<BTreeMap<String, Arc<FileStats>>>,
    /// Registry writes to disk.
    pub registry_writes: AtomicU64,
    /// `mod_revision` of the configuration in force.
    pub config_revision: AtomicI64,
    /// Records handed to librdkafka and not yet acknowledged.
    pub kafka_queue_depth: AtomicI64,
    /// Files renamed away while no tailer had them, found by identity and finished.
    pub moved_files_resumed: AtomicI64,
    /// Truncated files (copytruncate) whose unread end was read from their copy.
    pub copies_read: AtomicI64,
    /// Files that were no longer at their path and could not be found: their lines after
    /// the acknowledged offset may be missing.
    pub unfinished_files: AtomicI64,
    errors: ErrorCounts,
}

impl Metrics {
    /// The counters of the file at `path`, created on first use; `topic` is where it goes now.
    pub fn file(&self, path: &str, topic: &Arc<str>) -> Arc<FileStats> {
        let stats = lock(&self.files)
            .entry(path.to_string())
            .or_default()
            .clone();
        *lock(&stats.topic) = topic.clone();
        stats
    }

    /// The files being read, for the agent's status: the [`MAX_FILES`] furthest behind, and
    /// the totals of all.
    pub fn status(&self) -> Status {
        let files = lock(&self.files);
        let being_read: Vec<(&String, &Arc<FileStats>)> = files
            .iter()
            .filter(|(_, s)| s.tailers.load(Relaxed) > 0)
            .collect();
        let (files_total, bytes_behind) = (
            being_read.len(),
            being_read.iter().map(|(_, s)| s.bytes_behind()).sum(),
        );
        let last_ack_ms = being_read
            .iter()
            .map(|(_, s)| s.last_ack_ms.load(Relaxed))
            .max()
            .unwrap_or(0);
        let reports: Vec<FileReport> = furthest_behind(being_read)
            .into_iter()
            .map(|(path, s)| FileReport {
                path: path.clone(),
                topic: lock(&s.topic).to_string(),
                acked_offset: s.acked_offset.load(Relaxed),
                size: s.size.load(Relaxed),
                bytes_behind: s.bytes_behind(),
                last_ack_at: at(s.last_ack_ms.load(Relaxed)),
            })
            .collect();
        drop(files);
        Status {
            files_total,
            bytes_behind,
            last_ack_at: at(last_ack_ms),
            kafka_queue_depth: self.kafka_queue_depth.load(Relaxed),
            errors: self.errors.snapshot(),
            files: reports,
            ..Status::default()
        }
    }

    /// Reports the file of `entry`, gone or replaced before all of it was read: `what`
    /// happened to it. Said once per file, at WARN, and counted.
    pub fn unfinished(&self, entry: &Entry, what: &str) {
        log::warn!(
            "{}: file {} (inode {}) {what}; its lines after offset {} may be missing",
            entry.path,
            entry.identity(),
            entry.ino,
            entry.offset
        );
        self.unfinished_files.fetch_add(1, Relaxed);
    }

    /// Counts an error of `kind` (`open`, `read`, `kafka`, `registry`, `config`, ...).
    pub fn error(&self, kind: &'static str) {
        self.errors.count(kind);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let files = lock(&self.files);
        let per_file: [PerFile; 4] = [
            (
                "lines_read_total",
                "counter",
                "Lines read from the file and sent to the producer.",
                |s| s.lines_read.load(Relaxed),
            ),
            (
                "lines_acked_total",
                "counter",
                "Lines acknowledged by Kafka.",
                |s| s.lines_acked.load(Relaxed),
            ),
            (
                "lines_excluded_total",
                "counter",
                "Lines not sent because of the entry's include_lines/exclude_lines (their offset advances all the same).",
                |s| s.lines_excluded.load(Relaxed),
            ),
            (
                "bytes_behind",
                "gauge",
                "File size minus the acknowledged offset.",
                FileStats::bytes_behind,
            ),
        ];
        // With thousands of files a series each would make the page megabytes: the files
        // furthest behind have one, and every figure has a total over all files.
        let shown = furthest_behind(files.iter().collect());
        for (short, kind, help, get) in per_file {
            let name = format!("logcollect_agent_{short}");
            describe(&mut out, &name, kind, help);
            for (path, stats) in &shown {
                let _ = writeln!(
                    out,
                    "{name}{{path=\"{}\"}} {}",
                    escape_label(path),
                    get(stats)
                );
            }
            let total = format!("logcollect_agent_all_files_{short}");
            describe(&mut out, &total, kind, &format!("{help} All files."));
            let sum: u64 = files.values().map(|s| get(s)).sum();
            let _ = writeln!(out, "{total} {sum}");
        }
        let name = "logcollect_agent_files";
        let help = "Files with counters; the per-file series are of the 100 furthest behind.";
        describe(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {}", files.len());
        drop(files);
        let scalars = [
            (
                "kafka_queue_depth",
                "gauge",
                "Records in librdkafka not yet acknowledged.",
                self.kafka_queue_depth.load(Relaxed),
            ),
            (
                "registry_writes_total",
                "counter",
                "Registry writes to disk.",
                self.registry_writes.load(Relaxed) as i64,
            ),
            (
                "moved_files_resumed_total",
                "counter",
                "Files renamed away while no tailer had them (agent down), found in their directory and finished.",
                self.moved_files_resumed.load(Relaxed),
            ),
            (
                "truncated_files_finished_from_copy_total",
                "counter",
                "Files truncated (copytruncate) before they were read to their end, whose end was read from the copy beside them.",
                self.copies_read.load(Relaxed),
            ),
            (
                "unfinished_files_total",
                "counter",
                "Files gone from their path and not found in their directory before every line was acknowledged.",
                self.unfinished_files.load(Relaxed),
            ),
            (
                "config_revision",
                "gauge",
                "etcd mod_revision of the configuration in force.",
                self.config_revision.load(Relaxed),
            ),
        ];
        for (name, kind, help, value) in scalars {
            let name = format!("logcollect_agent_{name}");
            describe(&mut out, &name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        self.errors
            .render(&mut out, "logcollect_agent_errors_total");
        out
    }
}

/// The [`MAX_FILES`] of `files` furthest behind, furthest first (then by path).
fn furthest_behind<'a>(
    files: Vec<(&'a String, &'a Arc<FileStats>)>,
) -> Vec<(&'a String, &'a Arc<FileStats>)> {
    // Each file's figure is read once: the counters move while the files are sorted, and a
    // sort whose order changes under it panics (which aborts the agent).
    let mut keyed: Vec<_> = files
        .into_iter()
        .map(|(path, stats)| (stats.bytes_behind(), path, stats))
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    keyed.truncate(MAX_FILES);
    keyed
        .into_iter()
        .map(|(_, path, stats)| (path, stats))
        .collect()
}

/// An RFC 3339 time, or `None` for 0 (never).
fn at(ms: i64) -> Option<String> {
    (ms > 0).then(|| rfc3339_ms(ms))
}

/// A per-file series: name, type, help, and how to read it.
type PerFile = (
    &'static str,
    &'static str,
    &'static str,
    fn(&FileStats) -> u64,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_files_and_errors() {
        let m = Metrics::default();
        let f = m.file("/var/log/a \"b\".log", &Arc::from("t"));
        f.lines_read.store(3, Relaxed);
        f.size.store(100, Relaxed);
        f.acked_offset.store(40, Relaxed);
        m.error("open");
        m.error("open");
        let text = m.render();
        assert!(
            text.contains(
                "logcollect_agent_lines_read_total{path=\"/var/log/a \\\"b\\\".log\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("logcollect_agent_bytes_behind{path=\"/var/log/a \\\"b\\\".log\"} 60\n")
        );
        assert!(text.contains("logcollect_agent_errors_total{kind=\"open\"} 2\n"));
    }

    #[test]
    fn thousands_of_files_give_the_furthest_behind_a_series_each_and_totals() {
        let m = Metrics::default();
        for i in 0..1000u64 {
            let f = m.file(&format!("/l/{i:04}.log"), &Arc::from("t"));
            f.lines_read.store(2, Relaxed);
            f.size.store(i, Relaxed);
        }
        let text = m.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("logcollect_agent_bytes_behind{"))
            .collect();
        assert_eq!(series.len(), MAX_FILES);
        assert_eq!(
            series[0],
            "logcollect_agent_bytes_behind{path=\"/l/0999.log\"} 999"
        );
        assert_eq!(
            series[99],
            "logcollect_agent_bytes_behind{path=\"/l/0900.log\"} 900"
        );
        assert!(text.contains("\nlogcollect_agent_all_files_lines_read_total 2000\n"));
        assert!(text.contains("\nlogcollect_agent_all_files_bytes_behind 499500\n"));
        assert!(text.contains("\nlogcollect_agent_files 1000\n"));
    }

    #[test]
    fn files_can_be_listed_while_their_counters_move() {
        // A sort that read the counters as it compared saw its order change under it, and
        // panicked: seen as an agent aborted by a /metrics scrape while 100 files shipped.
        let m = Arc::new(Metrics::default());
        let files: Vec<Arc<FileStats>> = (0..2000)
            .map(|i| m.file(&format!("/l/{i:04}.log"), &Arc::from("t")))
            .collect();
        let _tailing: Vec<Tailing> = files.iter().map(|f| Tailing::new(f.clone())).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mover = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Relaxed) {
                    for (i, f) in files.iter().enumerate() {
                        f.size
                            .store((n * 7919 + i as u64 * 104_729) % 100_000, Relaxed);
                    }
                    n += 1;
                }
            })
        };
        for _ in 0..200 {
            assert_eq!(m.status().files.len(), MAX_FILES);
            let text = m.render();
            let series = text
                .lines()
                .filter(|l| l.starts_with("logcollect_agent_bytes_behind{"))
                .count();
            assert_eq!(series, MAX_FILES);
        }
        stop.store(true, Relaxed);
        mover.join().unwrap();
    }

    #[test]
    fn status_lists_the_files_being_read_furthest_behind_first() {
        let m = Metrics::default();
        let topic = Arc::from("t");
        let mut tailing = Vec::new();
        for (path, size, acked) in [
            ("/a", 10, 10),
            ("/b", 50, 20),
            ("/c", 7, 0),
            ("/gone", 99, 0),
        ] {
            let f = m.file(path, &topic);
            f.size.store(size, Relaxed);
            f.acked_offset.store(acked, Relaxed);
            if path != "/gone" {
                tailing.push(Tailing::new(f));
            }
        }
        m.file("/a", &topic)
            .last_ack_ms
            .store(1_795_765_261_318, Relaxed);
        m.error("open");
        let s = m.status();
        let order: Vec<_> = s
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.bytes_behind))
            .collect();
        assert_eq!(order, [("/b", 30), ("/c", 7), ("/a", 0)]);
        assert_eq!((s.files_total, s.bytes_behind), (3, 37));
        assert_eq!(s.last_ack_at.as_deref(), Some("2026-11-27T07:41:01.318Z"));
        assert_eq!(s.files[0].topic, "t");
        assert_eq!(s.errors["open"], 1);
        drop(tailing);
        assert_eq!(m.status().files_total, 0);
    }
}
