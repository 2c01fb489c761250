//! The agent's ini file: `[etcd]`, `[kafka]`, `[log]` (shared) and `[agent]`.

use std::path::PathBuf;
use std::time::Duration;

use logcollect::kafka::KafkaSettings;
use logcollect::settings::{EtcdSettings, FleetSettings, IniFile};
use logcollect::Result;

/// Everything the agent reads from its ini file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[etcd]`.
    pub etcd: EtcdSettings,
    /// `[kafka]`.
    pub kafka: KafkaSettings,
    /// `[fleet]`.
    pub fleet: FleetSettings,
    /// `[agent]`.
    pub agent: AgentSettings,
}

/// Section `[agent]`.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Where the registry and the cached configuration live.
    pub data_dir: PathBuf,
    /// Address of the `/metrics` and `/health` server; `None` disables it.
    pub http_listen: Option<String>,
    /// Longest line shipped; longer ones are cut and marked truncated.
    pub max_line_bytes: usize,
    /// How long a stop waits for Kafka to acknowledge what is in flight.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// Reads and validates a parsed ini file (`[log]` aside: see `logging::start`).
    pub fn from_ini(ini: &IniFile) -> Result<Settings> {
        const S: &str = "agent";
        let max_line_bytes: usize = ini.parse_or(S, "max_line_bytes", 1024 * 1024)?;
        if max_line_bytes < 64 {
            return Err(ini.error(S, "max_line_bytes", "must be at least 64"));
        }
        let agent = AgentSettings {
            data_dir: ini.string_or(S, "data_dir", "/var/lib/log-agent").into(),
            http_listen: Some(ini.string_or(S, "http_listen", "127.0.0.1:9101"))
                .filter(|a| !a.is_empty()),
            max_line_bytes,
            shutdown_timeout: ini.millis_or(S, "shutdown_timeout_ms", 10_000)?,
        };
        if let Some(addr) = &agent.http_listen {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| ini.error(S, "http_listen", format!("{addr:?}: {e}")))?;
        }
        Ok(Settings {
            etcd: EtcdSettings::from_ini(ini)?,
            kafka: KafkaSettings::from_ini(ini)?,
            fleet: FleetSettings::from_ini(ini)?,
            agent,
        })
    }
}
