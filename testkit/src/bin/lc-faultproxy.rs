//! `lc-faultproxy LISTEN UPSTREAM`: an HTTP proxy in front of an Elasticsearch-API server
//! that injects the faults osmem-server never produces, so every retry branch of the
//! transfer is tested against a real store.
//!
//! Faults are set with `PUT /_fault` (JSON, all fields optional, fractions 0..1):
//!   {"item_429": 0.2,      bulk items answered 429 (they are NOT forwarded, as with a real 429)
//!    "status_500": 0.1,    whole requests answered 500 without forwarding
//!    "slow": 0.1, "slow_ms": 2000,   requests delayed before forwarding
//!    "reset": 0.05,        connections closed without an answer (the request is not forwarded)
//!    "status_401": 3,      the next N requests answered 401
//!    "max_body": 20000,    requests with a larger (decompressed) body answered 413
//!    "garbage": 0.1,       bulk requests answered 200 with an HTML page (not forwarded)
//!    "truncated": 0.1,     bulk requests forwarded, and the answer cut off halfway (its
//!                          content-length promises the whole; the connection then closes)
//!    "record": "/dir",     each bulk body, as received, saved to /dir/NNNNNN.gz (or
//!                          .ndjson when not compressed), for `lc-bare load` to replay
//!    "seed": 1}
//! `GET /_fault` returns the settings and counts of what was injected. Everything else is
//! forwarded to UPSTREAM; with UPSTREAM `sink` nothing is: every bulk item is answered 201 at
//! once (the instant store of the processing benchmark), anything else `{}`.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logcollect::sync::lock;
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    item_429: f64,
    status_500: f64,
    slow: f64,
    slow_ms: u64,
    reset: f64,
    status_401: u64,
    max_body: usize,
    garbage: f64,
    truncated: f64,
    record: Option<std::path::PathBuf>,
    recorded: u64,
    rng: u64,
    counts: std::collections::BTreeMap<&'static str, u64>,
}

impl State {
    fn roll(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1_000_000) as f64 / 1_000_000.0 < p
    }

    fn count(&mut self, what: &'static str, n: u64) {
        *self.counts.entry(what).or_default() += n;
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = &args[..] else {
        eprintln!("usage: lc-faultproxy LISTEN UPSTREAM_URL");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("lc-faultproxy: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let state = Arc::new(Mutex::new(State {
        rng: 1,
        ..State::default()
    }));
    let upstream = Arc::new(upstream.trim_end_matches('/').to_string());
    eprintln!("lc-faultproxy: {listen} -> {upstream}");
    for stream in listener.incoming().flatten() {
        let (state, upstream) = (state.clone(), upstream.clone());
        std::thread::spawn(move || serve(stream, &state, &upstream));
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, upstream: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // One body buffer per connection, reused: a fresh one per request (and a copy of it)
    // took the instant store's pages from the kernel, zeroed, at every request.
    let mut buffer = Vec::new();
    while let Some(req) = read_request(&mut reader, std::mem::take(&mut buffer)) {
        let (status, body) = if req.path.starts_with("/_fault") {
            control(&req, state)
        } else {
            match proxy(&req, state, upstream, &agent) {
                Some(answer) => answer,
                None => return, // reset: close without answering
            }
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let is_bulk = req.path.contains("/_bulk");
        let cut = {
            let mut s = lock(state);
            let truncated = s.truncated;
            is_bulk && s.roll(truncated) && {
                s.count("truncated", 1);
                true
            }
        };
        let sent = if cut {
            &body[..body.len() / 2]
        } else {
            &body[..]
        };
        if writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(sent))
            .is_err()
            || cut
        {
            return;
        }
        buffer = req.body;
    }
}

/// The next request on the connection; its body read into `body` (emptied first).
fn read_request(reader: &mut BufReader<TcpStream>, mut body: Vec<u8>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    body.clear();
    body.reserve(len);
    // Into the buffer's spare room, without zeroing it first.
    let read = reader.take(len as u64).read_to_end(&mut body).ok()?;
    (read == len).then_some(())?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn control(req: &Request, state: &Mutex<State>) -> (u16, Vec<u8>) {
    let mut s = lock(state);
    if req.method == "PUT" {
        let Ok(v) = serde_json::from_slice::<Value>(&req.body) else {
            return (400, b"{\"error\":\"not JSON\"}".to_vec());
        };
        let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        s.item_429 = f("item_429");
        s.status_500 = f("status_500");
        s.slow = f("slow");
        s.slow_ms = f("slow_ms") as u64;
        s.reset = f("reset");
        s.status_401 = f("status_401") as u64;
        s.max_body = f("max_body") as usize;
        s.garbage = f("garbage");
        s.truncated = f("truncated");
        s.record = v
            .get("record")
            .and_then(Value::as_str)
            .map(std::path::PathBuf::from);
        s.rng = (f("seed") as u64).max(1);
    }
    let answer = json!({
        "item_429": s.item_429, "status_500": s.status_500, "slow": s.slow, "slow_ms": s.slow_ms,
        "reset": s.reset, "status_401": s.status_401, "max_body": s.max_body,
        "garbage": s.garbage, "truncated": s.truncated, "injected": s.counts,
    });
    (200, answer.to_string().into_bytes())
}

/// Forwards `req`, injecting faults; `None` means: drop the connection.
fn proxy(
    req: &Request,
    state: &Mutex<State>,
    upstream: &str,
    agent: &ureq::Agent,
) -> Option<(u16, Vec<u8>)> {
    let gz = header(req, "content-encoding") == Some("gzip");
    let body = if gz {
        // Sized by the gzip trailer's length of the input (mod 4 GiB): not grown step by step.
        let size = req.body.rchunks(4).next().and_then(|t| t.try_into().ok());
        let size = size.map_or(0, |t| u32::from_le_bytes(t).min(1 << 30) as usize);
        let mut out = Vec::with_capacity(size);
        flate2::read::GzDecoder::new(&req.body[..])
            .read_to_end(&mut out)
            .ok()?;
        Cow::Owned(out)
    } else {
        Cow::Borrowed(&req.body[..])
    };
    let is_bulk = req.path.starts_with("/_bulk") || req.path.contains("/_bulk");
    let (slow_ms, drop_items) = {
        let mut s = lock(state);
        if let Some(dir) = s.record.clone().filter(|_| is_bulk) {
            let name = format!("{:06}.{}", s.recorded, if gz { "gz" } else { "ndjson" });
            s.recorded += 1;
            if let Err(e) = std::fs::write(dir.join(&name), &req.body) {
                eprintln!(
                    "lc-faultproxy: cannot record {name} in {}: {e}",
                    dir.display()
                );
            }
        }
        if s.status_401 > 0 {
            s.status_401 -= 1;
            s.count("status_401", 1);
            return Some((401, b"{\"error\":{\"type\":\"security_exception\",\"reason\":\"injected\"},\"status\":401}".to_vec()));
        }
        if is_bulk && s.max_body > 0 && body.len() > s.max_body {
            s.count("status_413", 1);
            return Some((
                413,
                b"{\"error\":\"request entity too large (injected)\"}".to_vec(),
            ));
        }
        let garbage = s.garbage;
        if is_bulk && s.roll(garbage) {
            s.count("garbage", 1);
            return Some((
                200,
                b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            ));
        }
        let reset = s.reset;
        if is_bulk && s.roll(reset) {
            s.count("reset", 1);
            return None;
        }
        let status_500 = s.status_500;
        if is_bulk && s.roll(status_500) {
            s.count("status_500", 1);
            return Some((
                500,
                b"{\"error\":{\"type\":\"injected\",\"reason\":\"injected 500\"},\"status\":500}"
                    .to_vec(),
            ));
        }
        let slow = s.slow;
        let slow_ms = if s.roll(slow) {
            s.count("slow", 1);
            s.slow_ms
        } else {
            0
        };
        let p = s.item_429;
        let pairs = if is_bulk && p > 0.0 {
            lines(&body).count() / 2
        } else {
            0
        };
        let drop: Vec<bool> = (0..pairs).map(|_| s.roll(p)).collect();
        s.count("item_429", drop.iter().filter(|d| **d).count() as u64);
        (slow_ms, drop)
    };
    if slow_ms > 0 {
        std::thread::sleep(Duration::from_millis(slow_ms));
    }
    if drop_items.iter().any(|d| *d) {
        return Some(bulk_with_429s(req, &body, &drop_items, upstream, agent));
    }
    forward(req, &body, upstream, agent)
}

fn forward(
    req: &Request,
    body: &[u8],
    upstream: &str,
    agent: &ureq::Agent,
) -> Option<(u16, Vec<u8>)> {
    if upstream == "sink" {
        return Some(sink(req, body));
    }
    let url = format!("{upstream}{}", req.path);
    let content_type = header(req, "content-type").unwrap_or("application/json");
    let result = match req.method.as_str() {
        "GET" => agent.get(&url).call(),
        "DELETE" => agent.delete(&url).call(),
        "PUT" => agent
            .put(&url)
            .header("content-type", content_type)
            .send(body),
        _ => agent
            .post(&url)
            .header("content-type", content_type)
            .send(body),
    };
    let mut resp = result.ok()?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .ok()?;
    Some((status, text))
}

/// The instant store: every bulk item indexed, without looking at it. It must cost as little
/// as it can, since it shares the machine with the transfer it measures: an action's
/// operation is the key its line starts with, and the answer is one item repeated.
fn sink(req: &Request, body: &[u8]) -> (u16, Vec<u8>) {
    if !req.path.contains("_bulk") {
        return (200, b"{}".to_vec());
    }
    let mut answer = br#"{"errors":false,"items":["#.to_vec();
    for (i, action) in lines(body).step_by(2).enumerate() {
        let op = action
            .strip_prefix(b"{\"")
            .and_then(|rest| rest.split(|b| *b == b'"').next())
            .unwrap_or(b"index");
        if i > 0 {
            answer.push(b',');
        }
        answer.extend_from_slice(b"{\"");
        answer.extend_from_slice(op);
        answer.extend_from_slice(br#"":{"status":201}}"#);
    }
    answer.extend_from_slice(b"]}");
    (200, answer)
}

/// The lines of a `_bulk` body but empty ones, found by memchr: split byte by byte, they
/// were most of the instant store's time, which it takes from the transfer it measures.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .chain([body.len()])
        .map(move |end| {
            let line = &body[start..end];
            start = end + 1;
            line
        })
        .filter(|l| !l.is_empty())
}

/// Forwards the items not dropped, and answers 429 for the dropped ones, in order.
fn bulk_with_429s(
    req: &Request,
    body: &[u8],
    drop: &[bool],
    upstream: &str,
    agent: &ureq::Agent,
) -> (u16, Vec<u8>) {
    let lines: Vec<&[u8]> = lines(body).collect();
    let mut kept = Vec::new();
    let mut fake = Vec::new();
    for (i, pair) in lines.chunks(2).enumerate() {
        if drop.get(i).copied().unwrap_or(false) {
            let action: Value = serde_json::from_slice(pair[0]).unwrap_or(Value::Null);
            let (op, meta) = action
                .as_object()
                .and_then(|o| o.iter().next())
                .map_or(("create".to_string(), Value::Null), |(k, v)| {
                    (k.clone(), v.clone())
                });
            fake.push((i, json!({ op: {
                "_index": meta["_index"], "_id": meta["_id"], "status": 429,
                "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution (injected by lc-faultproxy)"}
            }})));
        } else {
            for l in pair {
                kept.extend_from_slice(l);
                kept.push(b'\n');
            }
        }
    }
    let mut upstream_items = Vec::new();
    if !kept.is_empty() {
        let Some((status, text)) = forward(req, &kept, upstream, agent) else {
            return (502, b"{\"error\":\"upstream unreachable\"}".to_vec());
        };
        if status != 200 {
            return (status, text);
        }
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        upstream_items = v["items"].as_array().cloned().unwrap_or_default();
    }
    let mut upstream_items = upstream_items.into_iter();
    let mut fake = fake.into_iter().peekable();
    let mut items = Vec::new();
    for i in 0..drop.len() {
        if fake.peek().is_some_and(|(j, _)| *j == i) {
            items.push(fake.next().map(|(_, v)| v).unwrap_or(Value::Null));
        } else {
            items.push(upstream_items.next().unwrap_or(Value::Null));
        }
    }
    (
        200,
        json!({ "took": 1, "errors": true, "items": items })
            .to_string()
            .into_bytes(),
    )
}
