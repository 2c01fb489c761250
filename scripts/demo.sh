#!/usr/bin/env bash
# The main job, on a fresh machine: installs and starts etcd, Kafka and an Elasticsearch-API
# store (Apache Kafka 4 and OpenSearch 2.19 when Java and Maven are available, else the Tansu
# broker and osmem-server; LC_KAFKA_ENGINE / LC_ES_ENGINE choose); builds log-agent and log-transfer; puts a demo
# configuration into etcd (two sample logs, access and error); starts both daemons; writes
# sample lines; waits until they are searchable; and shows what a search finds.
#
#   scripts/demo.sh         run (again: more sample lines are shipped)
#   scripts/demo.sh stop    stop the daemons and the services, and remove the demo's data
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export LC_RUN=${LC_RUN:-$REPO/.run/services}
# The real engines (Apache Kafka, OpenSearch) when Java and Maven are there; else the stand-ins.
if command -v java >/dev/null && command -v mvn >/dev/null; then
    export LC_KAFKA_ENGINE=${LC_KAFKA_ENGINE:-apache} LC_ES_ENGINE=${LC_ES_ENGINE:-opensearch}
fi
DEMO=$REPO/.run/demo
SERVICES=scripts/services.sh

stop_daemons() {
    local p
    for p in "$DEMO"/*.pid; do
        [ -f "$p" ] || continue
        kill "$(cat "$p")" 2>/dev/null || true
        rm -f "$p"
    done
}

if [ "${1:-}" = stop ]; then
    stop_daemons
    "$SERVICES" stop
    # The demo's logs and registry only make sense with the data of these services: both go,
    # so the next run starts consistent (the stand-ins keep nothing anyway).
    rm -rf "$DEMO"
    [ "$LC_RUN" = "$REPO/.run/services" ] && rm -rf "$LC_RUN"
    echo "demo stopped; its logs and the services' data are removed"
    exit 0
fi

echo "== services (kafka: ${LC_KAFKA_ENGINE:-tansu}, store: ${LC_ES_ENGINE:-osmem})"
"$SERVICES" start
eval "$("$SERVICES" env)"
echo "== build"
"$SERVICES" install build
cargo build --release --quiet -p log-agent -p log-transfer
mkdir -p "$DEMO/logs"

echo "== configuration in etcd"
etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf \
    "[{\"path\":\"$DEMO/logs/access.log\",\"topic\":\"demo_access\",\"start\":\"beginning\"},
      {\"path\":\"$DEMO/logs/error.log\",\"topic\":\"demo_error\",\"start\":\"beginning\",
       \"multiline_start\":\"^\\\\d{4}-\\\\d{2}-\\\\d{2} \"}]" >/dev/null
etcdctl --endpoints "$LC_ETCD_URL" put elasticsearch_config \
    "{\"api_key\":\"\",\"url_address\":[\"$LC_ES_URL\"]}" >/dev/null
etcdctl --endpoints "$LC_ETCD_URL" get collect_log_conf elasticsearch_config | sed 's/^/  /'

echo "== daemons"
# The tests' ini writers (tests/lib.sh), for these services.
LC_HELPERS_ONLY=1 . tests/lib.sh
agent_ini "$DEMO/agent.ini" "$DEMO/agent-data" 127.0.0.1:9101
transfer_ini "$DEMO/transfer.ini" 9102 2 log-transfer
for d in agent transfer; do
    if [ -f "$DEMO/$d.pid" ] && kill -0 "$(cat "$DEMO/$d.pid")" 2>/dev/null; then
        echo "  log-$d already running (pid $(cat "$DEMO/$d.pid"))"
        continue
    fi
    nohup "target/release/log-$d" -c "$DEMO/$d.ini" >>"$DEMO/$d.log" 2>&1 &
    echo $! >"$DEMO/$d.pid"
    echo "  log-$d started (pid $!, log $DEMO/$d.log)"
done

echo "== sample lines"
python3 - "$DEMO/logs" <<'PY'
import datetime, random, sys
d = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
paths = ["/", "/login", "/api/orders", "/api/orders/42", "/static/app.js", "/health"]
with open(f"{d}/access.log", "a") as f:
    for i in range(200):
        status = random.choice([200] * 8 + [302, 404, 500])
        f.write(f'10.0.0.{random.randint(1, 254)} - - [{now:%d/%b/%Y:%H:%M:%S +0000}] '
                f'"GET {random.choice(paths)} HTTP/1.1" {status} {random.randint(200, 9000)}\n')
with open(f"{d}/error.log", "a") as f:
    for i in range(5):
        t = now + datetime.timedelta(seconds=i)
        f.write(f"{t:%Y-%m-%d %H:%M:%S} ERROR order {1000 + i} failed: database timeout\n")
        f.write("java.sql.SQLTimeoutException: timeout after 30000ms\n")
        f.write("\tat com.example.orders.Repository.save(Repository.java:88)\n")
        f.write("\tat com.example.orders.Service.place(Service.java:41)\n")
PY
access_lines=$(grep -c . "$DEMO/logs/access.log")
error_events=$(grep -c '^[0-9]\{4\}-' "$DEMO/logs/error.log")
echo "  $DEMO/logs/access.log: $access_lines lines; $DEMO/logs/error.log: $error_events events (with stack traces)"

echo "== waiting until they are searchable"
count() { curl -sf -XPOST "$LC_ES_URL/$1/_refresh" >/dev/null 2>&1; curl -sf "$LC_ES_URL/$1/_count" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0; }
deadline=$((SECONDS + 90))
until [ "$(count 'demo_access-*')" = "$access_lines" ] && [ "$(count 'demo_error-*')" = "$error_events" ]; do
    if [ $SECONDS -ge $deadline ]; then
        echo "not all documents arrived within 90 s; see $DEMO/agent.log and $DEMO/transfer.log" >&2
        exit 1
    fi
    sleep 1
done

echo "== found"
curl -sf "$LC_ES_URL/_cat/indices/demo_*?v&h=index,docs.count"
echo
echo "latest error events (_search on demo_error-*, newest first):"
curl -sf "$LC_ES_URL/demo_error-*/_search" -H 'content-type: application/json' \
    -d '{"size":3,"sort":[{"@timestamp":"desc"},{"log.offset":"desc"}],"query":{"match_all":{}}}' | python3 -c '
import json, sys
for h in json.load(sys.stdin)["hits"]["hits"]:
    s = h["_source"]
    where = "{}:{}@{}".format(s["host"]["name"], s["log"]["file"]["path"], s["log"]["offset"])
    print("  " + s["@timestamp"] + " " + where)
    for line in s["message"].splitlines():
        print("      " + line)'
echo
echo "server errors in the access log (query_string: message:\"500\"):"
curl -sf "$LC_ES_URL/demo_access-*/_count?q=message:%22500%22" | python3 -c 'import json,sys; print("  ", json.load(sys.stdin)["count"], "lines")'
cat <<HELP

Search more:   curl '$LC_ES_URL/demo_access-*/_search?q=message:login&size=5'
Metrics:       curl http://127.0.0.1:9101/metrics   (agent)   curl http://127.0.0.1:9102/metrics   (transfer)
Add a file:    etcdctl --endpoints $LC_ETCD_URL put collect_log_conf '[...]'   (applied within a second)
Run again:     scripts/demo.sh   (ships more sample lines)
Stop:          scripts/demo.sh stop
HELP
