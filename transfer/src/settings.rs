//! The transfer's ini file: `[etcd]`, `[kafka]`, `[log]` (shared) and `[transfer]`.

use std::path::Path;

use logcollect::settings::{EtcdSettings, IniFile, KafkaSettings, LogSettings};
use logcollect::Result;

/// Everything the transfer reads from its ini file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[etcd]`.
    pub etcd: EtcdSettings,
    /// `[kafka]`.
    pub kafka: KafkaSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[transfer]` and the transfer's keys of `[etcd]`.
    pub transfer: TransferSettings,
}

/// The transfer's own settings.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    /// etcd key of `elasticsearch_config` (`[etcd] es_key`).
    pub es_key: String,
}

impl Settings {
    /// Reads and validates the ini file at `path`.
    pub fn load(path: &Path) -> Result<Settings> {
        let ini = IniFile::load(path)?;
        let es_key = ini.string_or("etcd", "es_key", "elasticsearch_config");
        if es_key.is_empty() {
            return Err(ini.error("etcd", "es_key", "empty"));
        }
        Ok(Settings {
            etcd: EtcdSettings::from_ini(&ini)?,
            kafka: KafkaSettings::from_ini(&ini)?,
            log: LogSettings::from_ini(&ini)?,
            transfer: TransferSettings { es_key },
        })
    }
}
