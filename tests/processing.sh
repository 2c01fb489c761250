#!/usr/bin/env bash
# Processing per collect entry, through the whole pipeline against the real services: the
# agent's include/exclude_lines, the transfer's processors, the event's own time, failures
# that keep the document, a changed pipeline applied live, validation, and logctl's dry run.
# Runs on Apache Kafka and OpenSearch: exact field types need the real store.
export LC_KAFKA_ENGINE=apache LC_ES_ENGINE=opensearch
. "$(dirname "$0")/lib.sh"

lc_services etcd kafka es

AGENT=127.0.0.1:$LC_FREE_PORT
TRANSFER=127.0.0.1:$((LC_FREE_PORT + 1))
HOST=$(hostname)

agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/agent-data" "$AGENT"
transfer_ini "$TEST_TMP/transfer.ini" $((LC_FREE_PORT + 1)) 1 processing
etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"

start_both() {
    start_agent
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/transfer.ini"
}
# docs INDEX: the documents of INDEX as a JSON array, in file order.
docs() { python3 "$REPO/tests/check_es.py" docs "$LC_ES_URL" "$1"; }
count_of() { python3 "$REPO/tests/check_es.py" count-of "$LC_ES_URL" "$1"; }
# field INDEX N EXPR: EXPR over document N of INDEX (`d` is the document).
field() { docs "$1" | python3 "$Q" "(lambda d: $3)(d[$2])"; }

COMBINED='%{source.ip} - %{user.name} [%{ts}] \"%{http.request.method} %{url.original} %{?proto}\" %{http.response.status_code} %{http.response.body.bytes} \"%{http.request.referrer}\" \"%{user_agent.original}\"'
NGINX_PROCESSORS="[
  {\"exclude_lines\": [\"GET /healthz\"]},
  {\"dissect\": {\"field\": \"message\", \"tokenizer\": \"$COMBINED\"}},
  {\"timestamp\": {\"field\": \"ts\", \"layouts\": [\"%d/%b/%Y:%H:%M:%S %z\"]}},
  {\"convert\": {\"fields\": {\"http.response.status_code\": \"integer\", \"http.response.body.bytes\": \"integer\"}}},
  {\"drop_fields\": {\"fields\": [\"ts\"]}}]"

test_nginx_access_log() {
    local d=$TEST_TMP/nginx
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/access.log\",\"topic\":\"nginx\",\"processors\":$NGINX_PROCESSORS}]"
    start_both
    wait_applied_path "$d/access.log"
    cat >>"$d/access.log" <<'LOG'
203.0.113.9 - alice [28/Nov/2026:10:00:01 +0100] "GET /api/orders?id=7 HTTP/1.1" 200 1534 "https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64)"
10.0.0.2 - - [28/Nov/2026:10:00:02 +0100] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"
198.51.100.4 - - [28/Nov/2026:10:00:03 +0100] "POST /api/orders HTTP/1.1" 503 0 "-" "curl/8.5.0"
this line is not an access log
LOG
    wait_until 60 "three documents" yields 3 count_of 'nginx-*'
    # The first line, field by field: dotted names nested, numbers converted, the event's time.
    assert_eq "first document" '["2026-11-28T09:00:01.000Z", "203.0.113.9", "alice", "GET", "/api/orders?id=7", 200, 1534, "https://shop.example/cart", "Mozilla/5.0 (X11; Linux x86_64)", false, "nginx-2026.11.28"]' \
        "$(field 'nginx-*' 0 '[d["@timestamp"], d["source"]["ip"], d["user"]["name"], d["http"]["request"]["method"], d["url"]["original"], d["http"]["response"]["status_code"], d["http"]["response"]["body"]["bytes"], d["http"]["request"]["referrer"], d["user_agent"]["original"], "ts" in d, d["_index"]]')"
    # The read time and the indexing time are kept, and the agent named.
    [[ $(field 'nginx-*' 0 'd["event"]["created"] <= d["event"]["ingested"]') == true ]] || fail "event.created after event.ingested"
    assert_eq "agent" "[\"$HOST\", \"0.1.0\"]" "$(field 'nginx-*' 0 '[d["agent"]["name"], d["agent"]["version"]]')"
    # The bad line is indexed with what failed, and counted.
    assert_eq "failed line" '["this line is not an access log", ["_dissect_failure", "_timestamp_failure"]]' \
        "$(field 'nginx-*' 2 '[d["message"], d["tags"]]')"
    assert_eq "dissect failures counted" 1 "$(metric "$TRANSFER" 'logcollect_transfer_processor_failures_total{processor="dissect",kind="no_match"}')"
    # The health check never left the agent, and its offset was acknowledged all the same.
    assert_eq "excluded at the agent" 1 "$(metric "$AGENT" "logcollect_agent_lines_excluded_total{path=\"$d/access.log\"}")"
    wait_until 10 "registry at the end of the file" yields "$(stat -c %s "$d/access.log")" \
        python3 "$REPO/tests/check_registry.py" offset "$TEST_TMP/agent-data" "$d/access.log"
    # The dry run shows the same document.
    printf '%s\n' '203.0.113.9 - alice [28/Nov/2026:10:00:01 +0100] "GET /api/orders?id=7 HTTP/1.1" 200 1534 "https://shop.example/cart" "Mozilla/5.0 (X11; Linux x86_64)"' |
        "$LOGCTL" -c "$TEST_TMP/transfer.ini" -o json pipeline test --entry "$d/access.log" >"$TEST_TMP/dry.json"
    local keep='{k: v for k, v in d.items() if k not in ("event", "log", "_index")}'
    assert_eq "dry run = indexed document" "$(field 'nginx-*' 0 "$keep")" \
        "$(python3 "$Q" "(lambda d: $keep)(dict(d['_source'], _index=d['_index']))" <"$TEST_TMP/dry.json")"
}

test_json_lines_with_nested_objects_and_invalid_lines() {
    local d=$TEST_TMP/app
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/app.log\",\"topic\":\"appjson\",\"processors\":[
        {\"decode_json\": {\"field\": \"message\", \"target\": \"\"}},
        {\"timestamp\": {\"field\": \"time\", \"layouts\": [\"RFC3339\", \"UNIX_MS\"]}},
        {\"rename\": {\"fields\": {\"level\": \"log.level\"}}},
        {\"add_fields\": {\"tags\": [\"slow\"], \"when\": {\"regexp\": {\"took_ms\": \"^[0-9]{4,}$\"}}}},
        {\"drop_fields\": {\"fields\": [\"time\"]}}]}]"
    start_both
    wait_applied_path "$d/app.log"
    cat >>"$d/app.log" <<'LOG'
{"time":"2026-11-28T08:15:00.250+01:00","level":"info","msg":"order placed","order":{"id":7,"lines":[{"sku":"A1","qty":2}]},"took_ms":12}
{"time":1795900000000,"level":"warn","msg":"slow query","db":{"statement":"SELECT 1"},"took_ms":2500}
{"time": "2026-11-28T08:15:01Z", "level": "error", "msg": "cut off
not json at all
LOG
    wait_until 60 "four documents" yields 4 count_of 'appjson-*'
    assert_eq "nested objects kept" '["2026-11-28T07:15:00.250Z", "info", "order placed", 7, [{"qty": 2, "sku": "A1"}], false]' \
        "$(field 'appjson-*' 0 '[d["@timestamp"], d["log"]["level"], d["msg"], d["order"]["id"], d["order"]["lines"], "time" in d]')"
    assert_eq "epoch milliseconds and a when" '["2026-11-28T21:06:40.000Z", ["slow"], "SELECT 1"]' \
        "$(field 'appjson-*' 1 '[d["@timestamp"], d["tags"], d["db"]["statement"]]')"
    for i in 2 3; do
        assert_eq "invalid line $i kept and tagged" '["_decode_json_failure", "_timestamp_failure"]' "$(field 'appjson-*' $i 'd["tags"]')"
    done
    assert_eq "decode failures counted" 2 "$(metric "$TRANSFER" 'logcollect_transfer_processor_failures_total{processor="decode_json",kind="bad_value"}')"
}

test_syslog_across_new_year() {
    local d=$TEST_TMP/syslog
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/syslog\",\"topic\":\"syslog\",\"processors\":[
        {\"regex\": {\"pattern\": \"^(?P<ts>\\\\w{3} [ 0-9]\\\\d \\\\d\\\\d:\\\\d\\\\d:\\\\d\\\\d) (?P<host.hostname>\\\\S+) (?P<process.name>[^\\\\[:]+)(\\\\[(?P<process.pid>\\\\d+)\\\\])?: (?P<msg>.*)$\"}},
        {\"timestamp\": {\"field\": \"ts\", \"layouts\": [\"%b %e %H:%M:%S\"], \"timezone\": \"Europe/Berlin\"}},
        {\"convert\": {\"fields\": {\"process.pid\": \"integer\"}}},
        {\"drop_fields\": {\"fields\": [\"ts\"]}}]}]"
    start_both
    wait_applied_path "$d/syslog"
    printf '%s\n' 'Dec 31 23:59:58 gw1 cron[812]: (root) CMD (run-parts /etc/cron.hourly)' \
        'Jan  1 00:00:02 gw1 kernel: eth0: link up' >>"$d/syslog"
    wait_until 60 "two documents" yields 2 count_of 'syslog-*'
    # Read in late 2026: December is the year before, January this one; Berlin is UTC+1 then.
    assert_eq "December line" '["2025-12-31T22:59:58.000Z", "syslog-2025.12.31", "cron", 812, "(root) CMD (run-parts /etc/cron.hourly)"]' \
        "$(field 'syslog-*' 0 '[d["@timestamp"], d["_index"], d["process"]["name"], d["process"]["pid"], d["msg"]]')"
    assert_eq "January line" '["2025-12-31T23:00:02.000Z", "syslog-2025.12.31", "kernel", "gw1"]' \
        "$(field 'syslog-*' 1 '[d["@timestamp"], d["_index"], d["process"]["name"], d["host"]["hostname"]]')"
}

test_changed_pipeline_applies_without_restart() {
    local d=$TEST_TMP/live
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/app.log\",\"topic\":\"live\"}]"
    start_both
    wait_applied_path "$d/app.log"
    echo 'before user=ann' >>"$d/app.log"
    wait_until 60 "first document" yields 1 count_of 'live-*'
    local agent_pid=${LC_PIDS[agent]} transfer_pid=${LC_PIDS[transfer]}
    etcd_put collect_log_conf "[{\"path\":\"$d/app.log\",\"topic\":\"live\",\"processors\":[
        {\"regex\": {\"pattern\": \"user=(?P<user.name>\\\\w+)\"}}, {\"add_fields\": {\"fields\": {\"service.name\": \"shop\"}}}]}]"
    wait_until 10 "transfer applied it" has_count 2 'topics \["live"\]' "$TEST_TMP/transfer.log"
    sleep 1
    echo 'after user=bob' >>"$d/app.log"
    wait_until 60 "second document" yields 2 count_of 'live-*'
    assert_eq "old line untouched, new one processed" '[[null, null], ["bob", "shop"]]' \
        "$(docs 'live-*' | python3 "$Q" '[[d.get("user", {}).get("name"), d.get("service", {}).get("name")] for d in d]')"
    assert_eq "same processes" "$agent_pid $transfer_pid" "${LC_PIDS[agent]} ${LC_PIDS[transfer]}"
}

test_every_validation_error_is_named() {
    local c=("$LOGCTL" --endpoints "$LC_ETCD_URL") e='{"path":"/var/log/a.log","topic":"a"}'
    check() {
        printf '%s' "$1" >"$TEST_TMP/v.json"
        local out
        out=$("${c[@]}" config validate "$TEST_TMP/v.json" 2>&1) && fail "accepted: $1"
        assert_eq "message" "logctl: etcd key \"collect_log_conf\": $2" "$out"
    }
    check "[$e,{\"path\":\"/b\",\"topic\":\"b\",\"multline_start\":\"^x\"}]" 'entry 1: unknown key "multline_start" (did you mean "multiline_start"?)'
    local n='{"path":"/var/log/nginx/access.log","topic":"nginx","processors":['
    check "[$e,$e,${n}{\"drop_fields\":{\"fields\":[\"a\"]}},{\"grok\":{}}]}]" 'entry 1: duplicate path "/var/log/a.log"'
    check "[$e,${n}{\"drop_fields\":{\"fields\":[\"a\"]}},{\"grok\":{}}]}]" 'entry 1 (/var/log/nginx/access.log): processor 1: unknown processor "grok" (known: include_lines, exclude_lines, decode_json, dissect, regex, timestamp, convert, add_fields, rename, drop_fields, truncate_fields)'
    check "[${n}{\"exclude_lines\":[\"GET (\"]}]}]" "$(printf 'entry 0 (/var/log/nginx/access.log): processor 0 (exclude_lines): "GET (": regex parse error:\n    GET (\n        ^\nerror: unclosed group')"
    check "[${n}{\"dissect\":{\"tokenizer\":\"%{a}%{b} %{c\"}}]}]" 'entry 0 (/var/log/nginx/access.log): processor 0 (dissect): tokenizer: two keys without a delimiter between them at byte 4'
    check "[${n}{\"timestamp\":{\"field\":\"ts\",\"layouts\":[\"dd/MMM/yyyy\"]}}]}]" 'entry 0 (/var/log/nginx/access.log): processor 0 (timestamp): layout "dd/MMM/yyyy" is not a strftime pattern (e.g. "%d/%b/%Y:%H:%M:%S %z") or one of RFC3339, UNIX, UNIX_MS'
    check "[${n}{\"add_fields\":{\"tags\":[\"x\"],\"when\":{\"has_fields\":[]}}}]}]" 'entry 0 (/var/log/nginx/access.log): processor 0 (add_fields): when: has_fields: expected a non-empty array of field names'

    # A daemon refuses it the same way, keeps what it had, and says so in its status.
    local good
    good="[{\"path\":\"$TEST_TMP/v/app.log\",\"topic\":\"v\"}]"
    etcd_put collect_log_conf "$good"
    start_agent
    wait_until 10 "applied" grep -q "$TEST_TMP/v/app.log -> topic v" "$TEST_TMP/agent.log"
    etcd_put collect_log_conf "[{\"path\":\"/b\",\"topic\":\"b\",\"multline_start\":\"^x\"}]"
    wait_until 15 "the error in the fleet's status" yields '"etcd key \"collect_log_conf\": entry 0: unknown key \"multline_start\" (did you mean \"multiline_start\"?)"' \
        eval '"${c[@]}" status -o json | python3 "$Q" "[r[\"config_error\"] for r in d if r[\"kind\"] == \"agent\"][0]" | python3 -c "import json,sys; print(json.dumps(sys.stdin.read().strip()))"'
    assert_grep "kept the last good one" "$TEST_TMP/agent.log" 'unknown key "multline_start" .*; keeping the last good configuration'
}

# wait_applied_path PATH: the agent and the transfer applied a configuration naming PATH.
wait_applied_path() {
    wait_until 10 "agent applied $1" grep -q "  $1 -> topic" "$TEST_TMP/agent.log"
    wait_until 10 "transfer applied it" grep -q 'topics \[' "$TEST_TMP/transfer.log"
}

run_tests
