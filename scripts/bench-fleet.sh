#!/usr/bin/env bash
# Control-plane figures against a real etcd; prints them, asserts nothing.
#   1. A real log-agent: time from a put of collect_log_conf to the agent applying it (through
#      its watch; the safety-net poll is 30 s), p50/p99 over 100 changes.
#   2. lc-fleet: N simulated agents (lease, status rewritten every 10 s, a watch each) for
#      SECONDS; meanwhile etcd's CPU and memory, and how long `logctl status` takes over them;
#      then how long a put takes to reach all N watchers.
#
# Usage: scripts/bench-fleet.sh [N] [SECONDS]   (default 1000 agents, 40 s)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
SECS=${2:-40}
WORK=$(mktemp -d /tmp/lc-bench-fleet.XXXXXX)
export LC_RUN=$WORK/services LC_ETCD_PORT=23891 LC_ETCD_PEER_PORT=23892
trap 'kill $(jobs -p) 2>/dev/null || true; scripts/services.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
scripts/services.sh start etcd >/dev/null
eval "$(scripts/services.sh env)"
scripts/services.sh install build
cargo build --release --quiet -p log-agent -p logctl -p logcollect-testkit
BIN=target/release
ETCD_PID=$(cat "$LC_RUN/etcd.pid")
LC_ETCD_POLL_MS=30000 LC_KAFKA_BROKERS=127.0.0.1:1 LC_HELPERS_ONLY=1 . tests/lib.sh

echo "== 1. config put -> applied by a real agent"
agent_ini "$WORK/agent.ini" "$WORK/data" 127.0.0.1:23896
RUST_LOG=warn "$BIN/log-agent" -c "$WORK/agent.ini" 2>"$WORK/agent.log" &
AGENT=$!
until curl -sf http://127.0.0.1:23896/health >/dev/null; do sleep 0.1; done
python3 scripts/apply_latency.py "$LC_ETCD_URL" 127.0.0.1:23896 "$WORK" 100
kill $AGENT; wait $AGENT 2>/dev/null || true

echo "== 2. $N simulated agents for ${SECS}s"
cpu() { awk '{ print $14 + $15 }' "/proc/$ETCD_PID/stat"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$ETCD_PID/status"; }
echo "etcd before: RSS $(($(rss) / 1024)) MiB"
cpu0=$(cpu)
"$BIN/lc-fleet" "$LC_ETCD_URL" "$N" "$SECS" >"$WORK/fleet.json" &
FLEET=$!
sleep $((SECS / 2 + 5))
start=$(date +%s.%N)
"$BIN/logctl" --endpoints "$LC_ETCD_URL" status -o json --offline-for 0s >"$WORK/status.json" || true
end=$(date +%s.%N)
rows=$(python3 tests/json_query.py 'len(d)' <"$WORK/status.json")
echo "logctl status over $rows agents: $(python3 -c "print(f'{$end - $start:.2f}')") s"
wait $FLEET
cpu1=$(cpu)
hz=$(getconf CLK_TCK)
total=$((SECS + 20 + 4))
echo "etcd CPU: $(python3 -c "print(f'{($cpu1 - $cpu0) / $hz:.1f} s over ~$total s = {($cpu1 - $cpu0) / $hz / $total * 100:.1f}% of one core')")"
echo "etcd after: RSS $(($(rss) / 1024)) MiB, peak $(($(awk '/^VmHWM/ { print $2 }' "/proc/$ETCD_PID/status") / 1024)) MiB, db $(du -h "$LC_RUN/etcd.data" | tail -1 | cut -f1)"
echo "watch delivery and heartbeat value: $(cat "$WORK/fleet.json")"
