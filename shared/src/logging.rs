//! Logging set-up: env_logger to stderr; `RUST_LOG` wins over the ini `[log] level`.

/// Initialises the global logger. Call once, first thing after reading the ini file.
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
