"""Waits until a daemon's metric reaches a value, for scripts/bench.sh, in one process polling
every 20 ms: a curl and an awk per poll took about 7 CPU-ms, a quarter of a core at that rate,
from the two cores the measured processes share.

Usage: bench_wait.py ADDR METRIC LABEL N [FIRST PID...]
  Waits until the samples of METRIC at http://ADDR/metrics whose labels contain LABEL ("" for
  every sample) sum to N; a daemon not answering yet is asked again.
  With FIRST (a metric) and PIDs: the run counts from when FIRST is first above 0 (the first
  document indexed); prints the seconds from then to the end, then the CPU-s each PID spent
  in them, on one line.
"""
import os
import sys
import time
import urllib.request

POLL_S = 0.02
TICKS = os.sysconf("SC_CLK_TCK")


def total(text, metric, label):
    """The sum of `metric`'s samples in the Prometheus text `text` whose labels hold `label`."""
    s = 0.0
    for line in text.splitlines():
        # The value is last: a label's value (a file's path) may hold spaces.
        name, _, value = line.rpartition(" ")
        base, brace, labels = name.partition("{")
        if base == metric and (label in labels if brace else not label):
            s += float(value)
    return s


def cpu(pid):
    """CPU-s (user + system) of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        # The fields after the command name, which may hold spaces: utime and stime are the
        # 12th and 13th.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main():
    addr, metric, label, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    first, pids = (sys.argv[5], sys.argv[6:]) if len(sys.argv) > 5 else (None, [])
    url = f"http://{addr}/metrics"
    start = None
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            text = ""
        if first and start is None and total(text, first, "") > 0:
            start = (time.time(), [cpu(p) for p in pids])
        if total(text, metric, label) == n and (start or not first):
            break
        time.sleep(POLL_S)
    if first:
        at, before = start
        spent = [cpu(p) - c for p, c in zip(pids, before)]
        print(f"{time.time() - at:.3f}", " ".join(f"{c:.2f}" for c in spent))


main()
