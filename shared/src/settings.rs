//! Ini configuration files, read into typed structs.
//!
//! [`IniFile`] wraps rust-ini with typed getters whose errors name the file, section and key
//! (`agent.ini: [kafka] brokers: empty`). The sections both daemons share are typed here
//! ([`EtcdSettings`], [`LogSettings`]; `[kafka]` in [`crate::kafka`]); each daemon types its own section.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::tls::{TlsFiles, TlsKeys};
use crate::{Error, Result};

/// A parsed ini file that remembers its name for error messages, and which keys were looked
/// up: those are the keys its reader knows, so the others can be told apart (typos).
#[derive(Debug)]
pub struct IniFile {
    name: String,
    ini: ini::Ini,
    read: RefCell<BTreeSet<(String, String)>>,
}

impl IniFile {
    /// Reads and parses the ini file at `path`.
    pub fn load(path: &Path) -> Result<IniFile> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(path, "cannot read config", &e))?;
        IniFile::parse(&path.display().to_string(), &text)
    }

    /// Parses ini `text`; `name` is used in error messages.
    pub fn parse(name: &str, text: &str) -> Result<IniFile> {
        let ini = ini::Ini::load_from_str(text).map_err(|e| Error::Io {
            path: name.into(),
            msg: format!("not a valid ini file: {e}"),
        })?;
        Ok(IniFile {
            name: name.to_string(),
            ini,
            read: RefCell::new(BTreeSet::new()),
        })
    }

    /// The file's name, as errors give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An error about `[section] key` of this file.
    pub fn error(&self, section: &str, key: &str, msg: impl Into<String>) -> Error {
        Error::Setting {
            file: self.name.clone(),
            section: section.to_string(),
            key: key.to_string(),
            msg: msg.into(),
        }
    }

    /// The trimmed value of `[section] key`; `None` if the key is absent.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.read
            .borrow_mut()
            .insert((section.to_string(), key.to_string()));
        self.ini.get_from(Some(section), key).map(str::trim)
    }

    /// What is in the file but was never looked up, once `program` has read every setting it
    /// has: a section it does not read (other than [`CONSOLE_SECTION`]) or a key it does not
    /// know, each with the nearest known one. A typo would otherwise be ignored.
    pub fn unread(&self, program: &str) -> Vec<String> {
        let read = self.read.borrow();
        let sections: BTreeSet<&str> = read.iter().map(|(s, _)| s.as_str()).collect();
        let mut said = Vec::new();
        for (section, props) in self.ini.iter() {
            let Some(section) = section else { continue };
            if section == CONSOLE_SECTION {
                continue;
            }
            if !sections.contains(section) {
                let hint = crate::typo::nearest(section, sections.iter().copied())
                    .map(|s| format!(" (did you mean [{s}]?)"))
                    .unwrap_or_default();
                said.push(format!(
                    "{}: [{section}] is not a section {program} reads{hint}",
                    self.name
                ));
                continue;
            }
            for (key, _) in props.iter() {
                if read.contains(&(section.to_string(), key.to_string())) {
                    continue;
                }
                // The same key in another section, else the nearest key of this section.
                let elsewhere = read
                    .iter()
                    .find(|(_, k)| k == key)
                    .map(|(s, k)| (s.as_str(), k.as_str()));
                let near = elsewhere.or_else(|| {
                    let keys = read
                        .iter()
                        .filter(|(s, _)| s == section)
                        .map(|(_, k)| k.as_str());
                    crate::typo::nearest(key, keys).map(|k| (section, k))
                });
                let hint = near
                    .map(|(s, k)| format!(" (did you mean [{s}] {k}?)"))
                    .unwrap_or_default();
                said.push(format!(
                    "{}: [{section}] {key} is not a setting of {program}{hint}",
                    self.name
                ));
            }
        }
        said
    }

    /// The value, or `default` if the key is absent. A key given as empty stays empty.
    pub fn string_or(&self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key).unwrap_or(default).to_string()
    }

    /// The value, which must be present and not empty.
    pub fn required(&self, section: &str, key: &str) -> Result<String> {
        match self.get(section, key) {
            None => Err(self.error(section, key, "missing")),
            Some("") => Err(self.error(section, key, "empty")),
            Some(v) => Ok(v.to_string()),
        }
    }

    /// The value, if present and not empty.
    pub fn optional(&self, section: &str, key: &str) -> Option<String> {
        self.get(section, key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// The value parsed as `T`, or `default` if absent or empty.
    pub fn parse_or<T: FromStr>(&self, section: &str, key: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(section, key) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| self.error(section, key, format!("{v:?}: {e}"))),
        }
    }

    /// A positive number of milliseconds, or `default_ms`.
    pub fn millis_or(&self, section: &str, key: &str, default_ms: u64) -> Result<Duration> {
        let ms: u64 = self.parse_or(section, key, default_ms)?;
        if ms == 0 {
            return Err(self.error(section, key, "must be greater than 0"));
        }
        Ok(Duration::from_millis(ms))
    }

    /// A comma-separated list; empty items are dropped.
    pub fn list(&self, section: &str, key: &str) -> Vec<String> {
        self.get(section, key)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Section `[etcd]`: where the configuration lives.
#[derive(Clone)]
pub struct EtcdSettings {
    /// Client URLs, tried in order; the client fails over to the next on error.
    pub endpoints: Vec<String>,
    /// Key of the collect configuration; may contain `{hostname}` or `{ip}`.
    pub key: String,
    /// How often the keys are read anyway (±20%), besides being watched: the safety net.
    pub poll_interval: Duration,
    /// User for etcd authentication, if enabled.
    pub username: Option<String>,
    /// Password for etcd authentication.
    pub password: Option<String>,
    /// `ca_file`, `cert_file` and `key_file`, for `https://` endpoints.
    pub tls: TlsFiles,
}

/// The names of `[etcd]`'s TLS settings (those of etcd's own flags).
pub const ETCD_TLS_KEYS: TlsKeys = TlsKeys {
    section: "etcd",
    ca: "ca_file",
    cert: "cert_file",
    key: "key_file",
};

impl std::fmt::Debug for EtcdSettings {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("key", &self.key)
            .field("poll_interval", &self.poll_interval)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &(&self.tls.ca_file, &self.tls.client_cert))
            .finish()
    }
}

/// The section only `logctl` reads (its console's settings), from a daemon's ini given to it
/// with `-c`: the daemons leave it alone.
pub const CONSOLE_SECTION: &str = "console";

/// Default etcd key of the collect configuration, as in the original design.
pub const DEFAULT_COLLECT_KEY: &str = "collect_log_conf";

/// Default of `[etcd] poll_interval_ms`: the safety net behind the watches.
const DEFAULT_POLL_INTERVAL_MS: u64 = 30_000;

impl EtcdSettings {
    /// The settings an ini file without more than these endpoints gives: the default key and
    /// poll interval, no credentials.
    pub fn with_endpoints(endpoints: Vec<String>) -> EtcdSettings {
        EtcdSettings {
            endpoints,
            key: DEFAULT_COLLECT_KEY.into(),
            poll_interval: Duration::from_millis(DEFAULT_POLL_INTERVAL_MS),
            username: None,
            password: None,
            tls: TlsFiles::none(ETCD_TLS_KEYS),
        }
    }

    /// Reads section `[etcd]`.
    pub fn from_ini(ini: &IniFile) -> Result<EtcdSettings> {
        const S: &str = "etcd";
        let endpoints = ini.list(S, "endpoints");
        if endpoints.is_empty() {
            return Err(ini.error(
                S,
                "endpoints",
                "empty (expected e.g. http://127.0.0.1:2379)",
            ));
        }
        for url in &endpoints {
            check_url(url).map_err(|msg| ini.error(S, "endpoints", msg))?;
        }
        let key = ini.string_or(S, "key", DEFAULT_COLLECT_KEY);
        if key.is_empty() {
            return Err(ini.error(S, "key", "empty"));
        }
        let username = ini.optional(S, "username");
        let password = ini.optional(S, "password");
        if username.is_some() != password.is_some() {
            return Err(ini.error(S, "username", "username and password go together"));
        }
        Ok(EtcdSettings {
            endpoints: endpoints
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            key,
            poll_interval: ini.millis_or(S, "poll_interval_ms", DEFAULT_POLL_INTERVAL_MS)?,
            username,
            password,
            tls: TlsFiles::from_ini(ini, ETCD_TLS_KEYS)?,
        })
    }
}

/// Checks that `url` is an http or https URL with a host and without credentials.
///
/// URLs are logged, so `user:password@` in one is refused (naming neither) in favour of the
/// separate `username`/`password` settings, which never are.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((_, host)) = authority.rsplit_once('@') {
        return Err(format!(
            "\"{scheme}://…@{host}\" has credentials in it: give them as username and password"
        ));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// Section `[log]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// One of `error`, `warn`, `info`, `debug`, `trace`, `off`. `RUST_LOG` wins over it.
    pub level: log::LevelFilter,
}

impl LogSettings {
    /// Reads `[log] level` (default `info`).
    pub fn from_ini(ini: &IniFile) -> Result<LogSettings> {
        let raw = ini.string_or("log", "level", "info");
        let level = raw.parse().map_err(|_| {
            ini.error(
                "log",
                "level",
                format!("{raw:?} is not one of error, warn, info, debug, trace, off"),
            )
        })?;
        Ok(LogSettings { level })
    }
}

/// Section `[fleet]`: how the daemon appears in the fleet's status (`logctl status`).
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The daemon's name in its status key (default: the host name).
    pub name: String,
}

impl FleetSettings {
    /// Reads `[fleet] name`.
    pub fn from_ini(ini: &IniFile) -> Result<FleetSettings> {
        let name = ini
            .optional("fleet", "name")
            .unwrap_or_else(crate::host::hostname);
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
            return Err(ini.error(
                "fleet",
                "name",
                format!("{name:?}: must be non-empty, without '/' or control characters"),
            ));
        }
        Ok(FleetSettings { name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str) -> IniFile {
        IniFile::parse("agent.ini", text).expect("test ini parses")
    }

    #[test]
    fn etcd_defaults() {
        let s =
            EtcdSettings::from_ini(&ini("[etcd]\nendpoints = http://a:2379/, https://b:2379\n"))
                .unwrap();
        assert_eq!(s.endpoints, ["http://a:2379", "https://b:2379"]);
        assert_eq!(s.key, "collect_log_conf");
        assert_eq!(s.poll_interval, Duration::from_secs(30));
        assert!(s.username.is_none());
    }

    #[test]
    fn etcd_errors_name_file_section_key() {
        let err = |t: &str| EtcdSettings::from_ini(&ini(t)).unwrap_err().to_string();
        assert_eq!(
            err("[etcd]\n"),
            "agent.ini: [etcd] endpoints: empty (expected e.g. http://127.0.0.1:2379)"
        );
        assert_eq!(
            err("[etcd]\nendpoints = 127.0.0.1:2379\n"),
            "agent.ini: [etcd] endpoints: \"127.0.0.1:2379\" is not an http:// or https:// URL"
        );
        assert_eq!(
            err("[etcd]\nendpoints = http://a:1\npoll_interval_ms = soon\n"),
            "agent.ini: [etcd] poll_interval_ms: \"soon\": invalid digit found in string"
        );
        assert_eq!(
            err("[etcd]\nendpoints = http://a:1\npoll_interval_ms = 0\n"),
            "agent.ini: [etcd] poll_interval_ms: must be greater than 0"
        );
        assert_eq!(
            err("[etcd]\nendpoints = http://a:1\nusername = root\n"),
            "agent.ini: [etcd] username: username and password go together"
        );
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let s = EtcdSettings::from_ini(&ini(
            "[etcd]\nendpoints = http://a:1\nusername = u\npassword = hunter2\n",
        ))
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn log_level() {
        assert_eq!(
            LogSettings::from_ini(&ini("")).unwrap().level,
            log::LevelFilter::Info
        );
        assert_eq!(
            LogSettings::from_ini(&ini("[log]\nlevel = DEBUG\n"))
                .unwrap()
                .level,
            log::LevelFilter::Debug
        );
        assert!(LogSettings::from_ini(&ini("[log]\nlevel = loud\n")).is_err());
    }

    #[test]
    fn settings_nobody_reads_are_told_with_the_nearest() {
        let ini = ini(
            "[etcd]\nendpoints = http://a:1\n[agent]\ndata_dir = /d\npoll_interval_ms = 5\ndata_dri = /x\n[agnet]\nx = 1\n[console]\nadmin_token_file = /t\n",
        );
        EtcdSettings::from_ini(&ini).unwrap();
        ini.get("agent", "data_dir");
        assert_eq!(
            ini.unread("log-agent"),
            [
                "agent.ini: [agent] poll_interval_ms is not a setting of log-agent (did you mean [etcd] poll_interval_ms?)",
                "agent.ini: [agent] data_dri is not a setting of log-agent (did you mean [agent] data_dir?)",
                "agent.ini: [agnet] is not a section log-agent reads (did you mean [agent]?)",
            ]
        );
    }

    #[test]
    fn broken_ini_names_file() {
        let e = IniFile::parse("x.ini", "[etcd\nendpoints=1").unwrap_err();
        assert!(
            e.to_string().starts_with("x.ini: not a valid ini file"),
            "{e}"
        );
    }
}
