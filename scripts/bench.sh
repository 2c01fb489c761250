#!/usr/bin/env bash
# Benchmark: prints figures and ratios, asserts nothing.
#   agent:    LINES lines of ~100 bytes, already in a file, shipped to Kafka (start: beginning);
#             time until Kafka acknowledged them all, CPU seconds, peak RSS, then CPU while idle.
#             Then beside a bare producer with its settings, key and headers (lc-bare produce).
#   transfer: the same records indexed into the store; time until all are searchable. Then
#             the transfer into an instant store (lc-faultproxy sink) beside a bare consumer
#             (lc-bare consume, the transfer's consumer settings) reading the same records:
#             the agent's (one file, so one partition) and the same lines over all partitions.
#   processing: nginx records with and without a pipeline, into the instant store.
#   end to end: append -> searchable at 200 lines/s (scripts/e2e_latency.py).
# Pairs run three times each, alternating: the median, and the range.
# Uses release binaries and the services of scripts/services.sh on their own ports.
#
# Usage: scripts/bench.sh [LINES]   (default 500000; the transfer part indexes at most 50000)
# Environment: LC_KAFKA_ENGINE=tansu|apache (default tansu), LC_ES_ENGINE=osmem|opensearch.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-500000}
DOCS=$((LINES < 50000 ? LINES : 50000))
WORK=$(mktemp -d /tmp/lc-bench.XXXXXX)
export LC_RUN=$WORK/services LC_ETCD_PORT=23791 LC_ETCD_PEER_PORT=23792 LC_KAFKA_PORT=23793 \
    LC_KAFKA_CONTROLLER_PORT=23794 LC_ES_PORT=23795 LC_ES_TRANSPORT_PORT=23798
trap 'kill $(jobs -p) 2>/dev/null || true; scripts/services.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
scripts/services.sh start >/dev/null
eval "$(scripts/services.sh env)"
cargo build --release --quiet -p log-agent -p log-transfer -p logctl -p logcollect-testkit

python3 - "$WORK/app.log" "$LINES" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"2026-11-27T10:00:00.000Z INFO request {i} served path=/api/orders/{i % 977} status=200 ms={i % 313}\n")
PY
BYTES=$(stat -c %s "$WORK/app.log")
etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf \
    "[{\"path\":\"$WORK/app.log\",\"topic\":\"bench\",\"start\":\"beginning\"}]" >/dev/null
etcdctl --endpoints "$LC_ETCD_URL" put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}" >/dev/null
# The tests' ini writers (tests/lib.sh), for these services; RUST_LOG=warn below. etcd is
# polled at the daemons' default interval, so the idle figure is that of a default set-up.
LC_ETCD_POLL_MS=30000
LC_HELPERS_ONLY=1 . tests/lib.sh
agent_ini "$WORK/log-agent.ini" "$WORK/data" 127.0.0.1:23796

# measure DAEMON CHECK...: starts DAEMON with $WORK/DAEMON.ini and runs CHECK until it
# succeeds; sets PID and SECS (from start to then).
measure() {
    local start daemon=$1
    shift
    start=$(date +%s.%N)
    RUST_LOG=warn "target/release/$daemon" -c "$WORK/$daemon.ini" 2>"$WORK/$daemon.log" &
    PID=$!
    until "$@"; do
        sleep 0.05
    done
    SECS=$(echo "$(date +%s.%N) - $start" | bc)
}
# acked N: the agent has N lines acknowledged.
acked() {
    [ "$(metric 127.0.0.1:23796 logcollect_agent_all_files_lines_acked_total)" = "$1" ]
}
# committed TOPIC N: the transfer committed N records of TOPIC (every record done). Not the
# indexed count: a record delivered again after a rebalance is indexed twice (the second time
# onto its own id), so that count can reach N before every record is in.
committed() {
    [ "$(curl -sf http://127.0.0.1:23797/metrics | awk -v t="topic=\"$1\"" \
        '/^logcollect_transfer_committed_offset\{/ && index($1, t) { s += $2 } END { print s + 0 }')" = "$2" ]
}

# rate_of SECONDS...: the median of the rates RECORDS / SECONDS, and their range.
rate_of() {
    printf '%s\n' "$@" | sort -g | awk -v n="$RECORDS" '{ r[NR] = n / $1 }
        END { printf "%.0f/s (%.0f to %.0f)", r[int((NR + 1) / 2)], r[NR], r[1] }'
}
# median VALUES...: the median of three.
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
# median_ratio A B: the median of A's seconds over B's (B's rate over A's).
median_ratio() {
    local a b
    a=$(printf '%s\n' $1 | sort -g | sed -n 2p)
    b=$(printf '%s\n' $2 | sort -g | sed -n 2p)
    echo "$b / $a" | bc -l
}

measure log-agent acked "$LINES"
secs=$SECS
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
cpu=$(cpu_secs "$PID")
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$PID/status")
# Idle: everything shipped, nothing written; the agent should only wake for its timers.
sleep 10
idle=$(echo "$(cpu_secs "$PID") - $cpu" | bc -l)
kill "$PID"
wait "$PID" 2>/dev/null || true

# The agent beside a bare producer with its settings, key and headers (lc-bare produce): the
# same file, each run to a topic of its own; three runs of each, alternating.
RECORDS=$LINES agent_secs=$secs agent_cpu=$cpu bare_secs="" bare_cpu=""
for round in 1 2 3; do
    out=$(/usr/bin/time -o "$WORK/bare.time" -f "%U %S" target/release/lc-bare produce "$LC_KAFKA_BROKERS" "bench_bare_$round" "$WORK/app.log")
    bare_secs+=" $(python3 tests/json_query.py 'd["secs"]' <<<"$out")"
    bare_cpu+=" $(awk 'END { print $1 + $2 }' "$WORK/bare.time")"
    [ "$round" = 3 ] && break
    rm -rf "$WORK/data"
    etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf \
        "[{\"path\":\"$WORK/app.log\",\"topic\":\"bench_agent_$round\",\"start\":\"beginning\"}]" >/dev/null
    measure log-agent acked "$LINES"
    agent_secs+=" $SECS"
    agent_cpu+=" $(cpu_secs "$PID")"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
done

transfer_ini "$WORK/log-transfer.ini" 23797 2 log-transfer
# The store is the slow part: the transfer indexes DOCS records of the same lines, produced
# to a topic of their own.
etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf '[{"path":"/nonexistent","topic":"bench_docs"}]' >/dev/null
head -n "$DOCS" "$WORK/app.log" | target/release/lc-kafka produce "$LC_KAFKA_BROKERS" bench_docs
measure log-transfer committed bench_docs "$DOCS"
tsecs=$SECS
trss=$(awk '/VmHWM/ { print $2 }' "/proc/$PID/status")
curl -sf -XPOST "$LC_ES_URL/bench_docs-*/_refresh" >/dev/null
count=$(curl -sf "$LC_ES_URL/bench_docs-*/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
kill "$PID"

echo "log-agent (kafka: ${LC_KAFKA_ENGINE:-tansu}), $LINES lines, $((BYTES / 1048576)) MiB:"
printf '  %.2f s to acknowledged: %.0f lines/s, %.1f MiB/s\n' "$secs" "$(echo "$LINES / $secs" | bc -l)" "$(echo "$BYTES / 1048576 / $secs" | bc -l)"
printf '  CPU %.2f s: %.0f lines per CPU-second\n' "$cpu" "$(echo "$LINES / $cpu" | bc -l)"
printf '  peak RSS %.1f MiB (goal under 64 MiB: ratio %.2f)\n' "$(echo "$rss / 1024" | bc -l)" "$(echo "$rss / 65536" | bc -l)"
printf '  idle afterwards: %.2f CPU-seconds in 10 s (%.1f%% of one core)\n' "$idle" "$(echo "$idle * 10" | bc -l)"
echo "log-agent beside a bare producer with its settings, key and headers (lc-bare produce), three runs each:"
# shellcheck disable=SC2086
printf '  agent %s, %s CPU-s; bare producer %s, %s CPU-s\n' "$(rate_of $agent_secs)" "$(median $agent_cpu)" \
    "$(rate_of $bare_secs)" "$(median $bare_cpu)"
# shellcheck disable=SC2086
printf '  ratio %.2f (goal at least 0.9); lines per CPU-second ratio %.2f\n' "$(median_ratio "$agent_secs" "$bare_secs")" \
    "$(echo "$(median $bare_cpu) / $(median $agent_cpu)" | bc -l)"
echo "log-transfer, $DOCS documents into the store (es: ${LC_ES_ENGINE:-osmem}; including the group join, about 3 s):"
printf '  %.2f s: %.0f documents/s; %s documents in the store; peak RSS %.1f MiB\n' "$tsecs" \
    "$(echo "$DOCS / $tsecs" | bc -l)" "$count" "$(echo "$trss / 1024" | bc -l)"

target/release/lc-faultproxy 127.0.0.1:23799 sink 2>/dev/null &
etcdctl --endpoints "$LC_ETCD_URL" put elasticsearch_config '{"url_address":["http://127.0.0.1:23799"]}' >/dev/null
# processed GROUP VALUE TOPIC [RECORDS]: seconds from the first document indexed to RECORDS
# (default DOCS) records of TOPIC committed (commits go every second: up to 1 s more).
processed() {
    etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf "$2" >/dev/null
    transfer_ini "$WORK/log-transfer.ini" 23797 2 "$1"
    RUST_LOG=warn target/release/log-transfer -c "$WORK/log-transfer.ini" 2>"$WORK/$1.log" &
    local pid=$! n first=""
    until committed "$3" "${4:-$DOCS}"; do
        if [ -z "$first" ]; then
            n=$(metric 127.0.0.1:23797 logcollect_transfer_documents_indexed_total)
            [ "${n:-0}" -gt 0 ] && first=$(date +%s.%N)
        fi
        sleep 0.02
    done
    echo "$(date +%s.%N) - $first" | bc
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
# Three runs of each, alternating, each with a group of its own.
target/release/lc-kafka produce "$LC_KAFKA_BROKERS" bench_spread <"$WORK/app.log"
for topic in bench bench_spread; do
    bare="" transfer=""
    for round in 1 2 3; do
        bare+=" $(target/release/lc-bare consume "$LC_KAFKA_BROKERS" "$topic" "$RECORDS" "bare-$topic-$round" | python3 tests/json_query.py 'd["secs"]')"
        transfer+=" $(processed "transfer-$topic-$round" "[{\"path\":\"/nonexistent\",\"topic\":\"$topic\"}]" "$topic" "$RECORDS")"
    done
    case $topic in
        bench) what="the agent's records, one partition (goal at least 0.5)" ;;
        *) what="the same lines over 4 partitions (goal at least 0.8)" ;;
    esac
    echo "log-transfer into an instant store beside a bare consumer, $RECORDS records: $what"
    # shellcheck disable=SC2086
    printf '  transfer %s; bare consumer %s; ratio %.2f\n' "$(rate_of $transfer)" "$(rate_of $bare)" "$(median_ratio "$transfer" "$bare")"
done

# Processing: nginx access-log records through the transfer into an instant store (lc-faultproxy
# answering every bulk item at once), with the typical pipeline (dissect, timestamp, convert)
# and without processors; rates from the first document indexed to the last record committed (no group join).
python3 - "$WORK/access.log" "$DOCS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f'203.0.113.{i % 250} - user{i % 97} [28/Nov/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0100] '
                f'"GET /api/orders/{i % 977}?page={i % 13} HTTP/1.1" {200 + (i % 7 == 0) * 304} {i % 50000} '
                f'"https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"\n')
PY
NGINX_ENTRY='{"path":"/nonexistent/access.log","topic":"bench_nginx"'
PROCESSORS=',"processors":[
  {"dissect":{"tokenizer":"%{source.ip} - %{user.name} [%{ts}] \"%{http.request.method} %{url.original} %{?proto}\" %{http.response.status_code} %{http.response.body.bytes} \"%{http.request.referrer}\" \"%{user_agent.original}\""}},
  {"timestamp":{"field":"ts","layouts":["%d/%b/%Y:%H:%M:%S %z"]}},
  {"convert":{"fields":{"http.response.status_code":"integer","http.response.body.bytes":"integer"}}},
  {"drop_fields":{"fields":["ts"]}}]'
target/release/lc-kafka produce "$LC_KAFKA_BROKERS" bench_nginx <"$WORK/access.log"
# Twice each, alternating, each run with a group of its own; the better of the two counts.
with=999999 without=999999
for round in 1 2; do
    t=$(processed "bench-processed-$round" "[$NGINX_ENTRY$PROCESSORS}]" bench_nginx)
    with=$(echo "if ($t < $with) $t else $with" | bc -l)
    t=$(processed "bench-plain-$round" "[$NGINX_ENTRY}]" bench_nginx)
    without=$(echo "if ($t < $without) $t else $without" | bc -l)
done
# Where the time goes: the same rendering code, single-threaded, in logctl's dry run.
dry() {
    printf '%s' "$1" >"$WORK/value.json"
    local start
    start=$(date +%s.%N)
    target/release/logctl --endpoints "$LC_ETCD_URL" -o json pipeline test --value "$WORK/value.json" \
        --entry /nonexistent/access.log <"$WORK/access.log" >/dev/null || true
    echo "($(date +%s.%N) - $start) * 1000000 / $DOCS" | bc -l
}
dry_with=$(dry "[$NGINX_ENTRY$PROCESSORS}]")
dry_without=$(dry "[$NGINX_ENTRY}]")
echo "log-transfer processing, $DOCS nginx access-log records into an instant store (2 consumer threads):"
printf '  with dissect + timestamp + convert: %.0f documents/s; without processors: %.0f documents/s; ratio %.2f (goal at least 0.7)\n' \
    "$(echo "$DOCS / $with" | bc -l)" "$(echo "$DOCS / $without" | bc -l)" "$(echo "$without / $with" | bc -l)"
printf '  rendering one document (one thread, logctl pipeline test): %.1f us with the processors, %.1f us without\n' "$dry_with" "$dry_without"

# End to end at a low rate: append -> searchable in the store of this run, both daemons with
# their default batching (batch_max_wait_ms 1000; a request goes out as soon as the consumers
# caught up). A first line on another file of the entry gets the topic created and joined.
etcdctl --endpoints "$LC_ETCD_URL" put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}" >/dev/null
mkdir -p "$WORK/latency"
: >"$WORK/latency/probe.log"
etcdctl --endpoints "$LC_ETCD_URL" put collect_log_conf \
    "[{\"path\":\"$WORK/latency/*.log\",\"topic\":\"bench_latency\",\"start\":\"beginning\"}]" >/dev/null
rm -rf "$WORK/data"
RUST_LOG=warn target/release/log-agent -c "$WORK/log-agent.ini" 2>"$WORK/latency-agent.log" &
agent=$!
transfer_ini "$WORK/log-transfer.ini" 23797 2 bench-latency
sed -i '/^batch_max_wait_ms/d' "$WORK/log-transfer.ini"
RUST_LOG=warn target/release/log-transfer -c "$WORK/log-transfer.ini" 2>"$WORK/latency-transfer.log" &
transfer=$!
echo warm-up >"$WORK/latency/warmup.log"
until [ "$(curl -sf "$LC_ES_URL/bench_latency-*/_count" | python3 tests/json_query.py 'd["count"]' 2>/dev/null)" = 1 ]; do
    sleep 0.2
done
echo "end to end (es: ${LC_ES_ENGINE:-osmem}; its refresh interval is 1 s), agent and transfer with default batching:"
printf '  '
python3 scripts/e2e_latency.py "$WORK/latency/probe.log" "$LC_ES_URL" 'bench_latency-*' 200 20
kill "$agent" "$transfer"
wait "$agent" "$transfer" 2>/dev/null || true
