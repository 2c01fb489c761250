//! `log-transfer`: consumes the log topics from Kafka and indexes every record into
//! Elasticsearch exactly once.
//!
//! The main thread owns the configuration: it takes changes of `collect_log_conf` and
//! `elasticsearch_config` from the etcd poller thread and publishes them to the consumer
//! threads (topics, indices) and the batch thread (where Elasticsearch is). See
//! ARCHITECTURE.md for the threads and their channels.

mod batch;
mod bulk;
mod consumer;
mod dlq;
mod doc;
mod gzip;
mod membership;
mod metrics;
mod settings;
mod watched;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::select;
use logcollect::collect::{parse_collect_conf, parse_es_config};
use logcollect::etcd::{EtcdClient, KeyChange, Poller};
use logcollect::fleet::{self, ConfigReport, Heartbeat, Status};
use logcollect::shutdown::Shutdown;
use logcollect::sync::lock;
use logcollect::{logging, Result};

use crate::bulk::EsClient;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::watched::Watched;
use logcollect::routing::Routing;

/// Documents waiting for the batch thread (in chunks): bounds the transfer's memory.
const DOC_QUEUE: usize = 10_000;
/// How long the consumers may take to commit and leave the group once the batch thread is
/// done. A librdkafka call can block past it (seen once, in a benchmark: a consumer thread
/// waiting without timeout inside librdkafka); the transfer then exits without that thread.
const LEAVE_WITHIN: Duration = Duration::from_secs(15);

/// mimalloc rather than the C library's allocator: with glibc's, threads that free what
/// another thread allocated contend on its arena lock, and musl's (the static builds) is
/// slower still. Measured on the transfer: malloc, free and their locks took a third of it.
/// Not in the agent: with a thread per file, mimalloc's per-thread heaps took 3.2 GiB for
/// 1,000 files where glibc's took 151 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    logcollect::cli::main(
        "log-transfer",
        "Consumes the log topics from Kafka and indexes every record into Elasticsearch exactly once.",
        "conf/transfer.ini",
        run,
    )
}

fn run(path: &Path) -> Result<()> {
    let ini = logging::start(path)?;
    let settings = Settings::from_ini(&ini)?;
    for unknown in ini.unread("log-transfer") {
        log::warn!("{unknown}; ignored");
    }
    let (stop, shutdown) = Shutdown::on_signals()?;
    let t = &settings.transfer;
    let keys = vec![settings.etcd.key.clone(), t.es_key.clone()];
    log::info!(
        "log-transfer {} starting: etcd {:?}, keys {keys:?}, kafka {} ({}), group {} ({})",
        env!("CARGO_PKG_VERSION"),
        settings.etcd.endpoints,
        settings.kafka.brokers,
        settings.kafka.protocol.name(),
        t.group_id,
        match &t.instance_id {
            Some(id) => format!(
                "static members {id}-N-TOPICS for threads N = 0 to {}",
                t.consumer_threads - 1
            ),
            None => "dynamic members".into(),
        }
    );
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = &t.http_listen {
        let (render, health) = (metrics.clone(), metrics.clone());
        let session_timeout = t.session_timeout;
        logcollect::http::serve_metrics(
            addr,
            move || render.render(),
            move || health.membership.check(session_timeout),
        )?;
    }
    let routing = Arc::new(Watched::new(Routing::new(&[], &t.index_pattern)));
    let es = Arc::new(Watched::new(None));

    let (docs_tx, docs) = crossbeam_channel::bounded(DOC_QUEUE / consumer::CHUNK_DOCS);
    let batcher = batch::spawn(
        batch::Setup {
            docs,
            es: es.clone(),
            routing: routing.clone(),
            dead_letters: dlq::DeadLetters::new(&settings.kafka)?,
            max_docs: t.batch_max_docs,
            max_bytes: t.batch_max_bytes,
            max_wait: t.batch_max_wait,
            workers: t.bulk_workers,
            gzip: t.gzip,
            shutdown: shutdown.clone(),
            shutdown_timeout: t.shutdown_timeout,
            metrics: metrics.clone(),
        },
        EsClient::new(&settings.store, metrics.clone()),
    )?;
    let (drained_trigger, drained) = Shutdown::new();
    let (failed_tx, failed) = crossbeam_channel::unbounded();
    let mut consumers = Vec::new();
    for n in 0..t.consumer_threads {
        consumers.push(consumer::spawn(
            n,
            consumer::Setup {
                kafka: settings.kafka.clone(),
                group_id: t.group_id.clone(),
                session_timeout: t.session_timeout,
                instance_id: t.instance_id.clone(),
                failed: failed_tx.clone(),
                routing: routing.clone(),
                docs: docs_tx.clone(),
                shutdown: shutdown.clone(),
                drained: drained.clone(),
                metrics: metrics.clone(),
            },
        )?);
    }
    drop(docs_tx);

    let etcd = Arc::new(EtcdClient::new(&settings.etcd));
    let reports = Arc::new(Reports {
        collect: Mutex::new(ConfigReport::new(&keys[..1])),
        es: Mutex::new(ConfigReport::new(&keys[1..])),
    });
    let heartbeat = {
        let (counters, reports) = (metrics.clone(), reports.clone());
        let status = move || Status {
            config: lock(&reports.collect).clone(),
            es_config: Some(lock(&reports.es).clone()),
            ..counters.status()
        };
        fleet::spawn_heartbeat(
            etcd.clone(),
            Heartbeat {
                kind: "transfer",
                name: settings.fleet.name.clone(),
                status: Box::new(status),
            },
            &metrics.nudge,
            shutdown.clone(),
        )?
    };
    let (changes_tx, changes) = crossbeam_channel::bounded(16);
    let poll_thread =
        Poller::new(etcd, keys).spawn(settings.etcd.poll_interval, changes_tx, shutdown.clone())?;

    let mut failure = None;
    loop {
        select! {
            recv(changes) -> change => {
                let Ok(change) = change else { break };
                apply(&settings, &change, &routing, &es, &metrics, &reports);
                // A rollout waits for this: say it now, not at the next heartbeat.
                metrics.nudge.now();
            }
            recv(failed) -> error => {
                // A consumer failed for good (fenced out of the group): stop the whole transfer.
                failure = error.ok();
                stop.trigger();
                break;
            }
            recv(shutdown.receiver()) -> _ => break,
        }
    }
    // The batch thread sends what it has (bounded); then the consumers commit it and leave.
    let _ = batcher.join();
    drained_trigger.trigger();
    let left_by = Instant::now() + LEAVE_WITHIN;
    for c in consumers {
        while !c.is_finished() && Instant::now() < left_by {
            std::thread::sleep(Duration::from_millis(50));
        }
        if c.is_finished() {
            let _ = c.join();
        } else {
            // Nothing is lost: what it indexed was committed within the last second or is
            // delivered again to the partitions' next owner, onto the same document ids.
            log::error!(
                "{}: did not commit and leave the group within {LEAVE_WITHIN:?}; exiting without it",
                c.thread().name().unwrap_or("a consumer")
            );
        }
    }
    let _ = poll_thread.join();
    let _ = heartbeat.join();
    if let Some(e) = failure {
        return Err(e);
    }
    log::info!("log-transfer stopped");
    Ok(())
}

/// What the transfer applied of its two keys, for its status.
struct Reports {
    collect: Mutex<ConfigReport>,
    es: Mutex<ConfigReport>,
}

/// Validates a changed value and publishes it; an invalid one leaves the last good one.
fn apply(
    settings: &Settings,
    change: &KeyChange,
    routing: &Watched<Routing>,
    es: &Watched<Option<logcollect::collect::EsConfig>>,
    metrics: &Metrics,
    reports: &Reports,
) {
    let Some(kv) = &change.value else {
        log::warn!(
            "etcd key {:?} has no value; keeping the last good configuration",
            change.key
        );
        return;
    };
    let is_es = kv.key == settings.transfer.es_key;
    let result = if is_es {
        // Secrets kept in files on this host replace those in etcd.
        let config =
            parse_es_config(&kv.key, &kv.value).and_then(|c| settings.store.with_secrets(c));
        config.map(|config| {
            log::info!(
                "etcd key {:?} revision {}: elasticsearch at {:?}",
                kv.key,
                kv.mod_revision,
                config.urls
            );
            es.set(Some(config));
        })
    } else {
        parse_collect_conf(&kv.key, &kv.value).map(|entries| {
            let new = Routing::new(&entries, &settings.transfer.index_pattern);
            log::info!(
                "etcd key {:?} revision {}: topics {:?}",
                kv.key,
                kv.mod_revision,
                new.topics
            );
            metrics.config_revision.store(kv.mod_revision, Relaxed);
            routing.set(new);
        })
    };
    let mut report = lock(if is_es { &reports.es } else { &reports.collect });
    match result {
        Ok(()) => report.applied(&kv.key, kv.mod_revision, fleet::hash(&kv.value)),
        Err(e) => {
            metrics.error("config");
            log::error!("{e}; keeping the last good configuration");
            report.refused(kv.mod_revision, &e.to_string());
        }
    }
}
