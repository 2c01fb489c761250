//! `log-agent`: tails the log files named in etcd and ships every line to Kafka.
//!
//! The main thread owns the configuration: it takes changes from the etcd poller thread,
//! validates them as a whole, and applies them. See ARCHITECTURE.md for the threads.

mod config;
mod settings;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::select;
use logcollect::etcd::{EtcdClient, Poller};
use logcollect::shutdown::Shutdown;
use logcollect::{host, logging, Error, Result};

use crate::config::{Config, ConfigSource};
use crate::settings::Settings;

fn main() -> ExitCode {
    logcollect::cli::main(
        "log-agent",
        "Tails the log files named in etcd and ships every line to Kafka.",
        "conf/agent.ini",
        run,
    )
}

fn run(path: &Path) -> Result<()> {
    let settings = Settings::load(path)?;
    logging::init(settings.log.level);
    let shutdown = Shutdown::on_signals()?;
    let data_dir = &settings.agent.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::io(data_dir, "cannot create data_dir", &e))?;

    let etcd = Arc::new(EtcdClient::new(&settings.etcd));
    let ip = host::local_ip_towards(etcd.endpoint());
    let key = host::expand_key(&settings.etcd.key, &host::hostname(), &ip);
    let mut source = ConfigSource::new(key, data_dir);
    log::info!(
        "log-agent {} starting: etcd {:?}, keys {:?}, kafka {}",
        env!("CARGO_PKG_VERSION"),
        settings.etcd.endpoints,
        source.keys(),
        settings.kafka.brokers
    );
    match source.load_cached() {
        Ok(Some(cached)) => {
            log::info!("using the cached configuration until etcd answers");
            apply(&cached);
        }
        Ok(None) => {}
        Err(e) => log::warn!("{e}; ignoring the cached configuration"),
    }

    let (changes_tx, changes) = crossbeam_channel::bounded(16);
    let poller = Poller::new(etcd, source.keys().to_vec());
    let interval = settings.etcd.poll_interval;
    let poll_shutdown = shutdown.clone();
    let poll_thread = std::thread::Builder::new()
        .name("etcd-poll".into())
        .spawn(move || poller.run(interval, changes_tx, &poll_shutdown))
        .map_err(|e| Error::io("etcd-poll thread", "cannot spawn", &e))?;

    loop {
        select! {
            recv(changes) -> change => {
                let Ok(change) = change else { break };
                match source.update(change) {
                    None => {}
                    Some(Ok(config)) => {
                        apply(&config);
                        if let Err(e) = source.save(&config) {
                            log::warn!("{e}; the configuration is applied but not cached");
                        }
                    }
                    Some(Err(e)) => log::error!("{e}; keeping the last good configuration"),
                }
            }
            recv(shutdown.receiver()) -> _ => break,
        }
    }
    let _ = poll_thread.join();
    log::info!("log-agent stopped");
    Ok(())
}

fn apply(config: &Config) {
    log::info!(
        "applying configuration from etcd key {:?} revision {}: {} entries",
        config.key,
        config.revision,
        config.entries.len()
    );
    for entry in &config.entries {
        log::info!("  {} -> topic {}", entry.path, entry.topic);
    }
}
