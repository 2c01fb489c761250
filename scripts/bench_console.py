#!/usr/bin/env python3
"""The console's figures (scripts/bench-console.sh): prints them, asserts nothing.

  bench_console.py load ES INDEX_PREFIX COUNT
      COUNT documents shaped as the transfer writes them (message, host.name, log.file.path,
      log.offset, event.dataset, @timestamp spread over the last 24 hours) bulk-loaded into
      INDEX_PREFIX-YYYY.MM.DD indices, 5,000 per request; prints the rate.
  bench_console.py measure CONSOLE QUERIES
      First paint of the search page and the time until its results are shown, in a real
      browser (chromium, headless; the median of 5 loads), then QUERIES searches through
      /api/search (histogram and sidebar included, as the page asks): p50, p95, max.
"""
import json
import random
import statistics
import sys
import time
import urllib.parse
import urllib.error
import urllib.request

WORDS = ("GET POST PUT DELETE /api/orders /api/users /login /health timeout error warning "
         "refused payment declined accepted cache miss hit retry upstream backend").split()
HOSTS = [f"web{i}" for i in range(1, 21)]
FILES = ["/var/log/nginx/access.log", "/var/log/nginx/error.log", "/var/log/app/app.log"]


def post(url, body, content_type):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def load(es, prefix, count):
    rng = random.Random(1)
    now = time.time()
    start = time.time()
    offsets = {}
    for first in range(0, count, 5000):
        lines = []
        for i in range(first, min(first + 5000, count)):
            t = now - rng.random() * 86400
            host, path = rng.choice(HOSTS), rng.choice(FILES)
            off = offsets.get((host, path), 0)
            message = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(100000)} {rng.choice(WORDS)} in {rng.randrange(2000)}ms"
            offsets[(host, path)] = off + len(message) + 1
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
            index = f"{prefix}-{time.strftime('%Y.%m.%d', time.gmtime(t))}"
            lines.append(json.dumps({"create": {"_index": index, "_id": f"b{i}"}}))
            lines.append(json.dumps({"@timestamp": ts, "message": message, "host": {"name": host},
                                     "log": {"file": {"path": path, "identity": "1:2:3"}, "offset": off},
                                     "event": {"dataset": prefix}}))
        answer = post(f"{es}/_bulk", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
        if answer.get("errors"):
            bad = next(i for i in answer["items"] if i["create"]["status"] >= 300)
            sys.exit(f"bulk errors, e.g. {bad}")
    urllib.request.urlopen(urllib.request.Request(f"{es}/{prefix}-*/_refresh", method="POST"), timeout=120)
    took = time.time() - start
    print(f"loaded {count} documents in {took:.0f} s ({count / took:.0f} docs/s)")


def browser_figures(console):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    paints, results = [], []
    try:
        for _ in range(5):
            d.get("about:blank")
            start = time.time()
            d.get(f"{console}/#search?since=24h")
            while not d.find_element(By.ID, "summary").text.endswith("ms)"):
                if time.time() - start > 30:
                    raise SystemExit("the search page showed no results within 30 s")
                time.sleep(0.01)
            results.append(time.time() - start)
            fcp = d.execute_script(
                "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null")
            paints.append(fcp / 1000 if fcp is not None else float("nan"))
        summary = d.find_element(By.ID, "summary").text
    finally:
        d.quit()
    print(f"search page (last 24 h, {summary}): first contentful paint {statistics.median(paints) * 1000:.0f} ms, "
          f"results shown {statistics.median(results) * 1000:.0f} ms (median of 5 loads)")


def measure(console, queries):
    browser_figures(console)
    rng = random.Random(2)
    # Words a query can hold bare ("/..." would be a regular expression).
    terms = [w for w in WORDS if not w.startswith("/")]
    times = []
    for i in range(queries):
        q = rng.choice(["*", rng.choice(terms), f"{rng.choice(terms)} AND {rng.choice(terms)}",
                        f"host.name:{rng.choice(HOSTS)} AND {rng.choice(terms)}"])
        since = rng.choice(["15m", "1h", "24h"])
        url = f"{console}/api/search?" + urllib.parse.urlencode({"q": q, "since": since, "size": 200})
        start = time.time()
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                answer = json.load(r)
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{q}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}")
        times.append(time.time() - start)
    times.sort()
    p = lambda f: times[min(len(times) - 1, int(f * len(times)))] * 1000
    print(f"/api/search over {queries} queries (200 hits, histogram, sidebar): "
          f"p50 {p(0.5):.0f} ms, p95 {p(0.95):.0f} ms, max {times[-1] * 1000:.0f} ms")


def main():
    cmd, *rest = sys.argv[1:]
    if cmd == "load":
        es, prefix, count = rest
        load(es.rstrip("/"), prefix, int(count))
    elif cmd == "measure":
        console, queries = rest
        measure(console.rstrip("/"), int(queries))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
