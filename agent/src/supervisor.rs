//! The supervisor keeps one tailer running for every file the configuration names. It runs
//! on the main thread: it applies configurations (diffing them against the one in force),
//! looks for files when a watched directory changes, and every [`RESCAN_INTERVAL`] while
//! inotify cannot cover everything (a directory that does not exist yet, a glob reaching
//! into subdirectories, a file it could not open), else every [`RESCAN_COVERED_INTERVAL`].
//!
//! At every scan it also checks the registry: a configured file that is no longer at its
//! path and has no tailer (it was renamed while the agent was down, or after its tailer was
//! stopped) is looked for by identity in its directory and finished from its acknowledged
//! offset; one that cannot be found is reported once, with the offset after which its lines
//! may be missing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use logcollect::collect::{CollectEntry, StartAt};
use logcollect::sync::lock;
use regex::bytes::Regex;

use crate::discover;
use crate::fingerprint::Whereabouts;
use crate::registry::NewFileStart;
use crate::tail::{self, Exited, Spec};
use crate::watch::{Watch, DIR_EVENTS};

/// How often every entry is scanned while inotify events cannot tell of every new file
/// (directories that do not exist yet, globs below subdirectories, files that could not be
/// opened).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// How often every entry is scanned when inotify covers them all: a safety net, rare
/// because a scan of 10,000 files takes about 60 ms of CPU.
pub const RESCAN_COVERED_INTERVAL: Duration = Duration::from_secs(60);

struct Running {
    /// `path` of the entry that started it.
    entry: String,
    path: PathBuf,
    handle: tail::Handle,
}

/// Owns the tailers.
pub struct Supervisor {
    ctx: tail::Context,
    max_line_bytes: usize,
    entries: Vec<CollectEntry>,
    /// Entry paths applied before (in this run, or in the cached configuration of the last):
    /// only an entry applied for the first time starts existing files at their end.
    applied: HashSet<String>,
    /// Keyed by device and inode: one tailer per file, whatever its names.
    tailers: HashMap<(u64, u64), Running>,
    dirs: HashMap<PathBuf, Watch>,
    dir_wake: Sender<()>,
    /// Files that could not be opened: tried again at every scan, reported once.
    failing: HashSet<PathBuf>,
    /// What the entries name that is not a regular file (a FIFO, a device): reported once.
    not_files: HashSet<PathBuf>,
}

impl Supervisor {
    /// `previous` is the configuration the agent ran with before this start, if known.
    pub fn new(
        ctx: tail::Context,
        max_line_bytes: usize,
        dir_wake: Sender<()>,
        previous: &[CollectEntry],
    ) -> Supervisor {
        Supervisor {
            ctx,
            max_line_bytes,
            entries: Vec::new(),
            applied: previous.iter().map(|e| e.path.clone()).collect(),
            tailers: HashMap::new(),
            dirs: HashMap::new(),
            dir_wake,
            failing: HashSet::new(),
            not_files: HashSet::new(),
        }
    }

    /// Makes `entries` the configuration in force: stops the tailers of removed and changed
    /// entries, leaves the others alone, and starts tailers for the files of new and changed
    /// entries.
    pub fn apply(&mut self, entries: &[CollectEntry]) {
        let unchanged: HashSet<&str> = self
            .entries
            .iter()
            .filter(|e| entries.iter().any(|new| new.same_for_agent(e)))
            .map(|e| e.path.as_str())
            .collect();
        let stale: Vec<(u64, u64)> = self
            .tailers
            .iter()
            .filter(|(_, r)| !unchanged.contains(r.entry.as_str()))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(r) = self.tailers.remove(&id) {
                log::info!(
                    "{}: no longer configured as it was; stopping its tailer",
                    r.path.display()
                );
                r.handle.stop();
            }
        }
        self.entries = entries.to_vec();
        // Before the scans: a file truncated while not tailed is finished from its copy
        // before its path's new content takes the inode's registry entry.
        self.finish_moved(true);
        for i in 0..self.entries.len() {
            let entry = &self.entries[i];
            let start = match (self.applied.contains(&entry.path), entry.start) {
                (false, StartAt::End) => NewFileStart::End,
                _ => NewFileStart::Beginning,
            };
            self.applied.insert(entry.path.clone());
            self.scan(i, start);
        }
        self.sync_dirs();
    }

    /// Looks for files of every entry that have no tailer yet; they are read from the start.
    pub fn rescan(&mut self) {
        self.finish_moved(false);
        for i in 0..self.entries.len() {
            self.scan(i, NewFileStart::Beginning);
        }
        self.sync_dirs();
    }

    /// Finishes the configured files of the registry that no tailer has and that are no
    /// longer at their path: found renamed in their directory (or, truncated at their path,
    /// their copy beside it), a tailer reads them to their end under their old path (so their
    /// records keep their key and headers) and closes them; not found, they are reported
    /// once. Files reported lost are looked for again only when `lost_too` (a configuration
    /// applied): a rescan comes with every directory event, and each look reads a directory.
    fn finish_moved(&mut self, lost_too: bool) {
        let known = lock(&self.ctx.registry).open_entries();
        for known in known {
            if self.tailers.contains_key(&(known.dev, known.ino)) || (known.lost && !lost_too) {
                continue;
            }
            let old_path = PathBuf::from(&known.path);
            let Some(index) = self
                .entries
                .iter()
                .position(|e| discover::names(&e.path, &old_path))
            else {
                continue; // no longer configured: not ours to finish
            };
            match known.locate() {
                // The scan has it, if it still is a file the entry names.
                Whereabouts::AtPath => {}
                Whereabouts::Moved(now, file) => {
                    log::info!(
                        "{}: renamed to {} while not tailed (file {}); finishing it from offset {}",
                        known.path,
                        now.display(),
                        known.identity(),
                        known.offset
                    );
                    self.ctx.metrics.moved_files_resumed.fetch_add(1, Relaxed);
                    self.spawn_tailer(index, old_path, file, NewFileStart::Beginning);
                }
                Whereabouts::Copied(copy, file) => {
                    if !lock(&self.ctx.registry).copied(&known, &file) {
                        continue;
                    }
                    log::info!(
                        "{}: truncated while not tailed (copytruncate, file {}); finishing it from offset {} in its copy {}",
                        known.path,
                        known.identity(),
                        known.offset,
                        copy.display()
                    );
                    self.ctx.metrics.copies_read.fetch_add(1, Relaxed);
                    self.spawn_tailer(index, old_path, file, NewFileStart::Beginning);
                }
                Whereabouts::Missing if !known.lost => {
                    self.ctx.metrics.unfinished(
                        &known,
                        "is no longer there nor in its directory (deleted, compressed or moved away)",
                    );
                    lock(&self.ctx.registry).lost(&known);
                }
                Whereabouts::Missing => {}
            }
        }
    }

    /// A tailer ended on its own.
    pub fn exited(&mut self, exited: Exited) {
        if let Some(r) = self.tailers.remove(&exited.file) {
            r.handle.stop();
        }
        if let Some(e) = exited.error {
            log::error!("{e}; retrying within {RESCAN_INTERVAL:?}");
            self.ctx.metrics.error("tail");
            self.failing.insert(exited.path);
        }
    }

    /// Stops every tailer; the producer then sees its channel close.
    pub fn stop(self) {
        for (_, r) in self.tailers {
            r.handle.stop();
        }
    }

    fn scan(&mut self, index: usize, start: NewFileStart) {
        let entry = &self.entries[index];
        let (files, others) = discover::expand(&entry.path);
        for (path, kind) in others {
            if self.not_files.insert(path.clone()) {
                log::warn!(
                    "{}: {kind}, not a regular file; not tailed (entry {})",
                    path.display(),
                    entry.path
                );
                self.ctx.metrics.error("not_a_file");
            }
        }
        for path in files {
            self.start_tailer(index, path, start);
        }
    }

    fn start_tailer(&mut self, index: usize, path: PathBuf, start: NewFileStart) {
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        if self.tailers.contains_key(&(meta.dev(), meta.ino())) {
            return;
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if self.failing.insert(path.clone()) {
                    log::error!(
                        "{}: cannot open: {e}; retrying when it changes, or within {RESCAN_INTERVAL:?}",
                        path.display()
                    );
                }
                self.ctx.metrics.error("open");
                return;
            }
        };
        if self.failing.remove(&path) {
            log::info!("{}: can be opened now", path.display());
        }
        self.spawn_tailer(index, path, file, start);
    }

    /// Starts a tailer of entry `index` for `file`, opened; `path` is the name its records
    /// carry.
    fn spawn_tailer(&mut self, index: usize, path: PathBuf, file: File, start: NewFileStart) {
        let Ok(meta) = file.metadata() else { return };
        let entry = &self.entries[index];
        let spec = Spec {
            path: path.clone(),
            topic: Arc::from(entry.topic.as_str()),
            start,
            multiline: entry.multiline_start.as_deref().and_then(|re| {
                // Validated with the configuration; compiled again for bytes.
                Regex::new(re).ok().map(|re| (re, entry.multiline_timeout))
            }),
            max_line_bytes: self.max_line_bytes,
            entry: Arc::from(entry.path.as_str()),
            lines: entry.processors.lines.clone(),
        };
        match tail::spawn(spec, file, self.ctx.clone()) {
            Ok(handle) => {
                let running = Running {
                    entry: entry.path.clone(),
                    path,
                    handle,
                };
                self.tailers.insert((meta.dev(), meta.ino()), running);
            }
            Err(e) => {
                log::error!("{e}; retrying within {RESCAN_INTERVAL:?}");
                self.failing.insert(path);
            }
        }
    }

    /// When to scan again without an event: soon while inotify cannot tell of every new
    /// file, rarely when it can.
    pub fn rescan_interval(&self) -> Duration {
        let covered = self.failing.is_empty()
            && self.entries.iter().all(|e| {
                discover::flat(&e.path) && self.dirs.contains_key(&discover::watch_dir(&e.path))
            });
        if covered {
            RESCAN_COVERED_INTERVAL
        } else {
            RESCAN_INTERVAL
        }
    }

    /// Watches the directories the entries need, and only those.
    fn sync_dirs(&mut self) {
        let wanted: HashSet<PathBuf> = self
            .entries
            .iter()
            .map(|e| discover::watch_dir(&e.path))
            .filter(|d| d.is_dir())
            .collect();
        self.dirs.retain(|d, _| wanted.contains(d));
        for dir in wanted {
            if self.dirs.contains_key(&dir) {
                continue;
            }
            match self
                .ctx
                .watcher
                .watch(&dir, DIR_EVENTS, self.dir_wake.clone())
            {
                Ok(w) => {
                    self.dirs.insert(dir, w);
                }
                Err(e) => log::warn!("{e}; new files there are found every {RESCAN_INTERVAL:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::{test_context, Batch};
    use crate::testing::{append, temp_dir};
    use crossbeam_channel::Receiver;
    use logcollect::collect::parse_collect_conf;
    use logcollect::sync::lock;

    fn entries(json: &str) -> Vec<CollectEntry> {
        parse_collect_conf("collect_log_conf", json.as_bytes()).unwrap()
    }

    /// The next batch, acknowledged as the producer would: its topic, tailer session and
    /// first line.
    fn next(s: &Supervisor, batches: &Receiver<Batch>) -> (String, u32, String) {
        let b = batches.recv_timeout(Duration::from_secs(10)).unwrap();
        let e = &b.source.entry;
        let end = b.lines.iter().last().map_or(0, |(l, _)| l.end);
        lock(&s.ctx.registry).ack(e.dev, e.ino, e.generation, end);
        let first = b.lines.iter().next().map_or(&[][..], |(_, data)| data);
        let line = String::from_utf8_lossy(first).into_owned();
        (b.source.topic.to_string(), b.source.session, line)
    }

    /// Waits until a tailer has opened `path` (its start offset is decided then).
    fn opened(s: &Supervisor, path: &std::path::Path) {
        let ino = std::fs::metadata(path).unwrap().ino();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !lock(&s.ctx.registry)
            .open_entries()
            .iter()
            .any(|e| e.ino == ino)
        {
            assert!(std::time::Instant::now() < deadline, "{path:?} not opened");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn only_changed_and_removed_entries_restart_or_stop_their_tailers() {
        let dir = temp_dir("supervisor");
        let (a, b) = (dir.join("a.log"), dir.join("b.log"));
        let entry = |path: &std::path::Path, topic: &str| {
            format!(r#"{{"path":"{}","topic":"{topic}"}}"#, path.display())
        };
        let (ctx, batches, _exits) = test_context(&dir);
        let (wake, _) = crossbeam_channel::bounded(1);
        let mut s = Supervisor::new(ctx, 1024, wake, &[]);

        // First applied: existing files start at their end.
        append(&a, b"before\n");
        append(&b, b"");
        s.apply(&entries(&format!("[{}]", entry(&a, "one"))));
        opened(&s, &a);
        append(&a, b"a1\n");
        let (topic, a_session, line) = next(&s, &batches);
        assert_eq!((topic.as_str(), line.as_str()), ("one", "a1"));

        // An entry added: the unchanged one keeps its tailer (same session).
        s.apply(&entries(&format!(
            "[{},{}]",
            entry(&a, "one"),
            entry(&b, "two")
        )));
        opened(&s, &b);
        append(&b, b"b1\n");
        assert_eq!(next(&s, &batches).0, "two");
        append(&a, b"a2\n");
        let (_, session, line) = next(&s, &batches);
        assert_eq!((session, line.as_str()), (a_session, "a2"));

        // Its topic changed: a new tailer, resuming where the old one was.
        s.apply(&entries(&format!(
            "[{},{}]",
            entry(&a, "three"),
            entry(&b, "two")
        )));
        append(&a, b"a3\n");
        let (topic, session, line) = next(&s, &batches);
        assert_eq!((topic.as_str(), line.as_str()), ("three", "a3"));
        assert_ne!(session, a_session);

        // Only what the transfer does changed: the tailer goes on (same session).
        let with_processors = format!(
            r#"{{"path":"{}","topic":"three","processors":[{{"drop_fields":{{"fields":["x"]}}}}]}}"#,
            a.display()
        );
        s.apply(&entries(&format!(
            "[{with_processors},{}]",
            entry(&b, "two")
        )));
        append(&a, b"a3b\n");
        let (_, same, line) = next(&s, &batches);
        assert_eq!((same, line.as_str()), (session, "a3b"));

        // Removed: its tailer stops; the other goes on.
        s.apply(&entries(&format!("[{}]", entry(&a, "three"))));
        append(&b, b"b2\n");
        append(&a, b"a4\n");
        let (topic, _, line) = next(&s, &batches);
        assert_eq!((topic.as_str(), line.as_str()), ("three", "a4"));
        assert_eq!(s.tailers.len(), 1);
        s.stop();
        assert!(batches.try_recv().is_err(), "nothing from the removed file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_renamed_while_no_tailer_had_it_is_finished_and_a_deleted_one_reported() {
        let dir = temp_dir("supervisor-moved");
        let (a, gone) = (dir.join("a.log"), dir.join("gone.log"));
        // What an earlier run left: a.log acknowledged up to "a1", gone.log up to "g1".
        append(&a, b"a1\na2\n");
        append(&gone, b"g1\ng2\n");
        let (ctx, batches, _exits) = test_context(&dir);
        for path in [&a, &gone] {
            let f = File::open(path).unwrap();
            let (e, _) = lock(&ctx.registry)
                .open(path, &f, NewFileStart::Beginning)
                .unwrap();
            lock(&ctx.registry).ack(e.dev, e.ino, e.generation, 3);
        }
        // While no agent ran: a.log rotated by rename, gone.log deleted.
        std::fs::rename(&a, dir.join("a.log.1")).unwrap();
        append(&dir.join("a.log.1"), b"a3\n");
        append(&a, b"new1\n");
        std::fs::remove_file(&gone).unwrap();

        let conf = entries(&format!(
            r#"[{{"path":"{}","topic":"t"}},{{"path":"{}","topic":"t"}}]"#,
            a.display(),
            gone.display()
        ));
        let (wake, _) = crossbeam_channel::bounded(1);
        let mut s = Supervisor::new(ctx, 1024, wake, &conf);
        s.apply(&conf);
        let mut got = Vec::new();
        for _ in 0..2 {
            let b = batches.recv_timeout(Duration::from_secs(10)).unwrap();
            for (l, data) in b.lines.iter() {
                let text = String::from_utf8_lossy(data).into_owned();
                got.push((b.source.entry.path.clone(), l.offset, text));
            }
        }
        got.sort();
        let a_path = a.display().to_string();
        // The renamed file from its acknowledged offset, under its old path; the new one whole.
        assert_eq!(
            got,
            [
                (a_path.clone(), 0, "new1".to_string()),
                (a_path.clone(), 3, "a2".to_string()),
                (a_path, 6, "a3".to_string()),
            ]
        );
        let m = s.ctx.metrics.clone();
        assert_eq!(m.moved_files_resumed.load(Relaxed), 1);
        assert_eq!(m.unfinished_files.load(Relaxed), 1);
        // Reported once: a rescan does not count it again.
        s.rescan();
        assert_eq!(m.unfinished_files.load(Relaxed), 1);
        s.stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
