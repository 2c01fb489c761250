//! `logctl status` and `logctl top`: one row per daemon, from the status keys the daemons keep
//! alive (`logcollect/status/...`) and the last-seen copies of those that went away
//! (`logcollect/seen/...`), compared with the configuration in etcd now (the rollout).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use clap::Args;
use logcollect::clock::{now_ms, parse_rfc3339_ms};
use logcollect::fleet::{ConfigReport, Status, SEEN_PREFIX, STATUS_PREFIX};
use logcollect::Result;
use serde_json::{json, Value};

use crate::target::Target;
use crate::{table, Outcome, Output};

/// Options of `status` and `top`.
#[derive(Args)]
pub struct StatusArgs {
    /// An agent with more bytes than this not yet in Kafka is lagging.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    lag_bytes: u64,
    /// A transfer with more records than this not yet indexed is lagging.
    #[arg(long, default_value_t = 10_000, value_name = "RECORDS")]
    lag_records: i64,
    /// How long a daemon that went away stays listed as offline.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    offline_for: Duration,
}

/// A daemon's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ok,
    Lagging,
    Error,
    Offline,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Lagging => "lagging",
            State::Error => "error",
            State::Offline => "offline",
        }
    }
}

/// One row: a daemon's status and what logctl makes of it.
struct Row {
    status: Status,
    state: State,
    /// The revision in etcd now of the key that daemon should apply (0: none).
    current_revision: i64,
    /// Why it is not ok.
    why: Option<String>,
}

/// Runs `logctl status`: exit 0 when every daemon is ok.
pub fn run(target: &Target, args: &StatusArgs, output: Output) -> Result<Outcome> {
    let rows = rows(target, args)?;
    match output {
        Output::Json => println!("{}", Value::Array(rows.iter().map(to_json).collect())),
        Output::Table => print_table(&rows),
    }
    Ok(if rows.iter().all(|r| r.state == State::Ok) {
        Outcome::Yes
    } else {
        Outcome::No
    })
}

/// Every daemon's row as `status -o json` prints it (the console's fleet page).
pub fn json(target: &Target, args: &StatusArgs) -> Result<Value> {
    Ok(Value::Array(
        rows(target, args)?.iter().map(to_json).collect(),
    ))
}

/// Runs `logctl top`: the table, refreshed every 2 s, until interrupted.
pub fn top(target: &Target, args: &StatusArgs) -> Result<Outcome> {
    loop {
        // Clear and home, then the table; an error is shown in place of it and retried.
        print!("\x1b[H\x1b[2J");
        println!(
            "logctl top: every 2s, Ctrl-C to quit    {}",
            logcollect::clock::rfc3339_ms(now_ms())
        );
        match rows(target, args) {
            Ok(rows) => print_table(&rows),
            Err(e) => println!("{e}"),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Every daemon, live ones and those offline for less than `offline_for`, by kind and name.
fn rows(target: &Target, args: &StatusArgs) -> Result<Vec<Row>> {
    let live = parse_all(target.etcd.list(STATUS_PREFIX)?, STATUS_PREFIX);
    let seen = parse_all(target.etcd.list(SEEN_PREFIX)?, SEEN_PREFIX);
    let mut revisions = HashMap::new();
    let mut rows = Vec::new();
    for status in live.values() {
        let current = current_revision(target, &status.config, &mut revisions)?;
        let (state, why) = judge(status, current, args);
        rows.push(Row {
            status: status.clone(),
            state,
            current_revision: current,
            why,
        });
    }
    let now = now_ms();
    for (id, status) in seen {
        if live.contains_key(&id) {
            continue;
        }
        let age = parse_rfc3339_ms(&status.updated_at).map_or(i64::MAX, |t| now - t);
        if age > args.offline_for.as_millis() as i64 {
            continue;
        }
        let current = current_revision(target, &status.config, &mut revisions)?;
        rows.push(Row {
            why: Some(format!("no heartbeat since {}", status.updated_at)),
            status,
            state: State::Offline,
            current_revision: current,
        });
    }
    rows.sort_by(|a, b| (&a.status.kind, &a.status.name).cmp(&(&b.status.kind, &b.status.name)));
    Ok(rows)
}

/// Status values by their key's `kind/name` (after `prefix`); values that are not statuses
/// are skipped.
fn parse_all(kvs: Vec<logcollect::etcd::KeyValue>, prefix: &str) -> BTreeMap<String, Status> {
    kvs.iter()
        .filter_map(|kv| {
            let id = kv.key.strip_prefix(prefix)?.to_string();
            Some((id, Status::parse(&kv.value)?))
        })
        .collect()
}

/// The revision the daemon of `report` should be at: that of the first of its keys that has
/// a value (each key read once per invocation).
fn current_revision(
    target: &Target,
    report: &ConfigReport,
    revisions: &mut HashMap<String, i64>,
) -> Result<i64> {
    for key in &report.keys {
        let revision = match revisions.get(key) {
            Some(r) => *r,
            None => {
                let r = target.etcd.get(key)?.map_or(0, |kv| kv.mod_revision);
                revisions.insert(key.clone(), r);
                r
            }
        };
        if revision > 0 {
            return Ok(revision);
        }
    }
    Ok(0)
}

/// The state of a live daemon, and why it is not ok.
fn judge(s: &Status, current: i64, args: &StatusArgs) -> (State, Option<String>) {
    let errors = std::iter::once(&s.config).chain(s.es_config.as_ref());
    if let Some(e) = errors.filter_map(|r| r.error.as_ref()).next() {
        return (State::Error, Some(e.clone()));
    }
    if s.config.mod_revision != current {
        let why = format!(
            "config revision {} applied, {current} in etcd",
            s.config.mod_revision
        );
        return (State::Lagging, Some(why));
    }
    if s.kind == "agent" && s.bytes_behind > args.lag_bytes {
        return (
            State::Lagging,
            Some(format!("{} bytes not yet in Kafka", s.bytes_behind)),
        );
    }
    if s.kind == "transfer" && s.lag > args.lag_records {
        return (
            State::Lagging,
            Some(format!("{} records not yet indexed", s.lag)),
        );
    }
    (State::Ok, s.last_bulk_error.clone())
}

/// Seconds since an RFC 3339 time.
fn age_s(at: Option<&str>) -> Option<f64> {
    let t = parse_rfc3339_ms(at?)?;
    Some((now_ms() - t).max(0) as f64 / 1000.0)
}

fn to_json(r: &Row) -> Value {
    let s = &r.status;
    let mut row = json!({
        "kind": s.kind,
        "name": s.name,
        "version": s.version,
        "state": r.state.as_str(),
        "config_key": s.config.key,
        "config_revision": s.config.mod_revision,
        "current_revision": r.current_revision,
        "config_error": s.config.error,
        "bytes_behind": s.bytes_behind,
        "updated_at": s.updated_at,
        "reason": r.why,
    });
    if s.kind == "agent" {
        row["files"] = json!(s.files_total);
        row["file_reports"] = json!(s.files);
        row["last_ack_age_s"] = json!(age_s(s.last_ack_at.as_deref()));
        row["kafka_queue_depth"] = json!(s.kafka_queue_depth);
    } else {
        row["lag"] = json!(s.lag);
        row["partitions"] = json!(s.partitions);
        row["indexed"] = json!(s.indexed);
        row["dead_lettered"] = json!(s.dead_lettered);
        row["last_bulk_error"] = json!(s.last_bulk_error);
    }
    row
}

fn print_table(rows: &[Row]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = &r.status;
            let backlog = if s.kind == "agent" {
                format!("{} files, {} B behind", s.files_total, s.bytes_behind)
            } else {
                let parts: Vec<String> = s
                    .partitions
                    .iter()
                    .map(|p| format!("{}/{}:{}", p.topic, p.partition, p.lag))
                    .collect();
                format!("lag {} [{}]", s.lag, parts.join(" "))
            };
            let last_ack =
                age_s(s.last_ack_at.as_deref()).map_or("-".into(), |a| format!("{a:.0}s ago"));
            vec![
                s.kind.clone(),
                s.name.clone(),
                s.version.clone(),
                r.state.as_str().into(),
                format!("{}/{}", s.config.mod_revision, r.current_revision),
                backlog,
                if s.kind == "agent" {
                    last_ack
                } else {
                    "-".into()
                },
                r.why.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "KIND", "NAME", "VERSION", "STATE", "CONFIG", "BACKLOG", "LAST-ACK", "REASON",
        ],
        &cells,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: StatusArgs,
    }

    fn status(kind: &str, applied: i64) -> Status {
        let mut config = ConfigReport::new(&["collect_log_conf".into()]);
        config.applied("collect_log_conf", applied, "h".into());
        Status {
            kind: kind.into(),
            config,
            ..Status::default()
        }
    }

    #[test]
    fn states() {
        let args = Wrap::parse_from(["t"]).args;
        let judged = |s: &Status, current| judge(s, current, &args);
        assert_eq!(judged(&status("agent", 7), 7), (State::Ok, None));
        let (state, why) = judged(&status("agent", 6), 7);
        assert_eq!(
            (state, why.as_deref()),
            (State::Lagging, Some("config revision 6 applied, 7 in etcd"))
        );
        let behind = Status {
            bytes_behind: 2 << 20,
            ..status("agent", 7)
        };
        assert_eq!(judged(&behind, 7).0, State::Lagging);
        let lag = Status {
            lag: 10_001,
            ..status("transfer", 7)
        };
        assert_eq!(judged(&lag, 7).0, State::Lagging);
        // A refused value wins over everything else, with the daemon's message.
        let mut refused = status("agent", 6);
        refused
            .config
            .refused(7, "etcd key \"collect_log_conf\": not valid JSON");
        assert_eq!(
            judged(&refused, 7),
            (
                State::Error,
                Some("etcd key \"collect_log_conf\": not valid JSON".into())
            )
        );
    }
}
