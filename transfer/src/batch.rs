//! The batch thread: collects documents from the consumer threads into `_bulk` requests,
//! sends them, and marks each document done only when Elasticsearch has it or its record is
//! in the dead-letter topic.
//!
//! A request goes out when it is full (documents or bytes), when its oldest document is
//! `batch_max_wait_ms` old, or as soon as the consumers have nothing more to give: at low
//! rates a line waits for no timer, and at high rates requests fill up while the previous
//! one is in flight.
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

use crossbeam_channel::{select, Receiver, Sender};
use logcollect::clock::Rfc3339;
use logcollect::collect::EsConfig;
use logcollect::outage::{self, Outage};
use logcollect::shutdown::Shutdown;
use logcollect::sync;
use logcollect::Result;

use crate::bulk::{EsClient, Failure, Outcome, Store};
use crate::dlq::DeadLetters;
use crate::doc::{self, Chunk, Doc};
use crate::metrics::Metrics;
use crate::watched::Watched;
use logcollect::document::{self, STREAM_TEMPLATE, TEMPLATE};
use logcollect::pipeline::{write_plain, write_str};
use logcollect::routing::Routing;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the batch thread needs.
pub struct Setup {
    /// Documents from the consumer threads.
    pub docs: Receiver<Chunk>,
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
    /// Requests in flight at once, each sent by a worker thread of its own.
    pub workers: usize,
    /// gzip the requests.
    pub gzip: bool,
    /// Fired on SIGTERM: send what is collected, then stop.
    pub shutdown: Shutdown,
    /// How long the last request may take at a stop.
    pub shutdown_timeout: Duration,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts the batch thread and its workers, sending to Elasticsearch through `client`. The
/// thread ends when its workers have.
pub fn spawn(setup: Setup, client: EsClient) -> Result<JoinHandle<()>> {
    spawn_with(setup, move || client.clone())
}

/// Starts the batch thread and its workers, each sending to a store made by `store`.
fn spawn_with<S: Store + Send + 'static>(
    setup: Setup,
    store: impl Fn() -> S,
) -> Result<JoinHandle<()>> {
    // A request is handed over only when a worker is free to send it: meanwhile the next one
    // fills up, and the consumers pause once the channel is full.
    let (requests, work) = crossbeam_channel::bounded::<Vec<Doc>>(0);
    let shared = Arc::new(Shared {
        es: setup.es,
        routing: setup.routing,
        dead_letters: setup.dead_letters,
        gzip: setup.gzip,
        shutdown: setup.shutdown.clone(),
        shutdown_timeout: setup.shutdown_timeout,
        metrics: setup.metrics,
        outage: Outage::default(),
    });
    let mut workers = Vec::new();
    for n in 0..setup.workers.max(1) {
        let mut worker = Worker {
            shared: shared.clone(),
            client: store(),
            work: work.clone(),
            template_for: None,
            stop_deadline: None,
            rng: seed() ^ (n as u64) << 32,
            body: Vec::new(),
        };
        workers.push(sync::spawn(&format!("bulk-{n}"), move || worker.run())?);
    }
    let batcher = Batcher {
        docs: setup.docs,
        shutdown: setup.shutdown,
        max_docs: setup.max_docs,
        max_bytes: setup.max_bytes,
        max_wait: setup.max_wait,
        requests,
        workers,
        batch: Vec::new(),
        bytes: 0,
        first_at: None,
    };
    sync::spawn("batch", move || batcher.run())
}

/// Collects documents into requests and hands each to a free worker.
struct Batcher {
    docs: Receiver<Chunk>,
    shutdown: Shutdown,
    max_docs: usize,
    max_bytes: usize,
    max_wait: Duration,
    requests: Sender<Vec<Doc>>,
    workers: Vec<JoinHandle<()>>,
    /// The request being filled.
    batch: Vec<Doc>,
    /// NDJSON bytes of `batch`, about ([`Doc::size`]).
    bytes: usize,
    /// When the first document of the batch arrived.
    first_at: Option<Instant>,
}

impl Batcher {
    fn run(mut self) {
        loop {
            let wait = self.first_at.map_or(Duration::MAX, |t| {
                (t + self.max_wait).saturating_duration_since(Instant::now())
            });
            select! {
                recv(self.docs) -> chunk => match chunk {
                    Ok(chunk) => {
                        let caught_up = chunk.caught_up;
                        for doc in chunk.docs {
                            self.add(doc);
                            if self.batch.len() >= self.max_docs || self.bytes >= self.max_bytes {
                                self.flush();
                            }
                        }
                        if caught_up && self.docs.is_empty() {
                            self.flush();
                        }
                    }
                    Err(_) => break,
                },
                recv(self.shutdown.receiver()) -> _ => break,
                default(wait) => self.flush(),
            }
        }
        // The documents collected so far go out (bounded by shutdown_timeout); what is still
        // in the channel is not done, so it is delivered again after the restart.
        self.flush();
        drop(self.requests);
        for worker in self.workers {
            let _ = worker.join();
        }
        log::info!("batch: stopped");
    }

    fn add(&mut self, doc: Doc) {
        self.bytes += doc.size();
        self.first_at.get_or_insert_with(Instant::now);
        self.batch.push(doc);
    }

    fn flush(&mut self) {
        // Room for as many as this request has: grown document by document, the vector was
        // copied a dozen times into fresh pages at high rates.
        let room = self.batch.len();
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(room));
        self.bytes = 0;
        self.first_at = None;
        if !batch.is_empty() {
            // The workers end only after this sender is dropped.
            let _ = self.requests.send(batch);
        }
    }
}

/// What the workers share.
struct Shared {
    es: Arc<Watched<Option<EsConfig>>>,
    routing: Arc<Watched<Routing>>,
    dead_letters: DeadLetters,
    gzip: bool,
    shutdown: Shutdown,
    shutdown_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The store's failures, said once per outage (and its end).
    outage: Outage,
}

/// Sends requests, one at a time, until each document is done.
struct Worker<S> {
    shared: Arc<Shared>,
    client: S,
    work: Receiver<Vec<Doc>>,
    /// Routing and Elasticsearch versions the template was installed for.
    template_for: Option<(u64, u64)>,
    /// Set once a stop is requested: no attempt starts after it.
    stop_deadline: Option<Instant>,
    rng: u64,
    /// The body, reused, so that a request does not take fresh pages from the kernel (zeroing
    /// them was a twentieth of the transfer's time).
    body: Vec<u8>,
}

impl<S: Store> Worker<S> {
    fn run(&mut self) {
        while let Ok(docs) = self.work.recv() {
            self.deliver(docs, true);
        }
    }

    /// Sends `docs` until every one is done, or the stop deadline passes. `first`: they were
    /// never sent, so their processors' failures are counted.
    fn deliver(&mut self, mut docs: Vec<Doc>, first: bool) {
        let mut attempt = 0u32;
        // Counted at their first rendering, which may come after attempts without a store.
        let mut counted = !first;
        while !docs.is_empty() {
            // Stopping: what is not done is delivered again after the restart.
            if self.stop_deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            if attempt > 0 && !self.pause(attempt) {
                return;
            }
            attempt += 1;
            let es = self.shared.es.get();
            let Some(es) = es.as_ref() else {
                if attempt == 1 {
                    log::warn!("batch: no elasticsearch_config in etcd yet; waiting for it");
                }
                continue;
            };
            self.install_template(es);
            self.ndjson(&docs, !counted);
            counted = true;
            let started = Instant::now();
            let result = self
                .client
                .bulk(es, &self.body, self.shared.gzip, docs.len());
            self.shared.metrics.bulk_latency(started.elapsed());
            let outcomes = match result {
                Ok(outcomes) => {
                    if let Some(ended) = self.shared.outage.recovered() {
                        log::info!("batch: the store answers again, after {ended}");
                    }
                    outcomes
                }
                Err(Failure::TooLarge) if docs.len() > 1 => {
                    let second = docs.split_off(docs.len() / 2);
                    log::warn!(
                        "batch: request of {} documents too large (413); splitting it",
                        docs.len() + second.len()
                    );
                    self.deliver(docs, false);
                    self.deliver(second, false);
                    return;
                }
                Err(Failure::TooLarge) => vec![Outcome::Reject(
                    "HTTP 413: document larger than the request limit".into(),
                )],
                Err(Failure::Retry { kind, reason }) => {
                    self.shared
                        .metrics
                        .retried
                        .fetch_add(docs.len() as u64, Relaxed);
                    self.shared.metrics.bulk_failed(&reason);
                    if let Some(held_back) = self.shared.outage.admit(&kind) {
                        log::warn!(
                            "batch: {reason}; sending {} documents again{}",
                            docs.len(),
                            outage::held_back(held_back)
                        );
                    }
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
        let mut indexed = Vec::with_capacity(docs.len());
        let mut existed = 0;
        for (doc, outcome) in docs.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Done => indexed.push(doc),
                Outcome::Existed => {
                    existed += 1;
                    indexed.push(doc);
                }
                Outcome::Retry(reason) => {
                    first_retry_reason.get_or_insert(reason);
                    again.push(doc);
                }
                Outcome::Reject(reason) => rejected.push((doc, reason)),
            }
        }
        doc::done(&indexed);
        let metrics = &self.shared.metrics;
        metrics
            .indexed
            .fetch_add(indexed.len() as u64 - existed, Relaxed);
        metrics.existed.fetch_add(existed, Relaxed);
        if !rejected.is_empty() {
            let refs: Vec<(&Doc, String)> = rejected.iter().map(|(d, r)| (d, r.clone())).collect();
            match self.shared.dead_letters.send(&refs) {
                Ok(()) => {
                    for (doc, reason) in &rejected {
                        log::warn!(
                            "batch: {}/{}/{} rejected ({reason}); sent to {}.dlq",
                            doc.topic(),
                            doc.partition,
                            doc.offset,
                            doc.topic()
                        );
                    }
                    let rejected: Vec<Doc> = rejected.into_iter().map(|(d, _)| d).collect();
                    doc::done(&rejected);
                    self.shared
                        .metrics
                        .dead_lettered
                        .fetch_add(rejected.len() as u64, Relaxed);
                }
                Err(e) => {
                    log::error!(
                        "batch: {e}; keeping {} rejected documents to try again",
                        rejected.len()
                    );
                    self.shared.metrics.error("dlq");
                    again.extend(rejected.into_iter().map(|(d, _)| d));
                }
            }
        }
        if let Some(reason) = first_retry_reason {
            self.shared
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

    /// The `_bulk` body: a `create` action and the document, per document, each rendered
    /// under the routing of now; `count_failures`: count what processors could not do.
    fn ndjson(&mut self, docs: &[Doc], count_failures: bool) {
        let routing = self.shared.routing.get();
        // One time for the request's documents, written out once.
        let ingested = Rfc3339::of(logcollect::clock::now_ms());
        let body = &mut self.body;
        body.clear();
        body.reserve(docs.iter().map(Doc::size).sum());
        for doc in docs {
            // Written in place: a `Value` per action cost an allocation of each of its parts.
            let rendered = doc.render_into(&routing, ingested, body, |placed, body| {
                body.extend_from_slice(b"{\"create\":{\"_index\":");
                write_str(body, &placed.index);
                body.extend_from_slice(b",\"_id\":");
                write_plain(body, placed.id.as_bytes());
                body.extend_from_slice(b"}}\n");
            });
            body.push(b'\n');
            if count_failures {
                for failure in &rendered.failures {
                    self.shared.metrics.processor_failed(failure);
                }
            }
        }
    }

    /// Installs the index templates (of the indices, of the data streams) when the topics
    /// or the Elasticsearch settings changed.
    fn install_template(&mut self, es: &EsConfig) {
        let versions = (self.shared.routing.version(), self.shared.es.version());
        if self.template_for == Some(versions) {
            return;
        }
        let routing = self.shared.routing.get();
        let templates = [
            (
                TEMPLATE,
                routing.template_patterns(),
                document::index_template as fn(&[String]) -> _,
            ),
            (
                STREAM_TEMPLATE,
                routing.data_streams(),
                document::stream_template,
            ),
        ];
        for (name, patterns, template) in templates {
            if patterns.is_empty() {
                continue;
            }
            if let Err(e) = self.client.put_template(es, name, &template(&patterns)) {
                if let Some(held_back) = self.shared.outage.admit("index template") {
                    log::warn!(
                        "batch: index template {name:?} not installed: {e}; trying again with the next request{}",
                        outage::held_back(held_back)
                    );
                }
                return;
            }
            log::info!("batch: index template {name:?} installed for {patterns:?}");
        }
        self.template_for = Some(versions);
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
                if self.shared.shutdown.sleep(wait) {
                    // SIGTERM during the backoff: this attempt becomes the last, bounded one.
                    self.stop_deadline = Some(Instant::now() + self.shared.shutdown_timeout);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Original, Progress};
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
            // Each document's log.offset is its Kafka offset, see `send_chunk`.
            let offsets: Vec<i64> = String::from_utf8_lossy(ndjson)
                .lines()
                .skip(1)
                .step_by(2)
                .map(|source| {
                    let v: Value = serde_json::from_str(source).unwrap();
                    v["log"]["offset"].as_i64().unwrap()
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
        docs: crossbeam_channel::Sender<Chunk>,
        progress: &'static Progress,
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
            dead_letters: DeadLetters::new(&logcollect::kafka::KafkaSettings::plaintext(&servers))
                .unwrap(),
            max_docs,
            max_bytes,
            max_wait,
            workers: 1,
            gzip: false,
            shutdown,
            shutdown_timeout: Duration::from_secs(5),
            metrics: metrics.clone(),
        };
        let thread = spawn_with(setup, move || store.clone()).unwrap();
        let progress = Progress::of_thread();
        let mut assigned = rdkafka::TopicPartitionList::new();
        assigned.add_partition("t", 0);
        progress.assign(&assigned);
        Run {
            docs,
            progress,
            stop,
            thread,
            metrics,
            _kafka: owner,
        }
    }

    impl Run {
        /// Sends the record at `offset` of topic t, partition 0, as a document.
        fn send(&self, offset: i64) {
            self.send_chunk(offset, false);
        }

        /// Sends it as the last document its consumer had.
        fn send_last(&self, offset: i64) {
            self.send_chunk(offset, true);
        }

        fn send_chunk(&self, offset: i64, caught_up: bool) {
            let line_offset = offset.to_string();
            let headers = [(logcollect::record::OFFSET, line_offset.as_bytes())];
            let doc = Doc {
                partition: 0,
                offset,
                read_ms: 0,
                original: Original::new("t", None, b"x", headers.into_iter()),
                progress: self.progress,
                generation: 0,
            };
            self.progress.read(std::slice::from_ref(&doc));
            let chunk = Chunk {
                docs: vec![doc],
                caught_up,
            };
            self.docs.send(chunk).unwrap();
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

        // By bytes: each document counts 280 (its record's 24 bytes, with the lengths of its
        // parts, and 256 for what rendering adds).
        let store = Scripted::default();
        let requests = store.requests.clone();
        let run = start(store, 1000, 560, Duration::from_secs(3600));
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
    fn a_batch_goes_out_when_the_consumers_caught_up() {
        let store = Scripted::default();
        let requests = store.requests.clone();
        let run = start(store, 1000, usize::MAX, Duration::from_secs(3600));
        run.send(0);
        run.send_last(1);
        // No timer: the consumer had nothing more, so the two go out at once.
        wait_for("the caught-up batch", || lock(&requests).len() == 1);
        assert_eq!(*lock(&requests), [vec![0, 1]]);
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
