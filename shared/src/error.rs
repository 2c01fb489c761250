//! The error type of the whole project. Every variant carries what a user needs to find the
//! cause: the ini file, section and key; the etcd key and endpoint; the file path; the URL.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result with the project's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in code shared by the daemons.
#[derive(Debug)]
pub enum Error {
    /// A value in an ini file is missing or invalid.
    Setting {
        /// File name as given on the command line.
        file: String,
        /// Ini section, without brackets.
        section: String,
        /// Key inside the section.
        key: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A file could not be read, written or parsed as a whole.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done and why it failed.
        msg: String,
    },
    /// A value stored in etcd is not a valid configuration.
    Invalid {
        /// The etcd key the value came from.
        key: String,
        /// What is wrong with it (names the entry and field).
        msg: String,
    },
    /// etcd could not be reached or answered with an error.
    Etcd {
        /// Endpoint URL that failed last.
        url: String,
        /// The key involved, if any.
        key: String,
        /// What failed.
        msg: String,
    },
    /// Kafka could not be used: a client could not be created, or failed for good.
    Kafka {
        /// The `bootstrap.servers` list.
        brokers: String,
        /// What failed.
        msg: String,
    },
    /// An HTTP server (Elasticsearch) could not be reached, or answered with an error.
    Http {
        /// The URL, without credentials.
        url: String,
        /// What failed.
        msg: String,
    },
    /// A thread could not be started.
    Thread {
        /// Its name.
        name: String,
        /// Why.
        msg: String,
    },
    /// Something of the operating system that is not a file could not be set up: a signal
    /// handler, inotify, a listening socket.
    System {
        /// What, with its address if it has one.
        what: String,
        /// Why.
        msg: String,
    },
    /// A command line that cannot be understood.
    Usage(String),
}

impl Error {
    /// Builds an [`Error::Io`] from an `io::Error`, with the action that failed.
    pub fn io(path: impl Into<PathBuf>, action: &str, err: &io::Error) -> Error {
        Error::Io {
            path: path.into(),
            msg: format!("{action}: {err}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setting {
                file,
                section,
                key,
                msg,
            } => write!(f, "{file}: [{section}] {key}: {msg}"),
            Error::Io { path, msg } => write!(f, "{}: {msg}", path.display()),
            Error::Invalid { key, msg } => write!(f, "etcd key {key:?}: {msg}"),
            Error::Etcd { url, key, msg } if key.is_empty() => write!(f, "etcd {url}: {msg}"),
            Error::Etcd { url, key, msg } => write!(f, "etcd {url} (key {key:?}): {msg}"),
            Error::Kafka { brokers, msg } => write!(f, "kafka {brokers}: {msg}"),
            Error::Http { url, msg } => write!(f, "{url}: {msg}"),
            Error::Thread { name, msg } => write!(f, "cannot start thread {name}: {msg}"),
            Error::System { what, msg } => write!(f, "{what}: {msg}"),
            Error::Usage(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {}
