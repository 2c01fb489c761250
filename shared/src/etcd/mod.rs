//! A synchronous client for etcd's v3 JSON gateway: keys (`/v3/kv/range`, `put`,
//! `deleterange`, compare-and-swap with `txn`), leases (`/v3/lease/grant`, `keepalive`,
//! `revoke`), watches ([`watch`]) and authentication; and the [`Poller`] of the daemons'
//! configuration keys, woken by watches and kept as a slow safety net.
//!
//! Keys and values travel base64-encoded; 64-bit numbers come back as JSON strings.
//! With several endpoints, a failing one is left for the next, and the client stays on the
//! one that answered. With credentials, the client authenticates, sends the token in
//! `Authorization`, and authenticates again when etcd says the token expired.
//! `../shared/notes/etcd-gateway.md` has the gateway's measured behaviour this relies on.

mod poller;
pub mod watch;

pub use poller::{KeyChange, Poller};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::settings::EtcdSettings;
use crate::sync::lock;
use crate::tls::TlsFiles;
use crate::{Error, Result};

/// The largest answer read from etcd: values travel in base64, so a value of 7.5 MiB. A
/// collect configuration of that size would name tens of thousands of entries.
const MAX_ANSWER_BYTES: u64 = 10 << 20;

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
    /// For watch streams: no overall time limit, only on connecting and on the body's life.
    stream_agent: ureq::Agent,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
    /// The TLS settings, to name the one to change when a certificate is refused.
    tls: TlsFiles,
}

impl EtcdClient {
    /// A client for the endpoints and credentials of `[etcd]`.
    pub fn new(settings: &EtcdSettings) -> EtcdClient {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .tls_config(settings.tls.config())
            .build();
        let stream = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_recv_response(Some(Duration::from_secs(5)))
            .timeout_recv_body(Some(watch::STREAM_LIFETIME))
            .http_status_as_error(false)
            .tls_config(settings.tls.config())
            .build();
        EtcdClient {
            endpoints: settings.endpoints.clone(),
            current: AtomicUsize::new(0),
            agent: config.into(),
            stream_agent: stream.into(),
            credentials: settings.username.clone().zip(settings.password.clone()),
            token: Mutex::new(None),
            tls: settings.tls.clone(),
        }
    }

    /// The endpoint requests go to first.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// Reads `key`; `None` if it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.get_at(key)?.0)
    }

    /// Reads `key`, and the store's revision at the time of the read (what a watch of the key
    /// starts after).
    pub fn get_at(&self, key: &str) -> Result<(Option<KeyValue>, i64)> {
        let answer = self.call("/v3/kv/range", json!({ "key": B64.encode(key) }), key)?;
        let mut kvs = self.kvs(&answer, key)?;
        Ok((kvs.pop(), revision(&answer)))
    }

    /// Every key that starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let body =
            json!({ "key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)) });
        let answer = self.call("/v3/kv/range", body, prefix)?;
        self.kvs(&answer, prefix)
    }

    /// The key-values of a range answer (`kvs`, left out when empty).
    fn kvs(&self, answer: &Value, key: &str) -> Result<Vec<KeyValue>> {
        let kvs = answer.get("kvs").and_then(Value::as_array);
        kvs.into_iter()
            .flatten()
            .map(|kv| {
                parse_kv(kv).map_err(|what| Error::Etcd {
                    url: self.endpoint().to_string(),
                    key: key.to_string(),
                    msg: format!("unexpected answer: {what} in {kv}"),
                })
            })
            .collect()
    }

    /// Writes `value` under `key`; returns the new revision of the store.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<i64> {
        let answer = self.call("/v3/kv/put", put_request(key, value, None), key)?;
        Ok(revision(&answer))
    }

    /// Writes `value` under `key` only if nobody wrote the key since `mod_revision` (0: only
    /// if it does not exist): compare-and-swap, so two writers cannot overwrite each other.
    pub fn put_if(&self, key: &str, value: &[u8], mod_revision: i64) -> Result<Swap> {
        let body = json!({
            "compare": [{ "key": B64.encode(key), "target": "MOD", "mod_revision": mod_revision.to_string() }],
            "success": [{ "request_put": put_request(key, value, None) }],
            "failure": [{ "request_range": { "key": B64.encode(key) } }],
        });
        let answer = self.call("/v3/kv/txn", body, key)?;
        if answer.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(Swap::Done(revision(&answer)));
        }
        let range = answer
            .pointer("/responses/0/response_range")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Swap::Conflict(self.kvs(&range, key)?.pop()))
    }

    /// Writes every `(key, value, lease)` in one transaction; returns the new revision.
    pub fn put_all(&self, puts: &[(&str, &[u8], Option<i64>)]) -> Result<i64> {
        let success: Vec<Value> = puts
            .iter()
            .map(|(k, v, lease)| json!({ "request_put": put_request(k, v, *lease) }))
            .collect();
        let first = puts.first().map_or("", |p| p.0);
        let answer = self.call("/v3/kv/txn", json!({ "success": success }), first)?;
        Ok(revision(&answer))
    }

    /// A new lease of `ttl` seconds; returns its id.
    pub fn grant(&self, ttl: Duration) -> Result<i64> {
        let answer = self.call("/v3/lease/grant", json!({ "TTL": ttl.as_secs() }), "")?;
        answer
            .get("ID")
            .and_then(as_i64)
            .ok_or_else(|| Error::Etcd {
                url: self.endpoint().to_string(),
                key: String::new(),
                msg: format!("lease grant answered without an ID: {answer}"),
            })
    }

    /// Refreshes lease `id`; `false` when it is gone (expired or revoked: grant a new one).
    pub fn keep_alive(&self, id: i64) -> Result<bool> {
        let answer = self.call("/v3/lease/keepalive", json!({ "ID": id.to_string() }), "")?;
        // A lease that is gone comes back without TTL (zero values are left out).
        Ok(answer
            .pointer("/result/TTL")
            .and_then(as_i64)
            .is_some_and(|ttl| ttl > 0))
    }

    /// Revokes lease `id`: every key attached to it is deleted at once.
    pub fn revoke(&self, id: i64) -> Result<()> {
        self.call("/v3/lease/revoke", json!({ "ID": id.to_string() }), "")
            .map(drop)
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let answer = self.call("/v3/kv/deleterange", json!({ "key": B64.encode(key) }), key)?;
        Ok(answer.get("deleted").and_then(as_i64).unwrap_or(0) > 0)
    }

    /// Sends `body` to `path`, starting at the current endpoint and failing over to the others.
    fn call(&self, path: &str, body: Value, key: &str) -> Result<Value> {
        self.failover(key, |base| self.call_at(base, path, &body, key))
    }

    /// Runs `attempt` on the current endpoint, then on the others until one succeeds; the one
    /// that succeeded becomes current.
    fn failover<T>(&self, key: &str, attempt: impl Fn(&str) -> Result<T>) -> Result<T> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let idx = (first + i) % n;
            match attempt(&self.endpoints[idx]) {
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
        Err(last_err.unwrap_or_else(|| Error::Etcd {
            url: String::new(),
            key: key.to_string(),
            msg: "no endpoints configured".into(),
        }))
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
            Err(e) => return Ok(Err(fail(self.tls.describe(&e)))),
        };
        let status = response.status().as_u16();
        let text = match response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
        {
            Ok(t) => t,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Ok(Err(fail(format!(
                    "the answer is larger than {} MiB (a value of {:.1} MiB or more, in base64): too large for a configuration",
                    MAX_ANSWER_BYTES >> 20,
                    MAX_ANSWER_BYTES as f64 * 0.75 / f64::from(1 << 20)
                ))))
            }
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

/// What [`EtcdClient::put_if`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// Written; the store's new revision.
    Done(i64),
    /// Someone wrote the key since: what it holds now (`None`: deleted).
    Conflict(Option<KeyValue>),
}

/// The body of a put of `value` under `key`, attached to `lease` if given.
fn put_request(key: &str, value: &[u8], lease: Option<i64>) -> Value {
    let mut put = json!({ "key": B64.encode(key), "value": B64.encode(value) });
    if let Some(lease) = lease {
        put["lease"] = json!(lease.to_string());
    }
    put
}

/// The `range_end` of a prefix: the prefix with its last byte incremented (etcd's rule).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An empty prefix (or all 0xff): "\0" means every key.
    vec![0]
}

/// One key-value of a range answer or a watch event.
fn parse_kv(kv: &Value) -> std::result::Result<KeyValue, &'static str> {
    let key = kv
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| B64.decode(k).ok())
        .ok_or("key missing or not base64")?;
    let value = match kv.get("value").and_then(Value::as_str) {
        // etcd leaves out empty values.
        None => Vec::new(),
        Some(v) => B64.decode(v).map_err(|_| "value is not base64")?,
    };
    let mod_revision = kv
        .get("mod_revision")
        .and_then(as_i64)
        .ok_or("no mod_revision")?;
    Ok(KeyValue {
        key: String::from_utf8_lossy(&key).into_owned(),
        value,
        mod_revision,
    })
}

/// The store's revision in an answer's header (0 if absent).
fn revision(answer: &Value) -> i64 {
    answer
        .pointer("/header/revision")
        .and_then(as_i64)
        .unwrap_or(0)
}

/// The gateway encodes 64-bit integers as strings.
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("logcollect/status/"), b"logcollect/status0");
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80");
        assert_eq!(prefix_end(""), b"\0");
    }

    #[test]
    fn kv_of_the_gateway() {
        // As etcd 3.4 answers: numbers as strings, an empty value left out.
        let kv = json!({"key": B64.encode("k"), "mod_revision": "12", "version": "1"});
        assert_eq!(
            parse_kv(&kv),
            Ok(KeyValue {
                key: "k".into(),
                value: vec![],
                mod_revision: 12
            })
        );
        assert_eq!(
            parse_kv(&json!({"key": B64.encode("k")})),
            Err("no mod_revision")
        );
    }

    #[test]
    fn lease_put() {
        assert_eq!(
            put_request("k", b"v", Some(7)),
            json!({"key": "aw==", "value": "dg==", "lease": "7"})
        );
    }
}
