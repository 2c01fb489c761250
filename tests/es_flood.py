#!/usr/bin/env python3
"""Keeps a store's write threads busy, as another client would: six threads send _bulk
requests of 300 small documents to ES_URL (index "noise") for SECONDS, ignoring errors.

  es_flood.py ES_URL SECONDS
"""
import json
import sys
import threading
import time
import urllib.request


def flood(url, secs, body):
    end = time.time() + secs
    while time.time() < end:
        try:
            request = urllib.request.Request(url + "/_bulk", body, {"content-type": "application/x-ndjson"})
            urllib.request.urlopen(request, timeout=10).read()
        except OSError:
            pass


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    url, secs = sys.argv[1], float(sys.argv[2])
    body = "".join('{"index":{"_index":"noise"}}\n' + json.dumps({"n": i, "pad": "x" * 200}) + "\n"
                   for i in range(300)).encode()
    threads = [threading.Thread(target=flood, args=(url, secs, body)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
