//! `lc-kafka`: the tests' independent view of a Kafka topic.
//!
//! `lc-kafka consume BROKERS TOPIC [MIN_RECORDS] [TIMEOUT_S]` reads TOPIC from the start of
//! every partition (no consumer group, nothing committed) until at least MIN_RECORDS arrived
//! and every partition is read to its high watermark, then prints one JSON object per record:
//! `{"partition", "offset", "timestamp", "key", "headers": {...}, "value", "value_b64"}`.
//! Exits 1 if the timeout passes first (printing what it has).
//!
//! `lc-kafka produce BROKERS TOPIC` sends each line of stdin as a record without headers,
//! keyed by its line number. The key spreads records over every partition by hash: keyless
//! records go to one partition at a time (librdkafka's sticky partitioner), which would leave
//! a consumer of the other partitions with nothing to read.
//!
//! `lc-kafka wait BROKERS TOPIC RECORDS [TIMEOUT_S]` waits until TOPIC's partitions hold
//! RECORDS records in all (their high watermarks; the topic may not exist yet), and prints
//! `{"records", "secs"}`, the seconds since it started. Exits 1 if the timeout passes first.
//!
//! `lc-kafka partitions BROKERS TOPIC` prints one JSON object per partition of TOPIC:
//! `{"partition", "leader", "records"}` (the leader's broker id, the high watermark), so a
//! test can find the broker that leads the busiest partition.

use std::io::{BufRead, Write};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;
use serde_json::{json, Map, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["consume", brokers, topic, ref rest @ ..] => {
            let min = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0);
            let timeout = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
            consume(brokers, topic, min, Duration::from_secs(timeout))
        }
        ["produce", brokers, topic] => produce(brokers, topic),
        ["wait", brokers, topic, records, ref rest @ ..] => match records.parse() {
            Ok(records) => {
                let timeout = rest.first().and_then(|s| s.parse().ok()).unwrap_or(600);
                wait(brokers, topic, records, Duration::from_secs(timeout))
            }
            Err(_) => Err(format!("RECORDS {records:?} is not a number")),
        },
        ["partitions", brokers, topic] => partitions(brokers, topic),
        _ => Err("usage: lc-kafka consume BROKERS TOPIC [MIN_RECORDS] [TIMEOUT_S] | produce BROKERS TOPIC | wait BROKERS TOPIC RECORDS [TIMEOUT_S] | partitions BROKERS TOPIC".into()),
    };
    if let Err(e) = result {
        eprintln!("lc-kafka: {e}");
        std::process::exit(1);
    }
}

fn consume(brokers: &str, topic: &str, min: usize, timeout: Duration) -> Result<(), String> {
    let out = std::io::stdout();
    let mut out = out.lock();
    let kafka = logcollect::kafka::KafkaSettings::plaintext(brokers);
    logcollect::topic::read_to_end(&kafka, topic, min, timeout, |m| {
        let mut headers = Map::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                let v = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(header.key.to_string(), json!(v));
            }
        }
        let payload = m.payload().unwrap_or_default();
        let line = json!({
            "partition": m.partition(),
            "offset": m.offset(),
            "timestamp": m.timestamp().to_millis(),
            "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            "headers": Value::Object(headers),
            "value": String::from_utf8_lossy(payload),
            "value_b64": B64.encode(payload),
        });
        writeln!(out, "{line}").map_err(|e| logcollect::Error::System {
            what: "stdout".into(),
            msg: e.to_string(),
        })
    })
    .map(drop)
    .map_err(|e| e.to_string())
}

fn produce(brokers: &str, topic: &str) -> Result<(), String> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        // Retries must not write a record twice: the tests count records exactly.
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| e.to_string())?;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let key = (number + 1).to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(&line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| e.to_string())
}

fn metadata_client(brokers: &str) -> Result<rdkafka::consumer::BaseConsumer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("consumer for {brokers}: {e}"))
}

fn partitions(brokers: &str, topic: &str) -> Result<(), String> {
    let consumer = metadata_client(brokers)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let topic_data = metadata.topics().first().ok_or("no such topic")?;
    for p in topic_data.partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(|e| format!("{topic}/{}: {e}", p.id()))?;
        println!(
            "{}",
            json!({"partition": p.id(), "leader": p.leader(), "records": high})
        );
    }
    Ok(())
}

fn wait(brokers: &str, topic: &str, records: i64, timeout: Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    let consumer = metadata_client(brokers)?;
    let mut held = 0;
    while start.elapsed() < timeout {
        held = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                let partitions = m.topics().first()?.partitions().iter().map(|p| p.id());
                let high = |p| consumer.fetch_watermarks(topic, p, Duration::from_secs(5));
                Some(partitions.map(|p| high(p).map_or(0, |(_, h)| h)).sum())
            })
            .unwrap_or(0);
        if held >= records {
            let secs = start.elapsed().as_secs_f64();
            println!("{}", json!({"records": held, "secs": secs}));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{topic} holds {held} records, not {records}, after {timeout:?}"
    ))
}
