//! The producer thread: owns the rdkafka `BaseProducer`, turns batches of lines into Kafka
//! records, and advances the registry as Kafka acknowledges them.
//!
//! A file's offset advances only over lines that are all acknowledged (contiguously, per
//! tailer session), so a crash at any moment resumes at or before the first line Kafka does
//! not have. librdkafka is set never to give up on a record (`message.timeout.ms=0`) and to
//! hold at most 16 MiB: when Kafka is away, `send` reports a full queue, this thread stops
//! taking batches, the tailers' channel fills, and the files themselves are the buffer.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use logcollect::clock::now_ms;
use logcollect::kafka::{self, KafkaSettings};
use logcollect::outage::{self, Outage};
use logcollect::record;
use logcollect::shutdown::Shutdown;
use logcollect::sync::{self, lock};
use logcollect::Result;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig};

use crate::acks::{Acks, Advance, Tag};
use crate::delivery::{self, never_sendable, Kafka, Reports, Resend};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::stuck::StuckWatch;
use crate::tail::{Batch, Source};

/// What the producer needs from the ini file.
pub struct Settings {
    /// The brokers, and how to reach them.
    pub kafka: KafkaSettings,
    /// Longest line; Kafka's message size limit is set above it.
    pub max_line_bytes: usize,
    /// How long a stop waits for acknowledgements.
    pub shutdown_timeout: Duration,
    /// This host, for `client.id`.
    pub host: String,
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
    let client_id = format!("log-agent@{}", settings.host);
    let config = record::line_producer(&settings.kafka, &client_id, max_message);
    let mut producer = ProducerThread::new(
        config,
        batches,
        registry,
        metrics,
        shutdown,
        settings.shutdown_timeout,
    )?;
    sync::spawn("producer", move || producer.run())
}

struct ProducerThread {
    kafka: Kafka,
    /// To create a new producer (after a fatal error, or as the probe).
    config: ClientConfig,
    batches: Receiver<Batch>,
    registry: Arc<Mutex<Registry>>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    shutdown_timeout: Duration,
    /// Set once a stop is requested: past it, nothing more waits for Kafka.
    stop_deadline: Option<Instant>,
    /// Which records of which session are acknowledged.
    acks: Acks<Arc<Source>>,
    /// The vectors delivery reports are swapped into, kept for their capacity.
    reports: Reports,
    /// Failed records waiting to be sent again, oldest first, with when to send them.
    resend: VecDeque<(Instant, Resend)>,
    /// Last delivery report, or when records started waiting for one.
    last_report: Instant,
    /// Whether the current wait for Kafka was already reported.
    stall_reported: bool,
    /// While records wait long for Kafka: whether Kafka answers a second producer.
    stuck: StuckWatch,
    /// Registry writes failing (a full disk): said once per outage.
    registry_outage: Outage,
}

/// How long a failed record waits before it is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(1);
/// Records waiting this long for any acknowledgement are reported (the broker may be hung
/// without closing its connections, which librdkafka does not report as an error).
const STALL_REPORT_AFTER: Duration = Duration::from_secs(10);

impl ProducerThread {
    fn new(
        config: ClientConfig,
        batches: Receiver<Batch>,
        registry: Arc<Mutex<Registry>>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
        shutdown_timeout: Duration,
    ) -> Result<ProducerThread> {
        Ok(ProducerThread {
            kafka: delivery::create(&config, &metrics)?,
            config,
            batches,
            registry,
            metrics,
            shutdown,
            shutdown_timeout,
            stop_deadline: None,
            acks: Acks::default(),
            reports: Reports::default(),
            resend: VecDeque::new(),
            last_report: Instant::now(),
            stall_reported: false,
            stuck: StuckWatch::default(),
            registry_outage: Outage::default(),
        })
    }

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
            // 5. A producer that failed for good, or is stuck, is replaced.
            self.replace_if_fatal();
            self.replace_if_stuck();
        }
        self.finish();
    }

    /// Sends every line of `batch`, waiting (and serving reports) while librdkafka is full.
    fn produce(&mut self, batch: Batch) {
        if !self.save_new_generations() {
            return; // stopping: the lines are read again after the restart
        }
        if self.kafka.in_flight_count() == 0 && self.resend.is_empty() {
            // Records start waiting now, not when the last report came before an idle time.
            self.last_report = Instant::now();
        }
        let source = batch.source;
        // Each line's key, written here and copied by librdkafka: one buffer per batch.
        let mut key = Vec::new();
        for (line, data) in batch.lines.iter() {
            let tag = self.acks.sent(&source, line.end);
            if line.excluded {
                // Nothing to send: done as if Kafka had it, so the offset moves past it.
                source.stats.lines_excluded.fetch_add(1, Relaxed);
                self.acknowledge(tag);
                continue;
            }
            source
                .origin
                .key_into(line.offset, line.truncated, &mut key);
            let mut record = BaseRecord::with_opaque_to(&source.topic, tag)
                .key(&key)
                .payload(data)
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
                        // A full queue can be a stuck producer's: the next one takes it.
                        self.replace_if_stuck();
                    }
                    Err((e, back)) if never_sendable(&e) => {
                        log::error!(
                            "{}: line at offset {} cannot be sent to topic {}: {e}; skipping it",
                            source.entry.path,
                            line.offset,
                            source.topic
                        );
                        self.metrics.error("kafka_send");
                        self.acknowledge(back.delivery_opaque);
                        break;
                    }
                    Err((e, back)) => {
                        // A producer that failed for good, say: the record waits for the next.
                        log::debug!("{}: send deferred: {e}", source.topic);
                        self.resend
                            .push_back((Instant::now() + RESEND_AFTER, Resend::from(back)));
                        break;
                    }
                }
            }
        }
        if let Some(end) = batch.closed_at {
            self.close(&source, end);
        }
    }

    /// The tailer of `source` closed its file, read to `end`.
    fn close(&mut self, source: &Arc<Source>, end: u64) {
        if let Some((source, advance)) = self.acks.closed(source, end) {
            self.apply(&source, advance);
        }
    }

    /// Handles delivery reports, waiting up to `timeout` for the first.
    fn serve(&mut self, timeout: Duration) {
        kafka::wait_for_room(&self.kafka, timeout);
        let mut reports = std::mem::take(&mut self.reports);
        self.kafka.context().take_reports(&mut reports);
        let Reports { done, failed } = &mut reports;
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
        for (source, advance) in self.acks.acked_all(done.drain(..)) {
            self.apply(&source, advance);
        }
        let mut again = 0;
        for (error, resend) in failed.drain(..) {
            if never_sendable(&error) {
                let path = self
                    .acks
                    .source(resend.tag.session)
                    .map(|s| s.entry.path.clone());
                log::error!(
                    "{}: a line is larger than topic {} accepts: {error}; skipping it",
                    path.unwrap_or_default(),
                    resend.topic
                );
                self.metrics.error("kafka_too_large");
                self.acknowledge(resend.tag);
            } else {
                // One line for many: a purge fails every queued record at once.
                if again == 0 {
                    log::warn!(
                        "kafka: delivery to {} failed: {error}; sending again",
                        resend.topic
                    );
                }
                again += 1;
                self.metrics.error("kafka_delivery");
                self.resend
                    .push_back((Instant::now() + RESEND_AFTER, resend));
            }
        }
        if again > 1 {
            log::warn!("kafka: {again} records failed in all; sending them again");
        }
        self.reports = reports;
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
            if let Err((e, _)) = self.kafka.send(r.record()) {
                log::debug!("resend to {} deferred: {e}", r.topic);
                self.resend.push_back((Instant::now() + RESEND_AFTER, r));
                break;
            }
        }
    }

    /// After a fatal error (an idempotence sequence librdkafka can no longer vouch for, e.g.
    /// after a broker hung with requests in flight) a producer sends nothing more: its
    /// records are taken back and sent again through a new one. Kafka may then hold some of
    /// them twice, with identical headers, so their documents keep one id.
    fn replace_if_fatal(&mut self) {
        let Some((code, reason)) = self.kafka.client().fatal_error() else {
            return;
        };
        let Some(fresh) = delivery::fresh(&self.config, &self.metrics) else {
            return;
        };
        log::error!(
            "kafka: the producer failed for good ({code:?}: {reason}); sending its {} unacknowledged records again through a new one",
            self.kafka.in_flight_count()
        );
        self.metrics.error("kafka_fatal");
        self.replace_with(fresh);
    }

    /// A producer stuck without an error is replaced (see [`crate::stuck`]).
    fn replace_if_stuck(&mut self) {
        let waiting = (self.kafka.in_flight_count() > 0).then(|| self.last_report.elapsed());
        let topic = self.acks.waiting().map(|s| s.topic.clone());
        let (config, metrics) = (&self.config, &self.metrics);
        let fresh = || delivery::fresh(config, metrics);
        let Some(fresh) = self.stuck.check(waiting, topic.as_deref(), fresh) else {
            return;
        };
        log::warn!(
            "kafka: {} records unacknowledged for {:?} although Kafka answers for topic {}; sending them again through a new producer",
            self.kafka.in_flight_count(),
            self.last_report.elapsed(),
            topic.unwrap_or_default()
        );
        self.metrics.error("kafka_stuck");
        self.replace_with(fresh);
    }

    /// Purges this producer's records into the resend queue and puts `fresh` in its place.
    fn replace_with(&mut self, fresh: Kafka) {
        // Purged records come back as failed delivery reports, into the resend queue.
        self.kafka.purge(PurgeConfig::default().queue().inflight());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.kafka.in_flight_count() > 0 && Instant::now() < deadline {
            self.serve(Duration::from_millis(100));
        }
        self.serve(Duration::ZERO);
        let left = self.kafka.in_flight_count();
        if left > 0 {
            log::error!("kafka: {left} records could not be taken back from the old producer; their lines are read again at the next start");
        }
        let old = std::mem::replace(&mut self.kafka, fresh);
        // Closing a producer waits for its threads, which a stuck one may never end.
        if let Err(e) = sync::spawn("kafka close", move || drop(old)) {
            log::warn!("kafka: {e}; the old producer is not closed");
        }
        self.last_report = Instant::now();
    }

    /// One record is acknowledged (or skipped for good).
    fn acknowledge(&mut self, tag: Tag) {
        if let Some((source, advance)) = self.acks.acked(tag) {
            self.apply(&source, advance);
        }
    }

    /// Puts what the acknowledgements advanced in the file's counters and registry entry.
    fn apply(&self, source: &Source, advance: Advance) {
        source.stats.lines_acked.fetch_add(advance.lines, Relaxed);
        if advance.lines > 0 {
            source.stats.last_ack_ms.store(now_ms(), Relaxed);
        }
        let e = &source.entry;
        if let Some(end) = advance.offset {
            source.stats.acked_offset.store(end, Relaxed);
            lock(&self.registry).ack(e.dev, e.ino, e.generation, end);
        }
        if advance.finished {
            // Every line of the closed file is in Kafka: nothing to resume.
            lock(&self.registry).forget(e);
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
        match written {
            Ok(()) => self.registry_written(),
            Err(e) => self.registry_failed(&e.to_string(), "the old registry stays as it was"),
        }
        self.metrics.registry_writes.store(registry.writes, Relaxed);
    }

    /// Writes the registry first if a file got a new generation since the last write (see
    /// [`crate::registry::Registry::save_new_generations`]); while it cannot be written,
    /// retries every second. False if a stop came meanwhile.
    fn save_new_generations(&mut self) -> bool {
        loop {
            let saved = lock(&self.registry).save_new_generations();
            match saved {
                Ok(()) => {
                    self.registry_written();
                    return true;
                }
                Err(e) => {
                    self.registry_failed(&e.to_string(), "lines of newly opened files wait for it");
                    if self.shutdown.sleep(Duration::from_secs(1)) {
                        return false;
                    }
                }
            }
        }
    }

    /// A registry write failed: counted, said once per outage (then at a growing interval).
    fn registry_failed(&self, error: &str, meanwhile: &str) {
        self.metrics.error("registry");
        if let Some(held_back) = self.registry_outage.admit("write") {
            log::error!(
                "{error}; {meanwhile}; retrying{}",
                outage::held_back(held_back)
            );
        }
    }

    fn registry_written(&self) {
        if let Some(ended) = self.registry_outage.recovered() {
            log::info!("registry: written again, after {ended}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::Lines;
    use crate::registry::NewFileStart;
    use logcollect::record::FileOrigin;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::BaseProducer;
    use rdkafka::types::RDKafkaRespErr;
    use rdkafka::TopicPartitionList;

    /// A producer thread for brokers `brokers`, without its thread, and a file of three
    /// two-byte lines to send.
    struct Fixture {
        p: ProducerThread,
        source: Arc<Source>,
        dir: std::path::PathBuf,
    }

    impl Fixture {
        fn new(name: &str, brokers: &str) -> Fixture {
            let dir = crate::testing::temp_dir(name);
            let log = dir.join("a.log");
            std::fs::write(&log, b"a\nb\nc\n").unwrap();
            let mut registry = Registry::load(&dir).unwrap();
            let file = std::fs::File::open(&log).unwrap();
            let (entry, _) = registry.open(&log, &file, NewFileStart::Beginning).unwrap();
            let metrics = Arc::new(Metrics::default());
            let mut config = ClientConfig::new();
            config
                .set("bootstrap.servers", brokers)
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .set("message.timeout.ms", "0");
            let (_tx, batches) = crossbeam_channel::bounded(1);
            let (_trigger, shutdown) = Shutdown::new();
            let registry = Arc::new(Mutex::new(registry));
            let timeout = Duration::from_secs(1);
            let p =
                ProducerThread::new(config, batches, registry, metrics, shutdown, timeout).unwrap();
            let source = Arc::new(Source {
                session: 1,
                entry,
                origin: FileOrigin::new("h", "a.log", "1:2:3", "a.log", "h/0"),
                topic: "t".into(),
                stats: Default::default(),
            });
            Fixture { p, source, dir }
        }

        /// Sends lines `lines` (0 to 2) of the file.
        fn send(&mut self, lines: std::ops::Range<u64>) {
            self.send_closing(lines, None);
        }

        /// Sends lines `lines`, and with `closed_at` says the tailer closed the file there.
        fn send_closing(&mut self, lines: std::ops::Range<u64>, closed_at: Option<u64>) {
            self.send_lines(lines, closed_at, &[]);
        }

        /// Sends lines `lines`, those in `excluded` marked excluded.
        fn send_lines(
            &mut self,
            lines: std::ops::Range<u64>,
            closed_at: Option<u64>,
            excluded: &[u64],
        ) {
            let mut batch = Lines::default();
            for n in lines {
                batch.push(2 * n, 2 * n + 2, &[b'a' + n as u8], false);
            }
            // Line n's byte is b'a' + n.
            batch.exclude(|data| excluded.contains(&u64::from(data[0] - b'a')));
            self.p.produce(Batch {
                source: self.source.clone(),
                lines: batch,
                read_ms: 0,
                closed_at,
            });
        }

        /// Whether the producer was taken for stuck `n` times, by its metrics.
        fn stuck_count(&self, n: u64) -> bool {
            let line = "logcollect_agent_errors_total{kind=\"kafka_stuck\"}";
            let text = self.p.metrics.render();
            let got = text.lines().find_map(|l| l.strip_prefix(line));
            got.map_or(0, |v| v.trim().parse().unwrap()) == n
        }

        /// Offsets of the entries in the registry.
        fn registry_offsets(&self) -> Vec<u64> {
            let registry = lock(&self.p.registry);
            registry.open_entries().iter().map(|e| e.offset).collect()
        }

        /// Offset up to which every line is acknowledged.
        fn acked(&self) -> u64 {
            self.source.stats.acked_offset.load(Relaxed)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// librdkafka raises fatal errors only in rare broker states; its test hook fabricates one.
    #[test]
    fn a_fatal_error_hands_every_record_to_a_new_producer() {
        // Nothing answers there: the records stay queued.
        let mut f = Fixture::new("fatal", "127.0.0.1:1");
        f.send(0..2);
        // Both are with librdkafka (its queue length also counts error events: not compared).
        assert!(f.p.resend.is_empty());

        let code = RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
        // SAFETY: a valid producer handle and a NUL-terminated reason.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                f.p.kafka.client().native_ptr(),
                code,
                c"test".as_ptr(),
            );
        }
        // A line sent to the failed producer waits too: it is not skipped.
        f.send(2..3);
        assert_eq!(f.p.resend.len(), 1);

        f.p.replace_if_fatal();
        assert!(f.p.kafka.client().fatal_error().is_none());
        let mut seqs: Vec<u32> = f.p.resend.iter().map(|(_, r)| r.tag.seq).collect();
        seqs.sort();
        assert_eq!(seqs, [0, 1, 2], "every record waits to be sent again");
        assert_eq!(f.p.resend[0].1.payload.len(), 1);
        // Nothing was taken as acknowledged: the file's offset has not moved.
        assert_eq!(f.acked(), 0);
    }

    #[test]
    fn excluded_lines_are_not_sent_but_their_offset_advances() {
        let (_owner, servers) = mock_kafka();
        let mut f = Fixture::new("excluded", &servers);
        // Lines 1 and 2 (the last) are excluded: only line 0 goes to Kafka.
        f.send_lines(0..3, None, &[1, 2]);
        run_until(&mut f, 10, |f| f.acked() == 6);
        assert_eq!(f.acked(), 6, "the offset moves past the excluded lines");
        assert_eq!(f.source.stats.lines_excluded.load(Relaxed), 2);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("group.id", "excluded-test")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("t", 0, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let (_, high) = consumer
            .fetch_watermarks("t", 0, Duration::from_secs(5))
            .unwrap();
        assert_eq!(high, 1, "one record in Kafka");
    }

    /// Runs the producer thread's loop steps (without taking batches) for up to `secs`
    /// seconds, until `done`.
    fn run_until(f: &mut Fixture, secs: u64, done: impl Fn(&Fixture) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(f) && Instant::now() < deadline {
            f.p.serve(Duration::from_millis(50));
            f.p.resend_due();
            f.p.replace_if_stuck();
        }
    }

    /// A librdkafka mock cluster of one broker with topic `t`, which lives as long as the
    /// client returned, and its bootstrap servers.
    fn mock_kafka() -> (BaseProducer, String) {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .unwrap();
        // A view of the client's cluster: dropping it leaves the cluster running.
        let mock = owner.client().mock_cluster().unwrap();
        mock.create_topic("t", 1, 1).unwrap();
        let servers = mock.bootstrap_servers();
        drop(mock);
        (owner, servers)
    }

    /// librdkafka's mock cluster answers metadata at once but the first produce request only
    /// after a minute: the producer is taken for stuck and its records go through the probe.
    #[test]
    fn a_producer_kafka_does_not_answer_is_replaced_while_kafka_answers_others() {
        let (owner, servers) = mock_kafka();
        // SAFETY: the mock cluster lives as long as `owner`; one (error, rtt) pair follows.
        unsafe {
            let cluster =
                rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            rdkafka::bindings::rd_kafka_mock_broker_push_request_error_rtts(
                cluster,
                1,
                0, // Produce
                1,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
                60_000 as std::ffi::c_int,
            );
        }
        let mut f = Fixture::new("stuck", &servers);
        f.p.stuck.after = Duration::from_secs(1);
        f.send(0..3);
        run_until(&mut f, 30, |f| f.acked() == 6);
        assert_eq!(f.acked(), 6, "every line acknowledged");
        assert!(f.stuck_count(1), "replaced once");
    }

    /// The tailer closed the file (renamed away, read to its end, with an empty line after
    /// the last record): its entry stays until every line is acknowledged, then goes.
    #[test]
    fn a_closed_file_leaves_the_registry_once_all_is_acknowledged() {
        let (_owner, servers) = mock_kafka();
        let mut f = Fixture::new("closed", &servers);
        f.send_closing(0..3, Some(7));
        assert_eq!(f.registry_offsets(), [0], "kept while lines are in flight");
        run_until(&mut f, 10, |f| f.registry_offsets().is_empty());
        assert!(f.registry_offsets().is_empty(), "dropped once acknowledged");
        assert_eq!(f.acked(), 7, "acknowledged up to where the file was closed");
        assert!(f.p.acks.is_empty());
    }

    /// A Kafka that answers nobody (a broker that is away, or frozen) is waited for: the
    /// producer is not replaced, its records stay with it.
    #[test]
    fn a_kafka_that_answers_nobody_is_waited_for() {
        let mut f = Fixture::new("away", "127.0.0.1:1");
        f.p.stuck.after = Duration::from_millis(200);
        f.send(0..3);
        run_until(&mut f, 3, |_| false);
        assert!(f.stuck_count(0), "not replaced");
        assert!(f.p.resend.is_empty(), "the records stay with the producer");
        assert_eq!(f.acked(), 0);
    }
}
