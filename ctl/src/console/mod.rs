//! `logctl serve`: the web console. One page (HTML, CSS and JavaScript embedded in the binary,
//! no build step, nothing fetched from elsewhere) and a JSON API behind it, served by a few
//! threads over tiny_http. The browser talks only to this server, which talks to the store
//! and etcd: the store's credentials never reach the browser.
//!
//! Pages: search (histogram, sidebar, results, live tail, in context), the fleet, the
//! configuration (checked as you type, saved with compare-and-swap, an entry's processors
//! tried on sample lines) and the dead letters (replayed on demand). A write needs the admin
//! token of `[console] admin_token_file` in a header of its own, which a page of another site
//! cannot send (it would need CORS, which this server never grants); without a token file the
//! console is read-only.

mod config;

use std::collections::HashMap;
use std::sync::Arc;

use clap::Args;
use logcollect::{document, Error, Result};
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::dead_letters;
use crate::pipeline_test::{self, DryLine};
use crate::search::{self, Query};
use crate::status::{self, StatusArgs};
use crate::target::Target;
use crate::Outcome;

/// The page and its script and style, as served.
const ASSETS: [(&str, &str, &str); 3] = [
    ("/", "text/html; charset=utf-8", include_str!("index.html")),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("app.css"),
    ),
];

/// Threads answering requests: a slow search does not hold up the fleet page.
const WORKERS: usize = 4;

/// The header that carries the admin token.
const TOKEN_HEADER: &str = "X-Logcollect-Token";

/// Largest request body read (a configuration value).
const MAX_BODY: u64 = 4 << 20;

/// Bars of the histogram over the time range.
const HISTOGRAM_BARS: i64 = 60;

/// The fields of the sidebar, with their most frequent values among the matches.
const SIDEBAR_FIELDS: [&str; 3] = ["event.dataset", "host.name", "log.file.path"];

/// Lines shown before and after a line "in context".
const CONTEXT_LINES: usize = 10;

/// Options of `logctl serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default: the console has no login).
    #[arg(long, default_value = "127.0.0.1:9180", value_name = "ADDR")]
    listen: String,
    #[command(flatten)]
    status: StatusArgs,
}

/// Runs the console until the process is stopped.
pub fn run(target: Target, args: ServeArgs) -> Result<Outcome> {
    let server = Server::http(&args.listen).map_err(|e| Error::System {
        what: format!("listen on {}", args.listen),
        msg: e.to_string(),
    })?;
    let token = target
        .admin_token_file
        .as_deref()
        .map(logcollect::secret::read_line)
        .transpose()?;
    eprintln!(
        "logctl: console on http://{}/ ({})",
        args.listen,
        if token.is_some() {
            "writes with the admin token"
        } else {
            "read-only: no [console] admin_token_file"
        }
    );
    let shared = Arc::new((server, target, args, token));
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let shared = shared.clone();
            logcollect::sync::spawn(&format!("console-{n}"), move || {
                let (server, target, args, token) = &*shared;
                while let Ok(request) = server.recv() {
                    serve(request, target, args, token.as_deref());
                }
            })
        })
        .collect::<Result<_>>()?;
    for w in workers {
        let _ = w.join();
    }
    Ok(Outcome::Yes)
}

fn serve(mut request: Request, target: &Target, args: &ServeArgs, token: Option<&str>) {
    let (path, params) = split_url(request.url());
    let es = params.get("es").is_some_and(|v| v == "1");
    let host = params.get("host").filter(|h| !h.is_empty());
    let key = config::key(target, host.map(String::as_str), es);
    let response =
        match (request.method(), path.as_str()) {
            (Method::Get, "/api/search") => api(search(target, &params)),
            (Method::Get, "/api/context") => api(context(target, &params)),
            (Method::Get, "/api/fleet") => api(status::json(target, &args.status)),
            (Method::Get, "/api/config") => api(config::get(target, &key, es).map(|mut v| {
                v["writable"] = json!(token.is_some());
                v
            })),
            (Method::Post, "/api/config/check") => api(body(&mut request)
                .and_then(|b| config::check(target, &key, es, text(&b, "value")?))),
            (Method::Post, "/api/pipeline") => {
                api(body(&mut request).and_then(|b| dry_run(target, &key, &b)))
            }
            (Method::Get, "/api/dlq") => api(dlq(target, params.get("topic"))),
            (Method::Post, "/api/config") => match allowed(&request, token) {
                Err(refusal) => refusal,
                Ok(()) => api(body(&mut request).and_then(|b| {
                    let base = b["base"]
                        .as_i64()
                        .ok_or_else(|| Error::Usage("base: a revision is required".into()))?;
                    config::save(target, &key, es, text(&b, "value")?, base)
                })),
            },
            (Method::Post, "/api/dlq/replay") => match allowed(&request, token) {
                Err(refusal) => refusal,
                Ok(()) => api(body(&mut request).and_then(|b| replay(target, &b))),
            },
            (Method::Get, p) => match ASSETS.iter().find(|(at, _, _)| *at == p) {
                Some((_, kind, body)) => respond(200, kind, body.as_bytes().to_vec()),
                None => api(Err(Error::Usage(format!("no such page: {p}")))).with_status_code(404),
            },
            (method, p) => {
                api(Err(Error::Usage(format!("no {method} {p} here")))).with_status_code(405)
            }
        };
    let _ = request.respond(response);
}

/// `POST /api/pipeline` `{value, entry, lines}`: the dry run of the entry's processors.
fn dry_run(target: &Target, key: &str, b: &Value) -> Result<Value> {
    let lines = pipeline_test::dry_run(
        &target.index_pattern,
        key,
        text(b, "value")?.as_bytes(),
        text(b, "entry")?,
        text(b, "lines")?.as_bytes(),
    )?;
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|l| match l {
            DryLine::Excluded(line) => json!({ "excluded": line }),
            DryLine::Document { doc, failed } => json!({ "document": doc, "failed": failed }),
        })
        .collect();
    Ok(json!({ "lines": lines }))
}

/// `GET /api/dlq[?topic=]`: the dead-letter topics, or the dead letters of one.
fn dlq(target: &Target, topic: Option<&String>) -> Result<Value> {
    match topic.filter(|t| !t.is_empty()) {
        Some(topic) => dead_letters::list_json(target, topic).map(|l| json!({ "letters": l })),
        None => dead_letters::topics(target).map(|t| json!({ "topics": t })),
    }
}

/// `POST /api/dlq/replay` `{topic, at: ["P:O", ...]}`: those dead letters back to their topic.
fn replay(target: &Target, b: &Value) -> Result<Value> {
    let at: Vec<String> = b["at"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if at.is_empty() {
        return Err(Error::Usage("at: choose at least one dead letter".into()));
    }
    let done = dead_letters::replay(target, text(b, "topic")?, &at, false)?;
    let done: Vec<Value> = done
        .iter()
        .map(|(at, to)| json!({ "at": at, "to": to }))
        .collect();
    Ok(json!({ "replayed": done }))
}

/// Whether a write may go ahead: the console has a token, the request carries it in
/// [`TOKEN_HEADER`], and it comes from this console's own page; else the refusal to send.
fn allowed(request: &Request, token: Option<&str>) -> std::result::Result<(), Answer> {
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    let refuse = |status: u16, msg: &str| {
        Err(respond(
            status,
            "application/json",
            json!({ "error": msg }).to_string().into_bytes(),
        ))
    };
    let Some(token) = token else {
        return refuse(
            403,
            "read-only console: its ini has no [console] admin_token_file",
        );
    };
    // Browsers say where a request comes from; only this page's own may write.
    if header("Sec-Fetch-Site").is_some_and(|s| s != "same-origin" && s != "none") {
        return refuse(403, "a write from another site is refused");
    }
    match header(TOKEN_HEADER) {
        None | Some("") => refuse(401, "the admin token is required for this"),
        Some(given) if given != token => refuse(401, "wrong admin token"),
        Some(_) => Ok(()),
    }
}

/// A request's JSON body.
fn body(request: &mut Request) -> Result<Value> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(request.as_reader(), MAX_BODY),
        &mut text,
    )
    .map_err(|e| Error::Usage(format!("unreadable request body: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::Usage(format!("request body is not JSON: {e}")))
}

/// A string field of a request body.
fn text<'a>(body: &'a Value, field: &str) -> Result<&'a str> {
    body[field]
        .as_str()
        .ok_or_else(|| Error::Usage(format!("{field}: a string is required")))
}

/// An answer of the server.
type Answer = Response<std::io::Cursor<Vec<u8>>>;

/// A JSON answer: the value, or `{"error": ...}` with 502 (the store or etcd failed) or 400.
fn api(result: Result<Value>) -> Answer {
    let (status, body) = match result {
        Ok(v) => (200, v),
        Err(e) => {
            let status = match e {
                Error::Usage(_) | Error::Setting { .. } | Error::Invalid { .. } => 400,
                _ => 502,
            };
            (status, json!({ "error": e.to_string() }))
        }
    };
    respond(status, "application/json", body.to_string().into_bytes())
}

fn respond(status: u16, kind: &str, body: Vec<u8>) -> Answer {
    let mut response = Response::from_data(body).with_status_code(status);
    for (name, value) in [
        ("Content-Type", kind),
        // The page runs only its own script: injected markup could not run any.
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
    ] {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    response
}

/// `GET /api/search?q=&since=&until=&topic=&host=&file=&size=&order=&after=&histogram=`: the
/// hits (each with its sort values, for `after`, the next page), their total, and unless
/// `histogram=0` their count per bar of the range and the sidebar's top values.
fn search(target: &Target, params: &HashMap<String, String>) -> Result<Value> {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    let query = Query {
        query: get("q").unwrap_or_else(|| "*".into()),
        since: search::time_arg(&get("since").unwrap_or_else(|| "15m".into()), "since")?,
        until: get("until")
            .map(|u| search::time_arg(&u, "until"))
            .transpose()?,
        topic: get("topic").map(|t| name("topic", t)).transpose()?,
        host: get("host"),
        file: get("file"),
    };
    let size = get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100usize)
        .min(1000);
    let order = if get("order").as_deref() == Some("asc") {
        "asc"
    } else {
        "desc"
    };
    let mut body = query.body(query.since, size, order);
    body["track_total_hits"] = json!(true);
    if let Some(after) = get("after") {
        body["search_after"] = serde_json::from_str(&after)
            .map_err(|e| Error::Usage(format!("after: {after:?} is not a JSON array: {e}")))?;
    }
    let histogram = get("histogram").as_deref() != Some("0");
    let until = query
        .until
        .unwrap_or_else(logcollect::clock::now_ms)
        .max(query.since + 1);
    // Bars of a whole number of seconds, about HISTOGRAM_BARS over the range.
    let interval_ms = ((until - query.since) / HISTOGRAM_BARS / 1000).max(1) * 1000;
    if histogram {
        body["aggs"] = json!({ "over_time": { "date_histogram": {
            "field": "@timestamp",
            "fixed_interval": format!("{interval_ms}ms"),
            "min_doc_count": 0,
            "extended_bounds": { "min": query.since, "max": until },
        }}});
        for field in SIDEBAR_FIELDS {
            body["aggs"][field] = json!({ "terms": { "field": field, "size": 5 } });
        }
    }
    let store = search::store(target)?;
    let answer = store.answer(&query.index(), &body)?;
    let buckets: Vec<Value> = answer
        .pointer("/aggregations/over_time/buckets")
        .and_then(Value::as_array)
        .map(|b| {
            b.iter()
                .map(|b| json!([b["key"], b["doc_count"]]))
                .collect()
        })
        .unwrap_or_default();
    let hits: Vec<Value> = answer
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .map(|h| {
            h.iter()
                .map(|h| json!({ "_id": h["_id"], "_index": h["_index"], "_source": h["_source"], "sort": h["sort"] }))
                .collect()
        })
        .unwrap_or_default();
    let mut fields = serde_json::Map::new();
    for field in SIDEBAR_FIELDS {
        if let Some(buckets) = answer["aggregations"][field]["buckets"].as_array() {
            let top: Vec<Value> = buckets
                .iter()
                .map(|b| json!([b["key"], b["doc_count"]]))
                .collect();
            fields.insert(field.to_string(), json!(top));
        }
    }
    Ok(json!({
        "fields": fields,
        "hits": hits,
        "total": answer.pointer("/hits/total/value").cloned().unwrap_or(json!(hits.len())),
        "took_ms": answer["took"],
        "since": query.since,
        "until": until,
        "histogram": { "interval_ms": interval_ms, "buckets": buckets },
    }))
}

/// `GET /api/context?index=&id=`: the line with that id, and the lines just before and after
/// it in the same file (same host, path and file identity), by offset.
fn context(target: &Target, params: &HashMap<String, String>) -> Result<Value> {
    let need = |k: &str| {
        params
            .get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Usage(format!("{k} is required")))
    };
    let (index, id) = (name("index", need("index")?.clone())?, need("id")?);
    let store = search::store(target)?;
    let found = store.search(&index, &json!({ "query": { "ids": { "values": [id] } } }))?;
    let line = found
        .first()
        .ok_or_else(|| Error::Usage(format!("no document {id} in {index}")))?;
    let s = &line["_source"];
    let offset = s["log"]["offset"]
        .as_u64()
        .ok_or_else(|| Error::Usage(format!("document {id} has no log.offset")))?;
    let mut same = Vec::new();
    for (field, value) in [
        ("host.name", &s["host"]["name"]),
        ("log.file.path", &s["log"]["file"]["path"]),
        ("log.file.identity", &s["log"]["file"]["identity"]),
    ] {
        if !value.is_null() {
            same.push(json!({ "term": { field: value } }));
        }
    }
    let side = |range: &str, order: &str| -> Result<Vec<Value>> {
        let mut filter = same.clone();
        filter.push(json!({ "range": { "log.offset": { range: offset } } }));
        store.search(
            "*,-.*",
            &json!({
                "size": CONTEXT_LINES,
                "sort": [{ "log.offset": { "order": order } }],
                "query": { "bool": { "filter": filter } },
            }),
        )
    };
    let mut before = side("lt", "desc")?;
    before.reverse();
    let after = side("gt", "asc")?;
    let pick =
        |h: &Value| json!({ "_id": h["_id"], "_index": h["_index"], "_source": h["_source"] });
    Ok(json!({
        "before": before.iter().map(pick).collect::<Vec<_>>(),
        "line": pick(line),
        "after": after.iter().map(pick).collect::<Vec<_>>(),
    }))
}

/// A topic or index name from the URL, which goes into the store's URL path: refused if it
/// holds a character Elasticsearch forbids in names, or `%` or `&`.
fn name(what: &str, value: String) -> Result<String> {
    match value
        .chars()
        .find(|c| document::FORBIDDEN_IN_NAMES.contains(*c) || matches!(c, '%' | '&'))
    {
        Some(c) => Err(Error::Usage(format!(
            "{what} {value:?}: {c:?} is not allowed in a name"
        ))),
        None => Ok(value),
    }
}

/// The path and the decoded query parameters of a request URL.
fn split_url(url: &str) -> (String, HashMap<String, String>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    (path.to_string(), params)
}

/// Percent-decoding, `+` as a space (what the page's URLSearchParams sends).
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_decoded() {
        let (path, params) = split_url("/api/search?q=host.name%3Aweb1+AND+%22a%20b%22&since=&x");
        assert_eq!(path, "/api/search");
        assert_eq!(params["q"], "host.name:web1 AND \"a b\"");
        assert_eq!(params["since"], "");
        assert_eq!(params["x"], "");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
    }

    #[test]
    fn names_that_would_change_the_url_are_refused() {
        assert_eq!(
            name("index", "web-2026.11.29".into()).unwrap(),
            "web-2026.11.29"
        );
        assert_eq!(
            name("index", "web/_delete_by_query?q=*".into())
                .unwrap_err()
                .to_string(),
            "index \"web/_delete_by_query?q=*\": '/' is not allowed in a name"
        );
        assert!(name("topic", "a%2Fb".into()).is_err());
    }
}
