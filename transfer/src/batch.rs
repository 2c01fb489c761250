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

use crate::bulk::{EsClient, Failure, Outcome, Store};
use crate::dlq::DeadLetters;
use crate::doc::Doc;
use crate::metrics::Metrics;
use crate::watched::Watched;
use logcollect::document::{self, TEMPLATE};
use logcollect::routing::Routing;

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

/// Starts the batch thread, sending to Elasticsearch.
pub fn spawn(setup: Setup) -> Result<JoinHandle<()>> {
    spawn_with(setup, EsClient::default())
}

/// Starts the batch thread, sending to `store`.
fn spawn_with<S: Store>(setup: Setup, store: S) -> Result<JoinHandle<()>> {
    let mut batcher = Batcher {
        setup,
        client: store,
        docs: Vec::new(),
        bytes: 0,
        first_at: None,
        template_for: None,
        stop_deadline: None,
        rng: seed(),
    };
    sync::spawn("batch", move || batcher.run())
}

struct Batcher<S> {
    setup: Setup,
    client: S,
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

impl<S: Store> Batcher<S> {
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
                    self.setup.metrics.bulk_failed(&reason);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Progress;
    use logcollect::collect::parse_es_config;
    use logcollect::sync::lock;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, Producer};
    use serde_json::Value;
    use std::sync::Mutex;

    /// A store that answers from a script and remembers what it was sent.
    #[derive(Clone, Default)]
    struct Scripted {
        /// The documents (offsets) of each request, in order.
        requests: Arc<Mutex<Vec<Vec<i64>>>>,
        /// Offsets answered with Retry on their first request, and Reject, and the request
        /// size above which the whole request is answered 413.
        retry_once: Vec<i64>,
        reject: Vec<i64>,
        too_large_above: Option<usize>,
    }

    impl Store for Scripted {
        fn bulk(
            &mut self,
            _: &EsConfig,
            ndjson: &[u8],
            _: bool,
            items: usize,
        ) -> std::result::Result<Vec<Outcome>, Failure> {
            // Each document's id is its offset, see `doc`.
            let offsets: Vec<i64> = String::from_utf8_lossy(ndjson)
                .lines()
                .step_by(2)
                .map(|action| {
                    let v: Value = serde_json::from_str(action).unwrap();
                    v["create"]["_id"].as_str().unwrap().parse().unwrap()
                })
                .collect();
            assert_eq!(offsets.len(), items);
            let mut requests = lock(&self.requests);
            if self.too_large_above.is_some_and(|max| items > max) {
                requests.push(offsets);
                return Err(Failure::TooLarge);
            }
            let seen_before = |o: &i64| requests.iter().flatten().any(|p| p == o);
            let outcomes = offsets
                .iter()
                .map(|o| {
                    if self.reject.contains(o) {
                        Outcome::Reject("mapper_parsing_exception".into())
                    } else if self.retry_once.contains(o) && !seen_before(o) {
                        Outcome::Retry("429".into())
                    } else {
                        Outcome::Done
                    }
                })
                .collect();
            requests.push(offsets);
            Ok(outcomes)
        }

        fn put_template(&mut self, _: &EsConfig, _: &str, _: &Value) -> Result<()> {
            Ok(())
        }
    }

    /// A running batch thread over `store`, with its document channel and progress.
    struct Run {
        docs: crossbeam_channel::Sender<Doc>,
        progress: Arc<Progress>,
        stop: Arc<logcollect::shutdown::Trigger>,
        thread: JoinHandle<()>,
        metrics: Arc<Metrics>,
        _kafka: BaseProducer,
    }

    fn start(store: Scripted, max_docs: usize, max_bytes: usize, max_wait: Duration) -> Run {
        // The dead letters go to librdkafka's mock cluster.
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .unwrap();
        let servers = owner.client().mock_cluster().unwrap().bootstrap_servers();
        let es = parse_es_config(
            "elasticsearch_config",
            br#"{"api_key":"","url_address":["http://127.0.0.1:1"]}"#,
        )
        .unwrap();
        let (docs, rx) = crossbeam_channel::bounded(100);
        let (stop, shutdown) = Shutdown::new();
        let metrics = Arc::new(Metrics::default());
        let setup = Setup {
            docs: rx,
            es: Arc::new(Watched::new(Some(es))),
            routing: Arc::new(Watched::new(Routing::new(&[], "{topic}"))),
            dead_letters: DeadLetters::new(&servers).unwrap(),
            max_docs,
            max_bytes,
            max_wait,
            gzip: false,
            shutdown,
            shutdown_timeout: Duration::from_secs(5),
            metrics: metrics.clone(),
        };
        let thread = spawn_with(setup, store).unwrap();
        Run {
            docs,
            progress: Arc::default(),
            stop,
            thread,
            metrics,
            _kafka: owner,
        }
    }

    impl Run {
        /// Sends the record at `offset` of topic t, partition 0, as a document.
        fn send(&self, offset: i64) {
            self.progress.read("t", 0, offset);
            let doc = Doc {
                topic: "t".into(),
                partition: 0,
                offset,
                index: "t".into(),
                id: offset.to_string(),
                source: br#"{"message":"x"}"#.to_vec(),
                key: None,
                payload: b"x".to_vec(),
                headers: Vec::new(),
                progress: self.progress.clone(),
            };
            self.docs.send(doc).unwrap();
        }

        /// What may be committed of t/0.
        fn committable(&self) -> Option<i64> {
            self.progress.committable(None).first().map(|c| c.2)
        }

        fn stop(self) {
            self.stop.trigger();
            self.thread.join().unwrap();
        }
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn batches_are_sent_by_count_by_bytes_and_by_age() {
        let store = Scripted::default();
        let requests = store.requests.clone();
        let run = start(store, 3, usize::MAX, Duration::from_secs(3600));
        (0..7).for_each(|o| run.send(o));
        wait_for("two full batches", || lock(&requests).len() == 2);
        assert_eq!(*lock(&requests), [vec![0, 1, 2], vec![3, 4, 5]]);
        // The seventh waits for more; at a stop, what was collected goes out.
        run.stop();
        assert_eq!(lock(&requests)[2], [6]);

        // By bytes: each document counts 65 (its source, index and id, and the action's 48).
        let store = Scripted::default();
        let requests = store.requests.clone();
        let run = start(store, 1000, 130, Duration::from_secs(3600));
        (0..4).for_each(|o| run.send(o));
        wait_for("two batches by size", || lock(&requests).len() == 2);
        assert_eq!(*lock(&requests), [vec![0, 1], vec![2, 3]]);
        run.stop();

        // By age.
        let store = Scripted::default();
        let requests = store.requests.clone();
        let run = start(store, 1000, usize::MAX, Duration::from_millis(50));
        run.send(0);
        wait_for("the lone document, once it waited", || {
            lock(&requests).len() == 1
        });
        assert_eq!(run.committable(), Some(1));
        assert_eq!(run.metrics.indexed.load(Relaxed), 1);
        run.stop();
    }

    #[test]
    fn retried_items_go_again_rejected_ones_to_the_dead_letters_and_commits_wait() {
        let store = Scripted {
            retry_once: vec![1],
            reject: vec![2],
            ..Scripted::default()
        };
        let requests = store.requests.clone();
        let run = start(store, 4, usize::MAX, Duration::from_secs(3600));
        (0..4).for_each(|o| run.send(o));
        wait_for("the retried document sent again", || {
            lock(&requests).len() == 2
        });
        assert_eq!(*lock(&requests), [vec![0, 1, 2, 3], vec![1]]);
        // Everything is done: indexed (0, 1 after its retry, 3) or dead-lettered (2).
        wait_for("all done", || run.committable() == Some(4));
        assert_eq!(run.metrics.indexed.load(Relaxed), 3);
        assert_eq!(run.metrics.dead_lettered.load(Relaxed), 1);
        assert_eq!(run.metrics.retried.load(Relaxed), 1);
        run.stop();
    }

    #[test]
    fn a_request_answered_413_is_split_until_it_fits() {
        let store = Scripted {
            too_large_above: Some(1),
            ..Scripted::default()
        };
        let requests = store.requests.clone();
        let run = start(store, 4, usize::MAX, Duration::from_secs(3600));
        (0..4).for_each(|o| run.send(o));
        wait_for("all done", || run.committable() == Some(4));
        assert_eq!(
            *lock(&requests),
            [
                vec![0, 1, 2, 3],
                vec![0, 1],
                vec![0],
                vec![1],
                vec![2, 3],
                vec![2],
                vec![3]
            ]
        );
        run.stop();
    }
}
