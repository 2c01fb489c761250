//! `logctl dlq`: the records the store refused for good, in `{topic}.dlq` with the reason in
//! `dlq.reason` and their origin in `dlq.source`; listed, shown, and replayed to their
//! original topic once the cause (a mapping) is fixed. A replayed record keeps its key and
//! headers, so the transfer gives it the same document id: replaying twice indexes it once.

use std::time::Duration;

use clap::{Args, Subcommand};
use logcollect::record::{dlq_source_topic, dlq_topic, DLQ_REASON, DLQ_SOURCE};
use logcollect::topic::{read_to_end, Outgoing, Writer};
use logcollect::{Error, Result};
use rdkafka::message::Headers;
use rdkafka::Message;
use serde_json::{json, Value};

use crate::target::Target;
use crate::{table, Outcome, Output};

/// The subcommands of `logctl dlq`.
#[derive(Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter: where it is, where it came from, why.
    List(Topic),
    /// Every field of the chosen dead letters.
    Show(Chosen),
    /// Write the chosen dead letters back to their original topic.
    Replay(Chosen),
}

/// A dead-letter topic.
#[derive(Args)]
pub struct Topic {
    /// The topic (its `.dlq` topic is read) or the `.dlq` topic itself.
    topic: String,
}

/// Some records of a dead-letter topic.
#[derive(Args)]
pub struct Chosen {
    #[command(flatten)]
    topic: Topic,
    /// A record, as PARTITION:OFFSET in the dead-letter topic (repeatable).
    #[arg(long = "at", value_name = "P:O", required_unless_present = "all")]
    at: Vec<String>,
    /// Every record of the topic.
    #[arg(long, conflicts_with = "at")]
    all: bool,
}

/// A dead letter as read.
struct Letter {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    value: Vec<u8>,
}

impl Letter {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }

    fn to_json(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
            .collect();
        json!({
            "partition": self.partition,
            "offset": self.offset,
            "source": self.header(DLQ_SOURCE),
            "reason": self.header(DLQ_REASON),
            "key": self.key.as_ref().map(|k| String::from_utf8_lossy(k)),
            "headers": headers,
            "value": String::from_utf8_lossy(&self.value),
        })
    }
}

/// Runs a `dlq` subcommand.
pub fn run(target: &Target, command: DlqCommand, output: Output) -> Result<Outcome> {
    match command {
        DlqCommand::List(t) => {
            let letters = read(target, &t.topic)?;
            match output {
                Output::Json => println!("{}", as_json(&letters)),
                Output::Table => {
                    let rows: Vec<Vec<String>> = letters
                        .iter()
                        .map(|l| {
                            vec![
                                format!("{}:{}", l.partition, l.offset),
                                l.header(DLQ_SOURCE),
                                clip(&l.header(DLQ_REASON), 100),
                                clip(&String::from_utf8_lossy(&l.value), 60),
                            ]
                        })
                        .collect();
                    table::print(&["AT", "SOURCE", "REASON", "VALUE"], &rows);
                }
            }
            Ok(Outcome::Yes)
        }
        DlqCommand::Show(c) => {
            for l in choose(target, &c.topic.topic, &c.at, c.all)? {
                let pretty = serde_json::to_string_pretty(&l.to_json()).unwrap_or_default();
                match output {
                    Output::Json => println!("{}", l.to_json()),
                    Output::Table => println!("{pretty}"),
                }
            }
            Ok(Outcome::Yes)
        }
        DlqCommand::Replay(c) => {
            for (at, topic) in replay(target, &c.topic.topic, &c.at, c.all)? {
                println!("replayed {at} to {topic}");
            }
            Ok(Outcome::Yes)
        }
    }
}

/// Every dead letter of `topic` (or of the `.dlq` topic itself), as `dlq list -o json`.
pub fn list_json(target: &Target, topic: &str) -> Result<Value> {
    Ok(as_json(&read(target, topic)?))
}

fn as_json(letters: &[Letter]) -> Value {
    Value::Array(letters.iter().map(Letter::to_json).collect())
}

/// Writes the dead letters `at` (PARTITION:OFFSET; every one with `all`) back to their
/// original topic, without the `dlq.*` headers, and waits until Kafka has them; returns each
/// one's place and the topic it went to.
pub fn replay(
    target: &Target,
    topic: &str,
    at: &[String],
    all: bool,
) -> Result<Vec<(String, String)>> {
    let letters = choose(target, topic, at, all)?;
    let mut topics = Vec::new();
    for l in &letters {
        let source = l.header(DLQ_SOURCE);
        let topic = dlq_source_topic(&source).ok_or_else(|| Error::Kafka {
            brokers: target.kafka.brokers.clone(),
            msg: format!(
                "record {}:{} has no valid {DLQ_SOURCE} header ({source:?}): its topic is unknown",
                l.partition, l.offset
            ),
        })?;
        topics.push(topic.to_string());
    }
    let mut records = Vec::new();
    for (l, topic) in letters.iter().zip(&topics) {
        records.push(Outgoing {
            topic,
            key: l.key.as_deref(),
            headers: l
                .headers
                .iter()
                .filter(|(k, _)| k != DLQ_REASON && k != DLQ_SOURCE)
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect(),
            value: &l.value,
        });
    }
    Writer::new(&target.kafka, "logctl-replay")?.write_all(&records)?;
    Ok(letters
        .iter()
        .zip(topics)
        .map(|(l, t)| (format!("{}:{}", l.partition, l.offset), t))
        .collect())
}

/// The dead-letter topics in Kafka (`*.dlq`), by name.
pub fn topics(target: &Target) -> Result<Vec<String>> {
    let fail = |e: rdkafka::error::KafkaError| Error::Kafka {
        brokers: target.kafka.brokers.clone(),
        msg: format!("listing topics: {e}"),
    };
    let consumer: rdkafka::consumer::BaseConsumer = target.kafka.client().create().map_err(fail)?;
    let metadata =
        rdkafka::consumer::Consumer::fetch_metadata(&consumer, None, Duration::from_secs(10))
            .map_err(fail)?;
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.ends_with(".dlq"))
        .collect();
    names.sort();
    Ok(names)
}

/// Every record of the dead-letter topic of `topic`.
fn read(target: &Target, topic: &str) -> Result<Vec<Letter>> {
    let dlq = if topic.ends_with(".dlq") {
        topic.to_string()
    } else {
        dlq_topic(topic)
    };
    let mut letters = Vec::new();
    read_to_end(&target.kafka, &dlq, 0, Duration::from_secs(15), |m| {
        letters.push(Letter {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            value: m.payload().unwrap_or_default().to_vec(),
        });
        Ok(())
    })?;
    Ok(letters)
}

/// The records `at` names (each must exist), or all of them.
fn choose(target: &Target, topic: &str, at: &[String], all: bool) -> Result<Vec<Letter>> {
    let letters = read(target, topic)?;
    if all {
        return Ok(letters);
    }
    let mut wanted = Vec::new();
    for at in at {
        let parsed = at
            .split_once(':')
            .and_then(|(p, o)| Some((p.parse::<i32>().ok()?, o.parse::<i64>().ok()?)));
        let Some((p, o)) = parsed else {
            return Err(Error::Setting {
                file: "command line".into(),
                section: String::new(),
                key: "--at".into(),
                msg: format!("{at:?}: expected PARTITION:OFFSET, e.g. 0:12"),
            });
        };
        if !letters.iter().any(|l| (l.partition, l.offset) == (p, o)) {
            return Err(Error::Invalid {
                key: topic.to_string(),
                msg: format!("no dead letter at {p}:{o}"),
            });
        }
        wanted.push((p, o));
    }
    Ok(letters
        .into_iter()
        .filter(|l| wanted.contains(&(l.partition, l.offset)))
        .collect())
}

/// At most `n` characters of `text`, on one line.
fn clip(text: &str, n: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    one_line.chars().take(n - 1).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_to_one_line() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
