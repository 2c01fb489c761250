//! Code shared by `log-agent` and `log-transfer`.
//!
//! - [`settings`]: the ini files, read into typed structs with errors naming file, section and key.
//! - [`etcd`]: a synchronous client for etcd's v3 JSON gateway, and a poller woken by watches.
//! - [`fleet`]: each daemon's status in etcd under a lease (heartbeats), read by `logctl status`.
//! - [`collect`]: the JSON values kept in etcd (`collect_log_conf`, `elasticsearch_config`).
//! - [`cli`], [`logging`], [`shutdown`], [`host`]: what every daemon needs at start and stop.
//! - [`persist`]: atomic file writes for state that must survive a crash.
//! - [`clock`]: milliseconds since the epoch, for registry entries and record timestamps.
//! - [`document`], [`routing`]: a record made a document (ECS fields, processors, index, id), as
//!   the transfer indexes it and `logctl pipeline test` shows it.
//! - [`record`]: the record contract between the daemons: Kafka key, headers, file identity.
//! - [`http`]: the `/metrics` and `/health` server both daemons expose.
//! - [`topic`]: a whole Kafka topic read to its end, outside any group (`logctl dlq`, tests).
//! - [`sync`]: named threads and poison-proof locks.
//! - [`error`]: the one error type, with the context (path, key, url) a user needs to fix the cause.

pub mod allocator;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod document;
pub mod error;
pub mod etcd;
pub mod fleet;
pub mod host;
pub mod http;
pub mod kafka;
pub mod logging;
pub mod outage;
pub mod persist;
pub mod pipeline;
pub mod record;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod sync;
pub mod tls;
pub mod topic;
pub mod typo;

pub use error::{Error, Result};
