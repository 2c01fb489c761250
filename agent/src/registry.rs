//! The registry: for each file, its identity and the offset up to which every line is
//! acknowledged by Kafka. It is what makes a restart, even after `kill -9`, resume without
//! losing a line.
//!
//! A file is known by its [`Identity`] (device, inode, head) and a generation:
//! the time in ms when this content was first seen. The registry only stores them. The generation
//! changes when the file is truncated or the inode is reused by other content, so new content
//! never inherits the identity (and so the transfer's document ids) or the offset of old
//! content. A new identity is written to disk before any of its lines is sent.
//!
//! An entry lives while its file may still hold lines Kafka does not have: it is dropped once
//! its tailer closed the file (renamed away or deleted, read to its end) and every line of it
//! is acknowledged. An entry whose file is no longer at its path is looked for by identity in
//! the same directory (see [`Identity::locate`]), so a file renamed while the agent was down
//! is still finished. One that cannot be found is marked `lost` (reported once) and kept for
//! the usual [`FORGET_AFTER_MS`], looked for again at each start and configuration change,
//! in case its directory comes back (a late mount).
//!
//! Written atomically (`persist::write_atomic`) at most once per [`FLUSH_INTERVAL`] while it
//! changes, at once for a new identity, and at shutdown.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logcollect::clock::now_ms;
use logcollect::{persist, record, Error, Result};
use serde_json::{json, Value};

use crate::fingerprint::{Head, Identity, Whereabouts};

/// Longest time a changed registry waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// An entry whose file has not been open for this long is forgotten.
const FORGET_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;

/// What the registry knows of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path the file was last opened under.
    pub path: String,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// When this content was first seen (ms since the epoch); part of the identity.
    pub generation: i64,
    /// The fingerprint of its first bytes.
    pub head: Head,
    /// Every line before this byte offset is acknowledged by Kafka.
    pub offset: u64,
    /// Last time the entry changed (ms since the epoch).
    pub updated_ms: i64,
    /// The file is no longer at `path` and was not found in its directory; reported already.
    pub lost: bool,
    /// The device and inode of its identity, when they are not `dev` and `ino`: the file was
    /// truncated while not tailed and is finished from its copy (another inode), whose lines
    /// keep the identity, so that those sent before the truncation keep their document ids.
    pub identity_of: Option<(u64, u64)>,
}

impl Entry {
    /// The identity sent with every record of this file: [`record::identity`].
    pub fn identity(&self) -> String {
        let (dev, ino) = self.identity_of.unwrap_or((self.dev, self.ino));
        record::identity(dev, ino, self.generation)
    }

    /// The file's identity, to compare with or find a file.
    pub fn file_id(&self) -> Identity {
        Identity {
            dev: self.dev,
            ino: self.ino,
            head: self.head,
        }
    }

    /// Where this entry's file is now, see [`Identity::locate`].
    pub fn locate(&self) -> Whereabouts {
        self.file_id().locate(Path::new(&self.path), self.offset)
    }
}

/// Where a tailer starts in a file that has no registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFileStart {
    /// At byte 0.
    Beginning,
    /// At the current end.
    End,
}

/// The registry of one agent, shared by the tailers (open) and the producer (ack).
pub struct Registry {
    path: PathBuf,
    /// Keyed by `dev:ino`: one live generation per inode.
    entries: HashMap<String, Entry>,
    /// Inode keys whose tailer closed the file: the entry goes once all is acknowledged, and
    /// nothing looks for the file again meanwhile (in memory: a restart looks again).
    closing: HashSet<String>,
    dirty: bool,
    /// A generation was created since the last write: see [`Registry::save_new_generations`].
    new_generations: bool,
    last_write: Instant,
    /// Number of writes to disk, for /metrics.
    pub writes: u64,
}

fn inode_key(dev: u64, ino: u64) -> String {
    format!("{dev}:{ino}")
}

impl Registry {
    /// Loads `data_dir/registry.json`; an unreadable or corrupt file is moved aside with an
    /// error, and the agent starts with an empty registry.
    pub fn load(data_dir: &Path) -> Result<Registry> {
        let path = data_dir.join("registry.json");
        let mut registry = Registry {
            path: path.clone(),
            entries: HashMap::new(),
            closing: HashSet::new(),
            dirty: false,
            new_generations: false,
            last_write: Instant::now(),
            writes: 0,
        };
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(e) => return Err(Error::io(&path, "cannot read registry", &e)),
        };
        match parse(&raw) {
            Some(entries) => {
                let cutoff = now_ms() - FORGET_AFTER_MS;
                registry.entries = entries
                    .into_iter()
                    .filter(|e| e.updated_ms >= cutoff)
                    .map(|e| (inode_key(e.dev, e.ino), e))
                    .collect();
            }
            None => {
                let aside = path.with_extension("json.corrupt");
                log::error!(
                    "{}: registry is corrupt; moved to {} and starting empty",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(&path, &aside)
                    .map_err(|e| Error::io(&path, "cannot move aside", &e))?;
            }
        }
        Ok(registry)
    }

    /// Decides where a tailer starts in `file`, just opened under `path`, and returns its
    /// registry entry. Known content resumes at its acknowledged offset; new content (new
    /// file, reused inode, truncated file) gets a new generation and starts at `start`
    /// (new files) or 0 (new content of a known inode). The entry of the content a known
    /// inode held before is returned too, unless already reported lost: that content changed
    /// while no tailer had it, so its lines after the acknowledged offset may be missing.
    pub fn open(
        &mut self,
        path: &Path,
        file: &File,
        start: NewFileStart,
    ) -> Result<(Entry, Option<Entry>)> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot stat", &e))?;
        let key = inode_key(meta.dev(), meta.ino());
        let io = |e: std::io::Error| Error::io(path, "cannot read", &e);
        if let Some(known) = self.entries.get_mut(&key) {
            if known.file_id().is(file, &meta, known.offset).map_err(io)? {
                known.path = path.display().to_string();
                if known.lost {
                    known.lost = false;
                    self.dirty = true;
                }
                return Ok((known.clone(), None));
            }
        }
        let replaced = self.entries.get(&key).filter(|e| !e.lost).cloned();
        let head = Head::of(file).map_err(io)?;
        // New content of a known inode is read whole: it appeared after the entry was applied.
        let offset = match start {
            NewFileStart::End if !self.entries.contains_key(&key) => meta.len(),
            _ => 0,
        };
        let id = Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            head,
        };
        Ok((self.new_generation(path, id, offset), replaced))
    }

    /// The file was truncated (copytruncate): its content is new. Returns the new entry.
    pub fn truncated(&mut self, old: &Entry, file: &File) -> Result<Entry> {
        let path = PathBuf::from(&old.path);
        let head = Head::of(file).map_err(|e| Error::io(&path, "cannot read", &e))?;
        let id = Identity {
            head,
            ..old.file_id()
        };
        Ok(self.new_generation(&path, id, 0))
    }

    /// New content `id` at `path`, read from `offset`.
    fn new_generation(&mut self, path: &Path, id: Identity, offset: u64) -> Entry {
        let key = inode_key(id.dev, id.ino);
        let mut generation = now_ms();
        // Generations of one inode only grow, even within one millisecond.
        if let Some(old) = self.entries.get(&key) {
            generation = generation.max(old.generation + 1);
        }
        let entry = Entry {
            path: path.display().to_string(),
            dev: id.dev,
            ino: id.ino,
            generation,
            head: id.head,
            offset,
            updated_ms: now_ms(),
            lost: false,
            identity_of: None,
        };
        self.closing.remove(&key);
        self.entries.insert(key, entry.clone());
        self.dirty = true;
        self.new_generations = true;
        entry
    }

    /// Extends the fingerprint of a file that was shorter than
    /// [`crate::fingerprint::FINGERPRINT_BYTES`] when it was first seen, to `head`, that of
    /// more of its bytes; it then tells its content from other content better. Returns whether
    /// the one recorded was shorter.
    pub fn grown(&mut self, entry: &Entry, head: Head) -> bool {
        let Some(known) = self.live_mut(entry) else {
            return false;
        };
        if head.len <= known.head.len {
            return false;
        }
        known.head = head;
        self.dirty = true;
        true
    }

    /// Every line of `entry`'s file before `offset` is acknowledged. Offsets only grow.
    pub fn ack(&mut self, dev: u64, ino: u64, generation: i64, offset: u64) {
        let key = inode_key(dev, ino);
        if let Some(known) = self.entries.get_mut(&key) {
            // An ack of an older generation (in flight when the file was truncated) is moot.
            if known.generation == generation && offset > known.offset {
                known.offset = offset;
                known.updated_ms = now_ms();
                self.dirty = true;
            }
        }
    }

    /// The tailer of `entry` closed its file (renamed away or deleted, read to its end).
    pub fn closing(&mut self, entry: &Entry) {
        if self.live_mut(entry).is_some() {
            self.closing.insert(inode_key(entry.dev, entry.ino));
        }
    }

    /// Every line of `entry`'s closed file is acknowledged: the entry is dropped.
    pub fn forget(&mut self, entry: &Entry) {
        if self.live_mut(entry).is_some() {
            let key = inode_key(entry.dev, entry.ino);
            self.entries.remove(&key);
            self.closing.remove(&key);
            self.dirty = true;
        }
    }

    /// Entries that no tailer closed, for the supervisor to check that their file is still
    /// at its path.
    pub fn open_entries(&self) -> Vec<Entry> {
        let mut open: Vec<Entry> = self
            .entries
            .iter()
            .filter(|(key, _)| !self.closing.contains(*key))
            .map(|(_, e)| e.clone())
            .collect();
        open.sort_by_key(|e| (e.dev, e.ino));
        open
    }

    /// The file of `entry` was truncated while no tailer had it, and `copy` holds its old
    /// content: the entry moves to the copy's inode, with its offset and identity (lines sent
    /// again hit their documents), and the path's new content is a new file. False if the
    /// entry is not live, or the copy has an entry of its own.
    pub fn copied(&mut self, entry: &Entry, copy: &File) -> bool {
        let Ok(meta) = copy.metadata() else {
            return false;
        };
        let key = inode_key(meta.dev(), meta.ino());
        if self.entries.contains_key(&key) || self.live_mut(entry).is_none() {
            return false;
        }
        let Some(mut moved) = self.entries.remove(&inode_key(entry.dev, entry.ino)) else {
            return false;
        };
        moved.identity_of.get_or_insert((moved.dev, moved.ino));
        (moved.dev, moved.ino) = (meta.dev(), meta.ino());
        moved.updated_ms = now_ms();
        self.entries.insert(key, moved);
        self.dirty = true;
        self.new_generations = true;
        true
    }

    /// `entry`'s file was looked for and not found; reported once.
    pub fn lost(&mut self, entry: &Entry) {
        if let Some(known) = self.live_mut(entry) {
            known.lost = true;
            self.dirty = true;
        }
    }

    fn live_mut(&mut self, entry: &Entry) -> Option<&mut Entry> {
        self.entries
            .get_mut(&inode_key(entry.dev, entry.ino))
            .filter(|k| k.generation == entry.generation)
    }

    /// Whether it changed since the last write.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the registry if it changed and the last write is [`FLUSH_INTERVAL`] old.
    pub fn flush_if_due(&mut self) -> Result<()> {
        if self.dirty && self.last_write.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the registry if a generation was created since the last write. A line of a
    /// new generation goes to Kafka only after this, so that a restart resumes that
    /// generation and gives its lines the same document ids. One write covers every file
    /// opened since the last: a write per opened file made a start with thousands of files
    /// quadratic.
    pub fn save_new_generations(&mut self) -> Result<()> {
        if self.new_generations {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the registry now if it changed.
    pub fn flush(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut files: Vec<&Entry> = self.entries.values().collect();
        files.sort_by_key(|e| (e.dev, e.ino));
        let files: Vec<Value> = files
            .into_iter()
            .map(|e| {
                json!({
                    "path": e.path, "dev": e.dev, "ino": e.ino, "generation": e.generation,
                    "fingerprint": format!("{:016x}", e.head.hash), "fp_len": e.head.len,
                    "offset": e.offset, "updated_ms": e.updated_ms, "lost": e.lost,
                    "identity_of": e.identity_of.map(|(dev, ino)| json!([dev, ino])),
                })
            })
            .collect();
        let doc = json!({ "version": 1, "files": files });
        let text = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        persist::write_atomic(&self.path, &text)?;
        self.dirty = false;
        self.new_generations = false;
        self.last_write = Instant::now();
        self.writes += 1;
        Ok(())
    }
}

fn parse(raw: &[u8]) -> Option<Vec<Entry>> {
    let doc: Value = serde_json::from_slice(raw).ok()?;
    doc.get("files")?
        .as_array()?
        .iter()
        .map(|f| {
            Some(Entry {
                path: f.get("path")?.as_str()?.to_string(),
                dev: f.get("dev")?.as_u64()?,
                ino: f.get("ino")?.as_u64()?,
                generation: f.get("generation")?.as_i64()?,
                head: Head {
                    hash: u64::from_str_radix(f.get("fingerprint")?.as_str()?, 16).ok()?,
                    len: f.get("fp_len")?.as_u64()?,
                },
                offset: f.get("offset")?.as_u64()?,
                updated_ms: f.get("updated_ms")?.as_i64()?,
                // Absent in registries written before it existed.
                lost: f.get("lost").and_then(Value::as_bool).unwrap_or(false),
                identity_of: match f.get("identity_of").and_then(Value::as_array) {
                    Some(pair) => Some((pair.first()?.as_u64()?, pair.get(1)?.as_u64()?)),
                    None => None,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::temp_dir;
    use std::io::Write;

    #[test]
    fn resume_truncate_and_reload() {
        let dir = temp_dir("registry-resume");
        let log = dir.join("app.log");
        std::fs::write(&log, b"line one\nline two\n").unwrap();
        let mut r = Registry::load(&dir).unwrap();
        let f = File::open(&log).unwrap();
        let (e, _) = r.open(&log, &f, NewFileStart::End).unwrap();
        assert_eq!(e.offset, 18);
        assert_eq!(e.head.len, 18);
        // The new generation is written once before its lines are sent, and only once.
        assert_eq!(r.writes, 0);
        r.save_new_generations().unwrap();
        r.save_new_generations().unwrap();
        assert_eq!(r.writes, 1);

        r.ack(e.dev, e.ino, e.generation, 9);
        r.ack(e.dev, e.ino, e.generation, 5); // never backwards
        r.flush().unwrap();
        let mut again = Registry::load(&dir).unwrap();
        let (e2, replaced) = again.open(&log, &f, NewFileStart::Beginning).unwrap();
        assert_eq!(replaced, None);
        assert_eq!((e2.identity(), e2.offset), (e.identity(), 18));

        // Truncated and rewritten: same inode, other content, new generation, offset 0.
        std::fs::write(&log, b"other\n").unwrap();
        let (e3, replaced) = again.open(&log, &f, NewFileStart::End).unwrap();
        assert!(e3.generation > e.generation);
        assert_eq!(replaced.map(|r| r.generation), Some(e.generation));
        assert_eq!(e3.offset, 0);
        // An ack of the old generation does not move the new one.
        again.ack(e.dev, e.ino, e.generation, 100);
        assert_eq!(again.entries[&inode_key(e.dev, e.ino)].offset, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fingerprint_grows_with_a_short_file() {
        let dir = temp_dir("registry-fp");
        let log = dir.join("a.log");
        std::fs::write(&log, b"ab\n").unwrap();
        let mut r = Registry::load(&dir).unwrap();
        let f = File::open(&log).unwrap();
        let (e, _) = r.open(&log, &f, NewFileStart::Beginning).unwrap();
        assert_eq!(e.head.len, 3);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(&[b'x'; 2000])
            .unwrap();
        assert!(r.grown(&e, Head::of(&f).unwrap()));
        r.flush().unwrap();
        let reloaded = Registry::load(&dir).unwrap();
        assert_eq!(
            reloaded.entries.values().next().unwrap().head.len,
            crate::fingerprint::FINGERPRINT_BYTES
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lost_file_stays_reported_and_a_closed_one_is_forgotten() {
        let dir = temp_dir("registry-lost");
        let log = dir.join("app.log");
        std::fs::write(&log, b"first\nsecond\n").unwrap();
        let mut r = Registry::load(&dir).unwrap();
        let file = File::open(&log).unwrap();
        let (e, _) = r.open(&log, &file, NewFileStart::Beginning).unwrap();
        assert!(matches!(e.locate(), Whereabouts::AtPath));
        std::fs::rename(&log, dir.join("app.log.1")).unwrap();

        // Gone from the directory: lost, and that is kept across a restart.
        std::fs::remove_file(dir.join("app.log.1")).unwrap();
        assert!(matches!(e.locate(), Whereabouts::Missing));
        r.lost(&e);
        r.flush().unwrap();
        let again = Registry::load(&dir).unwrap();
        let lost: Vec<bool> = again.open_entries().iter().map(|e| e.lost).collect();
        assert_eq!(lost, [true]);

        // A closed file's entry is not offered for checks, and goes once forgotten.
        let mut again = again;
        again.closing(&e);
        assert!(again.open_entries().is_empty());
        again.forget(&e);
        assert!(again.entries.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_registry_is_moved_aside() {
        let dir = temp_dir("registry-corrupt");
        std::fs::write(dir.join("registry.json"), b"{not json").unwrap();
        let r = Registry::load(&dir).unwrap();
        assert!(r.entries.is_empty());
        assert!(dir.join("registry.json.corrupt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_entry_moved_to_its_copy_keeps_its_identity_and_offset() {
        let dir = temp_dir("registry-copied");
        let (log, copy) = (dir.join("app.log"), dir.join("app.log.1"));
        std::fs::write(&log, b"one\ntwo\n").unwrap();
        let mut r = Registry::load(&dir).unwrap();
        let (e, _) = r
            .open(&log, &File::open(&log).unwrap(), NewFileStart::Beginning)
            .unwrap();
        r.ack(e.dev, e.ino, e.generation, 4);
        // copytruncate while no tailer has it.
        std::fs::copy(&log, &copy).unwrap();
        std::fs::write(&log, b"").unwrap();
        let e = r.open_entries().pop().unwrap();
        let Whereabouts::Copied(found, file) = e.locate() else {
            panic!("the copy is found");
        };
        assert_eq!(found, copy);
        assert!(r.copied(&e, &file));
        r.flush().unwrap();
        let again = Registry::load(&dir).unwrap();
        let moved = again.open_entries().pop().unwrap();
        assert_eq!(
            moved.identity(),
            e.identity(),
            "lines sent again keep their ids"
        );
        assert_eq!(
            (moved.ino, moved.offset),
            (file.metadata().unwrap().ino(), 4)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
