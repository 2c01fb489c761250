//! The dead-letter topics: a record Elasticsearch rejects for good (a mapping error) goes to
//! `{topic}.dlq` with the reason in a header, so it never blocks its partition and is not lost.

use logcollect::kafka::KafkaSettings;
use logcollect::record;
use logcollect::topic::{Outgoing, Writer};
use logcollect::Result;

use crate::doc::Doc;

/// Writes rejected records to their dead-letter topic.
pub struct DeadLetters {
    writer: Writer,
}

impl DeadLetters {
    /// A producer for `kafka`'s brokers.
    pub fn new(kafka: &KafkaSettings) -> Result<DeadLetters> {
        Ok(DeadLetters {
            writer: Writer::new(kafka, "log-transfer-dlq")?,
        })
    }

    /// Sends each document's original record to `{topic}.dlq` with headers `dlq.reason` and
    /// `dlq.source` (topic/partition/offset), and waits until Kafka has them all.
    pub fn send(&self, rejected: &[(&Doc, String)]) -> Result<()> {
        let named: Vec<(String, String)> = rejected
            .iter()
            .map(|(doc, _)| {
                let source = format!("{}/{}/{}", doc.topic(), doc.partition, doc.offset);
                (record::dlq_topic(doc.topic()), source)
            })
            .collect();
        let records: Vec<Outgoing<'_>> = rejected
            .iter()
            .zip(&named)
            .map(|((doc, reason), (topic, source))| {
                let mut headers: Vec<(&str, &[u8])> = doc.original.headers().collect();
                headers.push((record::DLQ_REASON, reason.as_bytes()));
                headers.push((record::DLQ_SOURCE, source.as_bytes()));
                Outgoing {
                    topic,
                    key: doc.original.key(),
                    headers,
                    value: doc.original.value(),
                }
            })
            .collect();
        self.writer.write_all(&records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Original, Progress};
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::producer::{BaseProducer, Producer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    use std::time::Duration;

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
            partition: 3,
            offset: 41,
            read_ms: 0,
            original: Original::new(
                "web",
                Some(b"host/var/log/web.log"),
                b"GET / 200",
                [("host", &b"web1"[..])].into_iter(),
            ),
            progress: Progress::of_thread(),
            generation: 0,
        };
        let dead = DeadLetters::new(&KafkaSettings::plaintext(&servers)).unwrap();
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
