#!/usr/bin/env python3
"""Checks a daemon's /metrics (Prometheus text).

  check_metrics.py committed METRICS_URL TOPIC COUNT
      The transfer's committed offsets of TOPIC add up to COUNT and librdkafka reports a lag
      of 0 on each of its partitions (exit 1 otherwise, silently: for waiting on it).
"""
import re
import sys
import urllib.request


def committed(url, topic, count):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total, lag = 0, []
    series = re.compile(r'logcollect_transfer_(committed_offset|consumer_lag)\{topic="([^"]*)",partition="\d+"\} (-?\d+)$')
    for line in text.splitlines():
        m = series.match(line.strip())
        if not m or m.group(2) != topic:
            continue
        if m.group(1) == "committed_offset":
            total += int(m.group(3))
        else:
            lag.append(int(m.group(3)))
    sys.exit(0 if total == count and lag and not any(lag) else 1)


def main():
    a = sys.argv[1:]
    if len(a) == 4 and a[0] == "committed":
        committed(a[1], a[2], int(a[3]))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
