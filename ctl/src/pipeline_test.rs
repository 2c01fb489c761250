//! `logctl pipeline test`: the dry run of a collect entry's processors. Lines from stdin are
//! made documents exactly as the transfer would index them (`shared::document::render`, the
//! same routing), after the agent's `include_lines`/`exclude_lines`; nothing is written.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use logcollect::clock::{now_ms, Rfc3339};
use logcollect::collect::{parse_collect_conf, CollectEntry};
use logcollect::document::{render, Position, Record, Rendered};
use logcollect::record::Origin;
use logcollect::routing::Routing;
use logcollect::{host, Error, Result};
use serde_json::{json, Value};

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
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|e| Error::io(std::path::Path::new("<stdin>"), "cannot read", &e))?;
    let mut failed = false;
    for line in dry_run(&target.index_pattern, &key, &raw, &args.entry, &input)? {
        match line {
            DryLine::Excluded(text) => eprintln!("excluded at the agent: {text}"),
            DryLine::Document { doc, failed: f } => {
                failed |= f;
                match output {
                    Output::Json => println!("{doc}"),
                    Output::Table => {
                        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default())
                    }
                }
            }
        }
    }
    Ok(if failed { Outcome::No } else { Outcome::Yes })
}

/// One line of a dry run.
pub enum DryLine {
    /// The agent leaves it out (`include_lines`/`exclude_lines`).
    Excluded(String),
    /// The document the transfer would index (`_index`, `_id`, `_source`), and whether a
    /// processor failed on it.
    Document {
        /// The document.
        doc: Value,
        /// Whether a processor failed.
        failed: bool,
    },
}

/// The dry run of the entry `entry` of the collect value `raw` (of `key`) over the lines of
/// `input`: what the agent leaves out, and each document as the transfer would index it.
pub fn dry_run(
    index_pattern: &str,
    key: &str,
    raw: &[u8],
    entry: &str,
    input: &[u8],
) -> Result<Vec<DryLine>> {
    let entries = parse_collect_conf(key, raw)?;
    let entry = find(&entries, key, entry)?;
    let routing = Routing::new(&entries, index_pattern);
    let hostname = host::hostname();
    let mut offset = 0u64;
    let mut out = Vec::new();
    for line in input.split_inclusive(|b| *b == b'\n') {
        let len = line.len() as u64;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            offset += len;
            continue;
        }
        if !entry.processors.lines.keeps(line) {
            out.push(DryLine::Excluded(
                String::from_utf8_lossy(line).into_owned(),
            ));
            offset += len;
            continue;
        }
        let origin = Origin {
            host: Some(hostname.as_str().into()),
            path: Some(entry.path.as_str().into()),
            offset: Some(offset),
            file: Some("dry-run".into()),
            truncated: false,
            entry: Some(entry.path.as_str().into()),
            agent: Some(format!("{hostname}/{}", env!("CARGO_PKG_VERSION")).into()),
        };
        let record = Record {
            origin: &origin,
            pos: Position {
                topic: &entry.topic,
                partition: 0,
                offset: 0,
            },
            read_ms: now_ms(),
            payload: line,
        };
        let Rendered { placed, source } = render(&routing, record, Rfc3339::of(now_ms()));
        out.push(DryLine::Document {
            doc: json!({ "_index": &*placed.index, "_id": placed.id.as_str(), "_source": source }),
            failed: !placed.failures.is_empty(),
        });
        offset += len;
    }
    Ok(out)
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
