//! Threads and locks, the same way everywhere: a named thread whose spawn failure is an
//! [`Error::Thread`], and a lock that a panic in another thread does not make unusable (the
//! data behind every lock here stays consistent between statements, so it is safe to go on).

use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::{Error, Result};

/// Starts `f` on a thread named `name` (at most 15 characters are visible to the OS).
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(f)
        .map_err(|e| Error::Thread {
            name: name.to_string(),
            msg: e.to_string(),
        })
}

/// Locks `mutex`, recovering it from a panic in another thread.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_and_threads_are_named() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let t = spawn("poisoner thread name", move || {
            let _guard = m2.lock().unwrap();
            panic!("while holding the lock");
        })
        .unwrap();
        assert!(t.join().is_err());
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
        let name = spawn("a-long-thread-name", || {
            std::thread::current().name().map(String::from)
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(name.as_deref(), Some("a-long-thread-n"));
    }
}
