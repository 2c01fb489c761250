//! `log-transfer`: consumes the log topics from Kafka and indexes every record into
//! Elasticsearch exactly once.
//!
//! The main thread owns the configuration: it takes changes of `collect_log_conf` and
//! `elasticsearch_config` from the etcd poller thread and validates each as a whole.

mod settings;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::select;
use logcollect::collect::{parse_collect_conf, parse_es_config};
use logcollect::etcd::{EtcdClient, KeyChange, Poller};
use logcollect::shutdown::Shutdown;
use logcollect::{logging, Error, Result};

use crate::settings::Settings;

fn main() -> ExitCode {
    logcollect::cli::main(
        "log-transfer",
        "Consumes the log topics from Kafka and indexes every record into Elasticsearch exactly once.",
        "conf/transfer.ini",
        run,
    )
}

fn run(path: &Path) -> Result<()> {
    let settings = Settings::load(path)?;
    logging::init(settings.log.level);
    let shutdown = Shutdown::on_signals()?;
    let keys = vec![settings.etcd.key.clone(), settings.transfer.es_key.clone()];
    log::info!(
        "log-transfer {} starting: etcd {:?}, keys {keys:?}, kafka {}",
        env!("CARGO_PKG_VERSION"),
        settings.etcd.endpoints,
        settings.kafka.brokers
    );
    let etcd = Arc::new(EtcdClient::new(&settings.etcd));
    let (changes_tx, changes) = crossbeam_channel::bounded(16);
    let poller = Poller::new(etcd, keys);
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
                check(&settings, &change);
            }
            recv(shutdown.receiver()) -> _ => break,
        }
    }
    let _ = poll_thread.join();
    log::info!("log-transfer stopped");
    Ok(())
}

/// Validates a changed value and reports it.
fn check(settings: &Settings, change: &KeyChange) {
    let Some(kv) = &change.value else {
        log::warn!("etcd key {:?} has no value", change.key);
        return;
    };
    let verdict = if kv.key == settings.transfer.es_key {
        parse_es_config(&kv.key, &kv.value).map(|es| format!("{es:?}"))
    } else {
        parse_collect_conf(&kv.key, &kv.value).map(|entries| format!("{} entries", entries.len()))
    };
    match verdict {
        Ok(what) => log::info!("etcd key {:?} revision {}: {what}", kv.key, kv.mod_revision),
        Err(e) => log::error!("{e}; keeping the last good configuration"),
    }
}
