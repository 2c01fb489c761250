//! Helpers of the agent's unit tests: a fresh directory, and a writer that appends.

use std::io::Write;
use std::path::{Path, PathBuf};

/// An empty directory of its own for the test `name` (left over from an earlier run: emptied).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Appends `bytes` to the file at `path` (created if need be), as a writer would.
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}
