//! A synchronous client for etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/put`,
//! `/v3/kv/deleterange`, `/v3/auth/authenticate`), and a [`Poller`] that reports changes.
//!
//! Keys and values travel base64-encoded; 64-bit numbers come back as JSON strings.
//! With several endpoints, a failing one is left for the next, and the client stays on the
//! one that answered. With credentials, the client authenticates, sends the token in
//! `Authorization`, and authenticates again when etcd says the token expired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use crossbeam_channel::Sender;
use serde_json::{json, Value};

use crate::settings::EtcdSettings;
use crate::shutdown::Shutdown;
use crate::sync::lock;
use crate::{Error, Result};

/// One key as read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The raw value.
    pub value: Vec<u8>,
    /// Revision of the last change of this key; changes on every put, even of the same value.
    pub mod_revision: i64,
}

/// etcd v3 JSON-gateway client. Shareable between threads.
pub struct EtcdClient {
    endpoints: Vec<String>,
    /// Index of the endpoint that answered last; requests start there.
    current: AtomicUsize,
    agent: ureq::Agent,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

impl EtcdClient {
    /// A client for the endpoints and credentials of `[etcd]`.
    pub fn new(settings: &EtcdSettings) -> EtcdClient {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build();
        EtcdClient {
            endpoints: settings.endpoints.clone(),
            current: AtomicUsize::new(0),
            agent: config.into(),
            credentials: settings.username.clone().zip(settings.password.clone()),
            token: Mutex::new(None),
        }
    }

    /// The endpoint requests go to first.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// Reads `key`; `None` if it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let answer = self.call("/v3/kv/range", json!({ "key": B64.encode(key) }), key)?;
        let Some(kv) = answer
            .get("kvs")
            .and_then(Value::as_array)
            .and_then(|kvs| kvs.first())
        else {
            return Ok(None);
        };
        let bad = |what: &str| Error::Etcd {
            url: self.endpoint().to_string(),
            key: key.to_string(),
            msg: format!("unexpected answer: {what} in {kv}"),
        };
        let value = match kv.get("value").and_then(Value::as_str) {
            // etcd leaves out empty values.
            None => Vec::new(),
            Some(v) => B64.decode(v).map_err(|_| bad("value is not base64"))?,
        };
        let mod_revision = kv
            .get("mod_revision")
            .and_then(as_i64)
            .ok_or_else(|| bad("no mod_revision"))?;
        Ok(Some(KeyValue {
            key: key.to_string(),
            value,
            mod_revision,
        }))
    }

    /// Writes `value` under `key`; returns the new revision of the store.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<i64> {
        let body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
        let answer = self.call("/v3/kv/put", body, key)?;
        Ok(answer
            .pointer("/header/revision")
            .and_then(as_i64)
            .unwrap_or(0))
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let answer = self.call("/v3/kv/deleterange", json!({ "key": B64.encode(key) }), key)?;
        Ok(answer.get("deleted").and_then(as_i64).unwrap_or(0) > 0)
    }

    /// Sends `body` to `path`, starting at the current endpoint and failing over to the others.
    fn call(&self, path: &str, body: Value, key: &str) -> Result<Value> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let idx = (first + i) % n;
            match self.call_at(&self.endpoints[idx], path, &body, key) {
                Ok(answer) => {
                    if idx != first % n {
                        log::warn!(
                            "etcd: now using {} ({} failed)",
                            self.endpoints[idx],
                            self.endpoints[first % n]
                        );
                        self.current.store(idx, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Err(e) => {
                    if n > 1 {
                        log::debug!("{e}; trying the next endpoint");
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one endpoint is configured"))
    }

    fn call_at(&self, base: &str, path: &str, body: &Value, key: &str) -> Result<Value> {
        match self.post(base, path, body, key, true) {
            // Tokens expire (simple tokens after 5 minutes idle): authenticate again, once.
            Err(AuthExpired) if self.credentials.is_some() => {
                self.set_token(None);
                self.post(base, path, body, key, true)
                    .map_err(|AuthExpired| Error::Etcd {
                        url: base.to_string(),
                        key: key.to_string(),
                        msg: "authentication token rejected right after authenticating".into(),
                    })?
            }
            Err(AuthExpired) => Err(Error::Etcd {
                url: base.to_string(),
                key: key.to_string(),
                msg: "etcd requires authentication: set [etcd] username and password".into(),
            }),
            Ok(result) => result,
        }
    }

    /// One request. The outer error says the token must be renewed.
    fn post(
        &self,
        base: &str,
        path: &str,
        body: &Value,
        key: &str,
        with_token: bool,
    ) -> std::result::Result<Result<Value>, AuthExpired> {
        let url = format!("{base}{path}");
        let fail = |msg: String| Error::Etcd {
            url: base.to_string(),
            key: key.to_string(),
            msg,
        };
        let token = if with_token && self.credentials.is_some() {
            match self.authenticate(base) {
                Ok(t) => Some(t),
                Err(e) => return Ok(Err(e)),
            }
        } else {
            None
        };
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(t) = &token {
            request = request.header("Authorization", t);
        }
        let mut response = match request.send(body.to_string()) {
            Ok(r) => r,
            Err(e) => return Ok(Err(fail(e.to_string()))),
        };
        let status = response.status().as_u16();
        let text = match response.body_mut().read_to_string() {
            Ok(t) => t,
            Err(e) => return Ok(Err(fail(format!("reading answer: {e}")))),
        };
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = answer
            .get("message")
            .or_else(|| answer.get("error"))
            .and_then(Value::as_str)
            .unwrap_or(text.trim());
        if status == 401
            || message.contains("invalid auth token")
            || message.contains("user name is empty")
        {
            return Err(AuthExpired);
        }
        if status != 200 {
            return Ok(Err(fail(format!("HTTP {status}: {message}"))));
        }
        if answer.is_null() {
            return Ok(Err(fail(format!("answer is not JSON: {text:.200}"))));
        }
        Ok(Ok(answer))
    }

    /// The cached token, or a new one from `/v3/auth/authenticate` at `base`.
    fn authenticate(&self, base: &str) -> Result<String> {
        if let Some(t) = lock(&self.token).clone() {
            return Ok(t);
        }
        let Some((name, password)) = &self.credentials else {
            unreachable!("authenticate is only called with credentials");
        };
        let body = json!({ "name": name, "password": password });
        let answer = match self.post(base, "/v3/auth/authenticate", &body, "", false) {
            Ok(result) => result?,
            Err(AuthExpired) => {
                return Err(Error::Etcd {
                    url: base.to_string(),
                    key: String::new(),
                    msg: format!("authentication as {name:?} failed"),
                })
            }
        };
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Etcd {
                url: base.to_string(),
                key: String::new(),
                msg: "authentication answer has no token".into(),
            })?
            .to_string();
        self.set_token(Some(token.clone()));
        Ok(token)
    }

    fn set_token(&self, token: Option<String>) {
        *lock(&self.token) = token;
    }
}

/// etcd rejected the token (expired, or none was sent).
struct AuthExpired;

/// The gateway encodes 64-bit integers as strings.
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

/// A change of one polled key: its new value, or `None` when it does not exist (any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key that changed.
    pub key: String,
    /// Its value now.
    pub value: Option<KeyValue>,
}

/// Polls a few keys and reports only what changed since the last poll (by `mod_revision`).
pub struct Poller {
    client: std::sync::Arc<EtcdClient>,
    keys: Vec<String>,
    /// Last `mod_revision` seen per key (`None`: known absent). A key not in the map was never read.
    seen: HashMap<String, Option<i64>>,
}

/// Longest wait between polls while etcd fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Poller {
    /// A poller of `keys`. The first poll reports every key, present or not.
    pub fn new(client: std::sync::Arc<EtcdClient>, keys: Vec<String>) -> Poller {
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

    /// Polls every `interval` and sends each change to `tx`, until `shutdown` or until the
    /// receiver is gone. While etcd fails, it logs, backs off (doubling up to 30 s) and keeps
    /// the last state.
    pub fn run(mut self, interval: Duration, tx: Sender<KeyChange>, shutdown: &Shutdown) {
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
                    interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = interval
                        .saturating_mul(1 << failures.min(16))
                        .min(MAX_BACKOFF)
                        .max(interval);
                    // First failure, then every 10th, so an outage does not flood the log.
                    if failures == 1 || failures % 10 == 0 {
                        log::warn!("{e}; keeping the last configuration, retrying in {wait:?} (failure {failures})");
                    }
                    wait
                }
            };
            if shutdown.sleep(wait) {
                return;
            }
        }
    }
}
