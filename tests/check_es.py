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

Prints what differs and exits 1 on any difference.
"""
import json
import re
import sys
import urllib.request

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from check_kafka import fail, file_lines  # noqa: E402


def call(url, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def search(es, index, query, size=10000):
    call(f"{es}/{index}/_refresh", {}, "POST")
    out = call(f"{es}/{index}/_search", {"query": query, "size": size})
    return out["hits"]["hits"]


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
    # Up to the result window (10,000); a few more than expected, to see duplicates.
    hits = search(es, index, {"match_all": {}}, size=min(total + 1000, 10000))
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


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "exact":
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
