//! [`Watched`]: a value the main thread replaces as a whole and other threads read, with a
//! version to notice the change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use logcollect::sync::lock;

/// A value that one thread replaces and others read, with a version to notice changes.
pub struct Watched<T> {
    value: Mutex<Arc<T>>,
    version: AtomicU64,
}

impl<T> Watched<T> {
    /// Starts at version 0 with `value`.
    pub fn new(value: T) -> Watched<T> {
        Watched {
            value: Mutex::new(Arc::new(value)),
            version: AtomicU64::new(0),
        }
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        *lock(&self.value) = Arc::new(value);
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        lock(&self.value).clone()
    }

    /// Changes each time the value is replaced.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_versions() {
        let w = Watched::new(1);
        assert_eq!((*w.get(), w.version()), (1, 0));
        w.set(2);
        assert_eq!((*w.get(), w.version()), (2, 1));
    }
}
