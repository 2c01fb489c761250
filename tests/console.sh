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

# start_pipeline: the agent, the transfer and the console. The transfer of each test is in a
# group of its own, so it is assigned the partitions at once, not after the killed one's
# session (it indexes the earlier lines again, onto the same ids).
start_pipeline() {
    start_agent
    wait_applied "$TEST_TMP/agent.log" web
    transfer_ini "$TEST_TMP/transfer.ini" $((LC_FREE_PORT + 1)) 1 "console-${FUNCNAME[1]}"
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/transfer.ini"
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

# flowing: this test's transfer has written, or found written, a document.
flowing() {
    local t=127.0.0.1:$((LC_FREE_PORT + 1))
    [ $(($(metric "$t" logcollect_transfer_documents_indexed_total) + $(metric "$t" logcollect_transfer_documents_already_indexed_total))) -gt 0 ]
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

test_fleet_lists_the_agent_and_marks_it_offline_after_kill_9() {
    start_pipeline
    python3 "$BROWSER" fleet "http://$CONSOLE" "agent/$HOST" ok "$(shot fleet-ok)" 15
    lc_kill agent KILL || true
    # The heartbeat's lease (20 s) has to run out.
    python3 "$BROWSER" fleet "http://$CONSOLE" "agent/$HOST" offline "$(shot fleet-offline)" 45
}

run_tests
