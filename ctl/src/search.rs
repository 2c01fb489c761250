//! `logctl search`: Discover on the command line. A `query_string` over the documents the
//! transfer indexed (the store named in `elasticsearch_config`), within a time range and the
//! origin filters, newest first; `--follow` keeps printing new matches as they are indexed.

use std::collections::HashMap;
use std::time::Duration;

use clap::Args;
use logcollect::clock::{now_ms, parse_rfc3339_ms, rfc3339_ms};
use logcollect::collect::{parse_es_config, EsConfig};
use logcollect::store::StoreSettings;
use logcollect::tls::TlsFiles;
use logcollect::{Error, Result};
use serde_json::{json, Value};

use crate::target::Target;
use crate::{Outcome, Output};

/// How far back `--follow` looks again for documents indexed late (their time is the line's
/// time at the agent, not the time they were indexed).
const FOLLOW_OVERLAP_MS: i64 = 30_000;

/// Options of `logctl search`.
#[derive(Args)]
pub struct SearchArgs {
    /// Lucene query_string over `message` (fields too: `host.name:web1 AND error`).
    #[arg(default_value = "*")]
    query: String,
    /// Start of the range: a duration back from now (15m, 2h) or an RFC 3339 time.
    #[arg(long, default_value = "15m")]
    since: String,
    /// End of the range, like --since (default: now).
    #[arg(long)]
    until: Option<String>,
    /// Only documents of this topic (its indices `{topic}-*`).
    #[arg(long)]
    topic: Option<String>,
    /// Only lines of this host (`host.name`).
    #[arg(long)]
    host: Option<String>,
    /// Only lines of this file (`log.file.path`).
    #[arg(long)]
    file: Option<String>,
    /// How many matches.
    #[arg(short = 'n', default_value_t = 50)]
    n: usize,
    /// Print the last N matches oldest first, then each new match as it is indexed.
    #[arg(short = 'f', long)]
    follow: bool,
}

/// Runs `logctl search`; "no" when nothing matched (and not following).
pub fn run(target: &Target, args: &SearchArgs, output: Output) -> Result<Outcome> {
    let es = match target.etcd.get(&target.es_key)? {
        Some(kv) => target
            .store
            .with_secrets(parse_es_config(&kv.key, &kv.value)?)?,
        None => {
            return Err(Error::Invalid {
                key: target.es_key.clone(),
                msg: "no value: where the store is is not configured".into(),
            })
        }
    };
    let store = Store::new(es, &target.store);
    let index = args
        .topic
        .as_ref()
        .map_or("*,-.*".to_string(), |t| format!("{t}-*"));
    let since = time_arg(&args.since, "--since")?;
    let until = args
        .until
        .as_deref()
        .map(|u| time_arg(u, "--until"))
        .transpose()?;
    let hits = store.search(&index, &body(args, since, until, args.n, "desc"))?;
    if !args.follow {
        for hit in &hits {
            print_hit(hit, output);
        }
        return Ok(if hits.is_empty() {
            Outcome::No
        } else {
            Outcome::Yes
        });
    }
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut newest = since;
    for hit in hits.iter().rev() {
        note(hit, &mut seen, &mut newest);
        print_hit(hit, output);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let from = newest - FOLLOW_OVERLAP_MS;
        let hits = store.search(&index, &body(args, from.max(since), until, 1000, "asc"))?;
        for hit in &hits {
            if note(hit, &mut seen, &mut newest) {
                print_hit(hit, output);
            }
        }
        seen.retain(|_, t| *t >= newest - 2 * FOLLOW_OVERLAP_MS);
    }
}

/// Remembers a hit; `true` if it is new.
fn note(hit: &Value, seen: &mut HashMap<String, i64>, newest: &mut i64) -> bool {
    let id = hit["_id"].as_str().unwrap_or_default().to_string();
    let t = hit["_source"]["@timestamp"]
        .as_str()
        .and_then(parse_rfc3339_ms)
        .unwrap_or(0);
    *newest = (*newest).max(t);
    seen.insert(id, t).is_none()
}

/// A time argument: a duration back from now, or an RFC 3339 time; in ms since the epoch.
fn time_arg(text: &str, flag: &str) -> Result<i64> {
    if let Ok(back) = humantime::parse_duration(text) {
        return Ok(now_ms() - back.as_millis() as i64);
    }
    parse_rfc3339_ms(text).ok_or_else(|| Error::Setting {
        file: "command line".into(),
        section: String::new(),
        key: flag.into(),
        msg: format!("{text:?}: expected a duration (15m) or an RFC 3339 time"),
    })
}

/// The search request.
fn body(args: &SearchArgs, since: i64, until: Option<i64>, size: usize, order: &str) -> Value {
    let mut range = json!({ "gte": rfc3339_ms(since), "format": "strict_date_optional_time" });
    if let Some(until) = until {
        range["lte"] = json!(rfc3339_ms(until));
    }
    let mut filter = vec![json!({ "range": { "@timestamp": range } })];
    if let Some(host) = &args.host {
        filter.push(json!({ "term": { "host.name": host } }));
    }
    if let Some(file) = &args.file {
        filter.push(json!({ "term": { "log.file.path": file } }));
    }
    json!({
        "size": size,
        "sort": [{ "@timestamp": { "order": order } }, { "log.offset": { "order": order, "unmapped_type": "long" } }],
        "query": { "bool": {
            "must": [{ "query_string": { "query": args.query, "default_field": "message" } }],
            "filter": filter,
        }},
    })
}

fn print_hit(hit: &Value, output: Output) {
    let s = &hit["_source"];
    match output {
        Output::Json => println!(
            "{}",
            json!({ "_index": hit["_index"], "_id": hit["_id"], "_source": s })
        ),
        Output::Table => println!(
            "{} {} {}: {}",
            s["@timestamp"].as_str().unwrap_or("-"),
            s["host"]["name"].as_str().unwrap_or("-"),
            s["log"]["file"]["path"].as_str().unwrap_or("-"),
            s["message"].as_str().unwrap_or_default()
        ),
    }
}

/// The store, over its nodes in order.
struct Store {
    es: EsConfig,
    agent: ureq::Agent,
    /// The TLS settings, to name the one to change when a certificate is refused.
    tls: TlsFiles,
}

impl Store {
    fn new(es: EsConfig, settings: &StoreSettings) -> Store {
        Store {
            es,
            agent: settings.agent(None, Duration::from_secs(30)),
            tls: settings.tls.clone(),
        }
    }

    /// The hits of a search of `index`; the first node that answers is used.
    fn search(&self, index: &str, body: &Value) -> Result<Vec<Value>> {
        let mut last = None;
        for node in &self.es.urls {
            let url =
                format!("{node}/{index}/_search?ignore_unavailable=true&allow_no_indices=true");
            let fail = |msg: String| Error::Http {
                url: format!("{node}/{index}/_search"),
                msg,
            };
            let mut request = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json");
            if let Some(auth) = self.es.authorization() {
                request = request.header("Authorization", &auth);
            }
            let mut response = match request.send(body.to_string()) {
                Ok(r) => r,
                Err(e) => {
                    last = Some(fail(self.tls.describe(&e)));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| fail(format!("reading the answer: {e}")))?;
            if status != 200 {
                return Err(fail(format!("HTTP {status}: {text:.300}")));
            }
            let answer: Value = serde_json::from_str(&text)
                .map_err(|e| fail(format!("answer is not JSON ({e})")))?;
            let hits = answer.pointer("/hits/hits").and_then(Value::as_array);
            return Ok(hits.cloned().unwrap_or_default());
        }
        Err(last.unwrap_or_else(|| Error::Http {
            url: String::new(),
            msg: "elasticsearch_config has no url_address".into(),
        }))
    }
}
