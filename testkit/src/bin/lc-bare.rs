//! `lc-bare`: the benchmark's references, each the least a program must do for the job the
//! daemons do, with the daemons' own client settings.
//!
//! `lc-bare consume BROKERS TOPIC RECORDS GROUP` joins GROUP with one rdkafka `BaseConsumer`
//! (the transfer's consumer settings) and reads until RECORDS records arrived, touching each
//! payload and header; it does nothing else with them. Prints `{"records", "secs"}`, the
//! seconds counted from the first record to the last (the group join is not counted).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["consume", brokers, topic, records, group] => match records.parse() {
            Ok(records) => consume(brokers, topic, records, group),
            Err(_) => Err(format!("RECORDS {records:?} is not a number")),
        },
        _ => Err("usage: lc-bare consume BROKERS TOPIC RECORDS GROUP".into()),
    };
    if let Err(e) = result {
        eprintln!("lc-bare: {e}");
        std::process::exit(1);
    }
}

fn consume(brokers: &str, topic: &str, records: u64, group: &str) -> Result<(), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", "16384")
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
                bytes += m.payload().map_or(0, <[u8]>::len);
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
