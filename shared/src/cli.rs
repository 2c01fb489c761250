//! The command line both daemons share: `-c/--config PATH`, `--version`, `--help`.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{Error, Result};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon with this ini file.
    Run {
        /// Path of the ini file.
        config: PathBuf,
    },
    /// Print the help text and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// Parses `args` (without the program name). `default_config` is used without `--config`.
pub fn parse(args: impl IntoIterator<Item = OsString>, default_config: &str) -> Result<Command> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut config = PathBuf::from(default_config);
    let usage = |e: lexopt::Error| Error::Usage(format!("{e} (see --help)"));
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('c') | Long("config") => config = parser.value().map_err(usage)?.into(),
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    Ok(Command::Run { config })
}

/// The help text of daemon `name`.
pub fn help(name: &str, about: &str, default_config: &str) -> String {
    format!(
        "{name} {version}\n{about}\n\n\
         Usage: {name} [-c PATH]\n\n\
         Options:\n  \
           -c, --config PATH  ini file to read (default: {default_config})\n  \
           -h, --help         print this help\n  \
           -V, --version      print the version\n\n\
         Environment:\n  \
           RUST_LOG           log filter; wins over [log] level (e.g. RUST_LOG=debug)\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// The whole `main` of a daemon: parses the command line, prints help or version, or calls
/// `run` with the ini path. An error is printed to stderr and the exit code is 1 (2 for usage).
pub fn main(
    name: &str,
    about: &str,
    default_config: &str,
    run: impl FnOnce(&std::path::Path) -> Result<()>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    match parse(std::env::args_os().skip(1), default_config) {
        Ok(Command::Help) => {
            print!("{}", help(name, about, default_config));
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("{name} {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Run { config }) => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("{e}");
                eprintln!("{name}: {e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command> {
        parse(args.iter().map(OsString::from), "conf/agent.ini")
    }

    #[test]
    fn forms() {
        assert_eq!(
            run(&[]).unwrap(),
            Command::Run {
                config: "conf/agent.ini".into()
            }
        );
        assert_eq!(
            run(&["-c", "/etc/a.ini"]).unwrap(),
            Command::Run {
                config: "/etc/a.ini".into()
            }
        );
        assert_eq!(
            run(&["--config=/x.ini"]).unwrap(),
            Command::Run {
                config: "/x.ini".into()
            }
        );
        assert_eq!(run(&["--help"]).unwrap(), Command::Help);
        assert_eq!(run(&["-V"]).unwrap(), Command::Version);
        assert!(run(&["--bogus"])
            .unwrap_err()
            .to_string()
            .contains("--bogus"));
        assert!(run(&["-c"]).is_err());
    }
}
