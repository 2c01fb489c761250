//! Watches over the gateway's `/v3/watch` stream: one HTTP connection per watched key, read on
//! a thread of its own, that wakes the [`Poller`](super::Poller) on every change.
//!
//! The rules of `../shared/notes/etcd-gateway.md`: a watch starts after the revision of a read
//! of the key; after a broken stream it resumes from the highest revision received on that
//! stream + 1 (on whichever endpoint answers); a watch cancelled by compaction reads the key
//! again and watches from that read's revision + 1, never from the same start.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use crossbeam_channel::Sender;
use serde_json::{json, Value};

use super::{as_i64, parse_kv, revision, EtcdClient, B64};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// How long one watch connection lives before it is renewed (resuming where it was). The
/// gateway sends nothing on a quiet key (progress notices come every 10 minutes), so this is
/// also how long a half-open connection can go unnoticed; the poller's safety net covers it.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(300);

/// Longest wait between attempts to open a watch while etcd fails.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// One message of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The watch is in place.
    Created,
    /// Changes up to and including `revision` were delivered (events or a progress notice).
    Progress {
        /// The highest revision this message covers.
        revision: i64,
        /// How many events it carried (0 for a progress notice).
        events: usize,
    },
    /// etcd ended the watch; `compacted` is set when its start revision was compacted away.
    Canceled {
        /// The compaction revision, if that was the reason.
        compacted: Option<i64>,
        /// etcd's reason, if it gave one.
        reason: String,
    },
}

/// Parses one line of the stream (`{"result":{...}}` or `{"error":{...}}`).
pub fn parse_message(line: &str) -> std::result::Result<Message, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line:.200}"))?;
    if let Some(error) = v.get("error") {
        return Err(format!("watch error: {error}"));
    }
    let result = v
        .get("result")
        .ok_or_else(|| format!("no result: {line:.200}"))?;
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        let compacted = result
            .get("compact_revision")
            .and_then(as_i64)
            .filter(|&r| r > 0);
        let reason = result
            .get("cancel_reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return Ok(Message::Canceled { compacted, reason });
    }
    if result.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(Message::Created);
    }
    let events = result.get("events").and_then(Value::as_array);
    let mut highest = revision(result);
    for event in events.into_iter().flatten() {
        let kv = parse_kv(event.get("kv").unwrap_or(&Value::Null))?;
        highest = highest.max(kv.mod_revision);
    }
    Ok(Message::Progress {
        revision: highest,
        events: events.map_or(0, Vec::len),
    })
}

/// An open watch stream.
pub struct Stream {
    lines: BufReader<Box<dyn Read + Send>>,
    /// The endpoint it reads from.
    pub endpoint: String,
    key: String,
}

impl Stream {
    /// The next message; an error when the stream broke or ended.
    pub fn next_message(&mut self) -> Result<Message> {
        let fail = |msg: String| Error::Etcd {
            url: self.endpoint.clone(),
            key: self.key.clone(),
            msg,
        };
        let mut line = String::new();
        loop {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) => return Err(fail("watch stream ended".into())),
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => return parse_message(line.trim()).map_err(fail),
                Err(e) => return Err(fail(format!("watch stream broke: {e}"))),
            }
        }
    }
}

impl EtcdClient {
    /// Opens a watch of `key` from `start_revision`, at the current endpoint or, failing that,
    /// the next ones (the one that answers becomes current).
    pub fn watch(&self, key: &str, start_revision: i64) -> Result<Stream> {
        let body = json!({ "create_request": {
            "key": B64.encode(key),
            "start_revision": start_revision.to_string(),
            "progress_notify": true,
        }})
        .to_string();
        self.failover(key, |base| {
            let fail = |msg: String| Error::Etcd {
                url: base.to_string(),
                key: key.to_string(),
                msg,
            };
            let mut request = self
                .stream_agent
                .post(format!("{base}/v3/watch"))
                .header("Content-Type", "application/json");
            if self.credentials.is_some() {
                request = request.header("Authorization", self.authenticate(base)?);
            }
            let response = request
                .send(&body)
                .map_err(|e| fail(self.tls.describe(&e)))?;
            let status = response.status().as_u16();
            if status != 200 {
                if status == 401 {
                    self.set_token(None);
                }
                return Err(fail(format!("watch answered HTTP {status}")));
            }
            Ok(Stream {
                lines: BufReader::new(Box::new(response.into_body().into_reader())),
                endpoint: base.to_string(),
                key: key.to_string(),
            })
        })
    }
}

/// Runs a watch of `key` on a thread named `etcd-watch`: each change (and each time the watch
/// had to start over) sends `()` to `wake` (a full channel already holds a wake-up). The thread is not joined: it may be blocked in a
/// read, and it ends by itself once `wake`'s receiver is gone or the stop is requested.
pub fn spawn(
    client: Arc<EtcdClient>,
    key: String,
    wake: Sender<()>,
    shutdown: Shutdown,
) -> Result<()> {
    crate::sync::spawn("etcd-watch", move || run(&client, &key, &wake, &shutdown)).map(drop)
}

fn run(client: &EtcdClient, key: &str, wake: &Sender<()>, shutdown: &Shutdown) {
    // Where the next watch starts; `None`: read the key first (at start, after compaction).
    let mut next: Option<i64> = None;
    let mut failures: u32 = 0;
    while !shutdown.is_requested() {
        let start = match next {
            Some(start) => start,
            None => match client.get_at(key) {
                Ok((_, read_at)) => {
                    // The poller reads too, so nothing put before `read_at` is missed.
                    if !nudge(wake) {
                        return;
                    }
                    read_at + 1
                }
                Err(e) => {
                    failures += 1;
                    if retry(&e, failures, shutdown) {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut stream = match client.watch(key, start) {
            Ok(stream) => stream,
            Err(e) => {
                failures += 1;
                next = Some(start);
                if retry(&e, failures, shutdown) {
                    return;
                }
                continue;
            }
        };
        next = Some(start);
        let mut created = false;
        let ended = loop {
            match stream.next_message() {
                Ok(Message::Created) => {
                    created = true;
                    if failures > 0 {
                        log::info!(
                            "etcd {}: watching {key:?} again from revision {start}",
                            stream.endpoint
                        );
                        failures = 0;
                        // The poller backs off while etcd fails: this ends its wait.
                        if !nudge(wake) {
                            return;
                        }
                    }
                }
                Ok(Message::Progress { revision, events }) => {
                    next = Some(revision + 1);
                    if events > 0 && !nudge(wake) {
                        return;
                    }
                }
                Ok(Message::Canceled {
                    compacted: Some(at),
                    ..
                }) => {
                    log::info!(
                        "etcd {}: watch of {key:?} cancelled (revision {start} compacted at {at}); reading it again",
                        stream.endpoint
                    );
                    next = None;
                    break None;
                }
                Ok(Message::Canceled { reason, .. }) => {
                    break Some(Error::Etcd {
                        url: stream.endpoint.clone(),
                        key: key.to_string(),
                        msg: format!("watch cancelled: {reason}"),
                    })
                }
                // Broken after it was in place: resume at once. Before: etcd is failing.
                Err(_) if shutdown.is_requested() => return,
                Err(e) if created => {
                    log::debug!("{e}; resuming from revision {}", next.unwrap_or(start));
                    break None;
                }
                Err(e) => break Some(e),
            }
        };
        if let Some(e) = ended {
            failures += 1;
            if retry(&e, failures, shutdown) {
                return;
            }
        }
    }
}

/// Wakes the poller; `false` when it is gone.
fn nudge(wake: &Sender<()>) -> bool {
    !matches!(
        wake.try_send(()),
        Err(crossbeam_channel::TrySendError::Disconnected(_))
    )
}

/// Logs the failure (the first, then every 10th) and waits before the next attempt; `true`
/// when the stop was requested meanwhile.
fn retry(e: &Error, failures: u32, shutdown: &Shutdown) -> bool {
    let wait = Duration::from_millis(250)
        .saturating_mul(1 << failures.min(8))
        .min(MAX_RETRY)
        .mul_f64(fastrand::f64() * 0.4 + 0.8);
    if failures == 1 || failures % 10 == 0 {
        log::warn!("{e}; watching again in {wait:.1?} (failure {failures})");
    }
    shutdown.sleep(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_as_etcd_34_sends_them() {
        assert_eq!(
            parse_message(
                r#"{"result":{"header":{"cluster_id":"1","revision":"4"},"created":true}}"#
            ),
            Ok(Message::Created)
        );
        // A put event has no type; two events in one message, the highest revision counts.
        let put = r#"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"aw==","mod_revision":"8","value":"dg=="}},{"type":"DELETE","kv":{"key":"aw==","mod_revision":"9"}}]}}"#;
        assert_eq!(
            parse_message(put),
            Ok(Message::Progress {
                revision: 9,
                events: 2
            })
        );
        // A progress notice: a header only.
        assert_eq!(
            parse_message(r#"{"result":{"header":{"revision":"15"}}}"#),
            Ok(Message::Progress {
                revision: 15,
                events: 0
            })
        );
        assert_eq!(
            parse_message(
                r#"{"result":{"header":{"revision":"20"},"canceled":true,"compact_revision":"17"}}"#
            ),
            Ok(Message::Canceled {
                compacted: Some(17),
                reason: String::new()
            })
        );
        let e = parse_message(r#"{"error":{"grpc_code":14,"message":"unavailable"}}"#).unwrap_err();
        assert!(e.contains("unavailable"), "{e}");
        assert!(parse_message("<html>").unwrap_err().starts_with("not JSON"));
    }
}
