#!/usr/bin/env bash
# The etcd client and the agent's configuration handling, against a real etcd.
. "$(dirname "$0")/lib.sh"

lc_services etcd

test_client_against_real_etcd() {
    # A second etcd, with authentication enabled, for the auth test.
    local auth_port=$((LC_FREE_PORT + 5))
    lc_services_at auth "$auth_port" etcd
    local e=(etcdctl --endpoints "http://127.0.0.1:$auth_port")
    "${e[@]}" user add root:rootpw --interactive=false >/dev/null
    "${e[@]}" user grant-role root root >/dev/null
    "${e[@]}" auth enable >/dev/null
    LC_SERVICES=$SERVICES LC_ETCD_AUTH_URL=http://127.0.0.1:$auth_port \
        cargo test -q -p logcollect-shared --test etcd_real -- --ignored --test-threads=1
}

test_agent_reads_etcd_over_tls_with_a_client_certificate() {
    local d=$TEST_TMP/tls port=$((LC_FREE_PORT + 8)) peer=$((LC_FREE_PORT + 9)) http=$((LC_FREE_PORT + 10))
    mkdir -p "$d"
    make_ca "$d" ca
    make_ca "$d" other
    make_cert "$d" etcd ca "DNS:localhost"
    make_cert "$d" agent ca "DNS:log-agent"
    # An etcd that speaks TLS only and asks clients for a certificate signed by the CA.
    lc_spawn etcd-tls etcd --name tls --data-dir "$d/data" \
        --listen-client-urls "https://127.0.0.1:$port" --advertise-client-urls "https://localhost:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "tls=http://127.0.0.1:$peer" \
        --cert-file "$d/etcd.pem" --key-file "$d/etcd.key" --client-cert-auth --trusted-ca-file "$d/ca.pem"
    local e=(etcdctl --endpoints "https://localhost:$port" --cacert "$d/ca.pem" --cert "$d/agent.pem" --key "$d/agent.key")
    wait_until 20 "etcd over TLS" "${e[@]}" endpoint health
    local rev
    rev=$("${e[@]}" put -w json collect_log_conf "$GOOD1" | python3 "$Q" 'd["header"]["revision"]')
    # with_tls LINE...: agent.ini for that etcd, with these [etcd] lines.
    with_tls() {
        agent_ini "$d/agent.ini" "$d/agent-data" "127.0.0.1:$http"
        sed -i "s|^endpoints = .*|endpoints = https://localhost:$port|" "$d/agent.ini"
        printf '%s\n' "$@" | sed -i '/^\[etcd\]$/r /dev/stdin' "$d/agent.ini"
    }
    # The wrong CA: the error names the check and the setting; the agent keeps running.
    with_tls "ca_file = $d/other.pem" "cert_file = $d/agent.pem" "key_file = $d/agent.key"
    lc_spawn agent "$BIN_DIR/log-agent" -c "$d/agent.ini"
    wait_until 15 "the CA error" grep -q 'TLS: its certificate is not signed by a CA this host trusts: set \[etcd\] ca_file' "$TEST_TMP/agent.log"
    echo "ok: $(grep -o "etcd https://localhost:$port.*UnknownIssuer[^;]*" "$TEST_TMP/agent.log" | head -n 1)"
    lc_alive agent || fail "the agent stopped on a TLS error"
    lc_kill agent
    # The right files: the configuration is read over TLS.
    with_tls "ca_file = $d/ca.pem" "cert_file = $d/agent.pem" "key_file = $d/agent.key"
    lc_spawn agent "$BIN_DIR/log-agent" -c "$d/agent.ini"
    wait_until 15 "configuration applied over TLS" yields "$rev" metric "127.0.0.1:$http" logcollect_agent_config_revision
    echo "ok: revision $rev applied over TLS with a client certificate"
}

GOOD1='[{"path":"/var/log/one.log","topic":"one"}]'
GOOD2='[{"path":"/var/log/one.log","topic":"one"},{"path":"/var/log/two/*.log","topic":"two"}]'

test_agent_keeps_last_good_config() {
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/data" "" collect_log_conf
    etcd_put collect_log_conf "$GOOD1"
    start_agent
    local log=$TEST_TMP/agent.log
    wait_until 10 "first config applied" grep -q 'revision [0-9]*: 1 entries' "$log"

    etcd_put collect_log_conf '[{"path":"/a","topic":"t"'
    wait_until 5 "invalid JSON reported" grep -q 'not valid JSON' "$log"
    assert_grep "reason and consequence" "$log" 'etcd key "collect_log_conf": not valid JSON: .*; keeping the last good configuration'
    etcd_put collect_log_conf '[{"path":"/a","topic":"bad topic"}]'
    wait_until 5 "invalid topic reported" grep -q 'entry 0: topic "bad topic": invalid character' "$log"
    lc_alive agent || fail "agent died on an invalid value"
    # The cache still holds the last good value.
    assert_eq "cached value" "$GOOD1" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["value"])' "$TEST_TMP/data/collect_conf.json")"

    etcd_put collect_log_conf "$GOOD2"
    wait_until 5 "second config applied" grep -q 'revision [0-9]*: 2 entries' "$log"
    assert_grep "entries listed" "$log" '/var/log/two/\*\.log -> topic two'
    lc_kill agent TERM || fail "agent did not exit 0 on SIGTERM"
    assert_grep "graceful stop" "$log" 'log-agent stopped'
}

test_agent_starts_from_cache_while_etcd_is_down() {
    # The previous test left GOOD2 in the cache.
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/data" "" collect_log_conf
    "$SERVICES" stop etcd
    start_agent
    local log=$TEST_TMP/agent.log
    wait_until 10 "cached config applied" grep -q 'revision [0-9]*: 2 entries' "$log"
    assert_grep "cache used" "$log" 'using the cached configuration'
    wait_until 10 "etcd failure reported" grep -q "etcd $LC_ETCD_URL .*keeping the last configuration" "$log"
    lc_alive agent || fail "agent died while etcd is down"

    lc_services etcd
    etcd_put collect_log_conf "$GOOD1"
    wait_until 15 "config applied after etcd returned" grep -q 'revision [0-9]*: 1 entries' "$log"
    assert_grep "recovery logged" "$log" 'reachable again after [0-9]+ failed polls'
    lc_kill agent TERM || fail "agent did not exit 0 on SIGTERM"
}

test_agent_per_host_key_falls_back_to_plain_key() {
    local host
    host=$(hostname)
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/data-host" "" 'collect_log_{hostname}'
    etcd_put collect_log_conf "$GOOD1"
    etcd_del "collect_log_$host"
    start_agent
    local log=$TEST_TMP/agent.log
    wait_until 10 "plain key applied" grep -q 'key "collect_log_conf" revision [0-9]*: 1 entries' "$log"
    etcd_put "collect_log_$host" "$GOOD2"
    wait_until 5 "per-host key applied" grep -q "key \"collect_log_$host\" revision [0-9]*: 2 entries" "$log"
    etcd_del "collect_log_$host"
    wait_until 5 "plain key applied again" has_count 2 'key "collect_log_conf" revision [0-9]*: 1 entries' "$log"
}

test_agent_fails_over_when_an_etcd_member_dies() {
    # A three-member cluster (client ports P, P+10, P+20); the agent knows all three.
    local port=$((LC_FREE_PORT + 8))
    lc_services_at cluster "$port" etcd-cluster
    local m0=http://127.0.0.1:$port m1=http://127.0.0.1:$((port + 10)) m2=http://127.0.0.1:$((port + 20))
    LC_ETCD_URL="$m0,$m1,$m2" agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/data-cluster" "" collect_log_conf
    etcdctl --endpoints "$m0" put collect_log_conf "$GOOD1" >/dev/null
    start_agent
    local log=$TEST_TMP/agent.log
    wait_until 10 "config applied from the first member" grep -q 'revision [0-9]*: 1 entries' "$log"

    # The member the agent reads from crashes; the other two keep a quorum.
    kill -KILL "$(cat "$TEST_TMP/services-cluster/etcd0.pid")"
    wait_until 20 "a put through the surviving members" \
        etcdctl --endpoints "$m1,$m2" --command-timeout 3s put collect_log_conf "$GOOD2"
    wait_until 10 "config applied through another member" grep -q 'revision [0-9]*: 2 entries' "$log"
    assert_grep "failover logged" "$log" "etcd: now using http://127.0.0.1:[0-9]+ \\($m0 failed\\)"
    lc_alive agent || fail "agent died when an etcd member crashed"
    lc_kill agent TERM || fail "agent did not exit 0 on SIGTERM"
}

test_command_line_and_ini_errors() {
    local out
    out=$("$BIN_DIR/log-agent" --version)
    assert_eq "agent --version" "log-agent 0.1.0" "$out"
    "$BIN_DIR/log-transfer" --help | grep -q -- '-c, --config PATH' || fail "transfer --help"
    set +e
    out=$("$BIN_DIR/log-agent" --frobnicate 2>&1)
    assert_eq "exit code of a usage error" 2 $?
    set -e
    assert_eq "usage error" "log-agent: invalid option '--frobnicate' (see --help)" "$out"

    printf '[etcd]\nendpoints = http://127.0.0.1:1\n[kafka]\nbrokers =\n' >"$TEST_TMP/bad.ini"
    set +e
    out=$("$BIN_DIR/log-agent" -c "$TEST_TMP/bad.ini" 2>&1)
    assert_eq "exit code of a config error" 1 $?
    set -e
    assert_eq "config error" "log-agent: $TEST_TMP/bad.ini: [kafka] brokers: empty" "$(echo "$out" | tail -n 1)"
    set +e
    out=$("$BIN_DIR/log-transfer" -c "$TEST_TMP/missing.ini" 2>&1)
    set -e
    assert_eq "missing ini" "log-transfer: $TEST_TMP/missing.ini: cannot read config: No such file or directory (os error 2)" "$(echo "$out" | tail -n 1)"
}

test_a_typo_in_the_ini_is_warned_about_and_the_agent_runs() {
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/data" "127.0.0.1:$LC_FREE_PORT" collect_log_conf
    # A setting under the wrong section, and a section name misspelt.
    printf '%s\n' "poll_interval_ms = 5000" | sed -i '/^\[agent\]$/r /dev/stdin' "$TEST_TMP/agent.ini"
    printf '%s\n' "[flet]" "name = web1" >>"$TEST_TMP/agent.ini"
    etcd_put collect_log_conf "$GOOD1"
    start_agent
    assert_grep "the key" "$TEST_TMP/agent.log" "WARN .*agent.ini: \[agent\] poll_interval_ms is not a setting of log-agent \(did you mean \[etcd\] poll_interval_ms\?\); ignored"
    assert_grep "the section" "$TEST_TMP/agent.log" "WARN .*agent.ini: \[flet\] is not a section log-agent reads \(did you mean \[fleet\]\?\); ignored"
    wait_until 10 "the configuration applied" grep -q 'revision [0-9]*: 1 entries' "$TEST_TMP/agent.log"
}

run_tests
