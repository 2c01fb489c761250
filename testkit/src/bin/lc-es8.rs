//! `lc-es8 LISTEN ANSWERS`: a stand-in for an Elasticsearch 8 node with security on, answering
//! with the Elasticsearch 8 answers in the file ANSWERS (tests/recorded/elasticsearch-8.json,
//! each with its source), for what OpenSearch 2 cannot show:
//!
//! - every request must carry `Authorization: ApiKey <encoded>` with the file's API key;
//!   anything else gets the recorded 401;
//! - `_bulk` accepts `create` into data streams (`logs-*`) only: a new `_id` is answered with
//!   the recorded `created` item naming the backing index (`.ds-<stream>-<date>-000001`), an
//!   `_id` it already holds with the recorded 409, and a document whose `message` contains
//!   `unparsable` with the recorded 400 that carries `failure_store`;
//! - `PUT /_index_template/*` is acknowledged, `GET /` is the recorded root answer.
//!
//! `GET /_stand-in/documents` (not an Elasticsearch API) returns what it holds, as
//! `{"<backing index>": [document, ...]}` in the order written, for the tests to compare.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

/// What the stand-in holds.
#[derive(Default)]
struct Store {
    ids: HashSet<String>,
    documents: BTreeMap<String, Vec<Value>>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, answers] = &args[..] else {
        eprintln!("usage: lc-es8 LISTEN ANSWERS.json");
        std::process::exit(2);
    };
    let recorded: Value = std::fs::read_to_string(answers)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            eprintln!("lc-es8: {answers}: {e}");
            std::process::exit(1);
        });
    let server = Server::http(listen.as_str()).unwrap_or_else(|e| {
        eprintln!("lc-es8: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    eprintln!("lc-es8: {listen}, answers of {answers}");
    let mut store = Store::default();
    for mut request in server.incoming_requests() {
        let (status, body) = answer(&mut request, &recorded, &mut store);
        let mut response = Response::from_data(body.to_string()).with_status_code(status);
        let headers = if status == 401 {
            &recorded["unauthenticated"]["headers"]
        } else {
            &json!({"content-type": "application/json"})
        };
        for (name, value) in headers.as_object().into_iter().flatten() {
            if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_str().unwrap_or("")) {
                response.add_header(h);
            }
        }
        let _ = request.respond(response);
    }
}

fn answer(request: &mut Request, recorded: &Value, store: &mut Store) -> (u16, Value) {
    let expected = format!(
        "ApiKey {}",
        recorded["api_key"]["encoded"].as_str().unwrap_or("")
    );
    let authorized = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Authorization") && h.value.as_str() == expected);
    let url = request.url().to_string();
    let method = request.method().clone();
    if url == "/_stand-in/documents" {
        return (200, json!(store.documents));
    }
    if !authorized {
        let r = &recorded["unauthenticated"];
        return (401, r["body"].clone());
    }
    let mut body = Vec::new();
    if request.as_reader().read_to_end(&mut body).is_err() {
        return (400, json!({"error": "lc-es8: unreadable body"}));
    }
    let gzip = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Content-Encoding") && h.value.as_str() == "gzip");
    if gzip {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .is_err()
        {
            return (400, json!({"error": "lc-es8: body is not gzip"}));
        }
        body = plain;
    }
    match (&method, url.as_str()) {
        (Method::Get, "/") => (200, recorded["root"]["body"].clone()),
        (Method::Put, u) if u.starts_with("/_index_template/") => {
            (200, json!({"acknowledged": true}))
        }
        (Method::Post, u) if u.starts_with("/_bulk") => bulk(&body, recorded, store),
        _ => (
            404,
            json!({"error": format!("lc-es8 does not serve {method} {url}")}),
        ),
    }
}

/// The answer to a `_bulk` body: one recorded item per action.
fn bulk(body: &[u8], recorded: &Value, store: &mut Store) -> (u16, Value) {
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
        .collect();
    let date = logcollect::clock::rfc3339_ms(logcollect::clock::now_ms())[..10].replace('-', ".");
    let mut items = Vec::new();
    for pair in lines.chunks(2) {
        let (action, document) = (&pair[0], pair.get(1).cloned().unwrap_or(Value::Null));
        let Some(meta) = action.get("create") else {
            return (
                400,
                json!({"error": "lc-es8: only create actions, as into a data stream"}),
            );
        };
        let stream = meta["_index"].as_str().unwrap_or_default();
        let id = meta["_id"].as_str().unwrap_or_default().to_string();
        let index = format!(".ds-{stream}-{date}-000001");
        let message = document["message"].as_str().unwrap_or_default();
        let (kind, seq_no) = if message.contains("unparsable") {
            ("unparsable", 0)
        } else if !store.ids.insert(format!("{stream}/{id}")) {
            ("exists", 0)
        } else {
            let held = store.documents.entry(index.clone()).or_default();
            held.push(document);
            ("created", held.len() - 1)
        };
        let item = recorded[kind]
            .to_string()
            .replace("{index}", &index)
            .replace("{id}", &id)
            .replace("\"{seq_no}\"", &seq_no.to_string());
        let mut item: Value = serde_json::from_str(&item).unwrap_or(Value::Null);
        if let Some(o) = item.as_object_mut() {
            o.remove("source");
        }
        items.push(item);
    }
    let errors = items
        .iter()
        .any(|i| i["create"]["status"].as_u64() != Some(201));
    (200, json!({"errors": errors, "took": 3, "items": items}))
}
