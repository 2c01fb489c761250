//! The small HTTP server both daemons expose: `/metrics` (Prometheus text) and `/health`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::sync::lock;
use crate::{Error, Result};

/// Serves `/metrics` (the text `render` returns) and `/health` on `addr`, from a thread of
/// its own named `metrics`. `/health` answers 200 `ok`, or 503 with what `health` reports
/// wrong.
pub fn serve_metrics(
    addr: &str,
    render: impl Fn() -> String + Send + 'static,
    health: impl Fn() -> std::result::Result<(), String> + Send + 'static,
) -> Result<()> {
    let server = tiny_http::Server::http(addr).map_err(|e| Error::System {
        what: format!("http://{addr}"),
        msg: format!("cannot listen for /metrics: {e}"),
    })?;
    log::info!("serving /metrics and /health on http://{addr}");
    crate::sync::spawn("metrics", move || {
        for request in server.incoming_requests() {
            let (status, body, content_type) = match request.url() {
                "/metrics" => (200, render(), "text/plain; version=0.0.4"),
                "/health" => match health() {
                    Ok(()) => (200, "ok\n".to_string(), "text/plain"),
                    Err(why) => (503, format!("{why}\n"), "text/plain"),
                },
                _ => (
                    404,
                    "not found: try /metrics or /health\n".to_string(),
                    "text/plain",
                ),
            };
            let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                .expect("static header is valid");
            let response = tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header);
            let _ = request.respond(response);
        }
    })?;
    Ok(())
}

/// Escapes a Prometheus label value.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `# HELP` and `# TYPE` for metric `name`.
pub fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Errors counted by kind (`open`, `kafka`, `bulk`, ...), for `/metrics`.
#[derive(Default)]
pub struct ErrorCounts(Mutex<BTreeMap<&'static str, u64>>);

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub fn count(&self, kind: &'static str) {
        *lock(&self.0).entry(kind).or_default() += 1;
    }

    /// The counts by kind.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        lock(&self.0)
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect()
    }

    /// Writes the counter `name` with one `kind` label per kind seen.
    pub fn render(&self, out: &mut String, name: &str) {
        describe(out, name, "counter", "Errors by kind.");
        for (kind, n) in lock(&self.0).iter() {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {n}");
        }
    }
}
