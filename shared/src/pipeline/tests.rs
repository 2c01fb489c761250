use super::*;

fn pipeline(v: Value) -> Pipeline {
    Pipeline::parse(&v).unwrap()
}

fn err(v: Value) -> String {
    Pipeline::parse(&v).unwrap_err()
}

/// The value of the issue, which must work as it is.
fn nginx() -> Value {
    json!([
        {"exclude_lines": ["GET /healthz"]},
        {"dissect": {"field": "message", "tokenizer": "%{source.ip} - %{user.name} [%{ts}] \"%{http.request.method} %{url.original} %{?proto}\" %{http.response.status_code} %{http.response.body.bytes}"}},
        {"timestamp": {"field": "ts", "layouts": ["%d/%b/%Y:%H:%M:%S %z"]}},
        {"convert": {"fields": {"http.response.status_code": "integer", "http.response.body.bytes": "integer"}}},
        {"drop_fields": {"fields": ["ts"]}}
    ])
}

/// A flat document, as the transfer makes them.
fn doc<'a>(message: &str) -> Fields<'a> {
    let mut d = Fields::default();
    d.set("@timestamp".into(), json!("2026-11-28T12:00:00.000Z"));
    d.set("message".into(), json!(message));
    d
}

/// The same with the message borrowed from the record, as the transfer's base document has
/// it: what is dissected from it is borrowed too.
fn record_doc(message: &str) -> Fields<'_> {
    let mut d = Fields::default();
    d.push("@timestamp", Leaf::Text("2026-11-28T12:00:00.000Z".into()));
    d.push("message", Leaf::Text(Cow::Borrowed(message)));
    d
}

#[test]
fn nginx_pipeline() {
    let p = pipeline(nginx());
    assert!(!p
        .lines
        .keeps(b"10.0.0.1 - - [x] \"GET /healthz HTTP/1.1\" 200 2"));
    assert!(p.lines.keeps(b"10.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 2"));
    let line =
        r#"203.0.113.9 - alice [28/Nov/2026:10:00:01 +0100] "GET /api?id=7 HTTP/1.1" 404 153"#;
    let want = json!({
        "@timestamp": "2026-11-28T09:00:01.000Z",
        "message": "203.0.113.9 - alice [28/Nov/2026:10:00:01 +0100] \"GET /api?id=7 HTTP/1.1\" 404 153",
        "source": {"ip": "203.0.113.9"},
        "user": {"name": "alice"},
        "http": {"request": {"method": "GET"}, "response": {"status_code": 404, "body": {"bytes": 153}}},
        "url": {"original": "/api?id=7"}
    });
    for mut d in [doc(line), record_doc(line)] {
        assert_eq!(p.apply(&mut d, 0), []);
        let mut bytes = Vec::new();
        d.write_json(&mut bytes);
        assert_eq!(bytes, serde_json::to_vec(&want).unwrap());
        assert_eq!(d.into_value(), want);
    }
}

#[test]
fn a_failure_keeps_the_document_and_says_why() {
    let p = pipeline(nginx());
    let mut d = doc("garbage");
    let failures = p.apply(&mut d, 0);
    let d = d.into_value();
    let names: Vec<_> = failures.iter().map(|f| (f.processor, f.kind)).collect();
    assert_eq!(
        names,
        [("dissect", "no_match"), ("timestamp", "missing_field")]
    );
    assert_eq!(d["message"], "garbage");
    assert_eq!(d["@timestamp"], "2026-11-28T12:00:00.000Z");
    assert_eq!(d["tags"], json!(["_dissect_failure", "_timestamp_failure"]));
    assert_eq!(
        d["error"]["message"],
        "dissect: delimiter \" - \" not found; timestamp: field \"ts\" is missing or not text"
    );
}

#[test]
fn other_processors_and_conditions() {
    let p = pipeline(json!([
        {"decode_json": {"field": "message"}},
        {"regex": {"field": "msg", "pattern": "user=(?P<user.name>\\w+)"}},
        {"add_fields": {"fields": {"service.name": "shop"}, "tags": ["web"], "when": {"equals": {"level": "error"}}}},
        {"rename": {"fields": {"level": "log.level"}}},
        {"convert": {"fields": {"took": "float", "ok": "boolean"}}},
        {"truncate_fields": {"fields": ["msg"], "max_bytes": 8}},
        {"drop_fields": {"fields": ["ok"], "when": {"has_fields": ["nothing"]}}},
        {"add_fields": {"tags": ["slow"], "when": {"regexp": {"took": "^[0-9]{4,}"}}}}
    ]));
    let mut d =
        doc(r#"{"level":"error","msg":"login user=bob failed","took":"1500","ok":"false"}"#);
    assert_eq!(p.apply(&mut d, 0), []);
    let d = d.into_value();
    assert_eq!(d["user"]["name"], "bob");
    assert_eq!(d["service"]["name"], "shop");
    assert_eq!(d["log"]["level"], "error");
    assert_eq!(
        (d["took"].clone(), d["ok"].clone()),
        (json!(1500.0), json!(false))
    );
    assert_eq!(
        (d["msg"].clone(), d["truncated"].clone()),
        (json!("login us"), json!(true))
    );
    // The regexp condition sees the converted number as text: "1500.0" matches.
    assert_eq!(d["tags"], json!(["web", "slow"]));
    assert!(d.get("level").is_none());

    let mut bad = doc("{not json");
    let f = p.apply(&mut bad, 0);
    assert_eq!((f[0].processor, f[0].kind), ("decode_json", "bad_value"));
}

#[test]
fn convert_names_what_it_cannot_convert() {
    let p = pipeline(json!([{"convert": {"fields": {
        "a": "integer", "b": "boolean", "c": "float", "d": "integer", "missing": "integer"
    }}}]));
    let fill = |d: &mut Fields<'_>| {
        d.set("a".into(), json!("12x"));
        d.set("b".into(), json!([1]));
        d.set("c".into(), json!(2.5));
        d.set("d".into(), json!(" 7 "));
    };
    let (mut flat, mut tree) = (doc("m"), doc("m"));
    fill(&mut flat);
    fill(&mut tree);
    tree.tree();
    for mut d in [flat, tree] {
        let failures = p.apply(&mut d, 0);
        assert_eq!(
            failures
                .iter()
                .map(|f| (f.processor, f.kind))
                .collect::<Vec<_>>(),
            [("convert", "bad_value")]
        );
        let d = d.into_value();
        assert_eq!(
            d["error"]["message"],
            r#"convert: "a" ("12x") is not an integer, "b" ([1]) is not a boolean"#
        );
        // What cannot be converted stays as it was; the rest is converted.
        assert_eq!(
            [&d["a"], &d["b"], &d["c"], &d["d"]],
            [&json!("12x"), &json!([1]), &json!(2.5), &json!(7)]
        );
        assert!(d.get("missing").is_none());
    }
}

#[test]
fn validation_names_the_processor() {
    assert_eq!(
        err(json!([{"dissect": {"tokenizer": "%{a}%{b}"}}])),
        "processor 0 (dissect): tokenizer: two keys without a delimiter between them at byte 4"
    );
    assert_eq!(
        err(json!([{"exclude_lines": ["("]}]))
            .lines()
            .next()
            .unwrap(),
        "processor 0 (exclude_lines): \"(\": regex parse error:"
    );
    assert_eq!(
        err(json!([{"drop_fields": {"fields": ["a"]}}, {"disect": {}}])),
        "processor 1: unknown processor \"disect\" (did you mean \"dissect\"?)"
    );
    assert_eq!(
        err(json!([{"timestamp": {"field": "ts", "layouts": ["dd/MM/yyyy"]}}])),
        "processor 0 (timestamp): layout \"dd/MM/yyyy\" is not a strftime pattern (e.g. \"%d/%b/%Y:%H:%M:%S %z\") or one of RFC3339, UNIX, UNIX_MS"
    );
    assert_eq!(
        err(json!([{"dissect": {"tokenizer": "%{a} %{b}", "when": {"equals": {}}}}])),
        "processor 0 (dissect): when: equals: expected an object {\"field\": value} naming at least one field"
    );
    assert_eq!(
        err(json!([{"dissect": {"tokenizer": "%{a} %{b}", "feild": "x"}}])),
        "processor 0 (dissect): unknown key \"feild\" (did you mean \"field\"?)"
    );
    assert_eq!(
        err(json!([{"convert": {"fields": {"a": "int"}}}])),
        "processor 0 (convert): fields: \"a\": type \"int\" is not integer, float, boolean or keyword"
    );
}

#[test]
fn line_filters_apply_in_order() {
    let p = pipeline(json!([
        {"include_lines": ["^ERROR", "^WARN"]},
        {"exclude_lines": ["timeout=0"]},
    ]));
    assert!(p.lines.keeps(b"ERROR disk full"));
    assert!(p.lines.keeps(b"WARN slow"));
    assert!(!p.lines.keeps(b"INFO started"));
    assert!(!p.lines.keeps(b"ERROR retry timeout=0"));
    // Bytes that are not UTF-8 are matched as they are.
    assert!(p.lines.keeps(b"ERROR caf\xe9"));
    assert!(p.is_empty(), "nothing for the transfer");
}

#[test]
fn integers_converted_from_plain_digits_and_otherwise() {
    let cases = [
        ("0", Some(json!(0))),
        ("0042", Some(json!(42))),
        (
            "123456789012345678",
            Some(json!(123_456_789_012_345_678_i64)),
        ),
        // 19 digits, " 7 ", a sign, a whole float: not plain digits, parsed as before.
        (
            "1234567890123456789",
            Some(json!(1_234_567_890_123_456_789_i64)),
        ),
        (" 7 ", Some(json!(7))),
        ("-3", Some(json!(-3))),
        ("+3", Some(json!(3))),
        ("7.0", Some(json!(7))),
        ("7.5", None),
        ("", None),
        ("١٢", None),
    ];
    for (text, want) in cases {
        assert_eq!(convert(text, Kind::Integer), want, "{text:?}");
    }
}
