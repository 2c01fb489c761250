//! The Elasticsearch client: `_bulk` requests and the index template.
//!
//! Several `url_address` entries are used round-robin; one that fails (connection, timeout,
//! 5xx) is skipped for [`NODE_BACKOFF`]. Each bulk item is classified by its HTTP status:
//! 2xx is done, 409 (the document exists: a re-delivery) is done and counted apart, 429 and
//! 5xx are retried, other statuses (mapping errors) are rejected to the dead-letter topic.
//! Credentials go in the `Authorization` header and never into a message.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logcollect::collect::EsConfig;
use logcollect::store::StoreSettings;
use logcollect::sync::lock;
use logcollect::tls::TlsFiles;
use logcollect::Error;
use serde::Deserialize;
use serde_json::Value;

use crate::gzip::Gzip;
use crate::metrics::Metrics;

/// How long a node that failed is skipped.
pub const NODE_BACKOFF: Duration = Duration::from_secs(5);
/// Longest a bulk request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of one bulk item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Indexed.
    Done,
    /// Already there under its id (409): a re-delivery, not written again.
    Existed,
    /// Try again later (429, 5xx).
    Retry(String),
    /// Never indexable as it is (mapping error): to the dead-letter topic.
    Reject(String),
}

/// Why a whole request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try the whole request again later. Failures of one `kind` are said once per outage
    /// (see [`logcollect::outage::Outage`]); `reason` says what happened.
    Retry {
        /// "no answer", "unreadable answer" or "HTTP 503".
        kind: String,
        /// The node and what it answered, in words.
        reason: String,
    },
    /// 413: the request is too large; split it.
    TooLarge,
}

/// Where batches go: the Elasticsearch client, or a scripted store in the batch thread's
/// unit tests.
pub trait Store: Send + 'static {
    /// Sends `ndjson` (action and document lines of `items` documents) to `_bulk`; each
    /// document's outcome.
    fn bulk(
        &mut self,
        es: &EsConfig,
        ndjson: &[u8],
        gzip: bool,
        items: usize,
    ) -> Result<Vec<Outcome>, Failure>;

    /// Installs (or replaces) the index template `name`, `body`.
    fn put_template(&mut self, es: &EsConfig, name: &str, body: &Value) -> Result<(), Error>;
}

/// A synchronous Elasticsearch client. Its clones share their connections and what they
/// know of the nodes, so the bulk workers skip a dead node together.
#[derive(Clone)]
pub struct EsClient {
    agent: ureq::Agent,
    /// The TLS settings, to name the one to change when a certificate is refused.
    tls: TlsFiles,
    nodes: Arc<Mutex<Nodes>>,
    /// Compresses the bodies, its compressor and buffer kept for the next (each bulk worker
    /// has a client of its own).
    gzip: Gzip,
    /// The last answer's text, its buffer kept for the next: grown anew for every answer,
    /// it came from fresh pages (the kernel zeroing them) as the gzip tables did.
    answer: String,
    /// Where the bytes it sends are counted.
    metrics: Arc<Metrics>,
}

/// Round-robin over the nodes, and the ones to skip.
#[derive(Default)]
struct Nodes {
    next: usize,
    /// Nodes skipped until the given time.
    down: HashMap<String, Instant>,
}

impl EsClient {
    /// A client that connects as `settings` say (TLS, client certificate) and counts the
    /// bytes it sends on `metrics`.
    pub fn new(settings: &StoreSettings, metrics: Arc<Metrics>) -> EsClient {
        EsClient {
            agent: settings.agent(Some(Duration::from_secs(5)), REQUEST_TIMEOUT),
            tls: settings.tls.clone(),
            nodes: Arc::default(),
            gzip: Gzip::default(),
            answer: String::new(),
            metrics,
        }
    }

    /// The next node to use: round-robin over those not skipped; if all are skipped, the
    /// one that comes back first.
    fn pick<'a>(&self, es: &'a EsConfig) -> &'a str {
        let now = Instant::now();
        let n = es.urls.len();
        let mut nodes = lock(&self.nodes);
        for i in 0..n {
            let url = &es.urls[(nodes.next + i) % n];
            if nodes.down.get(url).is_none_or(|until| *until <= now) {
                nodes.next = (nodes.next + i + 1) % n;
                return url;
            }
        }
        es.urls
            .iter()
            .min_by_key(|u| nodes.down.get(*u).copied())
            .map_or("", String::as_str)
    }

    /// What went wrong with a request to `node`. Under TLS 1.3 a server that refuses our
    /// client certificate says so after the handshake, so a request with a body fails with a
    /// broken pipe while writing it: a bare GET then reads the server's alert. (Not after a
    /// timeout or a refused connection: the GET would only wait the same way.)
    fn diagnose(&self, node: &str, error: &ureq::Error) -> String {
        if let Some(refused) = self.tls.refused(error) {
            return refused;
        }
        let text = error.to_string();
        let cut_off = text.contains("Broken pipe") || text.contains("Connection reset");
        if node.starts_with("https://") && cut_off {
            if let Err(probe) = self.agent.get(node).call() {
                if let Some(refused) = self.tls.refused(&probe) {
                    return refused;
                }
            }
        }
        text
    }

    /// Skips `node` for a while; said when there are `others` to take its requests (each
    /// node is tried again at most once per [`NODE_BACKOFF`], so this is said as seldom).
    fn mark_down(&self, node: &str, others: bool) {
        lock(&self.nodes)
            .down
            .insert(node.to_string(), Instant::now() + NODE_BACKOFF);
        if others {
            log::info!("{node}: failed; the other nodes take its requests for {NODE_BACKOFF:?}");
        }
    }

    /// Sends one request; returns status and the node used, the answer's text in
    /// `self.answer`. A transport error (no answer) marks the node down.
    fn send(
        &mut self,
        es: &EsConfig,
        method: &str,
        path: &str,
        body: &[u8],
        gzip: bool,
        content_type: &str,
    ) -> Result<(u16, String), Error> {
        let base = self.pick(es).to_string();
        let url = format!("{base}{path}");
        let failed = |msg: String| Error::Http {
            url: url.clone(),
            msg,
        };
        let mut request = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        }
        .header("Content-Type", content_type);
        if let Some(auth) = es.authorization() {
            request = request.header("Authorization", &auth);
        }
        let body = if gzip {
            request = request.header("Content-Encoding", "gzip");
            self.gzip
                .compress(body)
                .map_err(|e| failed(format!("cannot gzip: {e}")))?
        } else {
            body
        };
        self.metrics
            .store_sent_bytes
            .fetch_add(body.len() as u64, Relaxed);
        self.answer.clear();
        let answer = request.send(body).and_then(|mut r| {
            let mut reader = r.body_mut().with_config().limit(256 * 1024 * 1024).reader();
            // An I/O error of the reader is ureq's error inside.
            reader.read_to_string(&mut self.answer)?;
            Ok(r.status().as_u16())
        });
        match answer {
            Ok(status) => {
                if status >= 500 {
                    self.mark_down(&base, es.urls.len() > 1);
                }
                Ok((status, base))
            }
            Err(e) => {
                self.mark_down(&base, es.urls.len() > 1);
                Err(failed(self.diagnose(&base, &e)))
            }
        }
    }
}

impl Store for EsClient {
    fn bulk(
        &mut self,
        es: &EsConfig,
        ndjson: &[u8],
        gzip: bool,
        items: usize,
    ) -> Result<Vec<Outcome>, Failure> {
        let (status, node) = self
            .send(es, "POST", "/_bulk", ndjson, gzip, "application/x-ndjson")
            .map_err(|e| Failure::Retry {
                kind: "no answer".into(),
                reason: e.to_string(),
            })?;
        let text = &self.answer;
        match status {
            200 => parse_items(text, items).map_err(|e| Failure::Retry {
                kind: "unreadable answer".into(),
                reason: format!("{node}/_bulk: {e}"),
            }),
            413 => Err(Failure::TooLarge),
            _ => Err(Failure::Retry {
                kind: format!("HTTP {status}"),
                reason: format!("{node}/_bulk: {}", failed(status, text)),
            }),
        }
    }

    fn put_template(&mut self, es: &EsConfig, name: &str, body: &Value) -> Result<(), Error> {
        let path = format!("/_index_template/{name}");
        let (status, node) = self.send(
            es,
            "PUT",
            &path,
            body.to_string().as_bytes(),
            false,
            "application/json",
        )?;
        if status == 200 {
            Ok(())
        } else {
            Err(Error::Http {
                url: format!("{node}{path}"),
                msg: failed(status, &self.answer),
            })
        }
    }
}

/// Why Elasticsearch refused the credentials, from its answer: the reason, and which
/// credentials failed and how (`API key: unable to find apikey with id ...` on 8.x).
/// What an answer with an error status says: for 401 and 403 the store's reason and the
/// setting to check, for the rest the start of the body.
fn failed(status: u16, text: &str) -> String {
    match status {
        401 | 403 => format!(
            "authentication failed (HTTP {status}{}): check api_key or username/password in elasticsearch_config",
            refusal(text).map(|r| format!(": {r}")).unwrap_or_default()
        ),
        _ => format!("HTTP {status}: {}", snippet(text)),
    }
}

fn refusal(text: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(text).ok()?;
    let error = answer.get("error")?;
    let parts: Vec<&str> = ["reason", "additional_unsuccessful_credentials"]
        .iter()
        .filter_map(|k| error.get(*k).and_then(Value::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn snippet(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Classifies each item of a `_bulk` answer.
pub fn parse_items(text: &str, expected: usize) -> Result<Vec<Outcome>, String> {
    // Read into types that keep only the status and error of each item: a `Value` tree of the
    // whole answer took a fifth of a bulk worker's time.
    let answer: Answer =
        serde_json::from_str(text).map_err(|e| format!("answer is not JSON: {e}"))?;
    let (count, items) = match answer.items.ok_or("answer has no items")? {
        Items::Read(items) => (items.len(), Some(items)),
        Items::AllDone(count) => (count, None),
    };
    if count != expected {
        return Err(format!("answer has {count} items for {expected} documents"));
    }
    let Some(items) = items else {
        return Ok((0..count).map(|_| Outcome::Done).collect());
    };
    Ok(items
        .into_iter()
        .map(|Item(result)| {
            let result = result.unwrap_or_default();
            let status = result.status;
            let reason = || {
                let e = result.error.unwrap_or_default();
                format!(
                    "HTTP {status}: {}: {}",
                    e["type"].as_str().unwrap_or("error"),
                    e["reason"].as_str().unwrap_or("")
                )
            };
            match status {
                200..=299 => Outcome::Done,
                409 => Outcome::Existed,
                429 | 500..=599 | 0 => Outcome::Retry(reason()),
                _ => Outcome::Reject(reason()),
            }
        })
        .collect())
}

/// A `_bulk` answer, as far as the transfer reads it.
struct Answer {
    items: Option<Items>,
}

/// The items of a `_bulk` answer.
enum Items {
    /// Each item's status and error.
    Read(Vec<Item>),
    /// `"errors": false` came first (Elasticsearch and OpenSearch write it before the items):
    /// every item succeeded, so they were only counted. Reading each item's status took about
    /// 4% of the transfer's samples over 4 partitions.
    AllDone(usize),
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Answer, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Answer;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a _bulk answer")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Answer, A::Error> {
                let mut errors = None;
                let mut items = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*key {
                        "errors" => errors = map.next_value::<Value>()?.as_bool(),
                        "items" if errors == Some(false) => {
                            // Elements of no size: counted, not kept.
                            let all = map.next_value::<Vec<serde::de::IgnoredAny>>()?;
                            items = Some(Items::AllDone(all.len()))
                        }
                        "items" => items = Some(Items::Read(map.next_value()?)),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Answer { items })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// One item of a `_bulk` answer: `{"create": {...}}`, whatever the action's name; `None` if
/// the object is empty.
struct Item(Option<ItemResult>);

/// What an item says of its document.
#[derive(Deserialize, Default)]
struct ItemResult {
    #[serde(default)]
    status: u64,
    /// Only there for a failed item: kept as it came, whatever its shape.
    #[serde(default)]
    error: Option<Value>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        struct FirstValue;
        impl<'de> serde::de::Visitor<'de> for FirstValue {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object with one action")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let first = map
                    .next_entry::<serde::de::IgnoredAny, ItemResult>()?
                    .map(|(_, result)| result);
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Item(first))
            }
        }
        d.deserialize_map(FirstValue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why() {
        // Elasticsearch 8's 401 for an unknown API key (tests/recorded/elasticsearch-8.json).
        let es8 = r#"{"error":{"type":"security_exception","reason":"unable to authenticate with provided credentials and anonymous access is not allowed for this request","additional_unsuccessful_credentials":"API key: unable to find apikey with id VuaCfGcBCdbkQm-e5aOx"},"status":401}"#;
        assert_eq!(
            refusal(es8).as_deref(),
            Some("unable to authenticate with provided credentials and anonymous access is not allowed for this request; API key: unable to find apikey with id VuaCfGcBCdbkQm-e5aOx")
        );
        assert_eq!(refusal("Unauthorized"), None);
        // The same words whichever request (template or bulk) met the refusal.
        assert_eq!(
            failed(403, r#"{"error":{"reason":"no privilege"}}"#),
            "authentication failed (HTTP 403: no privilege): check api_key or username/password in elasticsearch_config"
        );
        assert_eq!(failed(502, "bad gateway"), "HTTP 502: bad gateway");
    }

    #[test]
    fn items_by_status() {
        let text = r#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [log.offset]"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"no shard"}}}]}"#;
        let got = parse_items(text, 5).unwrap();
        assert_eq!(got[0], Outcome::Done);
        assert_eq!(got[1], Outcome::Existed);
        assert_eq!(
            got[2],
            Outcome::Retry("HTTP 429: es_rejected_execution_exception: queue full".into())
        );
        assert_eq!(
            got[3],
            Outcome::Reject(
                "HTTP 400: document_parsing_exception: failed to parse field [log.offset]".into()
            )
        );
        assert!(matches!(got[4], Outcome::Retry(_)));
        assert!(parse_items(text, 4).unwrap_err().contains("5 items for 4"));
        assert!(parse_items("<html>", 1).is_err());
        // With "errors": false first, every item is done, whatever its action; still counted.
        let fine = r#"{"took":3,"errors":false,"items":[{"create":{"status":201}},{"index":{"_id":"a","status":200}}]}"#;
        assert_eq!(
            parse_items(fine, 2).unwrap(),
            [Outcome::Done, Outcome::Done]
        );
        assert!(parse_items(fine, 3).unwrap_err().contains("2 items for 3"));
        // Items before "errors" are read one by one.
        let late = r#"{"items":[{"create":{"status":409}}],"errors":true}"#;
        assert_eq!(parse_items(late, 1).unwrap(), [Outcome::Existed]);
        let late = r#"{"items":[{"create":{"status":409}}],"errors":false}"#;
        assert_eq!(parse_items(late, 1).unwrap(), [Outcome::Existed]);
        assert!(parse_items(r#"{"errors":false}"#, 1)
            .unwrap_err()
            .contains("no items"));
    }

    /// A body goes out as it is, or gzip-compressed with its header when `gzip` is on, and the
    /// bytes counted are those that went out.
    #[test]
    fn sends_bodies_plain_or_gzipped_and_counts_the_bytes_sent() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let received = std::thread::spawn(move || {
            let mut got = Vec::new();
            for mut request in server.incoming_requests().take(2) {
                let encoding = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Content-Encoding"))
                    .map(|h| h.value.to_string());
                let mut body = Vec::new();
                request.as_reader().read_to_end(&mut body).unwrap();
                got.push((encoding, body));
                let answer = r#"{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}"#;
                request
                    .respond(tiny_http::Response::from_string(answer))
                    .unwrap();
            }
            got
        });
        let es = EsConfig {
            urls: vec![format!("http://127.0.0.1:{port}")],
            api_key: None,
            username: None,
            password: None,
        };
        let ndjson =
            b"{\"create\":{}}\n{\"message\":\"a\"}\n{\"create\":{}}\n{\"message\":\"b\"}\n";
        let metrics = Arc::new(Metrics::default());
        let mut client = EsClient::new(&StoreSettings::default(), metrics.clone());
        for gzip in [false, true] {
            let outcomes = client.bulk(&es, ndjson, gzip, 2).unwrap();
            assert_eq!(outcomes, [Outcome::Done, Outcome::Done]);
        }
        let got = received.join().unwrap();
        assert_eq!(got[0], (None, ndjson.to_vec()));
        assert_eq!(got[1].0.as_deref(), Some("gzip"));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&got[1].1[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, ndjson);
        assert_eq!(
            metrics.store_sent_bytes.load(Relaxed),
            (ndjson.len() + got[1].1.len()) as u64
        );
    }

    #[test]
    fn auth_headers_and_round_robin() {
        let es = |api_key: Option<&str>, user: Option<&str>| EsConfig {
            urls: vec!["http://a:1".into(), "http://b:2".into()],
            api_key: api_key.map(String::from),
            username: user.map(String::from),
            password: user.map(|_| "pw".to_string()),
        };
        assert_eq!(es(Some("k1"), None).authorization().unwrap(), "ApiKey k1");
        // id:api_key, as the create-API-key answer gives them, is encoded as its `encoded`
        // field is: base64 of "id:api_key" (../shared/notes/elasticsearch-8.md).
        assert_eq!(
            es(Some("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"), None)
                .authorization()
                .unwrap(),
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        assert_eq!(
            es(None, Some("u")).authorization().unwrap(),
            "Basic dTpwdw==" // base64 of u:pw
        );
        assert_eq!(es(None, None).authorization(), None);

        let conf = es(None, None);
        let c = EsClient::new(&StoreSettings::default(), Arc::default());
        let twin = c.clone();
        assert_eq!(c.pick(&conf), "http://a:1");
        // Clones take turns with it, and skip what it found down.
        assert_eq!(twin.pick(&conf), "http://b:2");
        c.mark_down("http://a:1", true);
        assert_eq!(twin.pick(&conf), "http://b:2");
        assert_eq!(c.pick(&conf), "http://b:2");
    }
}
