//! Which files a `path` of the collect configuration names: a file, every regular file
//! directly in a directory, or the files matching a glob; and which directory to watch so
//! that files appearing later are seen.

use std::path::{Path, PathBuf};

/// Whether `path` has glob characters.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The regular files `pattern` names now, sorted. Missing paths name nothing (yet).
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let mut files: Vec<PathBuf> = if is_glob(pattern) {
        match glob::glob(pattern) {
            Ok(paths) => paths.filter_map(|p| p.ok()).collect(),
            Err(_) => Vec::new(),
        }
    } else if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    } else {
        vec![path.to_path_buf()]
    };
    files.retain(|p| p.is_file());
    files.sort();
    files
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
            expand(&s(&d.join("*.log"))),
            [d.join("a.log"), d.join("b.log")]
        );
        assert_eq!(
            expand(&s(&d)),
            [d.join("a.log"), d.join("b.log"), d.join("c.txt")]
        );
        assert_eq!(expand(&s(&d.join("c.txt"))), [d.join("c.txt")]);
        assert!(expand(&s(&d.join("missing.log"))).is_empty());
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
