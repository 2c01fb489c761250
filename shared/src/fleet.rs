//! The fleet's view of itself in etcd: each daemon's status key, kept alive under a lease by
//! its [`spawn_heartbeat`] thread, and the last-seen copy that outlives it; `logctl status`
//! reads both.
//!
//! - `logcollect/status/{kind}/{name}`: the [`Status`], attached to a lease of 30 s refreshed
//!   every 10 s, so it is gone 30 s after a `kill -9` and at once after a clean exit (revoked).
//! - `logcollect/seen/{kind}/{name}`: the same value without a lease, written at most every
//!   60 s and at a clean exit, so a daemon that went away stays listed as offline.
//!
//! A status is rewritten only when it changed, at most every 10 s, except when the daemon
//! [`Nudge`]s its heartbeat: an applied (or refused) configuration, which a rollout waits for,
//! and a failure of a new kind, which an operator looks for, are written at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::clock::{now_ms, rfc3339_ms};
use crate::etcd::EtcdClient;
use crate::shutdown::Shutdown;
use crate::Result;

/// Prefix of the live status keys.
pub const STATUS_PREFIX: &str = "logcollect/status/";
/// Prefix of the last-seen copies.
pub const SEEN_PREFIX: &str = "logcollect/seen/";
/// Life of the status key's lease: how long a killed daemon stays listed as running.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the lease is refreshed, and the shortest time between two writes of a status.
pub const REFRESH: Duration = Duration::from_secs(10);
/// How often the last-seen copy is written while the status changes.
pub const SEEN_EVERY: Duration = Duration::from_secs(60);
/// Files listed in an agent's status: those furthest behind (the totals count them all).
pub const MAX_FILES: usize = 100;

/// The status key of daemon `name` of `kind` (`agent`, `transfer`).
pub fn status_key(kind: &str, name: &str) -> String {
    format!("{STATUS_PREFIX}{kind}/{name}")
}

/// The last-seen key of daemon `name` of `kind`.
pub fn seen_key(kind: &str, name: &str) -> String {
    format!("{SEEN_PREFIX}{kind}/{name}")
}

/// What a daemon applied of one configuration key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// The keys watched, in order of preference (the first with a value is in force).
    #[serde(default)]
    pub keys: Vec<String>,
    /// The key whose value is applied, if any.
    pub key: Option<String>,
    /// Its `mod_revision` (0: nothing applied yet).
    pub mod_revision: i64,
    /// xxh3 of the applied value, in hex.
    pub hash: Option<String>,
    /// Why the latest value was refused (the daemon's own message), or null.
    pub error: Option<String>,
    /// The revision of the refused value, if any.
    #[serde(default)]
    pub error_revision: i64,
}

impl ConfigReport {
    /// A report of `keys`, nothing applied yet.
    pub fn new(keys: &[String]) -> ConfigReport {
        ConfigReport {
            keys: keys.to_vec(),
            ..ConfigReport::default()
        }
    }

    /// The value of `key` at `mod_revision`, whose [`hash`] is `hash`, is applied.
    pub fn applied(&mut self, key: &str, mod_revision: i64, hash: String) {
        self.key = Some(key.to_string());
        self.mod_revision = mod_revision;
        self.hash = Some(hash);
        self.error = None;
        self.error_revision = 0;
    }

    /// The value at `mod_revision` was refused because of `error`; what was applied stays.
    pub fn refused(&mut self, mod_revision: i64, error: &str) {
        self.error = Some(error.to_string());
        self.error_revision = mod_revision;
    }
}

/// The hash of a configuration value, as the status reports it.
pub fn hash(value: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(value))
}

/// One file an agent tails.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    /// The path.
    pub path: String,
    /// Its topic.
    pub topic: String,
    /// Offset up to which every line is acknowledged by Kafka.
    pub acked_offset: u64,
    /// Size when last looked at.
    pub size: u64,
    /// `size - acked_offset`.
    pub bytes_behind: u64,
    /// When Kafka last acknowledged a line of it (null: not yet).
    pub last_ack_at: Option<String>,
}

/// One partition a transfer consumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset.
    pub committed: i64,
    /// High watermark minus committed offset.
    pub lag: i64,
}

/// The value of a status key. Fields of the other kind are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `agent` or `transfer`.
    pub kind: String,
    /// `[fleet] name`.
    pub name: String,
    /// The daemon's version.
    pub version: String,
    /// When the daemon started (RFC 3339).
    pub started_at: String,
    /// When this value was written.
    pub updated_at: String,
    /// The collect configuration.
    pub config: ConfigReport,
    /// The transfer's `elasticsearch_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub es_config: Option<ConfigReport>,
    /// Agent: the [`MAX_FILES`] files furthest behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileReport>,
    /// Agent: how many files it tails.
    #[serde(default)]
    pub files_total: usize,
    /// Agent: bytes of all its files not yet acknowledged.
    #[serde(default)]
    pub bytes_behind: u64,
    /// Agent: the most recent acknowledgement of any file (null: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ack_at: Option<String>,
    /// Agent: records in librdkafka not yet acknowledged.
    #[serde(default)]
    pub kafka_queue_depth: i64,
    /// Transfer: the partitions it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionReport>,
    /// Transfer: the sum of its partitions' lag.
    #[serde(default)]
    pub lag: i64,
    /// Transfer: documents indexed.
    #[serde(default)]
    pub indexed: u64,
    /// Transfer: records sent to a dead-letter topic.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Transfer: the last bulk request that failed as a whole, with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bulk_error: Option<String>,
    /// Errors by kind since start.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
}

impl Status {
    /// Parses a status value; `None` if it is not one (written by something else).
    pub fn parse(value: &[u8]) -> Option<Status> {
        serde_json::from_slice(value).ok()
    }
}

/// What the heartbeat needs from its daemon.
pub struct Heartbeat {
    /// `agent` or `transfer`.
    pub kind: &'static str,
    /// `[fleet] name`.
    pub name: String,
    /// The daemon's status now (kind, name, version and times are filled in here).
    pub status: Box<dyn Fn() -> Status + Send>,
}

/// How a daemon tells its heartbeat "write the status now, not at the next beat". Clones share
/// one heartbeat; nudges while a write is pending count once, and a nudge never blocks.
#[derive(Clone)]
pub struct Nudge {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Default for Nudge {
    fn default() -> Nudge {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Nudge { tx, rx }
    }
}

impl Nudge {
    /// Asks for the status to be written at once.
    pub fn now(&self) {
        let _ = self.tx.try_send(());
    }

    /// Where the heartbeat receives the nudges.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }
}

/// Starts the `heartbeat` thread, which also writes at once when `nudge` is [`Nudge::now`]ed.
/// Joined at exit, it revokes the lease (the status key disappears) and leaves the last-seen
/// copy up to date.
pub fn spawn_heartbeat(
    client: Arc<EtcdClient>,
    heartbeat: Heartbeat,
    nudge: &Nudge,
    shutdown: Shutdown,
) -> Result<std::thread::JoinHandle<()>> {
    let nudge = nudge.receiver().clone();
    crate::sync::spawn("heartbeat", move || {
        Beat::new(client, heartbeat).run(&nudge, &shutdown)
    })
}

/// The heartbeat thread's state.
struct Beat {
    client: Arc<EtcdClient>,
    hb: Heartbeat,
    started_at: String,
    status_key: String,
    seen_key: String,
    lease: Option<i64>,
    refreshed: Instant,
    /// The last status written (its `updated_at` blank), and when.
    written: Option<(Status, Instant)>,
    seen_written: Option<Instant>,
    failures: u32,
}

impl Beat {
    fn new(client: Arc<EtcdClient>, hb: Heartbeat) -> Beat {
        Beat {
            status_key: status_key(hb.kind, &hb.name),
            seen_key: seen_key(hb.kind, &hb.name),
            client,
            hb,
            started_at: rfc3339_ms(now_ms()),
            lease: None,
            refreshed: Instant::now(),
            written: None,
            seen_written: None,
            failures: 0,
        }
    }

    fn run(mut self, nudge: &Receiver<()>, shutdown: &Shutdown) {
        let mut urgent = true;
        loop {
            if let Err(e) = self.beat(urgent) {
                self.failures += 1;
                // First failure, then every 10th (one a minute and a half), not a flood.
                if self.failures == 1 || self.failures % 10 == 0 {
                    log::warn!(
                        "{e}; status {:?} not updated (failure {})",
                        self.status_key,
                        self.failures
                    );
                }
            } else if self.failures > 0 {
                log::info!(
                    "status {:?} written again after {} failures",
                    self.status_key,
                    self.failures
                );
                self.failures = 0;
            }
            select! {
                recv(nudge) -> _ => urgent = true,
                recv(shutdown.receiver()) -> _ => break,
                default(REFRESH) => urgent = false,
            }
        }
        self.leave();
    }

    /// Keeps the lease alive and writes the status if it changed (at once if `urgent`).
    fn beat(&mut self, urgent: bool) -> Result<()> {
        let lease = match self.lease {
            Some(id) if self.refreshed.elapsed() < REFRESH.mul_f64(0.9) => id,
            Some(id) => {
                self.refreshed = Instant::now();
                if self.client.keep_alive(id)? {
                    id
                } else {
                    // Expired (etcd was away longer than the TTL): the key went with it.
                    self.lease = None;
                    self.written = None;
                    return self.beat(urgent);
                }
            }
            None => {
                let id = self.client.grant(LEASE_TTL)?;
                self.lease = Some(id);
                self.refreshed = Instant::now();
                self.written = None;
                id
            }
        };
        let status = self.current();
        let due = match &self.written {
            None => true,
            Some((last, at)) => *last != status && (urgent || at.elapsed() >= REFRESH),
        };
        if !due {
            return Ok(());
        }
        let stamped = Status {
            updated_at: rfc3339_ms(now_ms()),
            ..status.clone()
        };
        let value = serde_json::to_vec(&stamped).unwrap_or_default();
        let with_seen = self
            .seen_written
            .is_none_or(|at| at.elapsed() >= SEEN_EVERY);
        let mut puts = vec![(self.status_key.as_str(), value.as_slice(), Some(lease))];
        if with_seen {
            puts.push((self.seen_key.as_str(), value.as_slice(), None));
        }
        self.client.put_all(&puts)?;
        self.written = Some((status, Instant::now()));
        if with_seen {
            self.seen_written = Some(Instant::now());
        }
        Ok(())
    }

    /// The daemon's status, with what the heartbeat knows filled in (not `updated_at`).
    fn current(&self) -> Status {
        Status {
            kind: self.hb.kind.to_string(),
            name: self.hb.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at.clone(),
            ..(self.hb.status)()
        }
    }

    /// At a clean exit: the last-seen copy gets the final status, the lease goes (and the
    /// status key with it).
    fn leave(self) {
        if self.failures > 0 {
            // etcd is failing: do not hold up the exit for it; the lease expires by itself.
            log::info!(
                "status {:?} will expire within {LEASE_TTL:?}",
                self.status_key
            );
            return;
        }
        let status = Status {
            updated_at: rfc3339_ms(now_ms()),
            ..self.current()
        };
        let value = serde_json::to_vec(&status).unwrap_or_default();
        if let Err(e) = self.client.put(&self.seen_key, &value) {
            log::warn!("{e}; last status not saved");
        }
        if let Some(id) = self.lease {
            match self.client.revoke(id) {
                Ok(()) => log::info!("status {:?} removed", self.status_key),
                Err(e) => log::warn!(
                    "{e}; status {:?} will expire within {LEASE_TTL:?}",
                    self.status_key
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_round_trip() {
        assert_eq!(status_key("agent", "web1"), "logcollect/status/agent/web1");
        assert_eq!(seen_key("transfer", "t"), "logcollect/seen/transfer/t");
        let mut config = ConfigReport::new(&["collect_log_web1".into(), "collect_log_conf".into()]);
        config.applied("collect_log_conf", 7, hash(b"[]"));
        config.refused(8, "bad");
        let status = Status {
            kind: "agent".into(),
            config,
            files_total: 1,
            ..Status::default()
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["config"]["mod_revision"], 7);
        assert_eq!(json["config"]["error"], "bad");
        assert_eq!(json["config"]["error_revision"], 8);
        assert_eq!(json["config"]["hash"], hash(b"[]"));
        // Fields of the other kind are left out.
        assert!(json.get("partitions").is_none() && json.get("es_config").is_none());
        let back = Status::parse(json.to_string().as_bytes()).unwrap();
        assert_eq!(back, status);
        assert_eq!(Status::parse(b"not json"), None);
    }
}
