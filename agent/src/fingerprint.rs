//! File identity: which content a file holds, whatever its name.
//!
//! A file is known by device and inode, checked against a [`Head`]: the xxh3 hash of its
//! first bytes (up to [`FINGERPRINT_BYTES`]). An inode reused by other content, or a file
//! truncated and written again, has another head. The registry stores identities (with a
//! generation, so new content of an inode gets a new one); this module computes and compares
//! them, and finds a file again after a rename (Vector's fingerprinter, apart from its
//! checkpointer).

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How much of a file's head the fingerprint covers at most.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// The fingerprint of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// xxh3 of the bytes.
    pub hash: u64,
    /// How many bytes it covers: [`FINGERPRINT_BYTES`], or fewer for a short file.
    pub len: u64,
}

/// What a look at a file's head found, see [`Head::check`].
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// The bytes fingerprinted are still there.
    Same,
    /// They are, and a short file has grown: here is its longer fingerprint.
    Grown(Head),
    /// They are not: the file was truncated (and maybe written again).
    Changed,
}

impl Head {
    /// The fingerprint of `file`'s first [`FINGERPRINT_BYTES`] (fewer if it is shorter).
    /// Reads at absolute positions: a reader's offset does not move.
    pub fn of(file: &File) -> std::io::Result<Head> {
        Ok(Head::from_bytes(&read_head(file, FINGERPRINT_BYTES)?))
    }

    fn from_bytes(head: &[u8]) -> Head {
        Head {
            hash: xxhash_rust::xxh3::xxh3_64(head),
            len: head.len() as u64,
        }
    }

    /// Whether `file` starts with the bytes this fingerprint covers.
    pub fn matches(&self, file: &File) -> std::io::Result<bool> {
        let head = read_head(file, self.len)?;
        Ok(Head::from_bytes(&head) == *self)
    }

    /// Looks at the head of `file`, now `file_len` bytes long, with one read: still the
    /// same, grown (a short head is fingerprinted again from the same bytes), or changed.
    pub fn check(&self, file: &File, file_len: u64) -> std::io::Result<Check> {
        if file_len < self.len {
            return Ok(Check::Changed);
        }
        let grows = self.len < FINGERPRINT_BYTES && file_len > self.len;
        if self.len == 0 && !grows {
            return Ok(Check::Same);
        }
        let head = read_head(file, if grows { FINGERPRINT_BYTES } else { self.len })?;
        let known = &head[..head.len().min(self.len as usize)];
        if Head::from_bytes(known) != *self {
            return Ok(Check::Changed);
        }
        if head.len() as u64 > self.len {
            return Ok(Check::Grown(Head::from_bytes(&head)));
        }
        Ok(Check::Same)
    }
}

/// The first `len` bytes of `file` (fewer if the file is shorter), read at absolute positions.
fn read_head(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; len as usize];
    let mut got = 0usize;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    head.truncate(got);
    Ok(head)
}

/// A file's identity as the registry keeps it: device, inode, head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Its first bytes.
    pub head: Head,
}

impl Identity {
    /// Whether `file` (with metadata `meta`) holds this content, and at least `len` bytes of
    /// it.
    pub fn is(&self, file: &File, meta: &std::fs::Metadata, len: u64) -> std::io::Result<bool> {
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) || meta.len() < len {
            return Ok(false);
        }
        self.head.matches(file)
    }

    /// Where the file last seen at `path`, with at least `len` bytes, is now: still there,
    /// renamed within its directory (opened, its content checked), truncated with a copy
    /// beside it holding at least `len` bytes, or nowhere to be found.
    pub fn locate(&self, path: &Path, len: u64) -> Whereabouts {
        if let Ok(meta) = std::fs::metadata(path) {
            if (meta.dev(), meta.ino()) == (self.dev, self.ino) {
                // Truncated meanwhile (copytruncate), the rest may be in the copy beside it.
                let changed = File::open(path).and_then(|f| self.is(&f, &meta, len));
                if let Ok(false) = changed {
                    if let Some((copy, file)) = self.copy_beside(path, len) {
                        return Whereabouts::Copied(copy, file);
                    }
                }
                return Whereabouts::AtPath;
            }
        }
        let Some(listing) = path.parent().and_then(|dir| std::fs::read_dir(dir).ok()) else {
            return Whereabouts::Missing;
        };
        for item in listing.flatten() {
            // The directory entry's own inode (no link followed): cheap to compare.
            if item.ino() != self.ino {
                continue;
            }
            let candidate = item.path();
            let Ok(file) = File::open(&candidate) else {
                continue;
            };
            let same = file.metadata().and_then(|meta| self.is(&file, &meta, len));
            if let Ok(true) = same {
                return Whereabouts::Moved(candidate, file);
            }
        }
        Whereabouts::Missing
    }

    /// A copy of this content beside `path`, at least `len` bytes long, under a name that
    /// starts with `path`'s (copytruncate's `app.log.1` or `app.log-20261129`): where the
    /// lines not read before the file was truncated still are. The newest such file, should
    /// older copies start with the same bytes.
    pub fn copy_beside(&self, path: &Path, len: u64) -> Option<(PathBuf, File)> {
        let name = path.file_name()?.as_bytes();
        let listing = std::fs::read_dir(path.parent()?).ok()?;
        let mut newest: Option<(std::time::SystemTime, PathBuf, File)> = None;
        for item in listing.flatten() {
            let item_name = item.file_name();
            if item.ino() == self.ino
                || item_name.as_bytes() == name
                || !item_name.as_bytes().starts_with(name)
            {
                continue;
            }
            let candidate = item.path();
            let Ok(file) = File::open(&candidate) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            let Ok(modified) = meta.modified() else {
                continue;
            };
            if !meta.is_file()
                || meta.len() < len
                || newest.as_ref().is_some_and(|(t, _, _)| *t >= modified)
            {
                continue;
            }
            if let Ok(true) = self.head.matches(&file) {
                newest = Some((modified, candidate, file));
            }
        }
        newest.map(|(_, path, file)| (path, file))
    }
}

/// Where a known file is, see [`Identity::locate`].
pub enum Whereabouts {
    /// At the path it was known under.
    AtPath,
    /// Renamed within the same directory, to this path; opened.
    Moved(PathBuf, File),
    /// Truncated at its path (copytruncate) after a copy, at this path, that holds at least
    /// what was read; the copy, opened.
    Copied(PathBuf, File),
    /// Neither: deleted, compressed, moved elsewhere, or its directory is gone.
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{append, temp_dir};

    #[test]
    fn a_short_head_grows_and_a_rewritten_one_is_changed() {
        let dir = temp_dir("fp-check");
        let log = dir.join("a.log");
        std::fs::write(&log, b"ab\n").unwrap();
        let f = File::open(&log).unwrap();
        let head = Head::of(&f).unwrap();
        assert_eq!(head.len, 3);
        assert_eq!(head.check(&f, 3).unwrap(), Check::Same);
        append(&log, &[b'x'; 2000]);
        let Check::Grown(grown) = head.check(&f, 2003).unwrap() else {
            panic!("a grown head is fingerprinted again");
        };
        assert_eq!(grown, Head::of(&f).unwrap());
        assert_eq!(grown.len, FINGERPRINT_BYTES);
        assert_eq!(grown.check(&f, 2003).unwrap(), Check::Same);
        // Truncated and written again, longer than before: other bytes at the head.
        std::fs::write(&log, [b'y'; 3000]).unwrap();
        assert_eq!(grown.check(&f, 3000).unwrap(), Check::Changed);
        // Shorter than the head: truncated.
        std::fs::write(&log, b"y").unwrap();
        assert_eq!(head.check(&f, 1).unwrap(), Check::Changed);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_renamed_file_is_found_by_inode_and_head() {
        let dir = temp_dir("fp-locate");
        let log = dir.join("app.log");
        std::fs::write(&log, b"first\nsecond\n").unwrap();
        let f = File::open(&log).unwrap();
        let meta = f.metadata().unwrap();
        let id = Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            head: Head::of(&f).unwrap(),
        };
        assert!(matches!(id.locate(&log, 13), Whereabouts::AtPath));
        // Rotated by rename; a new file with the same content takes the path.
        std::fs::rename(&log, dir.join("app.log.1")).unwrap();
        std::fs::write(&log, b"first\nsecond\n").unwrap();
        match id.locate(&log, 13) {
            Whereabouts::Moved(now, _) => assert_eq!(now, dir.join("app.log.1")),
            _ => panic!("the renamed file is not found"),
        }
        // Shorter than what was acknowledged: not the same content any more.
        assert!(matches!(id.locate(&log, 14), Whereabouts::Missing));
        std::fs::remove_file(dir.join("app.log.1")).unwrap();
        assert!(matches!(id.locate(&log, 13), Whereabouts::Missing));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
