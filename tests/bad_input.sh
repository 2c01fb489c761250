#!/usr/bin/env bash
# Bad input, each met with an error that names what is wrong, while the daemons keep working
# and lose nothing: what a watched directory holds that cannot be tailed (a directory, a FIFO,
# a device), a binary file and lines with NUL bytes, a 100 MiB line, 10,000 files in one
# directory, a 10 MiB etcd value, wrong shapes in elasticsearch_config, the disk holding
# data_dir full, a store that answers garbage or a truncated body. On the stand-in engines
# (Tansu, osmem-server); the chaos suite (tests/chaos.sh) runs the real ones.
. "$(dirname "$0")/lib.sh"

# etcd takes values up to 16 MiB here (its default refuses more than 1.5 MiB).
LC_ETCD_MAX_REQUEST_BYTES=$((16 * 1024 * 1024)) lc_services etcd kafka es

METRICS=127.0.0.1:$LC_FREE_PORT
TRANSFER=127.0.0.1:$((LC_FREE_PORT + 1))
PROXY=127.0.0.1:$((LC_FREE_PORT + 2))
CHECK=$REPO/tests/check_kafka.py
CHECK_ES=$REPO/tests/check_es.py
WRITE=$REPO/tests/write_lines.py
LOG=$TEST_TMP/agent.log
HOST=$(hostname)

agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/data" "$METRICS"
transfer_ini "$TEST_TMP/transfer.ini" $((LC_FREE_PORT + 1)) 2 lc-bad

# consume TOPIC MIN OUT: every record of TOPIC, once at least MIN arrived.
consume() { "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" "$1" "$2" 60 >"$3" || fail "topic $1: $(wc -l <"$3") of $2 records"; }
errors_of() { metric "$METRICS" "logcollect_agent_errors_total{kind=\"$1\"}"; }

test_what_cannot_be_tailed_is_named_and_the_rest_flows() {
    local d=$TEST_TMP/odd
    mkdir -p "$d/dir.log"
    mkfifo "$d/pipe.log"
    ln -s /dev/null "$d/device.log"
    printf 'one\ntwo\n' >"$d/a.log"
    # A binary file: NUL bytes inside lines, bytes that are not UTF-8, \r\n.
    printf 'bin\000ary\000\nsecond \377\376 line\r\n\000\n' >"$d/binary.log"
    etcd_put collect_log_conf "[{\"path\":\"$d/*.log\",\"topic\":\"odd\",\"start\":\"beginning\"}]"
    start_agent
    wait_until 10 "three things named" has_count 3 'not a regular file; not tailed' "$LOG"
    assert_grep "the directory" "$LOG" "$d/dir.log: a directory, not a regular file; not tailed \\(entry $d/\\*.log\\)"
    assert_grep "the FIFO" "$LOG" "$d/pipe.log: a FIFO, not a regular file; not tailed"
    assert_grep "the device" "$LOG" "$d/device.log: a character device, not a regular file; not tailed"
    consume odd 5 "$TEST_TMP/odd.json"
    python3 "$CHECK" exact "$TEST_TMP/odd.json" "$HOST" "$d/a.log" "$d/binary.log"
    # Said once, not at every scan; the agent goes on with new lines and new files.
    printf 'three\n' >>"$d/a.log"
    printf 'new\n' >"$d/b.log"
    consume odd 7 "$TEST_TMP/odd2.json"
    python3 "$CHECK" exact "$TEST_TMP/odd2.json" "$HOST" "$d/a.log" "$d/binary.log" "$d/b.log"
    assert_eq "said once each" 3 "$(grep -c 'not a regular file; not tailed' "$LOG")"
    assert_eq "counted" 3 "$(errors_of not_a_file)"
}

test_a_100_mib_line_is_cut_and_memory_stays_bounded() {
    local d=$TEST_TMP/huge
    collect_one huge '"start":"beginning"'
    start_agent
    wait_applied "$LOG" huge
    python3 "$WRITE" odd "$d/app.log" 100
    consume huge 4 "$TEST_TMP/huge.json"
    python3 "$CHECK" odd "$TEST_TMP/huge.json" 100
    local rss
    rss=$(awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/${LC_PIDS[agent]}/status")
    echo "    the agent's peak RSS: $rss MiB (max_line_bytes 1 MiB)"
}

test_10000_files_in_one_directory_are_all_shipped() {
    local d=$TEST_TMP/many
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/*.log\",\"topic\":\"many\",\"start\":\"beginning\"}]"
    python3 -c "
import sys
for i in range(10000):
    open(f'{sys.argv[1]}/f{i:05d}.log', 'w').write(f'seq={i + 1} file {i}\n')" "$d"
    start_agent
    consume many 10000 "$TEST_TMP/many.json"
    python3 "$CHECK" seq "$TEST_TMP/many.json" 10000
    local pid=${LC_PIDS[agent]}
    echo "    the agent: $(awk '/^Threads/ { print $2 }' "/proc/$pid/status") threads, peak RSS $(awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$pid/status") MiB for 10,000 files"
    lc_alive agent || fail "the agent stopped"
}

test_a_10_mib_etcd_value_is_refused_by_name() {
    local d=$TEST_TMP/big
    collect_one big
    start_agent
    wait_applied "$LOG" big
    local before
    before=$(stat -c %s "$LOG")
    # Through the gateway: etcdctl refuses to send more than 2 MiB.
    python3 -c "
import base64, json, sys
value = json.dumps([{'path': '/x/' + 'p' * (10 << 20), 'topic': 'big'}]).encode()
print(json.dumps({'key': base64.b64encode(b'collect_log_conf').decode(), 'value': base64.b64encode(value).decode()}))" >"$TEST_TMP/put.json"
    curl -sf "$LC_ETCD_URL/v3/kv/put" --data-binary @"$TEST_TMP/put.json" >/dev/null || fail "etcd refused the value"
    wait_until 10 "the value refused" grep -q 'key "collect_log_conf"): the answer is larger than 10 MiB (a value of 7.5 MiB or more, in base64): too large for a configuration; keeping the last configuration' "$LOG"
    # The log holds no copy of the value, and the last good configuration goes on.
    [ $(($(stat -c %s "$LOG") - before)) -lt 10000 ] || fail "the log grew by $(($(stat -c %s "$LOG") - before)) bytes"
    echo "seq=1" >>"$d/app.log"
    consume big 1 "$TEST_TMP/big.json"
    python3 "$CHECK" seq "$TEST_TMP/big.json" 1
}

# Each kind of setting, wrong: the daemon does not start, and its last line names the file,
# the key and what is wrong with the value.
test_a_malformed_ini_names_the_key_and_the_value() {
    local who body expected ini=$TEST_TMP/bad.ini out rc
    local base="[etcd]\nendpoints = http://127.0.0.1:1\n[kafka]\nbrokers = 127.0.0.1:1\n"
    while IFS='|' read -r who body expected; do
        printf "${body/BASE/$base}\n" >"$ini"
        rc=0
        out=$(timeout 10 "$BIN_DIR/log-$who" -c "$ini" 2>&1) || rc=$?
        assert_eq "exit status with: $body" 1 "$rc"
        assert_eq "the error with: $body" "log-$who: ${expected//INI/$ini}" "$(tail -n 1 <<<"$out")"
    done <<'CASES'
agent|BASE[agent]\nshutdown_timeout_ms = soon|INI: [agent] shutdown_timeout_ms: "soon": invalid digit found in string
agent|BASE[agent]\nmax_line_bytes = -1|INI: [agent] max_line_bytes: "-1": invalid digit found in string
agent|BASE[agent]\nhttp_listen = localhost|INI: [agent] http_listen: "localhost": invalid socket address syntax
agent|BASE[agent]\ndata_dir = /proc/nope|/proc/nope: cannot create data_dir: No such file or directory (os error 2)
agent|[etcd]\nendpoints = ftp://127.0.0.1:2379\n[kafka]\nbrokers = 127.0.0.1:1|INI: [etcd] endpoints: "ftp://127.0.0.1:2379" is not an http:// or https:// URL
agent|[etcd]\nendpoints = http://127.0.0.1:1\npoll_interval_ms = 5s\n[kafka]\nbrokers = 127.0.0.1:1|INI: [etcd] poll_interval_ms: "5s": invalid digit found in string
agent|BASE[log]\nlevel = loud|INI: [log] level: "loud" is not one of error, warn, info, debug, trace, off
agent|[etcd]\nendpoints = http://127.0.0.1:1\n[kafka]\nbrokers = 127.0.0.1:1\nsecurity_protocol = tls|INI: [kafka] security_protocol: "tls" is not one of plaintext, ssl, sasl_plaintext, sasl_ssl
agent|[etcd]\nendpoints = http://127.0.0.1:1\n[kafka]\nbrokers = 127.0.0.1:1\nsecurity_protocol = sasl_ssl\nsasl_username = u\nsasl_password_file = /nonexistent/pw|INI: [kafka] sasl_password_file: /nonexistent/pw: cannot read the secret: No such file or directory (os error 2)
agent|[etcd]\nendpoints = http://127.0.0.1:1\n[kafka]\nbrokers = 127.0.0.1:1\nsecurity_protocol = ssl\nca_file = /nonexistent/ca.pem|INI: [kafka] ca_file: /nonexistent/ca.pem: cannot read: No such file or directory (os error 2)
agent|[agent\ndata_dir = /tmp/x|INI: not a valid ini file: 3:1 expecting "[Some(']')]" but found EOF.
transfer|BASE[transfer]\nbulk_workers = many|INI: [transfer] bulk_workers: "many": invalid digit found in string
transfer|BASE[transfer]\nbatch_max_docs = 0|INI: [transfer] batch_max_docs: must be greater than 0
transfer|BASE[transfer]\ngzip = maybe|INI: [transfer] gzip: "maybe": provided string was not `true` or `false`
transfer|BASE[elasticsearch]\nverification = none|INI: [elasticsearch] verification: "none": expected full (certificate and host name) or certificate (certificate only)
transfer|[etcd]\nendpoints = http://127.0.0.1:1\n[kafka]\nbrokers = 127.0.0.1:1\nconsumer_threads = 0|INI: [kafka] consumer_threads: must be 1 to 64
CASES
}

# registry_offset DATA_DIR PATH: the acknowledged offset the registry holds for PATH.
registry_offset() { python3 "$REPO/tests/check_registry.py" offset "$1" "$2"; }

test_data_dir_on_a_full_disk_keeps_the_registry_and_recovers() {
    local d=$TEST_TMP/full mnt=$TEST_TMP/full-disk
    mkdir -p "$mnt"
    mount -t tmpfs -o size=512k tmpfs "$mnt" || fail "cannot mount a tmpfs at $mnt (the test runs as root)"
    trap "kill_spawned; umount -l '$mnt'" EXIT
    collect_one full '"start":"beginning"'
    agent_ini "$TEST_TMP/full.ini" "$mnt/data" "$METRICS"
    lc_spawn agent "$BIN_DIR/log-agent" -c "$TEST_TMP/full.ini"
    wait_until 10 "agent /health" curl -sf "http://$METRICS/health"
    python3 "$WRITE" seq "$d/app.log" 1 1000 2000
    consume full 1000 "$TEST_TMP/full1.json"
    wait_until 10 "offset saved" yields "$(stat -c %s "$d/app.log")" registry_offset "$mnt/data" "$d/app.log"
    cp "$mnt/data/registry.json" "$TEST_TMP/registry.before"
    # The disk fills up: registry writes fail, the lines still go out, the old registry stays.
    dd if=/dev/zero of="$mnt/filler" bs=4k 2>/dev/null || true
    python3 "$WRITE" seq "$d/app.log" 1001 2000 2000
    consume full 2000 "$TEST_TMP/full2.json"
    python3 "$CHECK" seq "$TEST_TMP/full2.json" 2000
    wait_until 10 "failed writes counted" eval '[ "$(errors_of registry)" -gt 2 ]'
    cmp "$TEST_TMP/registry.before" "$mnt/data/registry.json" || fail "the registry changed on a full disk"
    assert_grep "said" "$TEST_TMP/agent.log" "$mnt/data/registry.json: cannot write: No space left on device \\(os error 28\\); the old registry stays as it was; retrying"
    assert_eq "said once" 1 "$(grep -c 'No space left on device' "$TEST_TMP/agent.log")"
    # Room again: the offsets are saved, and said.
    rm "$mnt/filler"
    wait_until 10 "offset saved again" yields "$(stat -c %s "$d/app.log")" registry_offset "$mnt/data" "$d/app.log"
    wait_until 10 "the end said" grep -q 'registry: written again, after an outage of' "$TEST_TMP/agent.log"
    lc_alive agent || fail "the agent stopped"
}

test_a_store_answering_garbage_or_a_truncated_body_loses_nothing() {
    local d=$TEST_TMP/garbage
    lc_spawn proxy "$BIN_DIR/lc-faultproxy" "$PROXY" "$LC_ES_URL"
    wait_until 5 "proxy up" curl -sf "http://$PROXY/_fault"
    curl -sf -XPUT "http://$PROXY/_fault" -d '{"garbage":0.25,"truncated":0.25,"seed":3}' >/dev/null
    collect_one garbage '"start":"beginning"'
    etcd_put elasticsearch_config "{\"url_address\":[\"http://$PROXY\"]}"
    start_agent
    # Requests of 50 documents at most: 40 or more of them, whenever the transfer joins.
    transfer_ini "$TEST_TMP/garbage.ini" $((LC_FREE_PORT + 1)) 2 lc-bad
    sed -i '/^\[transfer\]$/a batch_max_docs = 50' "$TEST_TMP/garbage.ini"
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/garbage.ini"
    python3 "$WRITE" seq "$d/app.log" 1 2000 1000
    wait_until 90 "2000 documents" python3 "$CHECK_ES" count "$LC_ES_URL" 'garbage-*' 2000
    python3 "$CHECK_ES" seq "$LC_ES_URL" 'garbage-*' 2000
    local injected
    injected=$(curl -sf "http://$PROXY/_fault" | python3 "$Q" 'd["injected"]')
    echo "    injected: $injected"
    [[ $injected == *garbage* && $injected == *truncated* ]] || fail "not both faults were injected"
    assert_grep "garbage named" "$TEST_TMP/transfer.log" "_bulk: answer is not JSON: expected value at line 1 column 1; sending [0-9]+ documents again"
    assert_grep "truncation named" "$TEST_TMP/transfer.log" "_bulk: io: .*; sending [0-9]+ documents again"
}

test_wrong_shapes_in_elasticsearch_config_keep_the_last_good_one() {
    local d=$TEST_TMP/shapes
    collect_one shapes '"start":"beginning"'
    etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"
    start_agent
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/transfer.ini"
    python3 "$WRITE" seq "$d/app.log" 1 100 1000
    wait_until 60 "100 documents" python3 "$CHECK_ES" count "$LC_ES_URL" 'shapes-*' 100
    local value reason n=100
    while IFS='|' read -r value reason; do
        etcd_put elasticsearch_config "$value"
        wait_until 10 "refused: $reason" grep -qF "etcd key \"elasticsearch_config\": $reason; keeping the last good configuration" "$TEST_TMP/transfer.log"
        python3 "$WRITE" seq "$d/app.log" $((n + 1)) $((n + 100)) 1000
        n=$((n + 100))
        wait_until 60 "$n documents" python3 "$CHECK_ES" count "$LC_ES_URL" 'shapes-*' $n
    done <<'CASES'
{"url_address": |not valid JSON: EOF while parsing a value at line 1 column 16
["http://x:9200"]|expected an object {"api_key", "url_address"}, got an array
{"url_address": 9200}|url_address: expected an array of URLs, got a number
{"url_address": []}|url_address: missing or empty
{"url_address": ["ftp://x"]}|url_address: "ftp://x" is not an http:// or https:// URL
{"url_address": ["http://u:pw@x:9200"]}|url_address: "http://…@x:9200" has credentials in it: give them as username and password
{"url_address": ["http://x:9200"], "username": "u"}|username and password go together
{"url_address": ["http://x:9200"], "api_key": 5}|api_key: expected a string, got a number
CASES
    python3 "$CHECK_ES" seq "$LC_ES_URL" 'shapes-*' $n
}

run_tests
