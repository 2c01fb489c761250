//! `logctl pipeline test`: the dry run of a collect entry's processors. Lines from stdin are
//! made documents exactly as the transfer would index them (`shared::document::render`, the
//! same routing), after the agent's `include_lines`/`exclude_lines`; nothing is written.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use logcollect::clock::now_ms;
use logcollect::collect::{parse_collect_conf, CollectEntry};
use logcollect::document::{render, Position, Record};
use logcollect::record::Origin;
use logcollect::routing::Routing;
use logcollect::{host, Error, Result};
use serde_json::json;

use crate::target::Target;
use crate::{Outcome, Output};

/// The subcommands of `logctl pipeline`.
#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Print the documents the lines on stdin would become (one per line; multiline joining
    /// is the agent's and is not applied here).
    Test(TestArgs),
}

/// Options of `pipeline test`.
#[derive(Args)]
pub struct TestArgs {
    /// The `path` of the collect entry whose processors run.
    #[arg(long, value_name = "PATH")]
    entry: String,
    /// A collect_log_conf value to try, instead of the one in etcd.
    #[arg(long, value_name = "FILE")]
    value: Option<PathBuf>,
    /// The per-host collect key of this host, instead of the global one.
    #[arg(long, value_name = "H", conflicts_with = "value")]
    host: Option<String>,
}

/// Runs `pipeline test`; "no" when some processor failed on some line.
pub fn run(target: &Target, command: PipelineCommand, output: Output) -> Result<Outcome> {
    let PipelineCommand::Test(args) = command;
    let (key, raw) = match &args.value {
        Some(file) => (
            "collect_log_conf".to_string(),
            std::fs::read(file).map_err(|e| Error::io(file, "cannot read", &e))?,
        ),
        None => {
            let key = target.collect_key(args.host.as_deref());
            let kv = target.etcd.get(&key)?.ok_or_else(|| Error::Invalid {
                key: key.clone(),
                msg: "no value".into(),
            })?;
            (key, kv.value)
        }
    };
    let entries = parse_collect_conf(&key, &raw)?;
    let entry = find(&entries, &key, &args.entry)?;
    let routing = Routing::new(&entries, &target.index_pattern);
    let hostname = host::hostname();
    let mut offset = 0u64;
    let mut failed = false;
    for line in std::io::stdin().lock().split(b'\n') {
        let mut line =
            line.map_err(|e| Error::io(std::path::Path::new("<stdin>"), "cannot read", &e))?;
        let len = line.len() as u64 + 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            offset += len;
            continue;
        }
        if !entry.processors.lines.keeps(&line) {
            eprintln!("excluded at the agent: {}", String::from_utf8_lossy(&line));
            offset += len;
            continue;
        }
        let origin = Origin {
            host: Some(hostname.clone()),
            path: Some(entry.path.clone()),
            offset: Some(offset),
            file: Some("dry-run".into()),
            truncated: false,
            entry: Some(entry.path.clone()),
            agent: Some(format!("{hostname}/{}", env!("CARGO_PKG_VERSION"))),
        };
        let record = Record {
            origin: &origin,
            pos: Position {
                topic: &entry.topic,
                partition: 0,
                offset: 0,
            },
            read_ms: now_ms(),
            payload: &line,
        };
        let doc = render(&routing, record, now_ms());
        failed |= !doc.failures.is_empty();
        let out = json!({ "_index": doc.index, "_id": doc.id, "_source": doc.source });
        match output {
            Output::Json => println!("{out}"),
            Output::Table => println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default()),
        }
        offset += len;
    }
    Ok(if failed { Outcome::No } else { Outcome::Yes })
}

/// The entry whose `path` is `path`.
fn find<'a>(entries: &'a [CollectEntry], key: &str, path: &str) -> Result<&'a CollectEntry> {
    entries.iter().find(|e| e.path == path).ok_or_else(|| {
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        Error::Invalid {
            key: key.to_string(),
            msg: format!(
                "no entry with path {path:?} (entries: {})",
                paths.join(", ")
            ),
        }
    })
}
