//! Secrets kept in files (a password, an API key, a private key): read, and warned about
//! when every user of the host may read them.

use std::path::Path;

use crate::{Error, Result};

/// A secret kept in a file: its first line, trimmed. A file others may read is warned about.
pub fn read_line(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read the secret", &e))?;
    warn_if_readable_by_others(path);
    let secret = text.lines().next().unwrap_or_default().trim().to_string();
    if secret.is_empty() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            msg: "the secret file is empty".into(),
        });
    }
    Ok(secret)
}

/// Warns if every user may read `path`, which holds a secret.
#[cfg(unix)]
pub fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            log::warn!(
                "{}: holds a secret and every user can read it (chmod o-r)",
                path.display()
            );
        }
    }
}
