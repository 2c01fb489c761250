# Shell test harness. A test file sources this, defines functions named test_*, and ends with
# `run_tests`. Each test_* runs in a subshell with `set -e`; a failed assertion ends that test only.
#
# Every test file gets its own run directory and ports, so files can run side by side, and
# its services and daemons are stopped when it exits.
#
#   lc_services etcd kafka es     start real services on this file's ports (scripts/services.sh)
#   lc_spawn NAME CMD...          start a daemon in the background; log in $TEST_TMP/NAME.log
#   lc_kill NAME [SIGNAL]         signal a spawned daemon (TERM by default) and wait for it
#   wait_until SECS WHAT CMD...   run CMD until it succeeds, or fail naming WHAT
#   assert_eq WHAT EXPECTED GOT   fail with expected vs got
#   assert_grep WHAT FILE REGEX   fail with the file's tail unless REGEX is in FILE
#   has_count N REGEX FILE        exactly N lines of FILE match REGEX
#   has_more N REGEX FILE         more than N lines of FILE match REGEX
#   yields EXPECTED CMD...        CMD prints EXPECTED
#   agent_ini FILE DATA_DIR [METRICS_ADDR] [ETCD_KEY]   an agent ini for these services
#   transfer_ini FILE PORT THREADS GROUP [SETTING...]   a transfer ini for these services
#   metric ADDR NAME              a series of the /metrics at ADDR
#   start_agent                   the agent with $TEST_TMP/agent.ini
#   collect_one NAME [FIELDS] / wait_applied LOG NAME   one entry $TEST_TMP/NAME/app.log -> NAME
#   etcd_put KEY VALUE / etcd_del KEY   through etcdctl, on this file's etcd
#   $LOGCTL, $Q                   the logctl binary; tests/json_query.py (the tests' jq)

set -uo pipefail

# --- Helpers that need no harness: the daemons' ini files and /metrics. scripts/demo.sh and
# scripts/bench.sh source this file with LC_HELPERS_ONLY=1 for them alone. They use the
# services' variables (LC_ETCD_URL, LC_KAFKA_BROKERS, LC_KAFKA_ENGINE: scripts/services.sh env).
# Changes reach the daemons through etcd watches; the safety-net poll runs every LC_ETCD_POLL_MS
# (60 s here, so that a change a watch missed makes a test fail instead of arriving by poll).

# agent_ini FILE DATA_DIR [METRICS_ADDR] [ETCD_KEY]: an agent ini for these services.
agent_ini() {
    cat >"$1" <<INI
[etcd]
endpoints = $LC_ETCD_URL
key = ${4:-collect_log_conf}
poll_interval_ms = ${LC_ETCD_POLL_MS:-60000}
[kafka]
brokers = $LC_KAFKA_BROKERS
[agent]
data_dir = $2
http_listen = ${3:-}
shutdown_timeout_ms = 5000
INI
}

# transfer_ini FILE METRICS_PORT THREADS GROUP [KAFKA_SETTING...]: settings such as
# "instance_id = t1" go to [kafka], in place of a default of the same key. On Tansu the
# default is dynamic membership: Tansu 0.6 did not let go of a killed static member within a
# minute (6 s session timeout), so a transfer on other topics, and so with other member ids,
# got no partition.
transfer_ini() {
    local kafka setting
    kafka=$(printf '%s\n' "consumer_threads = $3" "group_id = $4" "session_timeout_ms = 6000")
    [ "${LC_KAFKA_ENGINE:-tansu}" = tansu ] && kafka+=$'\ninstance_id ='
    for setting in "${@:5}"; do
        kafka=$(grep -v "^${setting%% =*} =" <<<"$kafka")$'\n'$setting
    done
    cat >"$1" <<INI
[etcd]
endpoints = $LC_ETCD_URL
poll_interval_ms = ${LC_ETCD_POLL_MS:-60000}
[kafka]
brokers = $LC_KAFKA_BROKERS
$kafka
[transfer]
http_listen = 127.0.0.1:$2
batch_max_wait_ms = 200
shutdown_timeout_ms = 5000
INI
}

# metric ADDR NAME: the value of the series NAME (labels included) on http://ADDR/metrics.
metric() { curl -sf "http://$1/metrics" | awk -v k="$2" '$1 == k { print $2 }'; }

# has_count N REGEX FILE: FILE has exactly N lines matching REGEX (for wait_until).
has_count() { [ "$(grep -Ec -- "$2" "$3")" = "$1" ]; }

# has_more N REGEX FILE: FILE has more than N lines matching REGEX (for wait_until).
has_more() { [ "$(grep -Ec -- "$2" "$3")" -gt "$1" ]; }

# yields EXPECTED CMD...: CMD prints EXPECTED. For wait_until, which runs CMD anew each time
# (a "$(...)" in wait_until's own arguments is expanded once, before it starts waiting).
yields() { [ "$("${@:2}")" = "$1" ]; }
# make_ca DIR NAME: a CA (DIR/NAME.pem, .key) made with openssl.
make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" \
        -keyout "$1/$2.key" -out "$1/$2.pem" 2>/dev/null
}

# make_cert DIR NAME CA SAN: DIR/NAME.pem and .key, signed by CA, for SAN (e.g. DNS:localhost).
make_cert() {
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1/$2.key" -out "$1/$2.csr" 2>/dev/null
    openssl x509 -req -in "$1/$2.csr" -CA "$1/$3.pem" -CAkey "$1/$3.key" -CAcreateserial -days 2 \
        -extfile <(printf 'subjectAltName=%s' "$4") -out "$1/$2.pem" 2>/dev/null
}

# yields_match REGEX CMD...: what CMD prints matches REGEX (grep -E), for wait_until.
yields_match() { "${@:2}" | grep -Eq -- "$1"; }

[ "${LC_HELPERS_ONLY:-}" = 1 ] && return 0

# --- The harness.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES=$REPO/scripts/services.sh
BIN_DIR=${LC_BIN_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/debug}
LOGCTL=$BIN_DIR/logctl
# The tests' jq: tests/json_query.py EXPR prints EXPR over the JSON on stdin (bound to `d`).
Q=$REPO/tests/json_query.py
# Files marked "# engines: each set" run once per engine set (LC_ENGINE_SET=standin|real, with
# LC_KAFKA_ENGINE and LC_ES_ENGINE, see scripts/test.sh); the set is part of their test names.
TEST_NAME=$(basename "$0" .sh)${LC_ENGINE_SET:+[$LC_ENGINE_SET]}
# No brackets in paths: the tests use them in regular expressions.
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lc-$(basename "$0" .sh)${LC_ENGINE_SET:+-$LC_ENGINE_SET}.XXXXXX")
RESULTS=${LC_RESULTS:-$TEST_TMP/results}
declare -A LC_PIDS=()

# A block of 40 free ports for this file, below the ephemeral range (32768 up here): a port
# the kernel gave an outgoing connection as its source cannot be listened on, and a block in
# that range failed a CI run ("Address already in use" for a daemon's /metrics).
pick_ports() {
    local base i busy low
    low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for _ in $(seq 1 50); do
        base=$((10000 + (RANDOM % ((low - 10040) / 40)) * 40))
        busy=0
        for i in $(seq 0 39); do
            if ss -Htan "sport = :$((base + i))" | grep -q .; then busy=1; break; fi
        done
        [ $busy = 0 ] && { echo "$base"; return; }
    done
    echo "no free port block found" >&2
    return 1
}
PORT_BASE=$(pick_ports)
export LC_RUN=$TEST_TMP/services
export LC_ETCD_PORT=$((PORT_BASE + 1)) LC_ETCD_PEER_PORT=$((PORT_BASE + 2))
export LC_KAFKA_PORT=$((PORT_BASE + 3)) LC_ES_PORT=$((PORT_BASE + 4)) LC_KAFKA_CONTROLLER_PORT=$((PORT_BASE + 5))
export LC_ES_TRANSPORT_PORT=$((PORT_BASE + 6))
# Free ports for the daemons' own servers and further services: PORT_BASE+10 to +39.
export LC_FREE_PORT=$((PORT_BASE + 10))
eval "$("$SERVICES" env)"

lc_services() { "$SERVICES" start "$@"; }

# lc_services_at NAME ETCD_PORT SERVICE...: a second set of services in its own run directory.
lc_services_at() {
    local name=$1 port=$2
    shift 2
    LC_RUN=$TEST_TMP/services-$name LC_ETCD_PORT=$port LC_ETCD_PEER_PORT=$((port + 1)) \
        "$SERVICES" start "$@"
}

# Kills every daemon spawned by the current test.
kill_spawned() {
    local name
    for name in "${!LC_PIDS[@]}"; do
        kill -KILL "${LC_PIDS[$name]}" 2>/dev/null
        wait "${LC_PIDS[$name]}" 2>/dev/null || true # reaped here: bash prints no "Killed" notice
    done
    LC_PIDS=()
}

cleanup() {
    # Daemons of a test that was itself killed are listed in spawned.pids.
    [ -f "$TEST_TMP/spawned.pids" ] && xargs -r kill -KILL <"$TEST_TMP/spawned.pids" 2>/dev/null
    local run
    for run in "$TEST_TMP"/services*; do
        [ -d "$run" ] && LC_RUN=$run "$SERVICES" stop etcd kafka es etcd-cluster kafka-cluster >/dev/null 2>&1
    done
    if [ "${LC_KEEP_TMP:-}" = 1 ]; then echo "kept $TEST_TMP" >&2; else rm -rf "$TEST_TMP"; fi
}
trap cleanup EXIT

lc_spawn() {
    local name=$1
    shift
    "$@" >>"$TEST_TMP/$name.log" 2>&1 &
    LC_PIDS[$name]=$!
    echo $! >>"$TEST_TMP/spawned.pids"
}

lc_kill() {
    local name=$1 sig=${2:-TERM} pid=${LC_PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    kill -"$sig" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local rc=$?
    unset "LC_PIDS[$name]"
    return $rc
}

lc_alive() { kill -0 "${LC_PIDS[$1]:-0}" 2>/dev/null; }

# fail MESSAGE: ends the test; the runner repeats MESSAGE on the test's FAIL line.
fail() {
    echo "    FAIL: $*" >&2
    echo "$*" >"$TEST_TMP/fail-reason"
    exit 1
}

wait_until() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.2
    done
}

assert_eq() {
    [ "$2" == "$3" ] || fail "$1"$'\n'"      expected: $2"$'\n'"      got:      $3"
}

assert_grep() {
    grep -Eq -- "$3" "$2" || {
        echo "    last lines of $2:" >&2
        tail -n 15 "$2" | sed 's/^/      /' >&2
        fail "$1: no line matches /$3/ in $2"
    }
}

# start_agent: the agent with $TEST_TMP/agent.ini, logging to $TEST_TMP/agent.log; when the
# ini has an http_listen, once its /health answers.
start_agent() {
    local addr
    addr=$(sed -n 's/^http_listen = //p' "$TEST_TMP/agent.ini")
    lc_spawn agent "$BIN_DIR/log-agent" -c "$TEST_TMP/agent.ini"
    [ -z "$addr" ] || wait_until 10 "agent /health" curl -sf "http://$addr/health"
}

# collect_one NAME [JSON_FIELDS]: collect_log_conf is the one entry $TEST_TMP/NAME/app.log ->
# topic NAME (plus the given fields); the directory is created.
collect_one() {
    mkdir -p "$TEST_TMP/$1"
    etcd_put collect_log_conf "[{\"path\":\"$TEST_TMP/$1/app.log\",\"topic\":\"$1\"${2:+,$2}}]"
}

# wait_applied AGENT_LOG NAME: the agent applied the entry of collect_one NAME.
wait_applied() { wait_until 10 "entry $2 applied" grep -q "$TEST_TMP/$2/app.log -> topic $2" "$1"; }

etcd_put() { etcdctl --endpoints "$LC_ETCD_URL" put "$1" "$2" >/dev/null; }
etcd_del() { etcdctl --endpoints "$LC_ETCD_URL" del "$1" >/dev/null; }
# status_of KIND/NAME: a daemon's status value in etcd (its heartbeat), empty if none.
status_of() { etcdctl --endpoints "$LC_ETCD_URL" get --print-value-only "logcollect/status/$1"; }

# Runs every test_* function defined by the file, in order (only those whose name contains
# $LC_ONLY, if set); prints one line per test and
# appends "pass NAME" or "fail NAME" to $RESULTS. Exits non-zero if any failed.
run_tests() {
    local t failed=0 start rc
    # In the order of the file; a test defined only for some engine is indented under an `if`.
    for t in $(grep -oE '^ *test_[A-Za-z0-9_]+\(\)' "$0" | tr -d ' ()'); do
        declare -F "$t" >/dev/null || continue
        [[ $t == *${LC_ONLY:-}* ]] || continue
        start=$SECONDS
        rm -f "$TEST_TMP/fail-reason"
        # Not inside `if`: there bash would ignore set -e in the subshell.
        (set -e; trap kill_spawned EXIT; "$t")
        rc=$?
        # The daemons' logs of one test are not read by the next (kept with LC_KEEP_TMP).
        mkdir -p "$TEST_TMP/logs/$t"
        mv "$TEST_TMP"/*.log "$TEST_TMP/logs/$t/" 2>/dev/null || true
        if [ $rc = 0 ]; then
            echo "ok   $TEST_NAME::$t ($((SECONDS - start))s)"
            echo "pass $TEST_NAME::$t" >>"$RESULTS"
        else
            # Without a fail message, a command failed under set -e (or bash aborted the
            # test): its own output, if any, is above.
            echo "FAIL $TEST_NAME::$t ($((SECONDS - start))s): $(cat "$TEST_TMP/fail-reason" 2>/dev/null ||
                echo "exit status $rc from a command that failed, with no fail message")"
            echo "fail $TEST_NAME::$t" >>"$RESULTS"
            failed=1
        fi
    done
    return $failed
}
