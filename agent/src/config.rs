//! Where the agent's collect configuration comes from: the per-host etcd key (`{hostname}`,
//! `{ip}` expanded) if it has a value, else the plain `collect_log_conf`; and the copy of the
//! last good configuration cached in `data_dir`, used while etcd is down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use logcollect::collect::{parse_collect_conf, CollectEntry};
use logcollect::etcd::{KeyChange, KeyValue};
use logcollect::settings::DEFAULT_COLLECT_KEY;
use logcollect::{fleet, persist, Error, Result};
use serde_json::{json, Value};

/// A validated configuration, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The etcd key it came from.
    pub key: String,
    /// `mod_revision` of that key.
    pub revision: i64,
    /// The entries.
    pub entries: Vec<CollectEntry>,
    /// [`fleet::hash`] of the raw value, for the status.
    pub hash: String,
}

/// A value in force that is not a valid configuration.
#[derive(Debug)]
pub struct Refused {
    /// Its `mod_revision`.
    pub revision: i64,
    /// What is wrong with it.
    pub error: Error,
}

/// Tracks the watched keys and decides which value is in force.
pub struct ConfigSource {
    /// Keys in order of preference: the per-host key first, when there is one.
    keys: Vec<String>,
    /// Last value of each key; a key is absent from the map until it was read once.
    values: HashMap<String, Option<KeyValue>>,
    /// Which key and revision is in force (valid or not), so an unchanged value is not re-applied.
    current: Option<(String, i64)>,
    cache: PathBuf,
}

impl ConfigSource {
    /// `key` is the expanded `[etcd] key`; if it differs from the plain key, both are watched.
    pub fn new(key: String, data_dir: &Path) -> ConfigSource {
        let mut keys = vec![key];
        if keys[0] != DEFAULT_COLLECT_KEY {
            keys.push(DEFAULT_COLLECT_KEY.to_string());
        }
        ConfigSource {
            keys,
            values: HashMap::new(),
            current: None,
            cache: data_dir.join("collect_conf.json"),
        }
    }

    /// The keys to poll.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Records a change. Returns the configuration to apply when the value in force changed;
    /// an error when that value is invalid (the caller keeps what it has).
    pub fn update(&mut self, change: KeyChange) -> Option<Result<Config, Refused>> {
        self.values.insert(change.key, change.value);
        // Decide only once every key was read, so a per-host value is never preceded by the
        // plain one.
        if self.keys.iter().any(|k| !self.values.contains_key(k)) {
            return None;
        }
        let kv = self
            .keys
            .iter()
            .find_map(|k| self.values.get(k).cloned().flatten())?;
        let id = (kv.key.clone(), kv.mod_revision);
        if self.current.as_ref() == Some(&id) {
            return None;
        }
        self.current = Some(id);
        Some(
            parse_collect_conf(&kv.key, &kv.value)
                .map(|entries| Config {
                    key: kv.key.clone(),
                    revision: kv.mod_revision,
                    entries,
                    hash: fleet::hash(&kv.value),
                })
                .map_err(|error| Refused {
                    revision: kv.mod_revision,
                    error,
                }),
        )
    }

    /// Saves the raw value of `config` as the last good configuration.
    pub fn save(&self, config: &Config) -> Result<()> {
        let Some(Some(kv)) = self.values.get(&config.key) else {
            return Ok(());
        };
        let cached = json!({
            "key": kv.key,
            "mod_revision": kv.mod_revision,
            "value": String::from_utf8_lossy(&kv.value),
        });
        persist::write_atomic(&self.cache, cached.to_string().as_bytes())
    }

    /// The cached last good configuration; `Ok(None)` if there is none yet.
    pub fn load_cached(&self) -> Result<Option<Config>> {
        let raw = match std::fs::read(&self.cache) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&self.cache, "cannot read cached config", &e)),
        };
        let bad = |msg: &str| Error::Io {
            path: self.cache.clone(),
            msg: msg.to_string(),
        };
        let cached: Value =
            serde_json::from_slice(&raw).map_err(|_| bad("cached config is not JSON"))?;
        let (Some(key), Some(revision), Some(value)) = (
            cached["key"].as_str(),
            cached["mod_revision"].as_i64(),
            cached["value"].as_str(),
        ) else {
            return Err(bad("cached config lacks key, mod_revision or value"));
        };
        let entries = parse_collect_conf(key, value.as_bytes())?;
        Ok(Some(Config {
            key: key.to_string(),
            revision,
            entries,
            hash: fleet::hash(value.as_bytes()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, rev: i64, value: Option<&str>) -> KeyChange {
        KeyChange {
            key: key.into(),
            value: value.map(|v| KeyValue {
                key: key.into(),
                value: v.as_bytes().to_vec(),
                mod_revision: rev,
            }),
        }
    }

    const ONE: &str = r#"[{"path":"/a.log","topic":"a"}]"#;
    const TWO: &str = r#"[{"path":"/b.log","topic":"b"}]"#;

    #[test]
    fn per_host_key_wins_and_falls_back() {
        let dir = std::env::temp_dir();
        let mut s = ConfigSource::new("collect_log_web1".into(), &dir);
        assert_eq!(s.keys(), ["collect_log_web1", "collect_log_conf"]);
        // Nothing is decided before both keys were read.
        assert!(s.update(change("collect_log_conf", 3, Some(ONE))).is_none());
        let c = s
            .update(change("collect_log_web1", 5, Some(TWO)))
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.key.as_str(), c.revision, c.entries[0].topic.as_str()),
            ("collect_log_web1", 5, "b")
        );
        // A change of the plain key does not matter while the per-host key has a value.
        assert!(s.update(change("collect_log_conf", 4, Some(TWO))).is_none());
        // The per-host key is deleted: the plain key is in force.
        let c = s
            .update(change("collect_log_web1", 0, None))
            .unwrap()
            .unwrap();
        assert_eq!((c.key.as_str(), c.revision), ("collect_log_conf", 4));
    }

    #[test]
    fn invalid_value_is_reported_once() {
        let mut s = ConfigSource::new("collect_log_conf".into(), &std::env::temp_dir());
        assert_eq!(s.keys(), ["collect_log_conf"]);
        let e = s
            .update(change("collect_log_conf", 7, Some("{oops")))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.revision, 7);
        assert!(
            e.error.to_string().contains("not valid JSON"),
            "{}",
            e.error
        );
        assert!(s
            .update(change("collect_log_conf", 7, Some("{oops")))
            .is_none());
    }

    #[test]
    fn cache_round_trip() {
        let dir = crate::testing::temp_dir("agent-cache");
        let mut s = ConfigSource::new("collect_log_conf".into(), &dir);
        assert_eq!(s.load_cached().unwrap(), None);
        let c = s
            .update(change("collect_log_conf", 9, Some(ONE)))
            .unwrap()
            .unwrap();
        s.save(&c).unwrap();
        let again = ConfigSource::new("collect_log_conf".into(), &dir);
        assert_eq!(again.load_cached().unwrap(), Some(c));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
