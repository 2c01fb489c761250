#!/usr/bin/env bash
# The web console's figures with many documents in a real OpenSearch: first paint of the search
# page and the time until its results show (chromium, headless), and the p50/p95 of searches
# through the console's API. Prints them, asserts nothing.
#
# The documents are indexed by the real transfer's template (a first record goes through the
# pipeline, which installs it), then bulk-loaded directly: shaped as the transfer writes them,
# spread over the last 24 hours.
#
# Usage: scripts/bench-console.sh [DOCUMENTS] [QUERIES]   (default 1,000,000 and 200)
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${1:-1000000}
QUERIES=${2:-200}
WORK=$(mktemp -d /tmp/lc-bench-console.XXXXXX)
export LC_RUN=$WORK/services LC_ETCD_PORT=23991 LC_ETCD_PEER_PORT=23992 LC_KAFKA_PORT=23993
export LC_KAFKA_CONTROLLER_PORT=23994 LC_ES_PORT=23995 LC_ES_TRANSPORT_PORT=23996
export LC_KAFKA_ENGINE=apache LC_ES_ENGINE=opensearch
trap 'kill $(jobs -p) 2>/dev/null || true; scripts/services.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
scripts/services.sh start etcd kafka es >/dev/null
eval "$(scripts/services.sh env)"
scripts/services.sh install build
cargo build --release --quiet -p log-transfer -p logctl -p logcollect-testkit
BIN=target/release
LC_HELPERS_ONLY=1 . tests/lib.sh

etcd_put() { etcdctl --endpoints "$LC_ETCD_URL" put "$1" "$2" >/dev/null; }
etcd_put collect_log_conf '[{"path":"/var/log/bench.log","topic":"bench"}]'
etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"
transfer_ini "$WORK/transfer.ini" 23997 2 bench
RUST_LOG=warn "$BIN/log-transfer" -c "$WORK/transfer.ini" 2>"$WORK/transfer.log" &
echo "seq=0 the record that installs the template" | "$BIN/lc-kafka" produce "$LC_KAFKA_BROKERS" bench
until [ "$(curl -s "$LC_ES_URL/_index_template/logcollect" | python3 tests/json_query.py \
    '"bench-*" in d["index_templates"][0]["index_template"]["index_patterns"]' 2>/dev/null)" = true ]; do sleep 0.5; done
python3 scripts/bench_console.py load "$LC_ES_URL" bench "$DOCS"

"$BIN/logctl" -c "$WORK/transfer.ini" serve --listen 127.0.0.1:23998 2>"$WORK/console.log" &
until curl -sf http://127.0.0.1:23998/ >/dev/null; do sleep 0.2; done
python3 scripts/bench_console.py measure http://127.0.0.1:23998 "$QUERIES"
