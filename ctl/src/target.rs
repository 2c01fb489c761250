//! Where logctl finds the services: `-c FILE` (an agent's or transfer's ini), overridden by
//! `--endpoints` and `--brokers`; the defaults of a local install otherwise.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use logcollect::etcd::EtcdClient;
use logcollect::kafka::KafkaSettings;
use logcollect::routing::DEFAULT_INDEX_PATTERN;
use logcollect::settings::{
    check_url, EtcdSettings, IniFile, CONSOLE_SECTION, DEFAULT_COLLECT_KEY,
};
use logcollect::store::StoreSettings;
use logcollect::{Error, Result};

use crate::search::Store;
use crate::Global;

/// The services and key names one invocation works with.
pub struct Target {
    /// The etcd client.
    pub etcd: Arc<EtcdClient>,
    /// `[etcd] key` of the ini: the collect key, possibly with `{hostname}`/`{ip}`.
    pub key_template: String,
    /// `[etcd] es_key`.
    pub es_key: String,
    /// `[kafka]`: the brokers, and how to reach them.
    pub kafka: KafkaSettings,
    /// `[transfer] index_pattern`.
    pub index_pattern: String,
    /// `[elasticsearch]`: TLS and secrets for the store.
    pub store: StoreSettings,
    /// `[console] admin_token_file`: the token the console's writes need (none: read-only).
    pub admin_token_file: Option<PathBuf>,
    /// The store client of the last `elasticsearch_config` read, with its revision: see
    /// [`crate::search::store`].
    pub store_client: Mutex<Option<(i64, Arc<Store>)>>,
}

impl Target {
    /// Reads the ini file if given, then applies the flags.
    pub fn new(global: &Global) -> Result<Target> {
        let ini = global.config.as_deref().map(IniFile::load).transpose()?;
        let mut etcd = match &ini {
            Some(ini) => EtcdSettings::from_ini(ini)?,
            None => EtcdSettings::with_endpoints(vec!["http://127.0.0.1:2379".into()]),
        };
        if let Some(list) = &global.endpoints {
            etcd.endpoints = Vec::new();
            for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                check_url(url).map_err(|msg| Error::Setting {
                    file: "command line".into(),
                    section: String::new(),
                    key: "--endpoints".into(),
                    msg,
                })?;
                etcd.endpoints.push(url.trim_end_matches('/').to_string());
            }
        }
        let from_ini = |section: &str, key: &str, default: &str| {
            ini.as_ref()
                .map_or(default.to_string(), |i| i.string_or(section, key, default))
        };
        Ok(Target {
            key_template: etcd.key.clone(),
            es_key: from_ini("etcd", "es_key", "elasticsearch_config"),
            kafka: kafka_settings(ini.as_ref(), global.brokers.as_deref())?,
            index_pattern: from_ini("transfer", "index_pattern", DEFAULT_INDEX_PATTERN),
            store: ini
                .as_ref()
                .map(StoreSettings::from_ini)
                .transpose()?
                .unwrap_or_default(),
            etcd: Arc::new(EtcdClient::new(&etcd)),
            admin_token_file: ini
                .as_ref()
                .and_then(|i| i.optional(CONSOLE_SECTION, "admin_token_file"))
                .map(PathBuf::from),
            store_client: Mutex::default(),
        })
    }

    /// The collect key for `host` (a name or an address): the ini's key template with
    /// `{hostname}`/`{ip}` replaced, or `collect_log_{host}` when the template has neither;
    /// the plain `collect_log_conf` without a host.
    pub fn collect_key(&self, host: Option<&str>) -> String {
        let Some(host) = host else {
            return DEFAULT_COLLECT_KEY.to_string();
        };
        let t = &self.key_template;
        if t.contains("{hostname}") || t.contains("{ip}") {
            t.replace("{hostname}", host).replace("{ip}", host)
        } else {
            format!("collect_log_{host}")
        }
    }
}

/// The ini's `[kafka]` if it names brokers (a plaintext 127.0.0.1:9092 otherwise), with
/// `--brokers` in place of its brokers.
fn kafka_settings(ini: Option<&IniFile>, brokers: Option<&str>) -> Result<KafkaSettings> {
    let mut kafka = match ini {
        Some(ini) if ini.optional("kafka", "brokers").is_some() => KafkaSettings::from_ini(ini)?,
        _ => KafkaSettings::plaintext("127.0.0.1:9092"),
    };
    if let Some(brokers) = brokers {
        kafka.brokers = brokers.to_string();
    }
    Ok(kafka)
}
