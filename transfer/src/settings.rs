//! The transfer's ini file: `[etcd]`, `[kafka]`, `[log]` (shared), the transfer's keys of
//! `[etcd]` and `[kafka]`, and `[transfer]`.

use std::time::Duration;

use logcollect::kafka::KafkaSettings;
use logcollect::routing::DEFAULT_INDEX_PATTERN;
use logcollect::settings::{EtcdSettings, FleetSettings, IniFile};
use logcollect::store::StoreSettings;
use logcollect::{host, Result};

/// Everything the transfer reads from its ini file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[etcd]`.
    pub etcd: EtcdSettings,
    /// `[kafka] brokers`.
    pub kafka: KafkaSettings,
    /// `[fleet]`.
    pub fleet: FleetSettings,
    /// `[elasticsearch]`: TLS and secrets for the store.
    pub store: StoreSettings,
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
    /// Static group membership (`[kafka] instance_id`, default the host name): consumer
    /// thread N joins as `group.instance.id` `{instance_id}-N-{hash of its topics}`, so a
    /// restarted transfer takes its partitions back at once. `None` (set empty): dynamic
    /// membership.
    pub instance_id: Option<String>,
    /// Index name pattern: `{topic}`, `%Y`, `%m`, `%d`, `%H` (`[transfer] index_pattern`).
    pub index_pattern: String,
    /// A bulk request is sent at this many documents...
    pub batch_max_docs: usize,
    /// ...or this many bytes of NDJSON...
    pub batch_max_bytes: usize,
    /// ...or when its first document waited this long.
    pub batch_max_wait: Duration,
    /// Bulk requests in flight at once.
    pub bulk_workers: usize,
    /// gzip the bulk requests (off by default: on a fast link to the store it costs the
    /// transfer and the store CPU to save bytes the link has room for; `conf/transfer.ini`
    /// gives the figures).
    pub gzip: bool,
    /// `/metrics` and `/health`; `None` disables.
    pub http_listen: Option<String>,
    /// How long a stop waits for the bulk request in flight.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// Reads and validates a parsed ini file (`[log]` aside: see `logging::start`).
    pub fn from_ini(ini: &IniFile) -> Result<Settings> {
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
        let instance_id = ini.string_or("kafka", "instance_id", &host::hostname());
        // A group.instance.id is at most 249 characters; thread number and topics hash follow.
        if instance_id.chars().count() > 236 {
            return Err(ini.error("kafka", "instance_id", "longer than 236 characters"));
        }
        const T: &str = "transfer";
        let index_pattern = ini.string_or(T, "index_pattern", DEFAULT_INDEX_PATTERN);
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
            etcd: EtcdSettings::from_ini(ini)?,
            kafka: KafkaSettings::from_ini(ini)?,
            fleet: FleetSettings::from_ini(ini)?,
            store: StoreSettings::from_ini(ini)?,
            transfer: TransferSettings {
                es_key,
                consumer_threads,
                group_id,
                session_timeout: ini.millis_or("kafka", "session_timeout_ms", 45_000)?,
                instance_id: Some(instance_id).filter(|id| !id.is_empty()),
                index_pattern,
                batch_max_docs: positive("batch_max_docs", 5000)?,
                batch_max_bytes: positive("batch_max_bytes", 5 * 1024 * 1024)?,
                batch_max_wait: ini.millis_or(T, "batch_max_wait_ms", 1000)?,
                bulk_workers: positive("bulk_workers", 2)?,
                gzip: ini.parse_or(T, "gzip", false)?,
                http_listen,
                shutdown_timeout: ini.millis_or(T, "shutdown_timeout_ms", 10_000)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance_id(kafka: &str) -> Result<Option<String>> {
        let text = format!("[etcd]\nendpoints = http://a:2379\n[kafka]\nbrokers = a:9092\n{kafka}");
        let ini = IniFile::parse("transfer.ini", &text)?;
        Ok(Settings::from_ini(&ini)?.transfer.instance_id)
    }

    #[test]
    fn static_membership_by_host_name_unless_set_or_empty() {
        assert_eq!(instance_id("").unwrap(), Some(host::hostname()));
        assert_eq!(
            instance_id("instance_id = t1\n").unwrap().as_deref(),
            Some("t1")
        );
        assert_eq!(instance_id("instance_id =\n").unwrap(), None);
        assert_eq!(
            instance_id(&format!("instance_id = {}\n", "x".repeat(237)))
                .unwrap_err()
                .to_string(),
            "transfer.ini: [kafka] instance_id: longer than 236 characters"
        );
    }
}
