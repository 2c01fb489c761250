//! The transfer's ini file: `[etcd]`, `[kafka]`, `[log]` (shared), the transfer's keys of
//! `[etcd]` and `[kafka]`, and `[transfer]`.

use std::path::Path;
use std::time::Duration;

use logcollect::settings::{EtcdSettings, IniFile, KafkaSettings, LogSettings};
use logcollect::Result;

/// Everything the transfer reads from its ini file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[etcd]`.
    pub etcd: EtcdSettings,
    /// `[kafka] brokers`.
    pub kafka: KafkaSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// The transfer's own settings.
    pub transfer: TransferSettings,
}

/// The transfer's own settings.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    /// etcd key of `elasticsearch_config` (`[etcd] es_key`).
    pub es_key: String,
    /// Consumer threads (`[kafka] consumer_threads`).
    pub consumer_threads: usize,
    /// Consumer group (`[kafka] group_id`).
    pub group_id: String,
    /// `session.timeout.ms` of the consumers (`[kafka] session_timeout_ms`).
    pub session_timeout: Duration,
    /// Index name pattern: `{topic}`, `%Y`, `%m`, `%d`, `%H` (`[transfer] index_pattern`).
    pub index_pattern: String,
    /// A bulk request is sent at this many documents...
    pub batch_max_docs: usize,
    /// ...or this many bytes of NDJSON...
    pub batch_max_bytes: usize,
    /// ...or when its first document waited this long.
    pub batch_max_wait: Duration,
    /// gzip the bulk requests.
    pub gzip: bool,
    /// `/metrics` and `/health`; `None` disables.
    pub http_listen: Option<String>,
    /// How long a stop waits for the bulk request in flight.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// Reads and validates the ini file at `path`.
    pub fn load(path: &Path) -> Result<Settings> {
        let ini = IniFile::load(path)?;
        let es_key = ini.string_or("etcd", "es_key", "elasticsearch_config");
        if es_key.is_empty() {
            return Err(ini.error("etcd", "es_key", "empty"));
        }
        let consumer_threads: usize = ini.parse_or("kafka", "consumer_threads", 2)?;
        if !(1..=64).contains(&consumer_threads) {
            return Err(ini.error("kafka", "consumer_threads", "must be 1 to 64"));
        }
        let group_id = ini.string_or("kafka", "group_id", "log-transfer");
        if group_id.is_empty() {
            return Err(ini.error("kafka", "group_id", "empty"));
        }
        const T: &str = "transfer";
        let index_pattern = ini.string_or(T, "index_pattern", "{topic}-%Y.%m.%d");
        if index_pattern.is_empty() {
            return Err(ini.error(T, "index_pattern", "empty"));
        }
        let positive = |key: &str, default: usize| -> Result<usize> {
            let v: usize = ini.parse_or(T, key, default)?;
            if v == 0 {
                return Err(ini.error(T, key, "must be greater than 0"));
            }
            Ok(v)
        };
        let http_listen =
            Some(ini.string_or(T, "http_listen", "127.0.0.1:9102")).filter(|a| !a.is_empty());
        if let Some(addr) = &http_listen {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| ini.error(T, "http_listen", format!("{addr:?}: {e}")))?;
        }
        Ok(Settings {
            etcd: EtcdSettings::from_ini(&ini)?,
            kafka: KafkaSettings::from_ini(&ini)?,
            log: LogSettings::from_ini(&ini)?,
            transfer: TransferSettings {
                es_key,
                consumer_threads,
                group_id,
                session_timeout: ini.millis_or("kafka", "session_timeout_ms", 45_000)?,
                index_pattern,
                batch_max_docs: positive("batch_max_docs", 5000)?,
                batch_max_bytes: positive("batch_max_bytes", 5 * 1024 * 1024)?,
                batch_max_wait: ini.millis_or(T, "batch_max_wait_ms", 1000)?,
                gzip: ini.parse_or(T, "gzip", true)?,
                http_listen,
                shutdown_timeout: ini.millis_or(T, "shutdown_timeout_ms", 10_000)?,
            },
        })
    }
}
