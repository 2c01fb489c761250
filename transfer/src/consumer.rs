//! Consumer threads: each owns an rdkafka `BaseConsumer` in the transfer's group, keeps each
//! record as a [`Doc`] (the bulk workers render it), and sends them to the batch thread.
//!
//! Offsets are committed only up to the lowest offset of each partition whose document is
//! not done yet ([`Progress`]), so `kill -9` at any moment loses nothing: what was not done
//! is delivered again, and hits its existing document id. Before partitions are revoked,
//! what is done is committed.
//!
//! Documents go to the batch thread in chunks. A full channel blocks the thread for at most
//! [`HANDOVER_WAIT`]: the batch thread takes a whole request's worth at once after each
//! answer. Beyond that the thread pauses its partitions and keeps polling (rebalances) until
//! the batch thread catches up; a pause makes librdkafka drop what it prefetched, so it is
//! kept for a store that is really behind. After each assignment the pause or resume is
//! applied again to all the thread holds: librdkafka keeps a pause through a revocation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};
use logcollect::clock::now_ms;
use logcollect::kafka::{self, KafkaSettings};
use logcollect::outage;
use logcollect::record;
use logcollect::routing::Routing;
use logcollect::shutdown::Shutdown;
use logcollect::sync::{self, lock};
use logcollect::{Error, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};

use crate::doc::{Chunk, Doc, Original, Progress};
use crate::metrics::Metrics;
use crate::watched::Watched;

/// rdkafka callbacks of one consumer.
struct Context {
    name: String,
    progress: &'static Progress,
    metrics: Arc<Metrics>,
    errors: kafka::ErrorLog,
    /// When librdkafka last said the group session timed out (it then rejoins).
    session_timed_out: Mutex<Option<Instant>>,
    /// Partitions were assigned since the consumer thread last paused or resumed them.
    assigned: AtomicBool,
}

impl Context {
    /// Whether the group session timed out within `window`: a static member that rejoins
    /// then may be fenced by its own new membership (librdkafka issue #3437), not by a twin.
    fn session_timed_out_within(&self, window: Duration) -> bool {
        lock(&self.session_timed_out).is_some_and(|at| at.elapsed() <= window)
    }
}

impl ClientContext for Context {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.metrics.error("kafka");
        if let Some(held_back) = self.errors.admit(&kafka::kind(&error), reason) {
            log::warn!(
                "{}: kafka: {}",
                self.name,
                kafka::said(&error, reason, held_back)
            );
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "SESSTMOUT" {
            *lock(&self.session_timed_out) = Some(Instant::now());
        }
        kafka::log_librdkafka(level, facility, message);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`, served by `poll`) carry the
    /// lag per partition from the high watermarks of its own fetches, so measuring it costs
    /// no request of ours and never blocks the consumer loop. They carry the group's committed
    /// offset too: a partition's new owner reports it before it commits anything itself, or
    /// at all when its last owner committed every record before the rebalance.
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal one; -1 means not known yet.
                if *partition < 0 || !p.desired {
                    continue;
                }
                if p.committed_offset >= 0 {
                    self.metrics
                        .committed_at_least(topic, *partition, p.committed_offset);
                }
                if p.consumer_lag >= 0 {
                    self.metrics.lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // What is done is committed before the partitions go; the rest is delivered
            // again to their next owner and hits the same document ids.
            commit(
                &self.name,
                consumer,
                self.progress,
                &self.metrics,
                Some(tpl),
                CommitMode::Sync,
            );
            self.progress.forget(tpl);
            // Their next owner reports them from now on.
            for e in tpl.elements() {
                self.metrics.forget_partition(e.topic(), e.partition());
            }
            log::info!("{}: partitions revoked: {}", self.name, describe(tpl));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.progress.assign(tpl);
            self.assigned.store(true, Relaxed);
            log::info!("{}: partitions assigned: {}", self.name, describe(tpl));
        }
        // What it holds after the rebalance, whole or incremental.
        if let Ok(held) = consumer.assignment() {
            self.metrics.membership.held(&self.name, held.count());
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    parts.sort();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

/// Commits what is done; errors are logged (the next commit catches up).
fn commit(
    name: &str,
    consumer: &BaseConsumer<Context>,
    progress: &Progress,
    metrics: &Metrics,
    only: Option<&TopicPartitionList>,
    mode: CommitMode,
) {
    let offsets = progress.committable(only);
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in &offsets {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => {
            progress.committed(&offsets);
            for (t, p, o) in &offsets {
                metrics.committed(t, *p, *o);
            }
        }
        Err(e) => {
            metrics.error("commit");
            log::warn!("{name}: commit of {} failed: {e}", describe(&tpl));
        }
    }
}

/// What a consumer thread needs.
pub struct Setup {
    /// `[kafka]`: the brokers, and how to reach them.
    pub kafka: KafkaSettings,
    /// `[kafka] group_id`.
    pub group_id: String,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `[kafka] instance_id`: static membership, see [`member_id`].
    pub instance_id: Option<String>,
    /// Tells the main thread this consumer failed for good.
    pub failed: Sender<Error>,
    /// Topics and indices.
    pub routing: Arc<Watched<Routing>>,
    /// To the batch thread.
    pub docs: Sender<Chunk>,
    /// Fired on SIGTERM: stop reading.
    pub shutdown: Shutdown,
    /// Fired when the batch thread finished: commit a last time and leave the group.
    pub drained: Shutdown,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts consumer thread number `n`. Its consumer joins the group once topics are configured.
pub fn spawn(n: usize, setup: Setup) -> Result<JoinHandle<()>> {
    let name = format!("consumer-{n}");
    let mut thread = ConsumerThread {
        name: name.clone(),
        n,
        consumer: None,
        member: None,
        progress: Progress::of_thread(),
        generation: 0,
        setup,
        topics_version: None,
        routing: None,
        chunk: Vec::new(),
        backlog: VecDeque::new(),
        paused: false,
        last_commit: Instant::now(),
        self_fences: Vec::new(),
    };
    sync::spawn(&name, move || thread.run())
}

/// The `group.instance.id` of consumer thread `n` subscribing to `topics`: the configured id,
/// the thread number, and a hash of the topics. A restart with the same topics rejoins as the
/// same member and gets its partitions back at once. With other topics it joins as a new
/// member, since a replaced static member is handed its predecessor's assignment without a
/// rebalance (Kafka's classic protocol; librdkafka does not rebalance for it either), which
/// would leave a topic added while the transfer was down unread.
fn member_id(instance_id: &str, n: usize, topics: &[String]) -> String {
    let mut sorted: Vec<&str> = topics.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let hash = xxhash_rust::xxh3::xxh3_64(sorted.join("\n").as_bytes());
    format!("{instance_id}-{n}-{:08x}", hash >> 32)
}

/// Creates the consumer of thread `n`, a static member `member` if given.
fn create(
    n: usize,
    name: &str,
    member: Option<&str>,
    progress: &'static Progress,
    setup: &Setup,
) -> Result<BaseConsumer<Context>> {
    let context = Context {
        name: name.to_string(),
        progress,
        metrics: setup.metrics.clone(),
        errors: kafka::ErrorLog::default(),
        session_timed_out: Mutex::default(),
        assigned: AtomicBool::new(false),
    };
    let mut config = record::line_consumer(&setup.kafka, &setup.group_id);
    config
        .set("client.id", format!("log-transfer-{n}"))
        .set(
            "session.timeout.ms",
            setup.session_timeout.as_millis().to_string(),
        )
        // Topics created after the subscription (the agent's first record creates them) are
        // found within this interval, not librdkafka's default of 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "5000")
        // Statistics feed the lag metric (see `Context::stats`).
        .set("statistics.interval.ms", "5000");
    // The classic group protocol (librdkafka's default), not KIP-848's: measured on Kafka 4.1,
    // a static member restarted after kill -9 is refused there (UNRELEASED_INSTANCE_ID) until
    // the killed one's session ends, so only the classic protocol resumes at once.
    if let Some(member) = member {
        // A restarted member rejoins as itself: no wait for the old one's session to end.
        config.set("group.instance.id", member);
    }
    config
        .create_with_context(context)
        .map_err(|e| Error::Kafka {
            brokers: setup.kafka.brokers.clone(),
            msg: format!("cannot create the consumer: {e}"),
        })
}

struct ConsumerThread {
    name: String,
    /// Its number, part of its `group.instance.id`.
    n: usize,
    /// Created when topics are first configured (its static member id depends on them).
    consumer: Option<BaseConsumer<Context>>,
    /// Its `group.instance.id`, with static membership.
    member: Option<String>,
    /// What its documents refer to.
    progress: &'static Progress,
    /// Of `progress`, for the consumer it has now.
    generation: u32,
    setup: Setup,
    topics_version: Option<u64>,
    routing: Option<Arc<Routing>>,
    /// Documents read and not yet in a chunk.
    chunk: Vec<Doc>,
    /// Chunks not yet taken by the batch thread.
    backlog: VecDeque<Chunk>,
    paused: bool,
    last_commit: Instant,
    /// When it joined the group again after a fence taken for its own.
    self_fences: Vec<Instant>,
}

/// How long after a session timeout a fence is taken for the consumer's own (added to twice
/// the session timeout: librdkafka rejoins, then the old membership's next request fails).
const SELF_FENCE_WINDOW: Duration = Duration::from_secs(30);

/// Fences taken for the consumer's own within [`SELF_FENCES_WITHIN`] before one is taken for
/// a twin's after all (two transfers with one instance_id whose sessions time out too).
const MAX_SELF_FENCES: usize = 3;
const SELF_FENCES_WITHIN: Duration = Duration::from_secs(600);

/// How often what is done is committed.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How often what is done is committed while there is nothing to read (nothing is sent when
/// no offset moved).
const IDLE_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Documents per chunk handed to the batch thread.
pub const CHUNK_DOCS: usize = 500;

/// How long a consumer waits for room in the batch thread's channel before it pauses.
const HANDOVER_WAIT: Duration = Duration::from_secs(1);

impl ConsumerThread {
    fn run(&mut self) {
        while !self.setup.shutdown.is_requested() {
            // 1. Follow the configured topics (joining the group at the first).
            if let Err(e) = self.follow_topics() {
                let _ = self.setup.failed.send(e);
                break;
            }
            // 2. Hand documents to the batch thread; pause while it is behind.
            self.forward();
            let Some(consumer) = &self.consumer else {
                // No topics yet: nothing to read.
                self.setup.shutdown.sleep(Duration::from_millis(100));
                continue;
            };
            // 3. Read the next record (and serve rebalances). With documents in hand, only
            // what librdkafka already has: when it has nothing, they go out at once.
            let wait = if self.chunk.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            let mut idle = false;
            match consumer.poll(wait) {
                Some(Ok(message)) => {
                    if let Some(ended) = consumer.context().errors.recovered() {
                        log::info!("{}: kafka: reading again, after {ended}", self.name);
                    }
                    if self.routing.is_some() {
                        let doc = to_doc(self.progress, self.generation, &message);
                        self.chunk.push(doc);
                        if self.chunk.len() >= CHUNK_DOCS {
                            self.seal(false);
                        }
                    }
                }
                Some(Err(e)) => {
                    self.setup.metrics.error("consume");
                    if let Some(fatal) = consumer.client().fatal_error() {
                        let window = self.setup.session_timeout * 2 + SELF_FENCE_WINDOW;
                        self.self_fences
                            .retain(|at| at.elapsed() < SELF_FENCES_WITHIN);
                        if fatal.0 == RDKafkaErrorCode::FencedInstanceId
                            && consumer.context().session_timed_out_within(window)
                            && self.self_fences.len() < MAX_SELF_FENCES
                        {
                            self.self_fences.push(Instant::now());
                            self.join_again(&fatal.1);
                            continue;
                        }
                        self.fail(fatal);
                        break;
                    }
                    // Said as librdkafka's own errors are: once per outage.
                    let errors = &consumer.context().errors;
                    if let Some(held_back) = errors.admit(&format!("poll {e:?}"), "") {
                        log::warn!("{}: {e}{}", self.name, outage::held_back(held_back));
                    }
                }
                None if !self.chunk.is_empty() => self.seal(true),
                None => idle = true,
            }
            // 4. Commit what is done: every second while reading, and sooner when there was
            // nothing to read, so that the offsets of a caught-up consumer do not trail the
            // store by up to a second. Only with no documents in hand (a chunk just went out,
            // or nothing was read): the clock is not read for every record, and each record
            // read is noted in the progress.
            let due = if idle {
                IDLE_COMMIT_INTERVAL
            } else {
                COMMIT_INTERVAL
            };
            if self.chunk.is_empty() && self.last_commit.elapsed() >= due {
                self.commit(CommitMode::Async);
                self.last_commit = Instant::now();
            }
        }
        let Some(consumer) = &self.consumer else {
            return;
        };
        // Stopping: keep the group membership while the batch thread finishes its bulk
        // request, then commit what it finished and leave.
        while !self.setup.drained.sleep(Duration::ZERO) {
            let _ = consumer.poll(Duration::from_millis(100));
        }
        self.commit(CommitMode::Sync);
        log::info!("{}: committed and leaving the group", self.name);
    }

    /// Fenced out of the group by its own new membership after a session timeout: the
    /// consumer is replaced by a new one with the same member id, which gets the partitions
    /// back. What was read and not committed is delivered again, onto the same document ids;
    /// documents already read still go to the batch thread.
    fn join_again(&mut self, reason: &str) {
        log::warn!(
            "{}: {reason}, after its own group session timed out (librdkafka rejoined as the same static member); joining group {} again with a new consumer",
            self.name,
            self.setup.group_id
        );
        // Dropped first: a revocation as it closes still finds what it held.
        self.consumer = None;
        self.generation = self.progress.reset();
        self.routing = None;
        self.topics_version = None;
        self.paused = false;
        self.setup.metrics.membership.held(&self.name, 0);
    }

    /// librdkafka failed for good: with static membership, another consumer joined with
    /// this one's `group.instance.id` and fenced it out. The main thread stops the transfer.
    fn fail(&self, (code, reason): (RDKafkaErrorCode, String)) {
        let hint = match (code, &self.setup.instance_id, &self.member) {
            (RDKafkaErrorCode::FencedInstanceId, Some(id), Some(member)) => format!(
                "another consumer joined group {} as group.instance.id {member}: two transfers run with [kafka] instance_id = {id}; give each its own",
                self.setup.group_id
            ),
            _ => format!("group {}", self.setup.group_id),
        };
        let _ = self.setup.failed.send(Error::Kafka {
            brokers: self.setup.kafka.brokers.clone(),
            msg: format!("{}: {reason} ({code:?}); {hint}", self.name),
        });
    }

    /// Subscribes to the configured topics when they change; the first time, creates the
    /// consumer, whose static member id depends on them.
    fn follow_topics(&mut self) -> Result<()> {
        let version = self.setup.routing.version();
        if self.topics_version == Some(version) {
            return Ok(());
        }
        let routing = self.setup.routing.get();
        let old = self.routing.as_ref().map(|r| r.topics.clone());
        if old.as_ref() != Some(&routing.topics) {
            if routing.topics.is_empty() {
                if let Some(consumer) = &self.consumer {
                    consumer.unsubscribe();
                }
                self.setup.metrics.membership.subscribed(&self.name, false);
                log::info!("{}: no topics configured", self.name);
            } else {
                let consumer = match &self.consumer {
                    Some(consumer) => consumer,
                    None => {
                        self.member = (self.setup.instance_id.as_deref())
                            .map(|id| member_id(id, self.n, &routing.topics));
                        let consumer = create(
                            self.n,
                            &self.name,
                            self.member.as_deref(),
                            self.progress,
                            &self.setup,
                        )?;
                        self.consumer.insert(consumer)
                    }
                };
                let topics: Vec<&str> = routing.topics.iter().map(String::as_str).collect();
                match consumer.subscribe(&topics) {
                    Ok(()) => {
                        self.setup.metrics.membership.subscribed(&self.name, true);
                        log::info!(
                            "{}: subscribed to {} as {}",
                            self.name,
                            topics.join(", "),
                            self.member.as_deref().unwrap_or("a dynamic member")
                        )
                    }
                    Err(e) => {
                        log::error!(
                            "{}: cannot subscribe to {}: {e}; retrying",
                            self.name,
                            topics.join(", ")
                        );
                        return Ok(());
                    }
                }
            }
        }
        self.routing = Some(routing);
        self.topics_version = Some(version);
        Ok(())
    }

    /// Closes the chunk of documents read so far, noting them as read; `caught_up`: nothing
    /// more was there.
    fn seal(&mut self, caught_up: bool) {
        self.progress.read(&self.chunk);
        let docs = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_DOCS));
        self.backlog.push_back(Chunk { docs, caught_up });
        self.forward();
    }

    fn forward(&mut self) {
        while let Some(chunk) = self.backlog.pop_front() {
            // Paused, the batch thread is known to be behind: no wait.
            let wait = if self.paused {
                Duration::ZERO
            } else {
                HANDOVER_WAIT
            };
            match self.setup.docs.send_timeout(chunk, wait) {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(chunk))
                | Err(SendTimeoutError::Disconnected(chunk)) => {
                    self.backlog.push_front(chunk);
                    break;
                }
            }
        }
        let behind = !self.backlog.is_empty();
        let Some(consumer) = &self.consumer else {
            return;
        };
        // librdkafka keeps a partition paused by the application through its revocation and
        // its return (it resets only its own pauses on assign): after a rebalance, all that
        // is held is paused or resumed anew, or one given back after a resume stays paused.
        // Read before it is swapped: a plain load for every record, a swap per assignment.
        let flag = &consumer.context().assigned;
        let assigned = flag.load(Relaxed) && flag.swap(false, Relaxed);
        if behind == self.paused && !assigned {
            return;
        }
        let result = consumer.assignment().and_then(|held| {
            if behind {
                consumer.pause(&held)
            } else {
                consumer.resume(&held)
            }
        });
        match result {
            Ok(()) => {
                if behind && !self.paused {
                    self.setup.metrics.consumer_pauses.fetch_add(1, Relaxed);
                }
                self.paused = behind;
            }
            Err(e) => {
                flag.fetch_or(assigned, Relaxed);
                log::warn!("{}: pause/resume failed: {e}", self.name);
            }
        }
    }

    fn commit(&self, mode: CommitMode) {
        if let Some(consumer) = &self.consumer {
            let metrics = &self.setup.metrics;
            commit(&self.name, consumer, self.progress, metrics, None, mode);
        }
    }
}

/// Keeps a record to be made a document, read by its consumer's `generation`; noted as read
/// in `progress` when its chunk is sealed.
fn to_doc(progress: &'static Progress, generation: u32, m: &BorrowedMessage<'_>) -> Doc {
    let topic = m.topic();
    let headers = m
        .headers()
        .into_iter()
        .flat_map(|h| h.iter())
        .map(|h| (h.key, h.value.unwrap_or_default()));
    Doc {
        partition: m.partition(),
        offset: m.offset(),
        read_ms: m.timestamp().to_millis().unwrap_or_else(now_ms),
        original: Original::new(topic, m.key(), m.payload().unwrap_or_default(), headers),
        progress,
        generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_follow_thread_and_topic_set() {
        let topics = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let id = member_id("web1", 0, &topics(&["b", "a"]));
        assert!(
            id.starts_with("web1-0-") && id.len() == "web1-0-".len() + 8,
            "{id}"
        );
        // The order the topics are configured in does not matter; the set does.
        assert_eq!(id, member_id("web1", 0, &topics(&["a", "b"])));
        assert_ne!(id, member_id("web1", 0, &topics(&["a", "b", "c"])));
        assert_ne!(id, member_id("web1", 1, &topics(&["a", "b"])));
    }
}
