//! The batch thread: collects documents from the consumer threads into `_bulk` requests
//! (by count, bytes or age), sends them, and marks each document done only when
//! Elasticsearch has it or its record is in the dead-letter topic.
//!
//! Items answered 429 or 5xx, and whole requests that fail, are sent again with jittered
//! exponential backoff (about 100 ms up to 30 s; it grows only while rounds make no
//! progress), never dropped; while that goes on, the
//! consumer threads' channel fills and they pause. A 413 splits the request in halves.
//! The Elasticsearch settings are read at each attempt, so a new URL in etcd takes effect.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{select, Receiver};
use logcollect::collect::EsConfig;
use logcollect::shutdown::Shutdown;
use logcollect::sync;
use logcollect::Result;
use serde_json::json;

use crate::bulk::{EsClient, Failure, Outcome};
use crate::dlq::DeadLetters;
use crate::doc::Doc;
use crate::document::{self, TEMPLATE};
use crate::metrics::Metrics;
use crate::routing::Routing;
use crate::watched::Watched;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the batch thread needs.
pub struct Setup {
    /// Documents from the consumer threads.
    pub docs: Receiver<Doc>,
    /// Where Elasticsearch is.
    pub es: Arc<Watched<Option<EsConfig>>>,
    /// Topics and indices (for the index template).
    pub routing: Arc<Watched<Routing>>,
    /// Rejected records go here.
    pub dead_letters: DeadLetters,
    /// Limits of one request.
    pub max_docs: usize,
    /// Bytes of NDJSON in one request.
    pub max_bytes: usize,
    /// Age of the oldest document before the request is sent.
    pub max_wait: Duration,
    /// gzip the requests.
    pub gzip: bool,
    /// Fired on SIGTERM: send what is collected, then stop.
    pub shutdown: Shutdown,
    /// How long the last request may take at a stop.
    pub shutdown_timeout: Duration,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts the batch thread.
pub fn spawn(setup: Setup) -> Result<JoinHandle<()>> {
    let mut batcher = Batcher {
        setup,
        client: EsClient::default(),
        docs: Vec::new(),
        bytes: 0,
        first_at: None,
        template_for: None,
        stop_deadline: None,
        rng: seed(),
    };
    sync::spawn("batch", move || batcher.run())
}

struct Batcher {
    setup: Setup,
    client: EsClient,
    docs: Vec<Doc>,
    /// NDJSON bytes of `docs`.
    bytes: usize,
    /// When the first document of the batch arrived.
    first_at: Option<Instant>,
    /// Routing and Elasticsearch versions the template was installed for.
    template_for: Option<(u64, u64)>,
    stop_deadline: Option<Instant>,
    rng: u64,
}

impl Batcher {
    fn run(&mut self) {
        loop {
            let wait = self.first_at.map_or(Duration::MAX, |t| {
                (t + self.setup.max_wait).saturating_duration_since(Instant::now())
            });
            select! {
                recv(self.setup.docs) -> doc => match doc {
                    Ok(doc) => {
                        self.add(doc);
                        if self.docs.len() >= self.setup.max_docs || self.bytes >= self.setup.max_bytes {
                            self.flush();
                        }
                    }
                    Err(_) => break,
                },
                recv(self.setup.shutdown.receiver()) -> _ => break,
                default(wait) => self.flush(),
            }
        }
        // The documents collected so far go out (bounded by shutdown_timeout); what is still
        // in the channel is not done, so it is delivered again after the restart.
        self.stop_deadline = Some(Instant::now() + self.setup.shutdown_timeout);
        self.flush();
        log::info!("batch: stopped");
    }

    fn add(&mut self, doc: Doc) {
        self.bytes += doc.source.len() + doc.index.len() + doc.id.len() + 48;
        self.first_at.get_or_insert_with(Instant::now);
        self.docs.push(doc);
    }

    fn flush(&mut self) {
        let docs = std::mem::take(&mut self.docs);
        self.bytes = 0;
        self.first_at = None;
        if !docs.is_empty() {
            self.deliver(docs);
        }
    }

    /// Sends `docs` until every one is done, or the stop deadline passes.
    fn deliver(&mut self, mut docs: Vec<Doc>) {
        let mut attempt = 0u32;
        while !docs.is_empty() {
            if attempt > 0 && !self.pause(attempt) {
                return; // stopping: not done, so delivered again after the restart
            }
            attempt += 1;
            let es = self.setup.es.get();
            let Some(es) = es.as_ref() else {
                if attempt == 1 {
                    log::warn!("batch: no elasticsearch_config in etcd yet; waiting for it");
                }
                continue;
            };
            self.install_template(es);
            let body = ndjson(&docs);
            let started = Instant::now();
            let result = self.client.bulk(es, &body, self.setup.gzip, docs.len());
            self.setup.metrics.bulk_latency(started.elapsed());
            let outcomes = match result {
                Ok(outcomes) => outcomes,
                Err(Failure::TooLarge) if docs.len() > 1 => {
                    let second = docs.split_off(docs.len() / 2);
                    log::warn!(
                        "batch: request of {} documents too large (413); splitting it",
                        docs.len() + second.len()
                    );
                    self.deliver(docs);
                    self.deliver(second);
                    return;
                }
                Err(Failure::TooLarge) => vec![Outcome::Reject(
                    "HTTP 413: document larger than the request limit".into(),
                )],
                Err(Failure::Retry(reason)) => {
                    self.setup
                        .metrics
                        .retried
                        .fetch_add(docs.len() as u64, Relaxed);
                    self.setup.metrics.error("bulk");
                    log::warn!("batch: {reason}; sending {} documents again", docs.len());
                    continue;
                }
            };
            let before = docs.len();
            docs = self.settle(docs, outcomes);
            if docs.len() < before {
                // Progress: the store works, only some items were refused; back off briefly.
                attempt = 1;
            }
        }
    }

    /// Marks done what is done, dead-letters what is rejected; returns what to send again.
    fn settle(&mut self, docs: Vec<Doc>, outcomes: Vec<Outcome>) -> Vec<Doc> {
        let mut again = Vec::new();
        let mut rejected = Vec::new();
        let mut first_retry_reason = None;
        for (doc, outcome) in docs.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Done => {
                    doc.done();
                    self.setup.metrics.indexed.fetch_add(1, Relaxed);
                }
                Outcome::Retry(reason) => {
                    first_retry_reason.get_or_insert(reason);
                    again.push(doc);
                }
                Outcome::Reject(reason) => rejected.push((doc, reason)),
            }
        }
        if !rejected.is_empty() {
            let refs: Vec<(&Doc, String)> = rejected.iter().map(|(d, r)| (d, r.clone())).collect();
            match self.setup.dead_letters.send(&refs) {
                Ok(()) => {
                    for (doc, reason) in &rejected {
                        log::warn!(
                            "batch: {}/{}/{} rejected ({reason}); sent to {}.dlq",
                            doc.topic,
                            doc.partition,
                            doc.offset,
                            doc.topic
                        );
                        doc.done();
                    }
                    self.setup
                        .metrics
                        .dead_lettered
                        .fetch_add(rejected.len() as u64, Relaxed);
                }
                Err(e) => {
                    log::error!(
                        "batch: {e}; keeping {} rejected documents to try again",
                        rejected.len()
                    );
                    self.setup.metrics.error("dlq");
                    again.extend(rejected.into_iter().map(|(d, _)| d));
                }
            }
        }
        if let Some(reason) = first_retry_reason {
            self.setup
                .metrics
                .retried
                .fetch_add(again.len() as u64, Relaxed);
            log::debug!(
                "batch: {} documents to send again, e.g. {reason}",
                again.len()
            );
        }
        again
    }

    /// Installs the index template when the topics or the Elasticsearch settings changed.
    fn install_template(&mut self, es: &EsConfig) {
        let versions = (self.setup.routing.version(), self.setup.es.version());
        if self.template_for == Some(versions) {
            return;
        }
        let patterns = self.setup.routing.get().template_patterns();
        if patterns.is_empty() {
            return;
        }
        let template = document::index_template(&patterns);
        match self.client.put_template(es, TEMPLATE, &template) {
            Ok(()) => {
                log::info!("batch: index template {TEMPLATE:?} installed for {patterns:?}");
                self.template_for = Some(versions);
            }
            Err(e) => log::warn!(
                "batch: index template not installed: {e}; trying again with the next request"
            ),
        }
    }

    /// Waits before attempt number `attempt` (jittered exponential backoff). Returns false
    /// when a stop is in progress and its deadline has passed.
    fn pause(&mut self, attempt: u32) -> bool {
        let base = MIN_BACKOFF
            .saturating_mul(1 << attempt.min(10))
            .min(MAX_BACKOFF);
        // Up to 50% less, so that many transfers do not retry in step.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let wait = base.mul_f64(0.5 + (self.rng % 1000) as f64 / 2000.0);
        match self.stop_deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(wait.min(left));
                Instant::now() < deadline
            }
            None => {
                if self.setup.shutdown.sleep(wait) {
                    // SIGTERM during the backoff: this attempt becomes the last, bounded one.
                    self.stop_deadline = Some(Instant::now() + self.setup.shutdown_timeout);
                }
                true
            }
        }
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (nanos ^ u64::from(std::process::id())) | 1
}

/// The `_bulk` body: a `create` action and the document, per document.
fn ndjson(docs: &[Doc]) -> Vec<u8> {
    let mut body = Vec::with_capacity(docs.iter().map(|d| d.source.len() + 128).sum());
    for doc in docs {
        let action = json!({ "create": { "_index": doc.index, "_id": doc.id } });
        body.extend_from_slice(action.to_string().as_bytes());
        body.push(b'\n');
        body.extend_from_slice(&doc.source);
        body.push(b'\n');
    }
    body
}
