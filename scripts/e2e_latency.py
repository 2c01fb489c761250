"""Time from appending a line to the line being searchable, at a steady low rate: appends
RATE lines per second to FILE for SECONDS seconds (line N says "seq=N"), while another thread
asks the store every 20 ms for the highest seq it can find. A line's latency is the first
time a search found a seq at least its own, minus the time it was appended (documents become
searchable at a refresh, all at once). Prints p50, p99 and max in ms.

Usage: e2e_latency.py FILE ES_URL INDEX_PATTERN RATE SECONDS
"""
import json
import sys
import threading
import time
import urllib.request

path, es, pattern = sys.argv[1], sys.argv[2], sys.argv[3]
rate, seconds = int(sys.argv[4]), float(sys.argv[5])
total = int(rate * seconds)
written = {}
found = {}  # seq -> first time seen (as the highest or below it)
done = threading.Event()


def highest():
    body = {"size": 0, "query": {"term": {"log.file.path": path}},
            "aggs": {"top": {"max": {"field": "log.offset"}}}}
    req = urllib.request.Request(f"{es}/{pattern}/_search", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        answer = json.load(urllib.request.urlopen(req, timeout=5))
    except OSError:
        return None
    return answer["aggregations"]["top"]["value"]


def watch():
    # log.offset grows with seq: lines are the same length, so the offset tells the seq.
    while not done.is_set():
        top, now = highest(), time.time()
        if top is not None:
            seq = int(top) // LINE_BYTES
            for s in range(seq + 1):
                found.setdefault(s, now)
        time.sleep(0.02)


LINE_BYTES = len(f"latency probe seq={0:08d}\n")
watcher = threading.Thread(target=watch)
watcher.start()
with open(path, "a", buffering=1) as f:
    start = time.time()
    for seq in range(total):
        time.sleep(max(0.0, start + seq / rate - time.time()))
        f.write(f"latency probe seq={seq:08d}\n")
        f.flush()
        written[seq] = time.time()
deadline = time.time() + 30
while len(found) < total and time.time() < deadline:
    time.sleep(0.1)
done.set()
watcher.join()
took = sorted((found[s] - written[s]) * 1000 for s in written if s in found)
if len(took) < total:
    print(f"only {len(took)} of {total} lines searchable within 30 s")
    sys.exit(1)
print(f"{total} lines at {rate}/s: append to searchable p50 {took[len(took) // 2]:.0f} ms, "
      f"p99 {took[int(len(took) * 0.99)]:.0f} ms, max {took[-1]:.0f} ms")
