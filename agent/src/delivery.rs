//! What the producer thread gets back from librdkafka: delivery reports (acknowledged, or
//! failed with the record to send again) collected by the rdkafka callback, and errors logged
//! without repeating themselves while a broker is away.

use std::sync::{Arc, Mutex};

use logcollect::kafka;
use logcollect::record::FilePartitioner;
use logcollect::sync::lock;
use logcollect::{Error, Result};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::acks::Tag;
use crate::metrics::Metrics;

/// A producer whose delivery reports carry a [`Tag`], keeping each file in its partition.
pub type Kafka = BaseProducer<Context, FilePartitioner>;

/// A record whose delivery failed, kept to be sent again.
pub struct Resend {
    /// Its tag, the same when sent again.
    pub tag: Tag,
    /// Topic.
    pub topic: String,
    key: Vec<u8>,
    /// The line.
    pub payload: Vec<u8>,
    timestamp: Option<i64>,
}

impl Resend {
    /// The record to send again.
    pub fn record(&self) -> BaseRecord<'_, Vec<u8>, Vec<u8>, Tag> {
        let mut record = BaseRecord::with_opaque_to(&self.topic, self.tag)
            .key(&self.key)
            .payload(&self.payload);
        if let Some(t) = self.timestamp {
            record = record.timestamp(t);
        }
        record
    }
}

/// A record handed back by `send`: its payload is a line of a batch, or a resent one's.
impl<P: ToBytes + ?Sized> From<BaseRecord<'_, Vec<u8>, P, Tag>> for Resend {
    fn from(r: BaseRecord<'_, Vec<u8>, P, Tag>) -> Resend {
        Resend {
            tag: r.delivery_opaque,
            topic: r.topic.to_string(),
            key: r.key.cloned().unwrap_or_default(),
            payload: r.payload.map(|p| p.to_bytes().to_vec()).unwrap_or_default(),
            timestamp: r.timestamp,
        }
    }
}

/// Delivery reports since the last [`Context::take_reports`].
#[derive(Default)]
pub struct Reports {
    /// Acknowledged records.
    pub done: Vec<Tag>,
    /// Failed records, with why.
    pub failed: Vec<(KafkaError, Resend)>,
}

/// The rdkafka context of a producer: its reports and error log.
pub struct Context {
    reports: Mutex<Reports>,
    metrics: Arc<Metrics>,
    errors: kafka::ErrorLog,
}

impl Context {
    /// Swaps the reports collected since the last call into `into` (left empty by its
    /// caller), so that both sets of vectors keep their capacity: dropping a large vector
    /// after each poll made glibc consolidate its free lists on the producer's hot path.
    pub fn take_reports(&self, into: &mut Reports) {
        std::mem::swap(&mut *lock(&self.reports), into);
    }
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.error("kafka");
        if let Some(held_back) = self.errors.admit(&kafka::kind(&error), reason) {
            log::error!(
                "kafka: {}; retrying, the files hold the data meanwhile",
                kafka::said(&error, reason, held_back)
            );
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        kafka::log_librdkafka(level, facility, message);
    }
}

impl ProducerContext<FilePartitioner> for Context {
    type DeliveryOpaque = Tag;

    fn get_custom_partitioner(&self) -> Option<&FilePartitioner> {
        Some(&FilePartitioner)
    }

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Tag) {
        let mut reports = lock(&self.reports);
        match result {
            Ok(_) => {
                if let Some(ended) = self.errors.recovered() {
                    log::info!("kafka: records acknowledged again, after {ended}");
                }
                reports.done.push(tag)
            }
            Err((error, message)) => reports.failed.push((
                error.clone(),
                Resend {
                    tag,
                    topic: message.topic().to_string(),
                    key: message.key().unwrap_or_default().to_vec(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    timestamp: message.timestamp().to_millis(),
                },
            )),
        }
    }
}

/// A producer with `config` and its own delivery reports.
pub fn create(config: &ClientConfig, metrics: &Arc<Metrics>) -> Result<Kafka> {
    let context = Context {
        reports: Mutex::new(Reports::default()),
        metrics: metrics.clone(),
        errors: kafka::ErrorLog::default(),
    };
    config
        .create_with_context(context)
        .map_err(|e| Error::Kafka {
            brokers: config.get("bootstrap.servers").unwrap_or_default().into(),
            msg: format!("cannot create the producer: {e}"),
        })
}

/// [`create`], for a replacement: a failure is logged, and tried again by the caller later.
pub fn fresh(config: &ClientConfig, metrics: &Arc<Metrics>) -> Option<Kafka> {
    create(config, metrics)
        .map_err(|e| log::error!("{e}; retrying"))
        .ok()
}

/// Whether Kafka can never take this record (too large), as opposed to not now.
pub fn never_sendable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}
