#!/usr/bin/env python3
"""Checks what reached Kafka (the JSON lines `lc-kafka consume` prints) against what was written.

  check_kafka.py exact RECORDS HOST PATH...
      Every record whose key has the `path` PATH must be, in Kafka order, exactly the lines
      of the file PATH (split at \\n, \\r dropped, empty lines skipped), all in one partition,
      with the key's `offset` equal to each line's byte offset, `host` = HOST, and `file` =
      "dev:ino:generation" of PATH. No line missing, none extra, none twice.

  check_kafka.py seq RECORDS COUNT [--dups-ok] [--lost A..B]
      Every record carries "seq=N" in its value; each N in 1..COUNT must be there (but those
      in A..B, which may be missing: the lines of a file deleted before they were sent). Without
      --dups-ok no N may appear twice; with it, a repeated N must repeat the same value and
      the same `file` and `offset` in its key (a re-sent line, not a re-read
      one). Within one file identity, N must grow with the offset.

  check_kafka.py values RECORDS
      Prints the records' values (as text), joined by "|".

  check_kafka.py odd RECORDS [MIB]
      The records of the odd-lines file (write_lines.py odd PATH MIB): non-UTF-8 bytes kept,
      the MIB MiB line (5) cut at 1 MiB and marked truncated, the line after it at its exact
      offset.

  check_kafka.py multiline RECORDS
      The three events of the Java log: the stack trace joined to its line, the last event
      shipped after the multiline timeout.

  check_kafka.py console TXT PATH HOST
      TXT, what Kafka's own ConsoleConsumer printed (headers, key, value tab-separated), has
      the 300 lines of PATH with the agent's keys.

  check_kafka.py dead-letter RECORDS PATH
      One dead letter: the malformed line 2 of PATH, with an HTTP 400 mapping reason and its
      origin (the dlq.source header, path and offset in the key).

Prints what differs and exits 1 on any difference.
"""
import base64
import json
import os
import re
import sys
import urllib.parse


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def value(rec):
    return base64.b64decode(rec["value_b64"])


def origin(rec):
    """The fields of the record's key (name=value pairs joined by &, each value
    percent-encoded), as a dict."""
    pairs = (p.partition("=") for p in (rec.get("key") or "").split("&") if p)
    return {name: urllib.parse.unquote(v) for name, _, v in pairs}


def file_lines(path):
    data = open(path, "rb").read()
    out, pos = [], 0
    for raw in data.split(b"\n")[:-1]:  # the part after the last \n is not a line yet
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line:
            out.append((pos, line))
        pos += len(raw) + 1
    return out


def fail(msgs):
    for m in msgs[:20]:
        print("  " + m)
    if len(msgs) > 20:
        print(f"  ... and {len(msgs) - 20} more")
    sys.exit(1)


def exact(records, host, paths):
    errors = []
    for path in paths:
        got = [r for r in records if origin(r).get("path") == path]
        want = file_lines(path)
        st = os.stat(path)
        prefix = f"{st.st_dev}:{st.st_ino}:"
        if len(got) != len(want):
            errors.append(f"{path}: {len(want)} lines written, {len(got)} records in Kafka")
        partitions = sorted({r["partition"] for r in got})
        if len(partitions) > 1:
            errors.append(f"{path}: its records are in partitions {partitions}, not in one")
        for i, ((off, line), rec) in enumerate(zip(want, got)):
            h = origin(rec)
            if value(rec) != line:
                errors.append(f"{path}: record {i}: value {value(rec)[:60]!r} != line {line[:60]!r}")
            if h.get("offset") != str(off):
                errors.append(f"{path}: record {i}: offset {h.get('offset')} != {off}")
            if h.get("host") != host:
                errors.append(f"{path}: record {i}: host {h.get('host')!r} != {host!r}")
            if not (h.get("file") or "").startswith(prefix):
                errors.append(f"{path}: record {i}: file {h.get('file')!r} is not {prefix}*")
        if errors:
            fail(errors)
        print(f"ok: {path}: {len(want)} lines, exactly once, in order, in one partition, with their origin")


SEQ = re.compile(rb"seq=(\d+)")


def seq(records, count, dups_ok, lost=range(0)):
    errors = []
    seen = {}
    last_in_file = {}
    for rec in records:
        m = SEQ.search(value(rec))
        if not m:
            errors.append(f"record without seq=: {value(rec)[:80]!r}")
            continue
        n = int(m.group(1))
        h = origin(rec)
        ident = (value(rec), h.get("file"), h.get("offset"))
        if n in seen:
            if not dups_ok:
                errors.append(f"seq={n} arrived twice")
            elif seen[n] != ident:
                errors.append(f"seq={n} arrived twice with a different origin: {seen[n][1:]} vs {ident[1:]}")
        seen[n] = ident
        key = h.get("file")
        off = int(h.get("offset", -1))
        prev = last_in_file.get(key)
        if prev and off > prev[0] and n < prev[1]:
            errors.append(f"file {key}: seq={n} at offset {off} after seq={prev[1]} at offset {prev[0]}")
        last_in_file[key] = max(prev or (off, n), (off, n))
    missing = [n for n in range(1, count + 1) if n not in seen and n not in lost]
    if missing:
        errors.append(f"{len(missing)} of {count} lines missing, first: {missing[:10]}")
    extra = [n for n in seen if n > count or n < 1]
    if extra:
        errors.append(f"unexpected seq numbers: {sorted(extra)[:10]}")
    if errors:
        fail(errors)
    dups = len(records) - len(seen)
    print(f"ok: all {count} lines arrived; {dups} re-sent duplicates (identical keys)")


def values(records):
    print(*[value(r).decode("utf-8", "replace") for r in records], sep="|")


def check(ok, what):
    if not ok:
        fail([what])


def odd(records, mib=5):
    vals = [value(r) for r in records]
    check(len(records) == 4, f"{len(records)} records, expected 4")
    check(vals[0] == b"first", f"first: {vals[0][:60]!r}")
    check(vals[1] == b"caf\xe9 \xff\xfe not utf-8", f"non-UTF-8 line: {vals[1][:60]!r}")
    check(vals[2] == b"B" * 1048576, f"the long line is {len(vals[2])} bytes, expected 1048576")
    check(origin(records[2]).get("truncated") == "true", f"not marked: {records[2]['key']}")
    check("truncated" not in origin(records[3]), f"marked: {records[3]['key']}")
    offset = len(b"first\n") + len(b"caf\xe9 \xff\xfe not utf-8\n") + mib * 1024 * 1024 + 1
    check(vals[3] == b"after the big one" and origin(records[3]).get("offset") == str(offset),
          f"the line after: {vals[3][:60]!r} {records[3]['key']}")
    print(f"ok: non-UTF-8 bytes kept, {mib} MiB line cut at 1 MiB and marked, the file read whole")


def multiline(records):
    vals = [r["value"] for r in records]
    want = ["2026-11-27 10:00:00 INFO started",
            "2026-11-27 10:00:01 ERROR request failed\njava.lang.IllegalStateException: boom\n"
            "\tat com.example.Handler.handle(Handler.java:42)\n\tat com.example.Server.run(Server.java:7)",
            "2026-11-27 10:00:02 INFO recovered"]
    check(vals == want, f"events: {vals}")
    print("ok: stack trace joined into one event; the last event shipped after the timeout")


def console(txt, path, host):
    lines = [line.rstrip("\n") for line in open(txt)]
    written = [line.rstrip("\n") for line in open(path)]
    check(len(lines) == 300, f"{len(lines)} records, expected 300")
    check(sorted(line.split("\t")[2] for line in lines) == sorted(written), "values differ")
    want = f"host={urllib.parse.quote(host)}&path={urllib.parse.quote(path)}&file="
    for line in lines:
        headers, key = line.split("\t")[:2]
        check(headers == "NO_HEADERS", f"headers of {line}")
        check(key.startswith(want) and "&offset=" in key, f"key of {line}, expected {want}...")
    print("ok: Kafka's ConsoleConsumer reads the 300 records with their keys")


def dead_letter(records, path):
    check(len(records) == 1, f"{len(records)} dead letters, expected 1")
    r = records[0]
    check(r["value"] == '{"code":"not a number","seq":2}', f"value {r['value']}")
    h = r["headers"]
    reason = h.get("dlq.reason", "")
    check(reason.startswith("HTTP 400") and ("mapper_parsing_exception" in reason
                                            or "document_parsing_exception" in reason), f"reason {h}")
    check(h.get("dlq.source", "").startswith("dlqt/"), f"source {h}")
    o = origin(r)
    check(o.get("path") == path and o.get("offset") == "19", f"origin {h}")
    print("ok: the malformed document is in dlqt.dlq with its reason and origin; the next one was indexed")


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] in ("values", "odd", "multiline"):
        {"values": values, "odd": odd, "multiline": multiline}[args[0]](load(args[1]))
        return
    if len(args) == 3 and args[0] == "odd":
        odd(load(args[1]), int(args[2]))
        return
    if len(args) == 4 and args[0] == "console":
        console(args[1], args[2], args[3])
        return
    if len(args) == 3 and args[0] == "dead-letter":
        dead_letter(load(args[1]), args[2])
        return
    if len(args) >= 4 and args[0] == "exact":
        exact(load(args[1]), args[2], args[3:])
    elif len(args) >= 3 and args[0] == "seq":
        lost = range(0)
        if "--lost" in args:
            first, last = args[args.index("--lost") + 1].split("..")
            lost = range(int(first), int(last) + 1)
        seq(load(args[1]), int(args[2]), "--dups-ok" in args[3:], lost)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
