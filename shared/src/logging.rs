//! Logging set-up: env_logger to stderr; `RUST_LOG` wins over the ini `[log] level`.

use std::path::Path;

use crate::settings::{IniFile, LogSettings};
use crate::Result;

/// Reads the daemon's ini file and starts logging at its `[log] level`, before the other
/// sections are read: what reading them warns about (a secret file others may read) is logged.
pub fn start(path: &Path) -> Result<IniFile> {
    let ini = IniFile::load(path)?;
    init(LogSettings::from_ini(&ini)?.level);
    Ok(ini)
}

/// Initialises the global logger at `level`.
pub fn init(level: log::LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // librdkafka's own log lines are noisy at debug; they are reached through RUST_LOG.
    builder.filter_module("rdkafka", level.min(log::LevelFilter::Info));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format_timestamp_millis();
    // A second init (tests) keeps the first logger.
    let _ = builder.try_init();
}
