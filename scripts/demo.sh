#!/usr/bin/env bash
# The main job on a fresh machine: installs and starts the services, builds the daemons,
# puts a demo configuration into etcd, and starts log-agent and log-transfer on it.
# Stop everything with: scripts/demo.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export LC_RUN=${LC_RUN:-$REPO/.run/services}
DEMO=$REPO/.run/demo
SERVICES=scripts/services.sh

if [ "${1:-}" = stop ]; then
    for p in "$DEMO"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; rm -f "$p"; done
    "$SERVICES" stop
    exit 0
fi

"$SERVICES" start
eval "$("$SERVICES" env)"
cargo build --release --quiet
mkdir -p "$DEMO/logs"

etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf \
    "[{\"path\":\"$DEMO/logs/access.log\",\"topic\":\"demo_access\",\"start\":\"beginning\"},
      {\"path\":\"$DEMO/logs/error.log\",\"topic\":\"demo_error\",\"start\":\"beginning\"}]" >/dev/null
etcdctl --endpoints "$LC_ETCD_URL" put elasticsearch_config \
    "{\"api_key\":\"\",\"url_address\":[\"$LC_ES_URL\"]}" >/dev/null

for d in agent transfer; do
    cat >"$DEMO/$d.ini" <<INI
[etcd]
endpoints = $LC_ETCD_URL
[kafka]
brokers = $LC_KAFKA_BROKERS
[agent]
data_dir = $DEMO/agent-data
INI
    if [ -f "$DEMO/$d.pid" ] && kill -0 "$(cat "$DEMO/$d.pid")" 2>/dev/null; then continue; fi
    nohup "target/release/log-$d" -c "$DEMO/$d.ini" >"$DEMO/$d.log" 2>&1 &
    echo $! >"$DEMO/$d.pid"
done
sleep 2
echo
echo "Services: etcd $LC_ETCD_URL, Kafka $LC_KAFKA_BROKERS, Elasticsearch API $LC_ES_URL"
echo "log-agent (log: $DEMO/agent.log):"
sed 's/^/  /' "$DEMO/agent.log"
echo "log-transfer (log: $DEMO/transfer.log):"
sed 's/^/  /' "$DEMO/transfer.log"
echo
echo "Stop everything with: scripts/demo.sh stop"
