//! Which files a `path` of the collect configuration names: a file, every regular file
//! directly in a directory, or the files matching a glob; and which directory to watch so
//! that files appearing later are seen.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Whether `path` has glob characters.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// What `pattern` names now: the regular files, sorted, and what else it names that cannot
/// be tailed (a FIFO, a device, a socket; a directory a glob matches), with what it is.
/// The subdirectories of a directory entry are not named. Missing paths name nothing (yet).
pub fn expand(pattern: &str) -> (Vec<PathBuf>, Vec<(PathBuf, &'static str)>) {
    let path = Path::new(pattern);
    let (named, in_dir): (Vec<PathBuf>, bool) = if is_glob(pattern) {
        match glob::glob(pattern) {
            Ok(paths) => (paths.filter_map(|p| p.ok()).collect(), false),
            Err(_) => (Vec::new(), false),
        }
    } else if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(dir) => (dir.filter_map(|e| e.ok().map(|e| e.path())).collect(), true),
            Err(_) => (Vec::new(), true),
        }
    } else {
        (vec![path.to_path_buf()], false)
    };
    let mut files = Vec::new();
    let mut others = Vec::new();
    for p in named {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let kind = meta.file_type();
        match () {
            _ if kind.is_file() => files.push(p),
            _ if kind.is_dir() && in_dir => {}
            _ if kind.is_dir() => others.push((p, "a directory")),
            _ if kind.is_fifo() => others.push((p, "a FIFO")),
            _ if kind.is_char_device() => others.push((p, "a character device")),
            _ if kind.is_block_device() => others.push((p, "a block device")),
            _ if kind.is_socket() => others.push((p, "a socket")),
            _ => others.push((p, "not a regular file")),
        }
    }
    files.sort();
    others.sort();
    (files, others)
}

/// Whether `pattern` names the file at `path` (whether it exists or not): the file itself,
/// a file directly in the directory, or a match of the glob.
pub fn names(pattern: &str, path: &Path) -> bool {
    if is_glob(pattern) {
        // As `expand` walks it: `*` does not cross a `/`.
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        return glob::Pattern::new(pattern).is_ok_and(|p| p.matches_path_with(path, options));
    }
    let named = Path::new(pattern);
    path == named || (named.is_dir() && path.parent() == Some(named))
}

/// The directory to watch for files of `pattern`: the directory itself, the parent of a
/// file, or the longest prefix of a glob without glob characters.
pub fn watch_dir(pattern: &str) -> PathBuf {
    let path = Path::new(pattern);
    if is_glob(pattern) {
        return path
            .components()
            .take_while(|c| !is_glob(&c.as_os_str().to_string_lossy()))
            .collect();
    }
    if path.is_dir() {
        return path.to_path_buf();
    }
    path.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Whether every file `pattern` names sits directly in [`watch_dir`], so that its watch
/// sees each one appear (not so for `/var/log/*/app.log`).
pub fn flat(pattern: &str) -> bool {
    !is_glob(pattern) || Path::new(pattern).parent() == Some(&watch_dir(pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_dir_and_glob() {
        let d = crate::testing::temp_dir("discover");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        for f in ["a.log", "b.log", "c.txt", "sub/d.log"] {
            std::fs::write(d.join(f), b"x\n").unwrap();
        }
        let s = |p: &Path| p.display().to_string();
        assert_eq!(
            expand(&s(&d.join("*.log"))).0,
            [d.join("a.log"), d.join("b.log")]
        );
        // The subdirectory of a directory entry is not named.
        assert_eq!(
            expand(&s(&d)),
            (
                vec![d.join("a.log"), d.join("b.log"), d.join("c.txt")],
                vec![]
            )
        );
        assert_eq!(expand(&s(&d.join("c.txt"))).0, [d.join("c.txt")]);
        assert_eq!(expand(&s(&d.join("missing.log"))), (vec![], vec![]));
        // What a glob or a path names that cannot be tailed is told apart.
        std::fs::create_dir(d.join("dir.log")).unwrap();
        let mkfifo = std::process::Command::new("mkfifo")
            .arg(d.join("pipe.log"))
            .status()
            .unwrap();
        assert!(mkfifo.success());
        assert_eq!(
            expand(&s(&d.join("*.log"))).1,
            [
                (d.join("dir.log"), "a directory"),
                (d.join("pipe.log"), "a FIFO")
            ]
        );
        assert_eq!(
            expand("/dev/null"),
            (
                vec![],
                vec![(PathBuf::from("/dev/null"), "a character device")]
            )
        );
        assert!(names(&s(&d.join("*.log")), &d.join("gone.log")));
        assert!(!names(&s(&d.join("*.log")), &d.join("gone.log.1")));
        assert!(names(&s(&d), &d.join("gone.log.1")));
        assert!(!names(&s(&d), &d.join("sub/d.log")));
        assert!(names(&s(&d.join("a.log")), &d.join("a.log")));
        assert!(!names(&s(&d.join("a.log")), &d.join("a.log.1")));
        assert_eq!(watch_dir(&s(&d.join("*/x.log"))), d);
        assert_eq!(watch_dir(&s(&d.join("a.log"))), d);
        assert_eq!(watch_dir(&s(&d)), d);
        assert!(flat(&s(&d.join("*.log"))) && flat(&s(&d)) && flat(&s(&d.join("a.log"))));
        assert!(!flat(&s(&d.join("*/x.log"))));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
