//! `log-agent`: tails the log files named in etcd and ships every line to Kafka.
//!
//! The main thread runs the [`supervisor`]: it takes configuration changes from the etcd
//! poller thread, directory events from the inotify thread, and the ends of tailer threads.
//! Tailers send lines to the producer thread, which advances the registry on Kafka's
//! acknowledgements. See ARCHITECTURE.md for the threads and their channels.

mod acks;
mod config;
mod delivery;
mod discover;
mod fingerprint;
mod lines;
mod metrics;
mod multiline;
mod producer;
mod registry;
mod settings;
mod stuck;
mod supervisor;
mod tail;
#[cfg(test)]
mod testing;
mod watch;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crossbeam_channel::select;
use logcollect::etcd::{EtcdClient, Poller};
use logcollect::fleet::{self, ConfigReport, Heartbeat, Status};
use logcollect::shutdown::Shutdown;
use logcollect::sync::lock;
use logcollect::{host, logging, Error, Result};

use crate::config::ConfigSource;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::supervisor::Supervisor;

/// Batches (one per read of up to 64 KiB) waiting for the producer: bounds the agent's memory.
/// 16 keep the producer as busy as 64 did, in 5 MiB less (measured with one busy file).
const BATCH_QUEUE: usize = 16;

fn main() -> ExitCode {
    logcollect::cli::main(
        "log-agent",
        "Tails the log files named in etcd and ships every line to Kafka.",
        "conf/agent.ini",
        run,
    )
}

fn run(path: &Path) -> Result<()> {
    logcollect::allocator::tune();
    let ini = logging::start(path)?;
    let settings = Settings::from_ini(&ini)?;
    for unknown in ini.unread("log-agent") {
        log::warn!("{unknown}; ignored");
    }
    let (_, shutdown) = Shutdown::on_signals()?;
    let data_dir = &settings.agent.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::io(data_dir, "cannot create data_dir", &e))?;

    let etcd = Arc::new(EtcdClient::new(&settings.etcd));
    let hostname = host::hostname();
    let ip = host::local_ip_towards(etcd.endpoint());
    let key = host::expand_key(&settings.etcd.key, &hostname, &ip);
    let mut source = ConfigSource::new(key, data_dir);
    log::info!(
        "log-agent {} starting on {hostname}: etcd {:?}, keys {:?}, kafka {} ({})",
        env!("CARGO_PKG_VERSION"),
        settings.etcd.endpoints,
        source.keys(),
        settings.kafka.brokers,
        settings.kafka.protocol.name()
    );

    let registry = Arc::new(Mutex::new(Registry::load(data_dir)?));
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = &settings.agent.http_listen {
        let metrics = metrics.clone();
        logcollect::http::serve_metrics(addr, move || metrics.render(), || Ok(()))?;
    }
    let (batches_tx, batches) = crossbeam_channel::bounded(BATCH_QUEUE);
    let producer = producer::spawn(
        producer::Settings {
            kafka: settings.kafka.clone(),
            max_line_bytes: settings.agent.max_line_bytes,
            shutdown_timeout: settings.agent.shutdown_timeout,
            host: hostname.clone(),
        },
        batches,
        registry.clone(),
        metrics.clone(),
        shutdown.clone(),
    )?;
    let (exits_tx, exits) = crossbeam_channel::unbounded();
    let (dir_tx, dir_events) = crossbeam_channel::bounded(1);
    let ctx = tail::Context {
        registry,
        watcher: watch::Watcher::start()?,
        batches: batches_tx,
        exits: exits_tx,
        host: Arc::from(hostname.as_str()),
        agent: Arc::from(format!(
            "{}/{}",
            settings.fleet.name,
            env!("CARGO_PKG_VERSION")
        )),
        metrics: metrics.clone(),
    };
    let cached = match source.load_cached() {
        Ok(cached) => cached,
        Err(e) => {
            log::warn!("{e}; ignoring the cached configuration");
            None
        }
    };
    let previous = cached
        .as_ref()
        .map(|c| c.entries.clone())
        .unwrap_or_default();
    let mut supervisor = Supervisor::new(ctx, settings.agent.max_line_bytes, dir_tx, &previous);
    let report = Arc::new(Mutex::new(ConfigReport::new(source.keys())));
    if let Some(cached) = cached {
        log::info!("using the cached configuration until etcd answers");
        apply(&cached, &mut supervisor, &metrics, &report);
    }
    let nudge = fleet::Nudge::default();
    let heartbeat = {
        let (metrics, report) = (metrics.clone(), report.clone());
        let status = move || Status {
            config: lock(&report).clone(),
            ..metrics.status()
        };
        fleet::spawn_heartbeat(
            etcd.clone(),
            Heartbeat {
                kind: "agent",
                name: settings.fleet.name.clone(),
                status: Box::new(status),
            },
            &nudge,
            shutdown.clone(),
        )?
    };

    let (changes_tx, changes) = crossbeam_channel::bounded(16);
    let poll_thread = Poller::new(etcd, source.keys().to_vec()).spawn(
        settings.etcd.poll_interval,
        changes_tx,
        shutdown.clone(),
    )?;

    loop {
        select! {
            recv(changes) -> change => {
                let Ok(change) = change else { break };
                match source.update(change) {
                    None => {}
                    Some(Ok(config)) => {
                        apply(&config, &mut supervisor, &metrics, &report);
                        if let Err(e) = source.save(&config) {
                            log::warn!("{e}; the configuration is applied but not cached");
                        }
                    }
                    Some(Err(refused)) => {
                        metrics.error("config");
                        log::error!("{}; keeping the last good configuration", refused.error);
                        lock(&report).refused(refused.revision, &refused.error.to_string());
                    }
                }
                // A rollout waits for this: say it now, not at the next heartbeat.
                nudge.now();
            }
            recv(dir_events) -> _ => supervisor.rescan(),
            recv(exits) -> exited => {
                if let Ok(exited) = exited {
                    supervisor.exited(exited);
                }
            }
            recv(shutdown.receiver()) -> _ => break,
            default(supervisor.rescan_interval()) => supervisor.rescan(),
        }
    }
    // Tailers first; the producer then drains, waits for Kafka (bounded) and writes the registry.
    supervisor.stop();
    let _ = producer.join();
    let _ = poll_thread.join();
    let _ = heartbeat.join();
    log::info!("log-agent stopped");
    Ok(())
}

/// Puts `config` in force, then says so: once the entries are logged, their files present
/// then have been found (and start at their end), and any file created later is read whole.
fn apply(
    config: &config::Config,
    supervisor: &mut Supervisor,
    metrics: &Metrics,
    report: &Mutex<ConfigReport>,
) {
    supervisor.apply(&config.entries);
    metrics.config_revision.store(config.revision, Relaxed);
    lock(report).applied(&config.key, config.revision, config.hash.clone());
    log::info!(
        "applied configuration from etcd key {:?} revision {}: {} entries",
        config.key,
        config.revision,
        config.entries.len()
    );
    for entry in &config.entries {
        log::info!("  {} -> topic {}", entry.path, entry.topic);
    }
}
