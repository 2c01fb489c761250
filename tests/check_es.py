#!/usr/bin/env python3
"""Checks what reached the store (through its real REST API) against what was written.

  check_es.py exact ES_URL HOST TOPIC PATH...
      For each PATH, the documents whose log.file.path is PATH must be exactly the lines of the
      file (one document per line, none twice): message, log.offset, host.name = HOST,
      event.dataset = TOPIC, @timestamp in RFC 3339 UTC with milliseconds.

  check_es.py count ES_URL INDEX EXPECTED
      _count of INDEX (after a refresh) must be EXPECTED.

  check_es.py seq ES_URL INDEX COUNT
      The messages of INDEX carry "seq=N"; each N in 1..COUNT must be there exactly once.

  check_es.py count-of ES_URL INDEX
      Prints the _count of INDEX as it is (no refresh), 0 if it cannot be had.

  check_es.py docs ES_URL INDEX
      Prints the _source of every document of INDEX (after a refresh) as one JSON array, in
      the order of log.offset, each with its "_index" added.

  check_es.py mapping ES_URL INDEX
      The index template typed INDEX's fields: @timestamp date, message text, log.offset long,
      host.name keyword.

  check_es.py fallback ES_URL INDEX TOPIC
      A document of a record without the agent's origin (lc-kafka's: no headers, a numeric key): a 32-hex-digit id (from its Kafka
      position), no host or log fields, event.dataset TOPIC.

  check_es.py injected PROXY_URL
      lc-faultproxy injected every kind of fault at least once (429, 500, slow, reset, 413, 401).

  check_es.py dead-node-tries LOG URL
      The transfer's LOG tried the dead node URL 2 to 6 times (each failure said), each at
      least 4.9 s (its back-off) after the last.

Prints what differs and exits 1 on any difference.
"""
import json
import re
import sys
import urllib.request

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from check_kafka import fail, file_lines  # noqa: E402


def call(url, body=None, method=None, timeout=30):
    """The JSON answer of a request with `body` (JSON) to `url`: POST with a body, else GET."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def search(es, index, query, size=10000):
    call(f"{es}/{index}/_refresh", {}, "POST")
    out = call(f"{es}/{index}/_search", {"query": query, "size": size})
    return out["hits"]["hits"]


def every(es, index, source=True, timeout=60):
    """Every document of `index` (after a refresh), past the 10,000 one search returns: the
    pages of a scroll."""
    call(f"{es}/{index}/_refresh", {}, "POST")
    page = call(f"{es}/{index}/_search?scroll=1m", {"size": 5000, "_source": source, "sort": ["_doc"]},
                timeout=timeout)
    hits = []
    while page["hits"]["hits"]:
        hits.extend(page["hits"]["hits"])
        page = call(f"{es}/_search/scroll", {"scroll": "1m", "scroll_id": page["_scroll_id"]}, timeout=timeout)
    return hits


TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def exact(es, host, topic, paths):
    errors = []
    for path in paths:
        hits = search(es, "*", {"term": {"log.file.path": path}})
        want = {off: line.decode("utf-8", "replace") for off, line in file_lines(path)}
        got = {}
        for h in hits:
            s = h["_source"]
            off = s.get("log", {}).get("offset")
            if off in got:
                errors.append(f"{path}: offset {off} indexed twice (ids {got[off][0]} and {h['_id']})")
            got[off] = (h["_id"], s)
        if len(hits) != len(want):
            errors.append(f"{path}: {len(want)} lines written, {len(hits)} documents")
        for off, line in want.items():
            if off not in got:
                errors.append(f"{path}: line at offset {off} has no document")
                continue
            s = got[off][1]
            checks = [("message", s.get("message"), line), ("host.name", s.get("host", {}).get("name"), host),
                      ("event.dataset", s.get("event", {}).get("dataset"), topic)]
            for field, g, w in checks:
                if g != w:
                    errors.append(f"{path}@{off}: {field} {str(g)[:60]!r} != {str(w)[:60]!r}")
            if not TS.match(s.get("@timestamp", "")):
                errors.append(f"{path}@{off}: @timestamp {s.get('@timestamp')!r} is not RFC 3339 UTC with ms")
        if errors:
            fail(errors)
        print(f"ok: {path}: {len(want)} lines, one document each, fields as written")


def count(es, index, expected):
    call(f"{es}/{index}/_refresh", {}, "POST")
    n = call(f"{es}/{index}/_count")["count"]
    if n != expected:
        fail([f"{index}: {n} documents, expected {expected}"])
    print(f"ok: {index}: {n} documents")


def seq(es, index, total):
    hits = every(es, index, ["message"])
    seen = {}
    errors = []
    for h in hits:
        m = re.search(r"seq=(\d+)", h["_source"].get("message", ""))
        if not m:
            errors.append(f"document without seq=: {h['_source'].get('message', '')[:60]!r}")
            continue
        n = int(m.group(1))
        if n in seen:
            errors.append(f"seq={n} indexed twice")
        seen[n] = h["_id"]
    missing = [n for n in range(1, total + 1) if n not in seen]
    if missing:
        errors.append(f"{len(missing)} of {total} missing, first: {missing[:10]}")
    if errors:
        fail(errors)
    print(f"ok: {index}: all {total} lines indexed exactly once")


def count_of(es, index):
    try:
        print(call(f"{es}/{index}/_count")["count"])
    except (OSError, ValueError, KeyError):
        print(0)


def mapping(es, index):
    m = next(iter(call(f"{es}/{index}/_mapping").values()))["mappings"]["properties"]
    want = [("@timestamp", m["@timestamp"]["type"], "date"), ("message", m["message"]["type"], "text"),
            ("log.offset", m["log"]["properties"]["offset"]["type"], "long"),
            ("host.name", m["host"]["properties"]["name"]["type"], "keyword")]
    errors = [f"{field} is {got}, expected {exp}" for field, got, exp in want if got != exp]
    if errors:
        fail(errors)
    print("ok: @timestamp is a date, message text, log.offset long, host.name keyword")


def fallback(es, index, topic):
    h = search(es, index, {"match_all": {}}, size=1)[0]
    s = h["_source"]
    errors = []
    if not re.fullmatch(r"[0-9a-f]{32}", h["_id"]):
        errors.append(f"id {h['_id']!r} is not 32 hex digits")
    if "host" in s or "log" in s:
        errors.append(f"agent fields in a foreign record's document: {s}")
    if s.get("event", {}).get("dataset") != topic:
        errors.append(f"event.dataset of {s} is not {topic}")
    if errors:
        fail(errors)
    print("ok: no agent origin: id from topic/partition/offset, no host or log fields")


def injected(proxy):
    with urllib.request.urlopen(f"{proxy}/_fault", timeout=10) as r:
        state = json.loads(r.read())
    print(f"    injected: {state['injected']}")
    kinds = ("item_429", "status_500", "slow", "reset", "status_413", "status_401")
    missing = [k for k in kinds if state["injected"].get(k, 0) == 0]
    if missing:
        fail([f"never injected: {missing}"])


def dead_node_tries(log, url):
    import datetime
    tries = [datetime.datetime.fromisoformat(line[1:24].replace("Z", "+00:00"))
             for line in open(log) if f"{url}: failed; the other nodes take its requests" in line]
    gaps = [round((b - a).total_seconds(), 1) for a, b in zip(tries, tries[1:])]
    print(f"    tries of the dead node: {len(tries)}, seconds apart: {gaps}")
    if not (2 <= len(tries) <= 6 and all(g >= 4.9 for g in gaps)):
        fail([f"expected 2 to 6 tries at least 4.9 s apart, got {len(tries)}: {gaps}"])


def docs(es, index):
    hits = search(es, index, {"match_all": {}})
    out = [dict(h["_source"], _index=h["_index"]) for h in hits]
    out.sort(key=lambda d: d.get("log", {}).get("offset", 0))
    print(json.dumps(out))


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "count-of":
        count_of(a[1], a[2])
    elif len(a) == 3 and a[0] == "docs":
        docs(a[1], a[2])
    elif len(a) == 3 and a[0] == "mapping":
        mapping(a[1], a[2])
    elif len(a) == 4 and a[0] == "fallback":
        fallback(a[1], a[2], a[3])
    elif len(a) == 2 and a[0] == "injected":
        injected(a[1])
    elif len(a) == 3 and a[0] == "dead-node-tries":
        dead_node_tries(a[1], a[2])
    elif len(a) >= 5 and a[0] == "exact":
        exact(a[1], a[2], a[3], a[4:])
    elif len(a) == 4 and a[0] == "count":
        count(a[1], a[2], int(a[3]))
    elif len(a) == 4 and a[0] == "seq":
        seq(a[1], a[2], int(a[3]))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
