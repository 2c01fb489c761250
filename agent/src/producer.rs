//! The producer thread: owns the rdkafka `BaseProducer`, turns batches of lines into Kafka
//! records, and advances the registry as Kafka acknowledges them.
//!
//! A file's offset advances only over lines that are all acknowledged (contiguously, per
//! tailer session), so a crash at any moment resumes at or before the first line Kafka does
//! not have. librdkafka is set never to give up on a record (`message.timeout.ms=0`) and to
//! hold at most 16 MiB: when Kafka is away, `send` reports a full queue, this thread stops
//! taking batches, the tailers' channel fills, and the files themselves are the buffer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use logcollect::shutdown::Shutdown;
use logcollect::{Error, Result};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::metrics::Metrics;
use crate::registry::{lock, Registry};
use crate::tail::{Batch, Source};

/// What the producer needs from the ini file.
pub struct Settings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Longest line; Kafka's message size limit is set above it.
    pub max_line_bytes: usize,
    /// How long a stop waits for acknowledgements.
    pub shutdown_timeout: Duration,
    /// This host, for `client.id`.
    pub host: String,
}

/// Identifies a record in its delivery report.
struct Tag {
    session: u64,
    seq: u64,
}

/// A record whose delivery failed, kept to be sent again.
struct Resend {
    tag: Tag,
    topic: String,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
    timestamp: Option<i64>,
}

/// Delivery reports, collected by the callback and handled after `poll`.
struct Reports {
    done: Vec<Tag>,
    failed: Vec<(KafkaError, Resend)>,
}

struct Context {
    reports: Mutex<Reports>,
    metrics: Arc<Metrics>,
    last_error: Mutex<Option<(String, Instant)>>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.error("kafka");
        // librdkafka repeats the same error while a broker is away: say it every 30 s.
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        let repeat = last
            .as_ref()
            .is_some_and(|(r, at)| r == reason && at.elapsed() < Duration::from_secs(30));
        if !repeat {
            log::error!("kafka: {reason} ({error}); retrying, the files hold the data meanwhile");
            *last = Some((reason.to_string(), Instant::now()));
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<Tag>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<Tag>) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => reports.done.push(*tag),
            Err((error, message)) => reports.failed.push((
                error.clone(),
                Resend {
                    tag: *tag,
                    topic: message.topic().to_string(),
                    key: message.key().unwrap_or_default().to_vec(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers: message.headers().map(|h| h.detach()),
                    timestamp: message.timestamp().to_millis(),
                },
            )),
        }
    }
}

/// Records of one tailer session not yet all acknowledged, in send order.
struct Pending {
    source: Arc<Source>,
    /// Sequence number of the first mark.
    base: u64,
    /// Next sequence number to give out.
    next: u64,
    /// (end offset, acknowledged) per record.
    marks: VecDeque<(u64, bool)>,
}

/// Starts the producer thread. It ends when every sender of `batches` is gone, after
/// waiting up to `shutdown_timeout` for acknowledgements and writing the registry.
pub fn spawn(
    settings: Settings,
    batches: Receiver<Batch>,
    registry: Arc<Mutex<Registry>>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>> {
    let max_message = (settings.max_line_bytes + 64 * 1024).max(1_000_000);
    let context = Context {
        reports: Mutex::new(Reports {
            done: Vec::new(),
            failed: Vec::new(),
        }),
        metrics: metrics.clone(),
        last_error: Mutex::new(None),
    };
    let kafka: BaseProducer<Context> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", format!("log-agent@{}", settings.host))
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        // Never give up on a record; the registry waits for it.
        .set("message.timeout.ms", "0")
        // Bounded memory: past either limit, send() says the queue is full. The count matters
        // for short lines: each record also holds its key and headers.
        .set("queue.buffering.max.kbytes", "16384")
        .set("queue.buffering.max.messages", "20000")
        .set("message.max.bytes", max_message.to_string())
        .create_with_context(context)
        .map_err(|e| Error::Io {
            path: "kafka producer".into(),
            msg: format!("cannot create for brokers {}: {e}", settings.brokers),
        })?;
    let mut producer = ProducerThread {
        kafka,
        batches,
        registry,
        metrics,
        shutdown,
        shutdown_timeout: settings.shutdown_timeout,
        stop_deadline: None,
        pending: HashMap::new(),
        resend: VecDeque::new(),
        last_report: Instant::now(),
        stall_reported: false,
    };
    std::thread::Builder::new()
        .name("producer".into())
        .spawn(move || producer.run())
        .map_err(|e| Error::io("producer thread", "cannot spawn", &e))
}

struct ProducerThread {
    kafka: BaseProducer<Context>,
    batches: Receiver<Batch>,
    registry: Arc<Mutex<Registry>>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    shutdown_timeout: Duration,
    /// Set once a stop is requested: past it, nothing more waits for Kafka.
    stop_deadline: Option<Instant>,
    pending: HashMap<u64, Pending>,
    /// Failed records waiting to be sent again, oldest first, with when to send them.
    resend: VecDeque<(Instant, Resend)>,
    /// Last delivery report, or when records started waiting for one.
    last_report: Instant,
    /// Whether the current wait for Kafka was already reported.
    stall_reported: bool,
}

/// How long a failed record waits before it is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(1);
/// Records waiting this long for any acknowledgement are reported (the broker may be hung
/// without closing its connections, which librdkafka does not report as an error).
const STALL_REPORT_AFTER: Duration = Duration::from_secs(10);

impl ProducerThread {
    fn run(&mut self) {
        loop {
            // 1. Take the next batch; block only when nothing waits for Kafka.
            let busy = self.kafka.in_flight_count() > 0 || !self.resend.is_empty();
            let next = if busy {
                self.batches.recv_timeout(Duration::from_millis(20))
            } else if self.registry_dirty() {
                self.batches.recv_timeout(crate::registry::FLUSH_INTERVAL)
            } else {
                self.batches
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected)
            };
            match next {
                Ok(batch) => self.produce(batch),
                Err(RecvTimeoutError::Timeout) => {}
                // Every tailer has stopped: the agent is shutting down.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // 2. Delivery reports: acknowledgements advance the registry.
            self.serve(Duration::ZERO);
            // 3. Failed records go again after a pause.
            self.resend_due();
            // 4. The registry is written at most once per second.
            self.write_registry(false);
        }
        self.finish();
    }

    /// Sends every line of `batch`, waiting (and serving reports) while librdkafka is full.
    fn produce(&mut self, batch: Batch) {
        if self.kafka.in_flight_count() == 0 && self.resend.is_empty() {
            // Records start waiting now, not when the last report came before an idle time.
            self.last_report = Instant::now();
        }
        let source = batch.source;
        for line in batch.lines {
            let pending = self
                .pending
                .entry(source.session)
                .or_insert_with(|| Pending {
                    source: source.clone(),
                    base: 0,
                    next: 0,
                    marks: VecDeque::new(),
                });
            let tag = Tag {
                session: source.session,
                seq: pending.next,
            };
            pending.next += 1;
            pending.marks.push_back((line.end, false));
            let offset = line.offset.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "host",
                    value: Some(source.host.as_bytes()),
                })
                .insert(Header {
                    key: "path",
                    value: Some(source.entry.path.as_bytes()),
                })
                .insert(Header {
                    key: "offset",
                    value: Some(offset.as_bytes()),
                })
                .insert(Header {
                    key: "file",
                    value: Some(source.identity.as_bytes()),
                });
            if line.truncated {
                headers = headers.insert(Header {
                    key: "truncated",
                    value: Some("true".as_bytes()),
                });
            }
            let mut record = BaseRecord::with_opaque_to(&source.topic, Box::new(tag))
                .key(&source.key)
                .payload(&line.data)
                .headers(headers)
                .timestamp(batch.read_ms);
            loop {
                match self.kafka.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        if self.past_stop_deadline() {
                            return; // not acknowledged: read again at the next start
                        }
                        self.serve(Duration::from_millis(100));
                    }
                    Err((e, back)) => {
                        // Only a record librdkafka can never send gets here (too large).
                        log::error!(
                            "{}: line at offset {} cannot be sent to topic {}: {e}; skipping it",
                            source.entry.path,
                            line.offset,
                            source.topic
                        );
                        self.metrics.error("kafka_send");
                        self.acknowledge(*back.delivery_opaque);
                        break;
                    }
                }
            }
        }
    }

    /// Handles delivery reports for up to `timeout`.
    fn serve(&mut self, timeout: Duration) {
        self.kafka.poll(timeout);
        let (done, failed) = {
            let mut reports = self
                .kafka
                .context()
                .reports
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (
                std::mem::take(&mut reports.done),
                std::mem::take(&mut reports.failed),
            )
        };
        let in_flight = self.kafka.in_flight_count();
        if !done.is_empty() || !failed.is_empty() || in_flight == 0 {
            if self.stall_reported && !done.is_empty() {
                log::info!(
                    "kafka: acknowledging again after {:?}",
                    self.last_report.elapsed()
                );
            }
            self.last_report = Instant::now();
            self.stall_reported = false;
        } else if !self.stall_reported && self.last_report.elapsed() >= STALL_REPORT_AFTER {
            log::warn!(
                "kafka: {in_flight} records waiting {:?} for an acknowledgement; reading pauses when the queue is full, the files hold the data",
                self.last_report.elapsed()
            );
            self.metrics.error("kafka_stalled");
            self.stall_reported = true;
        }
        for tag in done {
            self.acknowledge(tag);
        }
        for (error, resend) in failed {
            let path = self
                .pending
                .get(&resend.tag.session)
                .map(|p| p.source.entry.path.clone());
            if error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) {
                log::error!(
                    "{}: a line is larger than topic {} accepts: {error}; skipping it",
                    path.unwrap_or_default(),
                    resend.topic
                );
                self.metrics.error("kafka_too_large");
                self.acknowledge(resend.tag);
            } else {
                log::warn!(
                    "{}: delivery to {} failed: {error}; sending again",
                    path.unwrap_or_default(),
                    resend.topic
                );
                self.metrics.error("kafka_delivery");
                self.resend
                    .push_back((Instant::now() + RESEND_AFTER, resend));
            }
        }
        self.metrics
            .kafka_queue_depth
            .store(i64::from(self.kafka.in_flight_count()), Relaxed);
    }

    fn resend_due(&mut self) {
        while self
            .resend
            .front()
            .is_some_and(|(at, _)| *at <= Instant::now())
        {
            let Some((_, r)) = self.resend.pop_front() else {
                break;
            };
            let mut record = BaseRecord::with_opaque_to(&r.topic, Box::new(r.tag))
                .key(&r.key)
                .payload(&r.payload);
            if let Some(h) = r.headers.clone() {
                record = record.headers(h);
            }
            if let Some(t) = r.timestamp {
                record = record.timestamp(t);
            }
            if let Err((e, back)) = self.kafka.send(record) {
                log::debug!("resend to {} deferred: {e}", r.topic);
                let tag = *back.delivery_opaque;
                self.resend
                    .push_back((Instant::now() + RESEND_AFTER, Resend { tag, ..r }));
                break;
            }
        }
    }

    /// Marks one record acknowledged and advances its file's offset over every leading
    /// acknowledged record.
    fn acknowledge(&mut self, tag: Tag) {
        let Some(p) = self.pending.get_mut(&tag.session) else {
            return;
        };
        let Some(mark) = tag
            .seq
            .checked_sub(p.base)
            .and_then(|i| p.marks.get_mut(i as usize))
        else {
            return;
        };
        mark.1 = true;
        let mut advanced = None;
        let mut acked = 0;
        while let Some(&(end, true)) = p.marks.front() {
            p.marks.pop_front();
            p.base += 1;
            advanced = Some(end);
            acked += 1;
        }
        let source = p.source.clone();
        if let Some(end) = advanced {
            source.stats.lines_acked.fetch_add(acked, Relaxed);
            source.stats.acked_offset.store(end, Relaxed);
            let e = &source.entry;
            lock(&self.registry).ack(e.dev, e.ino, e.generation, end);
        }
        // A finished session (its tailer moved on) with nothing in flight is dropped.
        if p.marks.is_empty() && Arc::strong_count(&p.source) == 1 {
            self.pending.remove(&tag.session);
        }
    }

    fn registry_dirty(&self) -> bool {
        lock(&self.registry).is_dirty()
    }

    fn write_registry(&mut self, now: bool) {
        let mut registry = lock(&self.registry);
        let written = if now {
            registry.flush()
        } else {
            registry.flush_if_due()
        };
        if let Err(e) = written {
            log::error!("{e}; retrying");
            self.metrics.error("registry");
        }
        self.metrics.registry_writes.store(registry.writes, Relaxed);
    }

    fn past_stop_deadline(&mut self) -> bool {
        if !self.shutdown.is_requested() {
            return false;
        }
        let deadline = *self
            .stop_deadline
            .get_or_insert_with(|| Instant::now() + self.shutdown_timeout);
        Instant::now() >= deadline
    }

    /// At shutdown: waits (bounded) for what is in flight, then writes the registry.
    fn finish(&mut self) {
        while self.kafka.in_flight_count() > 0 || !self.resend.is_empty() {
            if self.past_stop_deadline() {
                log::warn!(
                    "stopping with {} records not acknowledged by Kafka; they are read again at the next start",
                    self.kafka.in_flight_count() as usize + self.resend.len()
                );
                break;
            }
            self.serve(Duration::from_millis(100));
            self.resend_due();
        }
        self.write_registry(true);
    }
}
