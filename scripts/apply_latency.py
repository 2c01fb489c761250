"""Time from an etcd put to the agent applying it, over COUNT changes: puts through the
gateway, then reads the agent's /metrics every 2 ms until logcollect_agent_config_revision
is the put's revision. Prints p50, p99 and max in ms (resolution about 2 ms).

Usage: apply_latency.py ETCD_URL AGENT_ADDR PATH_PREFIX COUNT
"""
import base64
import json
import sys
import time
import urllib.request

etcd, agent, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=5))


def applied():
    text = urllib.request.urlopen(f"http://{agent}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("logcollect_agent_config_revision "):
            return int(line.split()[1])
    return 0


b64 = lambda s: base64.b64encode(s.encode()).decode()
took = []
for i in range(count):
    value = json.dumps([{"path": f"{prefix}/{i}.log", "topic": "latency"}])
    t0 = time.monotonic()
    rev = int(post(f"{etcd}/v3/kv/put", {"key": b64("collect_log_conf"), "value": b64(value)})["header"]["revision"])
    while applied() != rev:
        if time.monotonic() - t0 > 10:
            sys.exit(f"revision {rev} not applied within 10 s")
        time.sleep(0.002)
    took.append((time.monotonic() - t0) * 1000)
    time.sleep(0.05)
took.sort()
q = lambda p: took[min(len(took) - 1, int(len(took) * p))]
print(f"apply latency over {count} changes: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {took[-1]:.1f} ms")
