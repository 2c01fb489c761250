//! `logctl serve`: the web console. One page (HTML, CSS and JavaScript embedded in the binary,
//! no build step, nothing fetched from elsewhere) and a JSON API behind it, served by a few
//! threads over tiny_http. The browser talks only to this server, which talks to the store
//! and etcd: the store's credentials never reach the browser.
//!
//! This first part is read-only: search (histogram, results, live tail) and the fleet.

use std::collections::HashMap;
use std::sync::Arc;

use clap::Args;
use logcollect::{document, Error, Result};
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

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
    eprintln!("logctl: console on http://{}/", args.listen);
    let shared = Arc::new((server, target, args));
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let shared = shared.clone();
            logcollect::sync::spawn(&format!("console-{n}"), move || {
                let (server, target, args) = &*shared;
                while let Ok(request) = server.recv() {
                    serve(request, target, args);
                }
            })
        })
        .collect::<Result<_>>()?;
    for w in workers {
        let _ = w.join();
    }
    Ok(Outcome::Yes)
}

fn serve(request: Request, target: &Target, args: &ServeArgs) {
    let (path, params) = split_url(request.url());
    let response = match (request.method(), path.as_str()) {
        (Method::Get, "/api/search") => api(search(target, &params)),
        (Method::Get, "/api/context") => api(context(target, &params)),
        (Method::Get, "/api/fleet") => api(status::json(target, &args.status)),
        (Method::Get, p) => match ASSETS.iter().find(|(at, _, _)| *at == p) {
            Some((_, kind, body)) => respond(200, kind, body.as_bytes().to_vec()),
            None => api(Err(Error::Usage(format!("no such page: {p}")))).with_status_code(404),
        },
        _ => api(Err(Error::Usage("read-only: GET only".into()))).with_status_code(405),
    };
    let _ = request.respond(response);
}

/// A JSON answer: the value, or `{"error": ...}` with 502 (the store or etcd failed) or 400.
fn api(result: Result<Value>) -> Response<std::io::Cursor<Vec<u8>>> {
    let (status, body) = match result {
        Ok(v) => (200, v),
        Err(e) => {
            let status = match e {
                Error::Usage(_) | Error::Setting { .. } => 400,
                _ => 502,
            };
            (status, json!({ "error": e.to_string() }))
        }
    };
    respond(status, "application/json", body.to_string().into_bytes())
}

fn respond(status: u16, kind: &str, body: Vec<u8>) -> Response<std::io::Cursor<Vec<u8>>> {
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
