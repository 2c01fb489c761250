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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Progress;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::{Message, Offset, TopicPartitionList};
    use std::sync::Arc;

    #[test]
    fn a_rejected_record_keeps_its_key_value_and_headers_and_says_why() {
        // librdkafka's mock cluster, with the dead-letter topic.
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .unwrap();
        let mock = owner.client().mock_cluster().unwrap();
        mock.create_topic("web.dlq", 1, 1).unwrap();
        let servers = mock.bootstrap_servers();
        let doc = Doc {
            topic: "web".into(),
            partition: 3,
            offset: 41,
            index: "web".into(),
            id: "id".into(),
            source: b"{}".to_vec(),
            key: Some(b"host/var/log/web.log".to_vec()),
            payload: b"GET / 200".to_vec(),
            headers: vec![("host".into(), b"web1".to_vec())],
            progress: Arc::new(Progress::default()),
        };
        let dead = DeadLetters::new(&servers).unwrap();
        dead.send(&[(&doc, "mapper_parsing_exception".into())])
            .unwrap();

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("group.id", "dlq-test")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("web.dlq", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let message = loop {
            assert!(std::time::Instant::now() < deadline, "no dead letter");
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                break m.detach();
            }
        };
        assert_eq!(message.key(), Some(&b"host/var/log/web.log"[..]));
        assert_eq!(message.payload(), Some(&b"GET / 200"[..]));
        let headers: Vec<(String, String)> = message
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                let v = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_string(), v)
            })
            .collect();
        let want = [
            ("host", "web1"),
            ("dlq.reason", "mapper_parsing_exception"),
            ("dlq.source", "web/3/41"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(headers, want);
    }
}
