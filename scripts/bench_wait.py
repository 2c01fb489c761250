"""Waits until a daemon's metric reaches a value, for scripts/bench.sh, in one process polling
every 20 ms: a curl and an awk per poll took about 7 CPU-ms, a quarter of a core at that rate,
from the two cores the measured processes share.

Usage: bench_wait.py ADDR METRIC LABEL N [FIRST PID...]
  Waits until the samples of METRIC at http://ADDR/metrics whose labels contain LABEL ("" for
  every sample) sum to N; a daemon not answering yet is asked again.
  With FIRST (a metric) and PIDs: the run counts from when FIRST is first above 0 (the first
  document indexed) to when it last grew before METRIC reached N (the last document indexed:
  not the commit that follows within 100 ms, which a bare consumer has no counterpart of);
  prints those seconds, then the CPU-s each PID spent in them, on one line.
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
    # (value of FIRST, time, CPU-s of each PID) when FIRST was first above 0, and when last
    # seen growing.
    start = last = None
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            text = ""
        if first:
            seen = total(text, first, "")
            if seen > 0 and (last is None or seen != last[0]):
                last = (seen, time.time(), [cpu(p) for p in pids])
                start = start or last
        if total(text, metric, label) == n and (start or not first):
            break
        time.sleep(POLL_S)
    if first:
        (_, began, before), (_, ended, after) = start, last
        spent = [b - a for a, b in zip(before, after)]
        print(f"{ended - began:.3f}", " ".join(f"{c:.2f}" for c in spent))


main()
