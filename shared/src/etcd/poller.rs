//! The [`Poller`] of the daemons' configuration keys: woken by a watch of each key, so a
//! change is applied as soon as it is put, and reading every key after a jittered period
//! anyway, the safety net for a watch that went quiet without breaking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, Sender};

use super::{watch, EtcdClient, KeyValue};
use crate::shutdown::Shutdown;
use crate::Result;

/// A change of one polled key: its new value, or `None` when it does not exist (any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key that changed.
    pub key: String,
    /// Its value now.
    pub value: Option<KeyValue>,
}

/// Reads a few keys and reports only what changed since the last read (by `mod_revision`).
pub struct Poller {
    client: Arc<EtcdClient>,
    keys: Vec<String>,
    /// Last `mod_revision` seen per key (`None`: known absent). A key not in the map was never read.
    seen: HashMap<String, Option<i64>>,
}

/// Longest wait between polls while etcd fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Poller {
    /// A poller of `keys`. The first poll reports every key, present or not.
    pub fn new(client: Arc<EtcdClient>, keys: Vec<String>) -> Poller {
        Poller {
            client,
            keys,
            seen: HashMap::new(),
        }
    }

    /// Reads every key once and returns those that changed. On error nothing is updated, so
    /// the next successful poll reports what changed in the meantime.
    pub fn poll(&mut self) -> Result<Vec<KeyChange>> {
        let mut current = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            current.push(self.client.get(key)?);
        }
        let mut changes = Vec::new();
        for (key, value) in self.keys.iter().zip(current) {
            let revision = value.as_ref().map(|kv| kv.mod_revision);
            if self.seen.insert(key.clone(), revision) != Some(revision) {
                changes.push(KeyChange {
                    key: key.clone(),
                    value,
                });
            }
        }
        Ok(changes)
    }

    /// Runs [`Poller::run`] on a thread of its own, named `etcd-poll`.
    pub fn spawn(
        self,
        interval: Duration,
        tx: Sender<KeyChange>,
        shutdown: Shutdown,
    ) -> Result<std::thread::JoinHandle<()>> {
        crate::sync::spawn("etcd-poll", move || self.run(interval, tx, &shutdown))
    }

    /// Watches every key (a thread each, see [`watch`]) and reads them all whenever a watch
    /// wakes it, or after `interval` ±20% without one; sends each change to `tx`, until
    /// `shutdown` or until the receiver is gone. While etcd fails, it logs, backs off
    /// (doubling up to 30 s, or until a watch is back) and keeps the last state.
    pub fn run(mut self, interval: Duration, tx: Sender<KeyChange>, shutdown: &Shutdown) {
        // Bounded 1: wake-ups that come while a poll runs fold into one more poll.
        let (wake_tx, wake) = crossbeam_channel::bounded(1);
        for key in &self.keys {
            let started = watch::spawn(
                self.client.clone(),
                key.clone(),
                wake_tx.clone(),
                shutdown.clone(),
            );
            if let Err(e) = started {
                log::warn!("{e}; {key:?} is only polled, every {interval:?}");
            }
        }
        let mut failures: u32 = 0;
        loop {
            let wait = match self.poll() {
                Ok(changes) => {
                    if failures > 0 {
                        log::info!(
                            "etcd {}: reachable again after {failures} failed polls",
                            self.client.endpoint()
                        );
                        failures = 0;
                    }
                    for change in changes {
                        if tx.send(change).is_err() {
                            return;
                        }
                    }
                    // Jittered, so a fleet started together does not poll together.
                    interval.mul_f64(fastrand::f64() * 0.4 + 0.8)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = interval
                        .min(Duration::from_secs(1))
                        .saturating_mul(1 << failures.min(16))
                        .min(MAX_BACKOFF);
                    // First failure, then every 10th, so an outage does not flood the log.
                    if failures == 1 || failures % 10 == 0 {
                        log::warn!("{e}; keeping the last configuration, retrying in {wait:?} (failure {failures})");
                    }
                    wait
                }
            };
            select! {
                recv(wake) -> _ => {}
                recv(shutdown.receiver()) -> _ => return,
                default(wait) => {}
            }
        }
    }
}
