//! Kafka outside the pipeline's own paths: [`read_to_end`] reads a whole topic as it is now
//! (every partition from its start to its high watermark, outside any consumer group, nothing
//! committed); a [`Writer`] writes a few records and waits until Kafka has them all. Dead
//! letters are written (the transfer) and read and replayed (`logctl dlq`) with these, and
//! the tests' `lc-kafka` reads topics with them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::kafka::{self, KafkaSettings};
use crate::{Error, Result};

/// Reads `topic` at `kafka`'s brokers from the start of every partition until at least `min` records
/// arrived and every partition is read to its high watermark; calls `each` for every record.
/// Fails if the topic does not exist within `timeout`, or the records do not arrive within it.
pub fn read_to_end(
    kafka: &KafkaSettings,
    topic: &str,
    min: usize,
    timeout: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<()>,
) -> Result<usize> {
    let fail = |msg: String| Error::Kafka {
        brokers: kafka.brokers.clone(),
        msg,
    };
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", "logcollect-reader-unused")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .first()
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            })
            .unwrap_or_default();
        if !found.is_empty() {
            break found;
        }
        if Instant::now() > deadline {
            return Err(fail(format!("topic {topic} not found")));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for p in &partitions {
        assignment
            .add_partition_offset(topic, *p, Offset::Beginning)
            .map_err(|e| fail(e.to_string()))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| fail(e.to_string()))?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut records = 0usize;
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                use rdkafka::Message;
                next.insert(m.partition(), m.offset() + 1);
                records += 1;
                each(&m)?;
            }
            Some(Err(e)) => log::warn!("reading {topic}: {e}"),
            None => {
                if records >= min && caught_up(&consumer, topic, &partitions, &next) {
                    return Ok(records);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "{topic}: timed out with {records} records (wanted at least {min})"
            )));
        }
    }
}

/// Every partition is read up to its high watermark.
fn caught_up(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    next: &HashMap<i32, i64>,
) -> bool {
    partitions.iter().all(
        |p| match consumer.fetch_watermarks(topic, *p, Duration::from_secs(5)) {
            Ok((low, high)) => next.get(p).copied().unwrap_or(low) >= high,
            Err(_) => false,
        },
    )
}

/// A record to write: topic, key, headers and value.
pub struct Outgoing<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The value.
    pub value: &'a [u8],
}

/// Counts records Kafka did not take, and says librdkafka's errors without repeats.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    errors: kafka::ErrorLog,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(held_back) = self.errors.admit(&kafka::kind(&error), reason) {
            log::error!("kafka: {}", kafka::said(&error, reason, held_back));
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        kafka::log_librdkafka(level, facility, message);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            log::warn!("delivery failed: {e}");
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Writes batches of records and waits until Kafka has every one (acks=all, idempotent).
pub struct Writer {
    producer: BaseProducer<Deliveries>,
    brokers: String,
}

impl Writer {
    /// A writer for `kafka`'s brokers; `client_id` names it in the brokers' logs.
    pub fn new(kafka: &KafkaSettings, client_id: &str) -> Result<Writer> {
        let producer = kafka
            .client()
            .set("client.id", client_id)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create_with_context(Deliveries::default())
            .map_err(|e| Error::Kafka {
                brokers: kafka.brokers.clone(),
                msg: format!("cannot create the producer {client_id}: {e}"),
            })?;
        Ok(Writer {
            producer,
            brokers: kafka.brokers.clone(),
        })
    }

    /// Sends `records` and waits (up to 30 s) until Kafka acknowledged them all.
    pub fn write_all(&self, records: &[Outgoing<'_>]) -> Result<()> {
        let failed = |msg: String| Error::Kafka {
            brokers: self.brokers.clone(),
            msg,
        };
        let failed_before = self.producer.context().failed.load(Ordering::SeqCst);
        for r in records {
            let mut headers = OwnedHeaders::new();
            for &(key, value) in &r.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            let mut record = BaseRecord::to(r.topic).payload(r.value).headers(headers);
            if let Some(key) = r.key {
                record = record.key(key);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        kafka::wait_for_room(&self.producer, Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(failed(format!("{}: {e}", r.topic))),
                }
            }
        }
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(|e| failed(format!("flush: {e}")))?;
        if self.producer.context().failed.load(Ordering::SeqCst) != failed_before {
            return Err(failed("some records were not delivered".into()));
        }
        Ok(())
    }
}
