//! The dead-letter topics: a record Elasticsearch rejects for good (a mapping error) goes to
//! `{topic}.dlq` with the reason in a header, so it never blocks its partition and is not lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use logcollect::{Error, Result};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::doc::Doc;

#[derive(Default)]
struct Context {
    failed: AtomicU64,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            log::warn!("dead-letter delivery failed: {e}");
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Writes rejected records to their dead-letter topic.
pub struct DeadLetters {
    producer: BaseProducer<Context>,
    brokers: String,
}

impl DeadLetters {
    /// A producer for `brokers`.
    pub fn new(brokers: &str) -> Result<DeadLetters> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "log-transfer-dlq")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create_with_context(Context::default())
            .map_err(|e| Error::Kafka {
                brokers: brokers.into(),
                msg: format!("cannot create the dead-letter producer: {e}"),
            })?;
        Ok(DeadLetters {
            producer,
            brokers: brokers.into(),
        })
    }

    /// Sends each document's original record to `{topic}.dlq` with headers `dlq.reason` and
    /// `dlq.source` (topic/partition/offset), and waits until Kafka has them all.
    pub fn send(&self, rejected: &[(&Doc, String)]) -> Result<()> {
        let failed = |msg: String| Error::Kafka {
            brokers: self.brokers.clone(),
            msg,
        };
        let failed_before = self.producer.context().failed.load(Ordering::SeqCst);
        for (doc, reason) in rejected {
            let topic = format!("{}.dlq", doc.topic);
            let source = format!("{}/{}/{}", doc.topic, doc.partition, doc.offset);
            let mut headers = OwnedHeaders::new();
            for (k, v) in &doc.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            headers = headers
                .insert(Header {
                    key: "dlq.reason",
                    value: Some(reason.as_bytes()),
                })
                .insert(Header {
                    key: "dlq.source",
                    value: Some(source.as_bytes()),
                });
            let mut record = BaseRecord::to(&topic)
                .payload(&doc.payload)
                .headers(headers);
            if let Some(key) = &doc.key {
                record = record.key(key);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(failed(format!("{topic}: {e}"))),
                }
            }
        }
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(|e| failed(format!("dead-letter flush: {e}")))?;
        if self.producer.context().failed.load(Ordering::SeqCst) != failed_before {
            return Err(failed("some dead-letter records were not delivered".into()));
        }
        Ok(())
    }
}
