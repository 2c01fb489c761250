//! One inotify instance for the whole agent, read by one thread that wakes whoever watches.
//!
//! A tailer or the supervisor registers a path with a `Sender<()>`; any event on that watch
//! sends a wake-up (coalesced: the channels are bounded to one). The woken thread then looks
//! at the file itself, so event details are not needed. A single instance keeps the agent
//! far from the per-user limit on inotify instances (128 by default).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use logcollect::sync::{self, lock};
use logcollect::{Error, Result};

/// Registers watches; shared by every thread that needs wake-ups.
pub struct Watcher {
    watches: Mutex<Watches>,
    targets: Arc<Mutex<HashMap<WatchDescriptor, Sender<()>>>>,
}

/// A registered watch; dropping it removes the watch.
pub struct Watch {
    wd: WatchDescriptor,
    watcher: Arc<Watcher>,
}

/// Events a tailer needs on its open file: growth, truncation, renames, deletion.
pub const FILE_EVENTS: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DELETE_SELF);

/// Events the supervisor needs on a directory: files that appear, move, or change permissions.
pub const DIR_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::ATTRIB);

impl Watcher {
    /// Creates the inotify instance and starts the thread that reads it.
    pub fn start() -> Result<Arc<Watcher>> {
        let mut inotify = Inotify::init().map_err(|e| Error::System {
            what: "inotify".into(),
            msg: format!("cannot initialise: {e}"),
        })?;
        let targets: Arc<Mutex<HashMap<WatchDescriptor, Sender<()>>>> = Arc::default();
        let watcher = Arc::new(Watcher {
            watches: Mutex::new(inotify.watches()),
            targets: targets.clone(),
        });
        sync::spawn("inotify", move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let events = match inotify.read_events_blocking(&mut buffer) {
                    Ok(events) => events,
                    Err(e) => {
                        log::error!("inotify: read failed: {e}; files are no longer watched");
                        return;
                    }
                };
                let targets = lock(&targets);
                for event in events {
                    if event.mask.contains(EventMask::Q_OVERFLOW) {
                        // Events were lost: wake everyone to look again.
                        log::warn!("inotify: event queue overflowed; rescanning everything");
                        for t in targets.values() {
                            let _ = t.try_send(());
                        }
                    } else if let Some(t) = targets.get(&event.wd) {
                        let _ = t.try_send(());
                    }
                }
            }
        })?;
        Ok(watcher)
    }

    /// Watches `path` for `mask`; each event sends on `wake`.
    pub fn watch(
        self: &Arc<Self>,
        path: &Path,
        mask: WatchMask,
        wake: Sender<()>,
    ) -> Result<Watch> {
        let wd = lock(&self.watches)
            .add(path, mask)
            .map_err(|e| Error::io(path, "cannot watch", &e))?;
        lock(&self.targets).insert(wd.clone(), wake);
        Ok(Watch {
            wd,
            watcher: self.clone(),
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let w = &self.watcher;
        lock(&w.targets).remove(&self.wd);
        // Fails when the kernel already removed it (file deleted): nothing to do then.
        let _ = lock(&w.watches).remove(self.wd.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_wake_the_watcher_until_the_watch_is_dropped() {
        let dir = crate::testing::temp_dir("watch");
        let watcher = Watcher::start().unwrap();
        let (wake, woken) = crossbeam_channel::bounded(1);
        let watch = watcher.watch(&dir, DIR_EVENTS, wake).unwrap();
        // Several events before anyone looks: the watcher is woken (the reader thread never
        // blocks on the full channel of one: the rest coalesce), and again for later events.
        for name in ["a.log", "b.log", "c.log"] {
            std::fs::write(dir.join(name), b"x\n").unwrap();
        }
        assert!(woken.recv_timeout(Duration::from_secs(5)).is_ok());
        std::thread::sleep(Duration::from_millis(100));
        while woken.try_recv().is_ok() {}
        std::fs::write(dir.join("later.log"), b"y\n").unwrap();
        assert!(woken.recv_timeout(Duration::from_secs(5)).is_ok());
        // Dropped: the watch is removed and its channel is no longer woken.
        drop(watch);
        std::fs::write(dir.join("d.log"), b"x\n").unwrap();
        assert!(woken.recv_timeout(Duration::from_millis(300)).is_err());
        // A path that does not exist is an error naming it.
        let (wake, _) = crossbeam_channel::bounded(1);
        let missing = dir.join("missing");
        let err = watcher.watch(&missing, FILE_EVENTS, wake).err().unwrap();
        assert!(
            err.to_string().starts_with(&missing.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
