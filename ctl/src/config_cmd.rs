//! `logctl config`: the values the fleet runs on, `collect_log_conf` (global or per host) and
//! `elasticsearch_config`. Values are checked with the daemons' own validation
//! (`logcollect::collect`), so logctl refuses exactly what a daemon would refuse, with the
//! same message; writes are compare-and-swap on the key's `mod_revision`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use logcollect::collect::{parse_collect_conf, parse_es_config};
use logcollect::etcd::{KeyValue, Swap};
use logcollect::fleet::{Status, STATUS_PREFIX};
use logcollect::{Error, Result};
use serde_json::{json, Value};

use crate::target::Target;
use crate::{Outcome, Output};

/// The subcommands of `logctl config`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the value in force (for --host: its own key if set, else the global one).
    Get(Which),
    /// Write a value from FILE (or stdin), after validating it; refused if the key changed
    /// since --if-revision (or since it was read just before writing).
    Put(PutArgs),
    /// Open the value in $EDITOR; on save it is validated and written unless someone else
    /// wrote the key meanwhile.
    Edit(Which),
    /// Check a value from FILE (or stdin) as the daemons would, without writing it.
    Validate(FileArgs),
    /// Show what a put of FILE (or stdin) would change, and which running daemons it reaches.
    Diff(FileArgs),
}

/// Which key.
#[derive(Args)]
pub struct Which {
    /// The per-host collect key of this host (name or address).
    #[arg(long, value_name = "H")]
    host: Option<String>,
    /// `elasticsearch_config` instead of the collect configuration.
    #[arg(long, conflicts_with = "host")]
    es: bool,
}

/// A value from a file or stdin, for a key.
#[derive(Args)]
pub struct FileArgs {
    #[command(flatten)]
    which: Which,
    /// The file with the value; `-` or none: stdin.
    file: Option<PathBuf>,
}

/// `config put`.
#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    value: FileArgs,
    /// Write only if the key's mod_revision is still R (from `config get -o json`); 0: only
    /// if the key does not exist.
    #[arg(long, value_name = "R")]
    if_revision: Option<i64>,
}

/// Runs a `config` subcommand.
pub fn run(target: &Target, command: ConfigCommand, output: Output) -> Result<Outcome> {
    match command {
        ConfigCommand::Get(which) => get(target, &which, output),
        ConfigCommand::Put(args) => {
            let key = key_of(target, &args.value.which);
            let value = read_value(args.value.file.as_deref())?;
            validate(target, &key, &value)?;
            let base = match args.if_revision {
                Some(r) => r,
                None => target.etcd.get(&key)?.map_or(0, |kv| kv.mod_revision),
            };
            write(target, &key, &value, base, output)
        }
        ConfigCommand::Edit(which) => edit(target, &which, output),
        ConfigCommand::Validate(args) => {
            let key = key_of(target, &args.which);
            let value = read_value(args.file.as_deref())?;
            validate(target, &key, &value)?;
            println!("{key}: valid");
            Ok(Outcome::Yes)
        }
        ConfigCommand::Diff(args) => {
            let key = key_of(target, &args.which);
            let value = read_value(args.file.as_deref())?;
            validate(target, &key, &value)?;
            let current = target.etcd.get(&key)?;
            print_diff(&key, current.as_ref(), &value);
            let reached = reached_by(target, &key)?;
            println!(
                "reaches {} running daemon(s){}{}",
                reached.len(),
                if reached.is_empty() { "" } else { ": " },
                reached.join(", ")
            );
            Ok(Outcome::Yes)
        }
    }
}

/// The etcd key a [`Which`] names.
fn key_of(target: &Target, which: &Which) -> String {
    key_for(target, which.host.as_deref(), which.es)
}

/// The key of `elasticsearch_config` (`es`), or of the collect configuration of `host` (none:
/// the global one).
pub fn key_for(target: &Target, host: Option<&str>, es: bool) -> String {
    if es {
        target.es_key.clone()
    } else {
        target.collect_key(host)
    }
}

/// Validates `value` as the daemons would for `key`.
pub fn validate(target: &Target, key: &str, value: &[u8]) -> Result<()> {
    if key == target.es_key {
        parse_es_config(key, value).map(drop)
    } else {
        parse_collect_conf(key, value).map(drop)
    }
}

fn get(target: &Target, which: &Which, output: Output) -> Result<Outcome> {
    let mut key = key_of(target, which);
    let mut kv = target.etcd.get(&key)?;
    if kv.is_none() && which.host.is_some() {
        // No per-host value: the global one is in force for that host.
        eprintln!("{key} has no value; the global collect_log_conf is in force");
        key = target.collect_key(None);
        kv = target.etcd.get(&key)?;
    }
    let Some(kv) = kv else {
        eprintln!("{key} has no value");
        return Ok(Outcome::No);
    };
    match output {
        Output::Json => {
            let value: Value = serde_json::from_slice(&kv.value)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&kv.value)));
            println!(
                "{}",
                json!({ "key": kv.key, "mod_revision": kv.mod_revision, "value": value })
            );
        }
        Output::Table => println!("{}", pretty(&kv.value)),
    }
    Ok(Outcome::Yes)
}

/// Compare-and-swap `value` into `key` over `base` (the revision it was based on).
fn write(target: &Target, key: &str, value: &[u8], base: i64, output: Output) -> Result<Outcome> {
    match target.etcd.put_if(key, value, base)? {
        Swap::Done(revision) => {
            match output {
                Output::Json => println!("{}", json!({ "key": key, "mod_revision": revision })),
                Output::Table => println!("{key}: written at revision {revision}"),
            }
            Ok(Outcome::Yes)
        }
        Swap::Conflict(now) => {
            let at = now.as_ref().map_or(0, |kv| kv.mod_revision);
            eprintln!(
                "logctl: conflict: {key} changed since revision {base} (it is at revision {at}); nothing written. \
                 What your value would change in what is there now:"
            );
            print_diff(key, now.as_ref(), value);
            Ok(Outcome::No)
        }
    }
}

fn edit(target: &Target, which: &Which, output: Output) -> Result<Outcome> {
    let key = key_of(target, which);
    let current = target.etcd.get(&key)?;
    let base = current.as_ref().map_or(0, |kv| kv.mod_revision);
    let start = current
        .as_ref()
        .map_or_else(|| "[]".to_string(), |kv| pretty(&kv.value));
    let file = std::env::temp_dir().join(format!("logctl-{}-{}.json", std::process::id(), base));
    let io = |what: &str, e: std::io::Error| Error::io(&file, what, &e);
    std::fs::write(&file, format!("{start}\n")).map_err(|e| io("cannot write", e))?;
    let editor = std::env::var("EDITOR")
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".into());
    loop {
        // $EDITOR may carry arguments ("code -w"): let the shell split it.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&file)
            .status()
            .map_err(|e| io("cannot start the editor", e))?;
        if !status.success() {
            let _ = std::fs::remove_file(&file);
            eprintln!("logctl: the editor exited with {status}; nothing written");
            return Ok(Outcome::No);
        }
        let value = std::fs::read(&file).map_err(|e| io("cannot read", e))?;
        if value.trim_ascii() == start.as_bytes().trim_ascii() {
            let _ = std::fs::remove_file(&file);
            println!("{key}: unchanged");
            return Ok(Outcome::Yes);
        }
        match validate(target, &key, &value) {
            Ok(()) => {
                let _ = std::fs::remove_file(&file);
                return write(target, &key, &value, base, output);
            }
            Err(e) => {
                eprintln!("logctl: {e}");
                eprintln!("press Enter to edit again, or type q to quit without writing");
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if answer.trim() == "q" {
                    let _ = std::fs::remove_file(&file);
                    return Ok(Outcome::No);
                }
            }
        }
    }
}

/// The value in FILE, or stdin for none or `-`.
fn read_value(file: Option<&Path>) -> Result<Vec<u8>> {
    match file {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).map_err(|e| Error::io(path, "cannot read", &e))
        }
        _ => {
            let mut value = Vec::new();
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| Error::io(Path::new("<stdin>"), "cannot read", &e))?;
            Ok(value)
        }
    }
}

/// A value for people: a JSON array one element per line (so a diff is one line per
/// entry), other JSON pretty-printed, anything else as it is.
pub fn pretty(value: &[u8]) -> String {
    match serde_json::from_slice::<Value>(value) {
        Ok(Value::Array(items)) => {
            let lines: Vec<String> = items.iter().map(|i| format!("  {i}")).collect();
            format!("[\n{}\n]", lines.join(",\n"))
        }
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}

/// Prints a unified diff from what `key` holds to `value`.
fn print_diff(key: &str, current: Option<&KeyValue>, value: &[u8]) {
    println!("{}", diff(key, current, value));
}

/// A unified diff from what `key` holds to `value` (values as [`pretty`] shows them), or
/// "no change to ...".
pub fn diff(key: &str, current: Option<&KeyValue>, value: &[u8]) -> String {
    let old = current.map(|kv| pretty(&kv.value)).unwrap_or_default();
    let new = pretty(value);
    let old_name = current.map_or(format!("{key} (absent)"), |kv| {
        format!("{key} (revision {})", kv.mod_revision)
    });
    if old == new {
        return format!("no change to {old_name}");
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    diff.unified_diff()
        .header(&old_name, &format!("{key} (yours)"))
        .missing_newline_hint(false)
        .to_string()
        .trim_end()
        .to_string()
}

/// The running daemons whose configuration comes from `key` (see [`reaches`]).
fn reached_by(target: &Target, key: &str) -> Result<Vec<String>> {
    Ok(target
        .etcd
        .list(STATUS_PREFIX)?
        .iter()
        .filter_map(|kv| Status::parse(&kv.value))
        .filter(|s| reaches(s, key))
        .map(|s| format!("{}/{}", s.kind, s.name))
        .collect())
}

/// Whether a value put under `key` reaches the daemon of status `s`: it applies that key now,
/// or watches it ahead of the key it applies (a per-host key not yet set).
fn reaches(s: &Status, key: &str) -> bool {
    std::iter::once(&s.config)
        .chain(s.es_config.as_ref())
        .any(|r| {
            let rank = |k: &str| r.keys.iter().position(|x| x == k);
            match (rank(key), r.key.as_deref()) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(i), Some(applied)) => rank(applied).is_none_or(|a| i <= a),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use logcollect::fleet::ConfigReport;

    fn agent(keys: &[&str], applied: Option<&str>) -> Status {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut config = ConfigReport::new(&keys);
        if let Some(k) = applied {
            config.applied(k, 5, "h".into());
        }
        Status {
            config,
            ..Status::default()
        }
    }

    #[test]
    fn which_daemons_a_key_reaches() {
        let host = ["collect_log_web1", "collect_log_conf"];
        // On the plain key: a put of the plain key reaches it, and so would one of its own key.
        let on_plain = agent(&host, Some("collect_log_conf"));
        assert!(reaches(&on_plain, "collect_log_conf"));
        assert!(reaches(&on_plain, "collect_log_web1"));
        // On its own key: the plain key no longer matters to it.
        let on_own = agent(&host, Some("collect_log_web1"));
        assert!(!reaches(&on_own, "collect_log_conf"));
        assert!(reaches(&on_own, "collect_log_web1"));
        // Another host's key, or nothing applied yet.
        assert!(!reaches(&on_plain, "collect_log_web2"));
        assert!(reaches(&agent(&host, None), "collect_log_conf"));
    }

    #[test]
    fn arrays_one_entry_per_line() {
        assert_eq!(
            pretty(br#"[{"topic":"a","path":"/a"},{"path":"/b","topic":"b"}]"#),
            "[\n  {\"path\":\"/a\",\"topic\":\"a\"},\n  {\"path\":\"/b\",\"topic\":\"b\"}\n]"
        );
        assert_eq!(pretty(b"{oops"), "{oops");
    }
}
