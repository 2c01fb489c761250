//! The tailer: one OS thread per open file.
//!
//! It reads what the file holds past its offset, splits it into lines (and multiline events),
//! and sends them in batches to the producer over a bounded channel; when the channel is full
//! it waits, so a slow or absent Kafka leaves the data in the file. Between reads it sleeps
//! until inotify reports a change, so an idle file costs no CPU.
//!
//! It follows the open file, not the path: after a rename it reads the old file to its end,
//! and closes it once it has been idle for [`CLOSE_GONE_AFTER`] (the supervisor starts another
//! tailer for whatever file now has the path). A deleted file is read to its end the same way.
//! A tailer may also be started on a file already renamed away (found by the supervisor after
//! a restart): it reads it to its end and closes it the same way.
//! A truncated file (copytruncate) gets a new generation and is read again from byte 0; what
//! was not read of the old content is read first from the copy, when it is beside the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use logcollect::clock::now_ms;
use logcollect::pipeline::LineFilter;
use logcollect::record::FileOrigin;
use logcollect::sync::{self, lock};
use logcollect::{Error, Result};
use regex::bytes::Regex;

use crate::fingerprint::{Check, Head, Identity};
use crate::lines::{Lines, Splitter};
use crate::metrics::{FileStats, Metrics, Tailing};
use crate::multiline::Multiline;
use crate::registry::{Entry, NewFileStart, Registry};
use crate::watch::{Watch, Watcher, FILE_EVENTS};

/// How long a renamed or deleted file must stay idle before its tailer closes it. A writer
/// that has not reopened its log yet may still append to the old file.
pub const CLOSE_GONE_AFTER: Duration = Duration::from_secs(5);
/// Bytes read per system call.
const READ_CHUNK: usize = 64 * 1024;

/// Tailer sessions get distinct numbers, so the producer tracks acknowledgements per session.
static SESSIONS: AtomicU32 = AtomicU32::new(1);

/// What every record of one file session carries.
pub struct Source {
    /// Distinct per tailer and generation (see [`crate::acks::Tag`]).
    pub session: u32,
    /// The registry entry: device, inode, generation, path.
    pub entry: Entry,
    /// Kafka topic.
    pub topic: Arc<str>,
    /// The Kafka key of its lines, but for the offset.
    pub origin: FileOrigin,
    /// Counters of this file.
    pub stats: Arc<FileStats>,
}

/// Lines read from one file, in file order.
pub struct Batch {
    /// Where they come from.
    pub source: Arc<Source>,
    /// The lines.
    pub lines: Lines,
    /// When they were read (ms since the epoch): the Kafka record timestamp.
    pub read_ms: i64,
    /// The tailer closed the file after these lines, read to this offset: once they are all
    /// acknowledged, the file's registry entry is dropped.
    pub closed_at: Option<u64>,
}

/// What a tailer is asked to do.
#[derive(Clone)]
pub struct Spec {
    /// Path the file was opened under.
    pub path: PathBuf,
    /// Kafka topic.
    pub topic: Arc<str>,
    /// Start position if the registry does not know the file.
    pub start: NewFileStart,
    /// Multiline start pattern and timeout.
    pub multiline: Option<(Regex, Duration)>,
    /// Longest line (or event) shipped.
    pub max_line_bytes: usize,
    /// The `path` of the collect entry, for the record header `entry`.
    pub entry: Arc<str>,
    /// The entry's `include_lines`/`exclude_lines`.
    pub lines: LineFilter,
}

/// What every tailer shares.
#[derive(Clone)]
pub struct Context {
    /// The registry (offsets, identities).
    pub registry: Arc<Mutex<Registry>>,
    /// The inotify instance.
    pub watcher: Arc<Watcher>,
    /// To the producer thread.
    pub batches: Sender<Batch>,
    /// Tells the supervisor a tailer ended on its own.
    pub exits: Sender<Exited>,
    /// This host's name, for the Kafka key.
    pub host: Arc<str>,
    /// `[fleet] name` and version, the record header `agent`.
    pub agent: Arc<str>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// A tailer ended on its own (file gone, or an error).
pub struct Exited {
    /// Device and inode of its file.
    pub file: (u64, u64),
    /// Path it was opened under.
    pub path: PathBuf,
    /// Why, if it failed.
    pub error: Option<Error>,
}

/// A running tailer.
pub struct Handle {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Handle {
    /// Stops the tailer and waits for it. Lines it read are with the producer; the partial
    /// last line and a pending multiline event are not shipped (they are read again later).
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The tailer was asked to stop.
struct Stopped;

/// Starts a tailer for `file`, just opened under `spec.path`.
pub fn spawn(spec: Spec, file: File, ctx: Context) -> Result<Handle> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io(&spec.path, "cannot stat", &e))?;
    let id = (meta.dev(), meta.ino());
    let (stop, stopped) = crossbeam_channel::bounded(0);
    let name = format!("tail {}", spec.path.display());
    let thread = sync::spawn(&name, move || {
        let path = spec.path.clone();
        let exits = ctx.exits.clone();
        let error = match Tailer::open(spec, file, ctx, stopped) {
            Ok(mut tailer) => match tailer.run() {
                Ok(()) => None,
                // Asked to stop: the supervisor already forgot this tailer, and may have
                // started another for the same file.
                Err(Stopped) => return,
            },
            Err(e) => Some(e),
        };
        let _ = exits.send(Exited {
            file: id,
            path,
            error,
        });
    })?;
    Ok(Handle { stop, thread })
}

struct Tailer {
    /// While this tailer lives, its file is in the agent's status.
    _tailing: Tailing,
    spec: Spec,
    ctx: Context,
    file: File,
    source: Arc<Source>,
    /// Fingerprint of the file's head and how many bytes it covers, to tell a truncation
    /// that was written over faster than it was looked at. Grows with a short file.
    head: Head,
    splitter: Splitter,
    multiline: Option<Multiline>,
    stop: Receiver<()>,
    wake: Receiver<()>,
    /// The inotify watch of the open file (removed on drop); `None`: checked every second.
    watch: Option<Watch>,
    /// Since when the file is renamed away or deleted and idle.
    gone_since: Option<Instant>,
    out: Lines,
}

impl Tailer {
    fn open(spec: Spec, mut file: File, ctx: Context, stop: Receiver<()>) -> Result<Tailer> {
        let (entry, replaced) = lock(&ctx.registry).open(&spec.path, &file, spec.start)?;
        if let Some(old) = replaced {
            ctx.metrics.unfinished(
                &old,
                "was replaced by other content while no tailer had it (truncated, or its inode reused by a new file)",
            );
        }
        file.seek(SeekFrom::Start(entry.offset))
            .map_err(|e| Error::io(&spec.path, "cannot seek", &e))?;
        let (wake_tx, wake) = crossbeam_channel::bounded(1);
        // Watch the open file itself, whatever its name becomes.
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let watch = match ctx.watcher.watch(&fd_path, FILE_EVENTS, wake_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!(
                    "{}: {e}; checking it every second instead",
                    spec.path.display()
                );
                None
            }
        };
        log::info!(
            "{}: tailing from offset {} to topic {} (file {})",
            spec.path.display(),
            entry.offset,
            spec.topic,
            entry.identity()
        );
        let multiline = spec
            .multiline
            .clone()
            .map(|(re, timeout)| Multiline::new(re, timeout, spec.max_line_bytes));
        let head = entry.head;
        let source = new_source(&spec, &ctx, entry);
        Ok(Tailer {
            _tailing: Tailing::new(source.stats.clone()),
            splitter: Splitter::new(source.entry.offset, spec.max_line_bytes),
            spec,
            ctx,
            file,
            source: Arc::new(source),
            multiline,
            stop,
            wake,
            watch,
            gone_since: None,
            head,
            out: Lines::default(),
        })
    }

    /// Reads, looks, waits; until stopped or the file is gone and idle.
    fn run(&mut self) -> Result<(), Stopped> {
        loop {
            if self.read_available()? {
                self.gone_since = None;
            }
            match self.look() {
                Look::Live => self.gone_since = None,
                Look::Truncated => {
                    self.restart_at_zero()?;
                    continue;
                }
                Look::Gone => {
                    let since = *self.gone_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= CLOSE_GONE_AFTER {
                        log::info!(
                            "{}: renamed or deleted, read to its end; closing",
                            self.spec.path.display()
                        );
                        return self.close();
                    }
                }
            }
            let deadline = [
                self.multiline.as_ref().and_then(Multiline::deadline),
                self.gone_since.map(|t| t + CLOSE_GONE_AFTER),
                self.watch
                    .is_none()
                    .then(|| Instant::now() + Duration::from_secs(1)),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            select! {
                recv(self.wake) -> _ => {}
                recv(self.stop) -> _ => return Err(Stopped),
                default(timeout) => {}
            }
            if let Some(m) = &mut self.multiline {
                m.flush_due(Instant::now(), &mut self.out);
                self.send()?;
            }
        }
    }

    /// Reads everything the file holds now; returns whether there was anything.
    fn read_available(&mut self) -> Result<bool, Stopped> {
        // The buffer lives for one read burst and is never zeroed: with thousands of files,
        // a buffer each would be most of the agent's memory.
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let mut any = false;
        loop {
            buf.clear();
            // Reads up to READ_CHUNK bytes, stopping early at the end of the file.
            let read = (&mut self.file)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut buf);
            let failed = read.is_err();
            if let Err(e) = read {
                log::error!(
                    "{}: read failed: {e}; retrying on the next change",
                    self.spec.path.display()
                );
                self.ctx.metrics.error("read");
            }
            // On an error, what was read before it is in `buf` and is shipped.
            if buf.is_empty() {
                return Ok(any);
            }
            any = true;
            match &mut self.multiline {
                None => self.splitter.feed(&buf, &mut self.out),
                Some(m) => {
                    let mut lines = Lines::default();
                    self.splitter.feed(&buf, &mut lines);
                    m.push_all(&lines, Instant::now(), &mut self.out);
                }
            }
            // A short read stopped at the end of the file (or at an error): the buffer goes
            // before a send that may wait, so thousands of waiting tailers hold none.
            let more = !failed && buf.len() == READ_CHUNK;
            if !more {
                buf = Vec::new();
            }
            self.send()?;
            if !more {
                return Ok(true);
            }
        }
    }

    /// Sends the lines collected so far; waits while the producer is behind.
    fn send(&mut self) -> Result<(), Stopped> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.send_batch(None)
    }

    /// Sends the lines collected so far (even none, with `closed_at`).
    fn send_batch(&mut self, closed_at: Option<u64>) -> Result<(), Stopped> {
        let mut lines = std::mem::take(&mut self.out);
        if !self.spec.lines.is_empty() {
            lines.exclude(|data| !self.spec.lines.keeps(data));
        }
        self.source
            .stats
            .lines_read
            .fetch_add(lines.len() as u64, Relaxed);
        let batch = Batch {
            source: self.source.clone(),
            lines,
            read_ms: now_ms(),
            closed_at,
        };
        select! {
            send(self.ctx.batches, batch) -> sent => sent.map_err(|_| Stopped),
            recv(self.stop) -> _ => Err(Stopped),
        }
    }

    /// The file is gone and read to its end: ships what is pending and hands the file's
    /// registry entry to the producer, which drops it once every line is acknowledged.
    fn close(&mut self) -> Result<(), Stopped> {
        self.collect_rest();
        lock(&self.ctx.registry).closing(&self.source.entry);
        self.send_batch(Some(self.splitter.position()))
    }

    /// copytruncate: what was not read before the truncation is in the copy, if the copy is
    /// beside the file; reads it from there, as lines of the old content.
    fn read_rest_from_copy(&mut self) -> Result<(), Stopped> {
        let Ok(read) = self.file.stream_position() else {
            return Ok(());
        };
        let old = Identity {
            head: self.head,
            ..self.source.entry.file_id()
        };
        let Some((copy_path, mut copy)) = old.copy_beside(&self.spec.path, read + 1) else {
            return Ok(());
        };
        if copy.seek(SeekFrom::Start(read)).is_err() {
            return Ok(());
        }
        log::info!(
            "{}: truncated after a copy to {}; reading what was not read yet, from offset {read}, there",
            self.spec.path.display(),
            copy_path.display()
        );
        self.ctx.metrics.copies_read.fetch_add(1, Relaxed);
        let truncated = std::mem::replace(&mut self.file, copy);
        let result = self.read_available();
        self.file = truncated;
        result.map(|_| ())
    }

    /// Ships the partial last line and a pending multiline event.
    fn finish(&mut self) -> Result<(), Stopped> {
        self.collect_rest();
        self.send()
    }

    /// Takes the partial last line and a pending multiline event into `out`.
    fn collect_rest(&mut self) {
        match &mut self.multiline {
            Some(m) => {
                let mut rest = Lines::default();
                self.splitter.finish(&mut rest);
                m.push_all(&rest, Instant::now(), &mut self.out);
                m.flush(&mut self.out);
            }
            None => self.splitter.finish(&mut self.out),
        }
    }

    /// What happened to the file since the last look.
    fn look(&mut self) -> Look {
        let Ok(meta) = self.file.metadata() else {
            return Look::Gone;
        };
        self.source.stats.size.store(meta.len(), Relaxed);
        if meta.len() < self.splitter.position() || self.head_changed(meta.len()) {
            return Look::Truncated;
        }
        if meta.nlink() == 0 {
            return Look::Gone;
        }
        match std::fs::metadata(&self.spec.path) {
            Ok(m) if (m.dev(), m.ino()) == (meta.dev(), meta.ino()) => Look::Live,
            _ => Look::Gone,
        }
    }

    /// Whether the first bytes differ from those fingerprinted: the file was truncated and
    /// written again faster than it was looked at. A short head that has grown is
    /// fingerprinted again, and the registry told.
    fn head_changed(&mut self, len: u64) -> bool {
        match self.head.check(&self.file, len) {
            Ok(Check::Changed) => true,
            Ok(Check::Grown(head)) => {
                if lock(&self.ctx.registry).grown(&self.source.entry, head) {
                    self.head = head;
                }
                false
            }
            // Unreadable now: the next look tells.
            Ok(Check::Same) | Err(_) => false,
        }
    }

    /// copytruncate: ship what was pending of the old content, then read the new from 0.
    fn restart_at_zero(&mut self) -> Result<(), Stopped> {
        self.read_rest_from_copy()?;
        self.finish()?;
        let path = &self.spec.path;
        log::info!(
            "{}: truncated; reading it again from the start",
            path.display()
        );
        let entry = match lock(&self.ctx.registry).truncated(&self.source.entry, &self.file) {
            Ok(e) => e,
            Err(e) => {
                // Without the new identity on disk, sending would risk reusing ids: wait.
                log::error!("{e}; retrying");
                self.ctx.metrics.error("registry");
                std::thread::sleep(Duration::from_secs(1));
                return Ok(());
            }
        };
        if let Err(e) = self.file.seek(SeekFrom::Start(0)) {
            log::error!("{}: cannot seek: {e}", path.display());
        }
        self.splitter = Splitter::new(0, self.spec.max_line_bytes);
        self.head = entry.head;
        self.source = Arc::new(new_source(&self.spec, &self.ctx, entry));
        Ok(())
    }
}

enum Look {
    Live,
    Truncated,
    Gone,
}

fn new_source(spec: &Spec, ctx: &Context, entry: Entry) -> Source {
    let path = spec.path.display().to_string();
    Source {
        session: SESSIONS.fetch_add(1, Relaxed),
        origin: FileOrigin::new(&ctx.host, &path, &entry.identity(), &spec.entry, &ctx.agent),
        topic: spec.topic.clone(),
        stats: ctx.metrics.file(&path, &spec.topic),
        entry,
    }
}

/// A tailer context for unit tests: a registry in `dir`, a real inotify instance, and the
/// receiving ends of the batch and exit channels.
#[cfg(test)]
pub fn test_context(dir: &std::path::Path) -> (Context, Receiver<Batch>, Receiver<Exited>) {
    let (batches_tx, batches) = crossbeam_channel::bounded(64);
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let ctx = Context {
        registry: Arc::new(Mutex::new(Registry::load(dir).unwrap())),
        watcher: Watcher::start().unwrap(),
        batches: batches_tx,
        exits: exits_tx,
        host: "h".into(),
        agent: "h/0".into(),
        metrics: Arc::default(),
    };
    (ctx, batches, exits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tailer's world: a temp directory with a registry, and the ends of its channels.
    struct World {
        dir: PathBuf,
        ctx: Context,
        batches: Receiver<Batch>,
        exits: Receiver<Exited>,
    }

    impl World {
        fn new(name: &str) -> World {
            let dir = crate::testing::temp_dir(&format!("tail-{name}"));
            let (ctx, batches, exits) = test_context(&dir);
            World {
                dir,
                ctx,
                batches,
                exits,
            }
        }

        /// Starts a tailer of `name` in the directory, from its first byte.
        fn tail(&self, name: &str) -> Handle {
            let path = self.dir.join(name);
            let spec = Spec {
                path: path.clone(),
                topic: "t".into(),
                start: NewFileStart::Beginning,
                multiline: None,
                max_line_bytes: 1024,
                entry: "e".into(),
                lines: LineFilter::default(),
            };
            spawn(spec, File::open(&path).unwrap(), self.ctx.clone()).unwrap()
        }

        /// The next batch within 10 s: its lines as (offset, text), and where it closed.
        fn next(&self) -> (Vec<(u64, String)>, Option<u64>, Arc<Source>) {
            let b = self
                .batches
                .recv_timeout(Duration::from_secs(10))
                .expect("a batch within 10 s");
            let lines = b
                .lines
                .iter()
                .map(|(l, data)| (l.offset, String::from_utf8_lossy(data).into_owned()))
                .collect();
            (lines, b.closed_at, b.source)
        }

        fn append(&self, name: &str, bytes: &[u8]) {
            crate::testing::append(&self.dir.join(name), bytes);
        }
    }

    impl Drop for World {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn lines(list: &[(u64, &str)]) -> Vec<(u64, String)> {
        list.iter().map(|(o, t)| (*o, t.to_string())).collect()
    }

    #[test]
    fn a_partial_last_line_waits_for_its_newline_and_growth_is_followed() {
        let w = World::new("partial");
        w.append("a.log", b"one\ntwo\npar");
        let t = w.tail("a.log");
        assert_eq!(w.next().0, lines(&[(0, "one"), (4, "two")]));
        w.append("a.log", b"tial\nthree\n");
        assert_eq!(w.next().0, lines(&[(8, "partial"), (16, "three")]));
        t.stop();
        assert!(w.batches.try_recv().is_err(), "nothing more");
    }

    #[test]
    fn a_renamed_file_is_read_to_its_end_then_closed() {
        let w = World::new("rename");
        w.append("a.log", b"one\n");
        let t = w.tail("a.log");
        assert_eq!(w.next().0, lines(&[(0, "one")]));
        std::fs::rename(w.dir.join("a.log"), w.dir.join("a.log.1")).unwrap();
        // The writer still appends to the renamed file; a new one takes the path.
        w.append("a.log.1", b"two\nlast without newline");
        w.append("a.log", b"new file\n");
        assert_eq!(w.next().0, lines(&[(4, "two")]));
        // Idle for CLOSE_GONE_AFTER: the partial last line is shipped, the file closed at
        // its end, and the registry no longer offers its entry for checks.
        let (last, closed_at, source) = w.next();
        assert_eq!(last, lines(&[(8, "last without newline")]));
        assert_eq!(closed_at, Some(28));
        let exited = w.exits.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(exited.error.is_none());
        assert_eq!(exited.file, (source.entry.dev, source.entry.ino));
        assert!(lock(&w.ctx.registry)
            .open_entries()
            .iter()
            .all(|e| e.ino != source.entry.ino));
        t.stop();
    }

    #[test]
    fn copytruncate_starts_a_new_generation_at_zero_and_deletion_closes() {
        let w = World::new("truncate");
        w.append("a.log", b"old content\n");
        let t = w.tail("a.log");
        let (first, _, old) = w.next();
        assert_eq!(first, lines(&[(0, "old content")]));
        // Truncated in place and written again.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(w.dir.join("a.log"))
            .unwrap();
        w.append("a.log", b"new\n");
        let (again, _, new) = w.next();
        assert_eq!(again, lines(&[(0, "new")]));
        assert!(new.entry.generation > old.entry.generation);
        assert_eq!(
            (new.entry.dev, new.entry.ino),
            (old.entry.dev, old.entry.ino)
        );
        assert_ne!(
            new.entry.identity(),
            old.entry.identity(),
            "new content, new identity"
        );
        // Deleted: read to its end and closed like a renamed file.
        std::fs::remove_file(w.dir.join("a.log")).unwrap();
        let (rest, closed_at, _) = w.next();
        assert!(rest.is_empty());
        assert_eq!(closed_at, Some(4));
        assert!(w.exits.recv_timeout(Duration::from_secs(5)).is_ok());
        t.stop();
    }

    #[test]
    fn copytruncate_reads_what_was_not_read_yet_from_the_copy() {
        let w = World::new("copy");
        w.append("a.log", b"one\n");
        let t = w.tail("a.log");
        let (first, _, old) = w.next();
        assert_eq!(first, lines(&[(0, "one")]));
        // "two" was appended and the file copied, then truncated, before the tailer looked:
        // the copy holds it. An older copy with other content is not taken.
        std::fs::write(w.dir.join("a.log.2"), b"older\nlines\n").unwrap();
        std::fs::write(w.dir.join("a.log.1"), b"one\ntwo\n").unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(w.dir.join("a.log"))
            .unwrap();
        let (rest, _, from_copy) = w.next();
        assert_eq!(rest, lines(&[(4, "two")]));
        assert_eq!(
            from_copy.entry.identity(),
            old.entry.identity(),
            "lines of the old content"
        );
        w.append("a.log", b"new\n");
        let (again, _, new) = w.next();
        assert_eq!(again, lines(&[(0, "new")]));
        assert_ne!(new.entry.identity(), old.entry.identity());
        assert_eq!(w.ctx.metrics.copies_read.load(Relaxed), 1);
        t.stop();
    }
}
