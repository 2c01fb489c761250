#!/usr/bin/env bash
# The web console (logctl serve) in a real browser, Debian's chromium driven by selenium
# (tests/console_browser.py), against the real pipeline: agent, Kafka, transfer, store. Each
# test saves a screenshot of the page in its log directory.
. "$(dirname "$0")/lib.sh"

lc_services etcd kafka es
HOST=$(hostname)
CONSOLE=127.0.0.1:$((LC_FREE_PORT + 2))
BROWSER=$REPO/tests/console_browser.py
agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/agent-data" "127.0.0.1:$LC_FREE_PORT"
etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"
collect_one web
printf 'admin-token-4711\n' >"$TEST_TMP/admin-token"
chmod 600 "$TEST_TMP/admin-token"

# start_pipeline [ENTRY]: the agent (once it applied the entry ENTRY, web by default; none
# for ""), the transfer and the console. The transfer of each test is in a group of its own,
# so it is assigned the partitions at once, not after the killed one's session (it indexes
# the earlier lines again, onto the same ids).
start_pipeline() {
    start_agent
    [ -z "${1-web}" ] || wait_applied "$TEST_TMP/agent.log" "${1-web}"
    transfer_ini "$TEST_TMP/transfer.ini" $((LC_FREE_PORT + 1)) 1 "console-${FUNCNAME[1]}"
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/transfer.ini"
    printf '%s\n' "[console]" "admin_token_file = $TEST_TMP/admin-token" >>"$TEST_TMP/transfer.ini"
    lc_spawn console "$LOGCTL" -c "$TEST_TMP/transfer.ini" serve --listen "$CONSOLE"
    wait_until 10 "the console" curl -sf "http://$CONSOLE/"
}

# shot NAME: where a test's screenshot goes (its log directory).
shot() {
    mkdir -p "$TEST_TMP/logs/${FUNCNAME[1]}"
    echo "$TEST_TMP/logs/${FUNCNAME[1]}/$1.png"
}

# indexed N: the store holds N documents of topic web.
indexed() { python3 "$REPO/tests/check_es.py" count "$LC_ES_URL" 'web-*' "$1" >/dev/null 2>&1; }

# flowing: this test's transfer has written, or found written, a document. Before the transfer
# serves /metrics both counts are empty, and an empty operand in $((...)) would end the test
# itself at once (bash aborts on an arithmetic syntax error), not just this check.
flowing() {
    local t=127.0.0.1:$((LC_FREE_PORT + 1)) written found
    written=$(metric "$t" logcollect_transfer_documents_indexed_total)
    found=$(metric "$t" logcollect_transfer_documents_already_indexed_total)
    [ $((${written:-0} + ${found:-0})) -gt 0 ]
}

test_search_finds_a_line_and_draws_the_histogram() {
    start_pipeline
    for i in $(seq 1 40); do echo "request $i served in ${i}ms"; done >>"$TEST_TMP/web/app.log"
    echo "payment needle-4711 declined" >>"$TEST_TMP/web/app.log"
    wait_until 30 "41 documents" indexed 41
    python3 "$BROWSER" search "http://$CONSOLE" 'needle-4711' "payment needle-4711 declined" "$(shot search)"
    python3 "$BROWSER" search "http://$CONSOLE" 'served OR declined' "request 40 served in 40ms" "$(shot search-all)"
    # A query the store refuses shows the store's reason, not an empty page.
    curl -s "http://$CONSOLE/api/search?q=message:(unclosed" >"$TEST_TMP/bad.json"
    assert_grep "a bad query" "$TEST_TMP/bad.json" '"error":".*HTTP 400: query_shard_exception: Failed to parse query \[message:\(unclosed\]'
    echo "ok: $(cat "$TEST_TMP/bad.json")"
}

test_live_tail_shows_a_new_line_within_3_seconds() {
    start_pipeline
    echo "before the page" >>"$TEST_TMP/web/app.log"
    wait_until 30 "lines flowing" flowing
    python3 "$BROWSER" tail "http://$CONSOLE" '*' "$TEST_TMP/web/app.log" "tailed line $RANDOM$RANDOM" "$(shot tail)"
}

test_in_context_shows_the_neighbouring_lines_in_order() {
    start_pipeline
    seq 1 30 | sed 's/^/context line /' >>"$TEST_TMP/web/app.log"
    wait_until 30 "30 lines indexed" yields_match '"total":30,' curl -sf "http://$CONSOLE/api/search?q=%22context%20line%22&since=1h&histogram=0"
    local expected
    mapfile -t expected < <(seq 5 25 | sed 's/^/context line /')
    python3 "$BROWSER" context "http://$CONSOLE" "context line 15" "$(shot context)" "${expected[@]}"
}

test_paging_shows_every_match_once() {
    start_pipeline
    seq 1 450 | sed 's/^/paged line /' >>"$TEST_TMP/web/app.log"
    wait_until 30 "450 lines indexed" yields_match '"total":450,' curl -sf "http://$CONSOLE/api/search?q=paged&since=1h&histogram=0"
    python3 "$BROWSER" more "http://$CONSOLE" 'paged' "$(shot more)"
}

test_log_lines_with_markup_are_shown_as_text() {
    start_pipeline
    local lines=('<script>window.__xss=1</script> xss-probe' '"><img src=x onerror="window.__xss=2"> xss-probe'
        "<b>bold</b> xss-probe")
    printf '%s\n' "${lines[@]}" >>"$TEST_TMP/web/app.log"
    wait_until 30 "the three lines indexed" yields_match '"total":3,' curl -sf "http://$CONSOLE/api/search?q=xss-probe&since=1h&histogram=0"
    python3 "$BROWSER" inert "http://$CONSOLE" 'xss-probe' "$(shot inert)" "${lines[@]}"
}

test_config_editor_checks_as_you_type_and_saves_with_the_token() {
    start_pipeline
    local web="{\"path\":\"$TEST_TMP/web/app.log\",\"topic\":\"web\"}" out=$TEST_TMP/config.out
    # As the editor shows a value: one entry per line.
    python3 "$BROWSER" config "http://$CONSOLE" $'[\n  '"$web"$',\n  {"path":"/var/log/x.log","topic":"bad topic"}\n]' \
        'etcd key "collect_log_conf": entry 1: topic "bad topic": invalid character '"' '"' (Kafka allows a-z A-Z 0-9 . _ -)' \
        "[$web,{\"path\":\"$TEST_TMP/other/app.log\",\"topic\":\"other\"}]" admin-token-4711 "$(shot config)" | tee "$out"
    grep -q '^ok: the editor shows .*line \[.3.\] marked$' "$out" || fail "the invalid entry's line was not marked"
    local revision
    revision=$(sed -n 's/^saved at revision //p' "$out")
    # The agent applies what the console saved.
    wait_until 10 "the agent at revision $revision" yields "$revision" metric "127.0.0.1:$LC_FREE_PORT" logcollect_agent_config_revision
    wait_applied "$TEST_TMP/agent.log" other
    # The dry run of an entry's processors, from the editor's value.
    python3 "$BROWSER" dryrun "http://$CONSOLE" "$TEST_TMP/web/app.log" "a line to try" "$(shot dry-run)" | tee "$out"
    grep -q "^ok: dry run: web-$(date -u +%Y.%m.%d) " "$out" || fail "the dry run's index"
    # A save based on an older revision is a conflict: shown, nothing written.
    curl -s -X POST -H 'X-Logcollect-Token: admin-token-4711' -H 'Content-Type: application/json' \
        -d "{\"value\":\"[]\",\"base\":$((revision - 1))}" "http://$CONSOLE/api/config" >"$TEST_TMP/conflict.json"
    assert_eq "the conflict" "[false, \"conflict: collect_log_conf changed since revision $((revision - 1)) (it is at revision $revision); nothing written\"]" \
        "$(python3 "$Q" '[d["saved"], d["error"]]' <"$TEST_TMP/conflict.json")"
    assert_eq "nothing written" "$revision" "$(etcdctl --endpoints "$LC_ETCD_URL" get -w json collect_log_conf | python3 "$Q" 'd["kvs"][0]["mod_revision"]')"
    # A console without a token file is read-only; a write from another site is refused.
    lc_spawn readonly "$LOGCTL" -c "$TEST_TMP/agent.ini" serve --listen "127.0.0.1:$((LC_FREE_PORT + 3))"
    wait_until 10 "the read-only console" curl -sf "http://127.0.0.1:$((LC_FREE_PORT + 3))/"
    assert_eq "read-only" '403 read-only console: its ini has no [console] admin_token_file' "$(curl -s -w ' %{http_code}' \
        -X POST -H 'X-Logcollect-Token: admin-token-4711' -d '{"value":"[]","base":0}' "http://127.0.0.1:$((LC_FREE_PORT + 3))/api/config" |
        python3 -c 'import json,sys; b, s = sys.stdin.read().rsplit(" ", 1); print(s, json.loads(b)["error"])')"
    assert_eq "cross-site" '403 a write from another site is refused' "$(curl -s -w ' %{http_code}' -X POST \
        -H 'X-Logcollect-Token: admin-token-4711' -H 'Sec-Fetch-Site: cross-site' -d '{"value":"[]","base":0}' "http://$CONSOLE/api/config" |
        python3 -c 'import json,sys; b, s = sys.stdin.read().rsplit(" ", 1); print(s, json.loads(b)["error"])')"
    # Put the one entry back for the tests after this one.
    collect_one web
}

test_fleet_lists_the_agent_and_marks_it_offline_after_kill_9() {
    start_pipeline
    python3 "$BROWSER" fleet "http://$CONSOLE" "agent/$HOST" ok "$(shot fleet-ok)" 15 "$TEST_TMP/web/app.log"
    lc_kill agent KILL || true
    # The heartbeat's lease (20 s) has to run out.
    python3 "$BROWSER" fleet "http://$CONSOLE" "agent/$HOST" offline "$(shot fleet-offline)" 45
}

test_dead_letters_are_listed_and_replayed() {
    # A store that refuses a line for good: lc-es8 (tests/recorded/elasticsearch-8.json).
    local es8=127.0.0.1:$((LC_FREE_PORT + 4))
    lc_spawn es8 "$BIN_DIR/lc-es8" "$es8" "$REPO/tests/recorded/elasticsearch-8.json"
    wait_until 10 "lc-es8" curl -sf "http://$es8/_stand-in/documents"
    etcd_put collect_log_conf '[{"path":"/nonexistent/refused.log","topic":"refused","data_stream":{"dataset":"refused","namespace":"test"}}]'
    etcd_put elasticsearch_config "{\"url_address\":[\"http://$es8\"],\"api_key\":\"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw\"}"
    printf '%s\n' "a fine line" "an unparsable line" | "$BIN_DIR/lc-kafka" produce "$LC_KAFKA_BROKERS" refused
    start_pipeline ""
    "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" refused.dlq 1 60 >/dev/null || fail "nothing in refused.dlq"
    python3 "$BROWSER" dlq "http://$CONSOLE" refused.dlq "HTTP 400: document_parsing_exception" "an unparsable line" \
        admin-token-4711 "$(shot dlq)"
    # The topic holds the two lines, and the replayed one again.
    assert_eq "the topic after the replay" '["a fine line", "an unparsable line", "an unparsable line"]' "$("$BIN_DIR/lc-kafka" consume \
        "$LC_KAFKA_BROKERS" refused 3 30 | python3 -c 'import base64, json, sys
print(json.dumps(sorted(base64.b64decode(json.loads(l)["value_b64"]).decode() for l in sys.stdin)))')"
    etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"
    collect_one web
}

run_tests
