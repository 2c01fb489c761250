#!/usr/bin/env python3
"""Checks what reached Kafka (the JSON lines `lc-kafka consume` prints) against what was written.

  check_kafka.py exact RECORDS HOST PATH...
      Every record whose `path` header is PATH must be, in Kafka order, exactly the lines of
      the file PATH (split at \\n, \\r dropped, empty lines skipped), with the `offset` header
      equal to each line's byte offset, `host` = HOST, and `file` = "dev:ino:generation" of
      PATH. No line missing, none extra, none twice.

  check_kafka.py seq RECORDS COUNT [--dups-ok] [--lost A..B]
      Every record carries "seq=N" in its value; each N in 1..COUNT must be there (but those
      in A..B, which may be missing: the lines of a file deleted before they were sent). Without
      --dups-ok no N may appear twice; with it, a repeated N must repeat the same value and
      the same `file` and `offset` headers (a re-sent line, not a re-read one). Within one file
      identity, N must grow with the offset.

Prints what differs and exits 1 on any difference.
"""
import base64
import json
import os
import re
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def value(rec):
    return base64.b64decode(rec["value_b64"])


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
        got = [r for r in records if r["headers"].get("path") == path]
        want = file_lines(path)
        st = os.stat(path)
        prefix = f"{st.st_dev}:{st.st_ino}:"
        if len(got) != len(want):
            errors.append(f"{path}: {len(want)} lines written, {len(got)} records in Kafka")
        for i, ((off, line), rec) in enumerate(zip(want, got)):
            h = rec["headers"]
            if value(rec) != line:
                errors.append(f"{path}: record {i}: value {value(rec)[:60]!r} != line {line[:60]!r}")
            if h.get("offset") != str(off):
                errors.append(f"{path}: record {i}: offset header {h.get('offset')} != {off}")
            if h.get("host") != host:
                errors.append(f"{path}: record {i}: host header {h.get('host')!r} != {host!r}")
            if not (h.get("file") or "").startswith(prefix):
                errors.append(f"{path}: record {i}: file header {h.get('file')!r} is not {prefix}*")
            if rec.get("key") != host + path:
                errors.append(f"{path}: record {i}: key {rec.get('key')!r} != {host + path!r}")
        if errors:
            fail(errors)
        print(f"ok: {path}: {len(want)} lines, exactly once, in order, with headers")


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
        h = rec["headers"]
        ident = (value(rec), h.get("file"), h.get("offset"))
        if n in seen:
            if not dups_ok:
                errors.append(f"seq={n} arrived twice")
            elif seen[n] != ident:
                errors.append(f"seq={n} arrived twice with different headers: {seen[n][1:]} vs {ident[1:]}")
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
    print(f"ok: all {count} lines arrived; {dups} re-sent duplicates (identical headers)")


def main():
    args = sys.argv[1:]
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
