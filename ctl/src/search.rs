//! `logctl search`: Discover on the command line. A `query_string` over the documents the
//! transfer indexed (the store named in `elasticsearch_config`), within a time range and the
//! origin filters, newest first; `--follow` keeps printing new matches as they are indexed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use logcollect::clock::{now_ms, parse_rfc3339_ms, rfc3339_ms};
use logcollect::collect::{parse_es_config, EsConfig};
use logcollect::store::StoreSettings;
use logcollect::sync::lock;
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

/// What is searched for, on the command line or in the console: a query_string over
/// `message`, a time range, and the origin filters.
pub struct Query {
    /// Lucene query_string.
    pub query: String,
    /// Start of the range, ms since the epoch.
    pub since: i64,
    /// End of the range (default: now).
    pub until: Option<i64>,
    /// Only documents of this topic (its indices `{topic}-*`).
    pub topic: Option<String>,
    /// Only lines of this host (`host.name`).
    pub host: Option<String>,
    /// Only lines of this file (`log.file.path`).
    pub file: Option<String>,
}

impl Query {
    /// The indices searched: the topic's, else every index but the hidden ones.
    pub fn index(&self) -> String {
        self.topic
            .as_ref()
            .map_or("*,-.*".to_string(), |t| format!("{t}-*"))
    }

    /// The search request: `size` hits by time (then offset) in `order`, `asc` or `desc`.
    pub fn body(&self, since: i64, size: usize, order: &str) -> Value {
        let mut range = json!({ "gte": rfc3339_ms(since), "format": "strict_date_optional_time" });
        if let Some(until) = self.until {
            range["lte"] = json!(rfc3339_ms(until));
        }
        let mut filter = vec![json!({ "range": { "@timestamp": range } })];
        if let Some(host) = &self.host {
            filter.push(json!({ "term": { "host.name": host } }));
        }
        if let Some(file) = &self.file {
            filter.push(json!({ "term": { "log.file.path": file } }));
        }
        json!({
            "size": size,
            "sort": [{ "@timestamp": { "order": order } }, { "log.offset": { "order": order, "unmapped_type": "long" } }],
            "query": { "bool": {
                "must": [{ "query_string": { "query": self.query, "default_field": "message" } }],
                "filter": filter,
            }},
        })
    }
}

/// The store named in `elasticsearch_config`, with this host's TLS settings and secrets; the
/// same client as the last call while the value is unchanged.
pub fn store(target: &Target) -> Result<Arc<Store>> {
    let Some(kv) = target.etcd.get(&target.es_key)? else {
        return Err(Error::Invalid {
            key: target.es_key.clone(),
            msg: "no value: where the store is is not configured".into(),
        });
    };
    // The console asks for every request (live tail: each second); a client kept while the
    // value is unchanged keeps its connections to the store.
    let mut cached = lock(&target.store_client);
    if let Some((revision, store)) = &*cached {
        if *revision == kv.mod_revision {
            return Ok(store.clone());
        }
    }
    let es = target
        .store
        .with_secrets(parse_es_config(&kv.key, &kv.value)?)?;
    let store = Arc::new(Store::new(es, &target.store));
    *cached = Some((kv.mod_revision, store.clone()));
    Ok(store)
}

/// Runs `logctl search`; "no" when nothing matched (and not following).
pub fn run(target: &Target, args: &SearchArgs, output: Output) -> Result<Outcome> {
    let store = store(target)?;
    let query = Query {
        query: args.query.clone(),
        since: time_arg(&args.since, "--since")?,
        until: args
            .until
            .as_deref()
            .map(|u| time_arg(u, "--until"))
            .transpose()?,
        topic: args.topic.clone(),
        host: args.host.clone(),
        file: args.file.clone(),
    };
    let (index, since) = (query.index(), query.since);
    let hits = store.search(&index, &query.body(since, args.n, "desc"))?;
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
        let hits = store.search(&index, &query.body(from.max(since), 1000, "asc"))?;
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
pub fn time_arg(text: &str, flag: &str) -> Result<i64> {
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

/// What the store said went wrong: the type and reason of its first root cause, and the
/// innermost cause (where a query's parse error is told); else the start of its answer.
fn store_error(text: &str) -> String {
    let start = || text.chars().take(300).collect();
    let Ok(answer) = serde_json::from_str::<Value>(text) else {
        return start();
    };
    let error = &answer["error"];
    let root = error
        .pointer("/root_cause/0")
        .filter(|r| r.is_object())
        .unwrap_or(error);
    let Some(reason) = root["reason"].as_str() else {
        return start();
    };
    let mut said = format!("{}: {reason}", root["type"].as_str().unwrap_or("error"));
    // The chain of causes hangs off the error, or off its first failed shard.
    let mut inner = [&error["caused_by"], &error["failed_shards"][0]["reason"]]
        .into_iter()
        .find(|c| c.is_object());
    while let Some(next) = inner.map(|c| &c["caused_by"]).filter(|c| c.is_object()) {
        inner = Some(next);
    }
    if let Some(deepest) = inner.and_then(|c| c["reason"].as_str()) {
        if !said.contains(deepest) {
            said.push_str(&format!(" ({deepest})"));
        }
    }
    said
}

/// The store, over its nodes in order.
pub struct Store {
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
    pub fn search(&self, index: &str, body: &Value) -> Result<Vec<Value>> {
        let answer = self.answer(index, body)?;
        let hits = answer.pointer("/hits/hits").and_then(Value::as_array);
        Ok(hits.cloned().unwrap_or_default())
    }

    /// The whole answer to a search of `index` (hits, total, aggregations).
    pub fn answer(&self, index: &str, body: &Value) -> Result<Value> {
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
                return Err(fail(format!("HTTP {status}: {}", store_error(&text))));
            }
            return serde_json::from_str(&text)
                .map_err(|e| fail(format!("answer is not JSON ({e})")));
        }
        Err(last.unwrap_or_else(|| Error::Http {
            url: String::new(),
            msg: "elasticsearch_config has no url_address".into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_say_the_cause() {
        // OpenSearch 2.19's answer to an unbalanced query (shortened).
        let parse = r#"{"error":{"root_cause":[{"type":"query_shard_exception","reason":"Failed to parse query [message:(unclosed]","index":"web-2026.11.29"}],"type":"search_phase_execution_exception","reason":"all shards failed","failed_shards":[{"shard":0,"reason":{"type":"query_shard_exception","reason":"Failed to parse query [message:(unclosed]","caused_by":{"type":"parse_exception","reason":"Cannot parse 'message:(unclosed': Encountered \"<EOF>\" at line 1, column 17.","caused_by":{"type":"parse_exception","reason":"Encountered \"<EOF>\" at line 1, column 17."}}}}]},"status":400}"#;
        assert_eq!(
            store_error(parse),
            "query_shard_exception: Failed to parse query [message:(unclosed] (Encountered \"<EOF>\" at line 1, column 17.)"
        );
        assert_eq!(
            store_error("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
