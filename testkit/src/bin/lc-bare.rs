//! `lc-bare`: the benchmark's references, each the least a program must do for the job the
//! daemons do, with the daemons' own client settings.
//!
//! `lc-bare produce BROKERS TOPIC FILE` sends each line of FILE as the agent would: its
//! producer settings (`logcollect::record::line_producer`), key and partitioner, the line
//! bytes as the value; and waits until Kafka acknowledged them all. No tailing, registry or
//! acknowledgement tracking per file. Prints `{"records", "secs"}` from the start to the last
//! acknowledgement.
//!
//! `lc-bare consume BROKERS TOPIC RECORDS GROUP` joins GROUP with one rdkafka `BaseConsumer`
//! (the transfer's consumer settings) and reads until RECORDS records arrived, touching each
//! key, payload and header; it does nothing else with them. Prints `{"records", "secs"}`, the
//! seconds counted from the first record to the last (the group join is not counted).
//!
//! `lc-bare load URL DIR WORKERS` sends the bulk bodies recorded in DIR (`lc-faultproxy`'s
//! `record`: `*.gz` gzip-compressed, `*.ndjson` not) to `URL/_bulk` in name order, WORKERS
//! requests in flight, and reads each answer; nothing else. Prints `{"records", "secs"}`:
//! the items answered, and the seconds from the first request to the last answer.
//!
//! `lc-bare render CONF ENTRY FILE` is not a reference but the transfer's own rendering alone:
//! each line of FILE made a document of the collect entry ENTRY of CONF (a `collect_log_conf`
//! value) by `logcollect::document::render_into`, as a bulk worker does, on one thread,
//! without Kafka or HTTP. Prints `{"records", "secs"}`.

use std::io::BufRead;
use std::time::{Duration, Instant};

use logcollect::document::{self, Position, Record};
use logcollect::kafka::{self, KafkaSettings};
use logcollect::record::{self, FileOrigin, FilePartitioner, Origin};
use logcollect::routing::{self, Routing};
use logcollect::{clock, collect};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["consume", brokers, topic, records, group] => match records.parse() {
            Ok(records) => consume(brokers, topic, records, group),
            Err(_) => Err(format!("RECORDS {records:?} is not a number")),
        },
        ["produce", brokers, topic, file] => produce(brokers, topic, file),
        ["load", url, dir, workers] => match workers.parse() {
            Ok(workers) => load(url, dir, workers),
            Err(_) => Err(format!("WORKERS {workers:?} is not a number")),
        },
        ["render", conf, entry, file] => render(conf, entry, file),
        _ => Err(
            "usage: lc-bare produce BROKERS TOPIC FILE | consume BROKERS TOPIC RECORDS GROUP | load URL DIR WORKERS | render CONF ENTRY FILE"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("lc-bare: {e}");
        std::process::exit(1);
    }
}

fn consume(brokers: &str, topic: &str, records: u64, group: &str) -> Result<(), String> {
    let consumer: BaseConsumer = record::line_consumer(&KafkaSettings::plaintext(brokers), group)
        .create()
        .map_err(|e| format!("consumer for {brokers}: {e}"))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribe to {topic}: {e}"))?;
    let (mut n, mut bytes, mut first) = (0u64, 0usize, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < records {
        if Instant::now() > deadline {
            return Err(format!("only {n} of {records} records in 600 s"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
                if let Some(h) = m.headers() {
                    bytes += h
                        .iter()
                        .map(|h| h.value.map_or(0, <[u8]>::len))
                        .sum::<usize>();
                }
            }
            Some(Err(e)) => eprintln!("lc-bare: {e}"),
            None => {}
        }
    }
    let secs = first.map_or(0.0, |t: Instant| t.elapsed().as_secs_f64());
    println!("{{\"records\": {n}, \"bytes\": {bytes}, \"secs\": {secs:.3}}}");
    Ok(())
}

/// The agent's partitioning and nothing else: `flush` waits for the acknowledgements.
struct Bare;

impl ClientContext for Bare {}

impl ProducerContext<FilePartitioner> for Bare {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}

    fn get_custom_partitioner(&self) -> Option<&FilePartitioner> {
        Some(&FilePartitioner)
    }
}

fn produce(brokers: &str, topic: &str, file: &str) -> Result<(), String> {
    let producer: BaseProducer<Bare, FilePartitioner> =
        record::line_producer(&KafkaSettings::plaintext(brokers), "lc-bare", 1_000_000)
            .create_with_context(Bare)
            .map_err(|e| format!("producer for {brokers}: {e}"))?;
    let lines = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let mut lines = std::io::BufReader::with_capacity(64 * 1024, lines);
    let origin = FileOrigin::new(
        "bench-host",
        file,
        &record::identity(1, 2, 3),
        file,
        "lc-bare/0",
    );
    let mut key = Vec::new();
    let start = Instant::now();
    let (mut line, mut offset, mut records) = (Vec::new(), 0u64, 0u64);
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{file}: {e}"))?;
        if n == 0 {
            break;
        }
        origin.key_into(offset, false, &mut key);
        let value = line.strip_suffix(b"\n").unwrap_or(&line);
        let mut next = BaseRecord::to(topic).key(&key).payload(value);
        loop {
            match producer.send(next) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    next = back;
                    kafka::wait_for_room(&producer, Duration::from_millis(100));
                }
                Err((e, _)) => return Err(format!("send to {topic}: {e}")),
            }
        }
        producer.poll(Duration::ZERO);
        offset += n as u64;
        records += 1;
    }
    producer
        .flush(Duration::from_secs(600))
        .map_err(|e| format!("flush to {topic}: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    println!("{{\"records\": {records}, \"secs\": {secs:.3}}}");
    Ok(())
}

fn load(url: &str, dir: &str, workers: usize) -> Result<(), String> {
    let mut bodies = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = entry.map_err(|e| format!("{dir}: {e}"))?.path();
        let body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let gzip = path.extension().is_some_and(|x| x == "gz");
        bodies.push((path, gzip, body));
    }
    bodies.sort_by(|a, b| a.0.cmp(&b.0));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let items = std::sync::atomic::AtomicU64::new(0);
    let url = format!("{}/_bulk", url.trim_end_matches('/'));
    let start = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    use std::sync::atomic::Ordering::Relaxed;
                    while let Some((path, gzip, body)) = bodies.get(next.fetch_add(1, Relaxed)) {
                        let mut request = agent
                            .post(&url)
                            .header("content-type", "application/x-ndjson");
                        if *gzip {
                            request = request.header("content-encoding", "gzip");
                        }
                        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
                        let answer = request
                            .send(&body[..])
                            .and_then(|mut r| {
                                r.body_mut().with_config().limit(1 << 30).read_to_vec()
                            })
                            .map_err(|e| fail(&e))?;
                        let answer: serde_json::Value =
                            serde_json::from_slice(&answer).map_err(|e| fail(&e))?;
                        let n = answer["items"].as_array().map_or(0, Vec::len);
                        items.fetch_add(n as u64, Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().unwrap_or_else(|_| Err("panicked".into())).err())
            .collect()
    });
    if let Some(e) = failures.first() {
        return Err(e.clone());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"records": items.into_inner(), "secs": secs})
    );
    Ok(())
}

fn render(conf: &str, entry: &str, file: &str) -> Result<(), String> {
    let raw = std::fs::read(conf).map_err(|e| format!("{conf}: {e}"))?;
    let entries = collect::parse_collect_conf(conf, &raw).map_err(|e| e.to_string())?;
    let topic = match entries.iter().find(|e| e.path == entry) {
        Some(e) => e.topic.clone(),
        None => return Err(format!("{conf}: no entry with path {entry:?}")),
    };
    let routing = Routing::new(&entries, routing::DEFAULT_INDEX_PATTERN);
    let text = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let (mut body, mut offset) = (Vec::with_capacity(8 << 20), 0u64);
    let mut ingested = clock::Rfc3339::of(clock::now_ms());
    let start = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        let origin = Origin {
            host: Some("bench".into()),
            path: Some(entry.into()),
            offset: Some(offset),
            file: Some("2049:1:1".into()),
            truncated: false,
            entry: Some(entry.into()),
            agent: Some("bench/0".into()),
        };
        let pos = Position {
            topic: &topic,
            partition: 0,
            offset: i as i64,
        };
        let now = clock::now_ms();
        let record = Record {
            origin: &origin,
            pos,
            read_ms: now,
            payload: line,
        };
        // A bulk body's worth at a time, as a worker's buffer, indexed at one time.
        if body.len() > 5 << 20 {
            body.clear();
            ingested = clock::Rfc3339::of(now);
        }
        document::render_into(&routing, record, ingested, &mut body, |_, _| {});
        offset += line.len() as u64 + 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{{\"records\": {}, \"secs\": {secs:.3}}}", lines.len());
    Ok(())
}
