//! `logctl`: the operator's tool, in the style of etcdctl and kubectl. It reads and writes the
//! fleet's configuration in etcd (validated by the daemons' own code, written with
//! compare-and-swap), shows the fleet's status from the daemons' heartbeats, searches the
//! store, and reads and replays dead letters.
//!
//! Exit status: 0 success; 1 the answer is "no" (an invalid value, a write conflict, a fleet
//! not all ok, nothing found); 2 a usage or settings error; 3 a service could not be used.

mod config_cmd;
mod console;
mod dead_letters;
mod pipeline_test;
mod search;
mod status;
mod table;
mod target;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use logcollect::Error;

use crate::target::Target;

/// Operates a logcollect fleet: configuration, status, search, dead letters.
#[derive(Parser)]
#[command(name = "logctl", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 ok; 1 the answer is no (invalid value, conflict, fleet not all ok, \
nothing found); 2 usage or settings error; 3 a service could not be used."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where the services are: an ini file of either daemon, or flags (which win).
#[derive(Args)]
struct Global {
    /// A log-agent or log-transfer ini file: its etcd, kafka and elasticsearch sections and its
    /// es_key are used.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// etcd client URLs, comma-separated (default http://127.0.0.1:2379).
    #[arg(long, global = true, value_name = "URLS")]
    endpoints: Option<String>,
    /// Kafka bootstrap servers, for `dlq` (default from the ini, else 127.0.0.1:9092); the
    /// ini's kafka security settings still apply.
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Read, check and change the configuration kept in etcd.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// One row per agent and transfer: state, configuration rollout, backlog, last error.
    Status(status::StatusArgs),
    /// `status`, refreshed every 2 seconds until interrupted.
    Top(status::StatusArgs),
    /// Search the store named in elasticsearch_config, newest first.
    Search(search::SearchArgs),
    /// Read dead-letter topics and replay their records.
    #[command(subcommand)]
    Dlq(dead_letters::DlqCommand),
    /// Try a collect entry's processors on sample lines.
    #[command(subcommand)]
    Pipeline(pipeline_test::PipelineCommand),
    /// The web console: search with live tail, and the fleet.
    Serve(console::ServeArgs),
}

/// What a command found: success, or "no" (exit 1) after it has printed why.
pub enum Outcome {
    /// Exit 0.
    Yes,
    /// Exit 1.
    No,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Target::new(&cli.global).and_then(|target| match cli.command {
        Command::Config(c) => config_cmd::run(&target, c, cli.global.output),
        Command::Status(a) => status::run(&target, &a, cli.global.output),
        Command::Top(a) => status::top(&target, &a),
        Command::Search(a) => search::run(&target, &a, cli.global.output),
        Command::Dlq(c) => dead_letters::run(&target, c, cli.global.output),
        Command::Pipeline(c) => pipeline_test::run(&target, c, cli.global.output),
        Command::Serve(a) => console::run(target, a),
    });
    match result {
        Ok(Outcome::Yes) => ExitCode::SUCCESS,
        Ok(Outcome::No) => ExitCode::from(1),
        Err(e) => {
            eprintln!("logctl: {e}");
            ExitCode::from(match e {
                Error::Invalid { .. } => 1,
                Error::Setting { .. } | Error::Io { .. } => 2,
                _ => 3,
            })
        }
    }
}
