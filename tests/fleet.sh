#!/usr/bin/env bash
# The control plane against the real services: configuration changes through etcd watches,
# the daemons' heartbeats (status keys under leases), and logctl (config with
# compare-and-swap, status and rollout, search over the store, dead-letter replay).
# Runs on Apache Kafka and OpenSearch: search and mapping fixes need the real store.
export LC_KAFKA_ENGINE=apache LC_ES_ENGINE=opensearch
. "$(dirname "$0")/lib.sh"

lc_services etcd kafka es

AGENT=127.0.0.1:$LC_FREE_PORT
E=(etcdctl --endpoints "$LC_ETCD_URL")

# put_rev KEY VALUE: puts through etcdctl and prints the store's revision after it.
put_rev() { "${E[@]}" put -w json "$1" "$2" | python3 "$Q" 'd["header"]["revision"]'; }
# named_agent NAME: an agent ini $TEST_TMP/NAME.ini (data in $TEST_TMP/NAME, metrics at
# ${3:-none}) that appears in the fleet as NAME.
named_agent() {
    agent_ini "$TEST_TMP/$1.ini" "$TEST_TMP/$1" "${2:-}"
    printf '[fleet]\nname = %s\n' "$1" >>"$TEST_TMP/$1.ini"
    lc_spawn "$1" "$BIN_DIR/log-agent" -c "$TEST_TMP/$1.ini"
}
has_status() { [ -n "$(status_of "$1")" ]; }
no_status() { [ -z "$(status_of "$1")" ]; }
fleet_json() { "$LOGCTL" --endpoints "$LC_ETCD_URL" status -o json; }

test_watch_applies_each_change_at_once() {
    # The safety-net poll is 60 s (tests/lib.sh): only the watch can be this fast.
    mkdir -p "$TEST_TMP/w"
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/w-data" "$AGENT"
    etcd_put collect_log_conf "[{\"path\":\"$TEST_TMP/w/0.log\",\"topic\":\"w\"}]"
    start_agent
    local i rev
    for i in 1 2 3 4 5; do
        rev=$(put_rev collect_log_conf "[{\"path\":\"$TEST_TMP/w/$i.log\",\"topic\":\"w\"}]")
        wait_until 1 "revision $rev applied within a second" yields "$rev" metric "$AGENT" logcollect_agent_config_revision
    done
}

test_watch_resumes_after_a_partition_and_a_compaction() {
    # The agent reaches etcd through a relay; cutting it breaks the watch. While it is cut,
    # two changes are put and the history compacted past them: the watch's resume revision
    # is gone, so it must read the key again and watch from there.
    local relay=$((LC_FREE_PORT + 1)) rev
    LC_ETCD_URL=http://127.0.0.1:$relay agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/c-data" "$AGENT"
    lc_spawn relay python3 "$REPO/tests/tcp_relay.py" "$relay" "$LC_ETCD_PORT"
    wait_until 5 "relay up" curl -sf "http://127.0.0.1:$relay/version"
    etcd_put collect_log_conf '[{"path":"/tmp/c1.log","topic":"c"}]'
    start_agent
    wait_until 5 "first value" grep -q '/tmp/c1.log -> topic c' "$TEST_TMP/agent.log"
    lc_kill relay KILL || true
    etcd_put collect_log_conf '[{"path":"/tmp/c2.log","topic":"c"}]'
    rev=$(put_rev collect_log_conf '[{"path":"/tmp/c3.log","topic":"c"}]')
    "${E[@]}" compact "$rev" >/dev/null
    lc_spawn relay python3 "$REPO/tests/tcp_relay.py" "$relay" "$LC_ETCD_PORT"
    wait_until 20 "revision $rev applied after the partition" yields "$rev" metric "$AGENT" logcollect_agent_config_revision
    # The poller may apply it first: the watch may still be waiting out its back-off from
    # the partition (doubling from 0.5 s per failure: 8 s at the fifth; a loaded CI run
    # missed a wait of 5 s), and etcd tells an unsynced watcher of the compaction on its next
    # sync pass, up to 100 ms later.
    wait_until 20 "compaction noticed" grep -Eq "watch of \"collect_log_conf\" cancelled \\(revision [0-9]+ compacted at $rev\\)" "$TEST_TMP/agent.log"
}

test_heartbeat_appears_is_revoked_and_expires() {
    mkdir -p "$TEST_TMP/hb"
    printf 'one\ntwo\n' >"$TEST_TMP/hb/app.log"
    local rev
    rev=$(put_rev collect_log_conf "[{\"path\":\"$TEST_TMP/hb/app.log\",\"topic\":\"hb\",\"start\":\"beginning\"}]")
    named_agent hb1
    wait_until 2 "status key within 2 s of start" has_status agent/hb1
    # Acknowledged lines show at the next heartbeat (at most 10 s).
    wait_until 15 "file acknowledged in the status" yields 8 \
        eval 'status_of agent/hb1 | python3 "$Q" "d[\"files\"][0][\"acked_offset\"]"'
    local s
    s=$(status_of agent/hb1)
    assert_eq "file entry" "[\"$TEST_TMP/hb/app.log\", \"hb\", 8, 8, 0]" \
        "$(python3 "$Q" '[d["files"][0][k] for k in ("path", "topic", "acked_offset", "size", "bytes_behind")]' <<<"$s")"
    assert_eq "config applied" "[\"collect_log_conf\", $rev, null]" \
        "$(python3 "$Q" '[d["config"]["key"], d["config"]["mod_revision"], d["config"]["error"]]' <<<"$s")"
    assert_eq "identity" '["agent", "hb1", "0.1.0"]' "$(python3 "$Q" '[d["kind"], d["name"], d["version"]]' <<<"$s")"

    lc_kill hb1 TERM || fail "agent did not exit 0"
    wait_until 1 "status revoked at a clean stop" no_status agent/hb1
    [ -n "$("${E[@]}" get --print-value-only logcollect/seen/agent/hb1)" ] || fail "no last-seen copy"

    named_agent hb1
    wait_until 2 "status back" has_status agent/hb1
    lc_kill hb1 KILL || true
    sleep 15
    has_status agent/hb1 || fail "the status of a killed agent went before its lease (30 s)"
    wait_until 25 "status expired after kill -9" no_status agent/hb1
}

test_rollout_and_errors_in_logctl_status() {
    mkdir -p "$TEST_TMP/r"
    etcd_del collect_log_conf
    "${E[@]}" del --prefix logcollect/ >/dev/null
    local rev good="[{\"path\":\"$TEST_TMP/r/app.log\",\"topic\":\"r\"}]"
    rev=$(put_rev collect_log_conf "$good")
    named_agent r1
    named_agent r2
    transfer_ini "$TEST_TMP/t.ini" $((LC_FREE_PORT + 2)) 1 fleet-r
    printf '[fleet]\nname = t1\n' >>"$TEST_TMP/t.ini"
    lc_spawn t1 "$BIN_DIR/log-transfer" -c "$TEST_TMP/t.ini"
    # All three appear (each within 2 s of its start, 4 s in all in a CI run; another missed
    # 10 s, the transfer starting on a loaded machine), at the revision in etcd.
    wait_until 20 "all three ok at revision $rev" yields "[[\"agent\", \"r1\", \"ok\", $rev, $rev], [\"agent\", \"r2\", \"ok\", $rev, $rev], [\"transfer\", \"t1\", \"ok\", $rev, $rev]]" \
        eval 'fleet_json | python3 "$Q" "[[r[k] for k in (\"kind\", \"name\", \"state\", \"config_revision\", \"current_revision\")] for r in d]"'
    "$LOGCTL" --endpoints "$LC_ETCD_URL" status >/dev/null || fail "status exits 0 when all are ok"

    printf '%s' "$good" >"$TEST_TMP/good.json"
    "$LOGCTL" --endpoints "$LC_ETCD_URL" config diff "$TEST_TMP/good.json" >"$TEST_TMP/diff.txt"
    assert_eq "an unchanged value, and whom the key reaches" "no change to collect_log_conf (revision $rev)
reaches 3 running daemon(s): agent/r1, agent/r2, transfer/t1" "$(cat "$TEST_TMP/diff.txt")"
    timeout 3 "$LOGCTL" --endpoints "$LC_ETCD_URL" top >"$TEST_TMP/top.txt" || true
    assert_grep "top shows the table" "$TEST_TMP/top.txt" '^transfer +t1 +0\.1\.0 +ok '

    # A new value reaches every daemon: the rollout is complete within seconds.
    rev=$(put_rev collect_log_conf "[{\"path\":\"$TEST_TMP/r/app.log\",\"topic\":\"r\"},{\"path\":\"$TEST_TMP/r/b.log\",\"topic\":\"r\"}]")
    wait_until 5 "every daemon at revision $rev" yields "[$rev, $rev, $rev]" \
        eval 'fleet_json | python3 "$Q" "[r[\"config_revision\"] for r in d]"'

    # An invalid value: each daemon reports the error, keeps what it had, and status says no.
    etcd_put collect_log_conf '[{"path":"/a","topic":"bad topic"}]'
    local msg="etcd key \"collect_log_conf\": entry 0: topic \"bad topic\": invalid character ' ' (Kafka allows a-z A-Z 0-9 . _ -)"
    wait_until 5 "the error on every daemon" yields '["error", "error", "error"]' \
        eval 'fleet_json | python3 "$Q" "[r[\"state\"] for r in d]"'
    assert_eq "the daemons' own message, on each" "$msg" "$(fleet_json | python3 "$Q" '"|".join(sorted(set(r["config_error"] for r in d)))')"
    set +e
    "$LOGCTL" --endpoints "$LC_ETCD_URL" status >"$TEST_TMP/status.txt"
    assert_eq "status exits 1 when some are in error" 1 $?
    set -e
    assert_grep "table" "$TEST_TMP/status.txt" '^agent +r1 +0\.1\.0 +error +[0-9]+/[0-9]+ '

    # A daemon that goes away stays listed, offline.
    etcd_put collect_log_conf "$good"
    lc_kill r2 TERM
    wait_until 5 "r2 offline" yields '["ok", "offline", "ok"]' \
        eval 'fleet_json | python3 "$Q" "[r[\"state\"] for r in d]"'
}

test_config_put_validates_and_refuses_a_conflict() {
    local c=("$LOGCTL" --endpoints "$LC_ETCD_URL") out rev
    echo '[{"path":"/var/log/a.log","topic":"a"}]' >"$TEST_TMP/a.json"
    echo '[{"path":"/var/log/a.log","topic":"a"},{"path":"/var/log/b.log","topic":"b"}]' >"$TEST_TMP/b.json"
    echo '[{"path":"/var/log/a.log","topic":"bad topic"}]' >"$TEST_TMP/bad.json"
    "${c[@]}" config put "$TEST_TMP/a.json" >/dev/null
    rev=$("${c[@]}" config get -o json | python3 "$Q" 'd["mod_revision"]')

    set +e
    out=$("${c[@]}" config put "$TEST_TMP/bad.json" 2>&1)
    assert_eq "an invalid value exits 1" 1 $?
    assert_eq "the daemons' message" "logctl: etcd key \"collect_log_conf\": entry 0: topic \"bad topic\": invalid character ' ' (Kafka allows a-z A-Z 0-9 . _ -)" "$out"
    "${c[@]}" config validate "$TEST_TMP/bad.json" >/dev/null 2>&1
    assert_eq "validate exits 1 too" 1 $?
    # Two operators start from the same revision: the second write is refused.
    "${c[@]}" config put --if-revision "$rev" "$TEST_TMP/b.json" >"$TEST_TMP/put1.txt"
    assert_eq "first put" 0 $?
    "${c[@]}" config put --if-revision "$rev" "$TEST_TMP/a.json" >"$TEST_TMP/put2.txt" 2>&1
    assert_eq "second put exits 1" 1 $?
    set -e
    assert_grep "conflict named" "$TEST_TMP/put2.txt" "^logctl: conflict: collect_log_conf changed since revision $rev"
    assert_grep "what changed shown" "$TEST_TMP/put2.txt" '^-  \{"path":"/var/log/b.log","topic":"b"\}'
    assert_eq "the first write stands" "$(cat "$TEST_TMP/b.json")" "$("${E[@]}" get --print-value-only collect_log_conf)"
    "${c[@]}" config diff "$TEST_TMP/a.json" >"$TEST_TMP/diff.txt"
    assert_grep "diff" "$TEST_TMP/diff.txt" '^-  \{"path":"/var/log/b.log","topic":"b"\}$'
    "${c[@]}" config validate "$TEST_TMP/a.json" | grep -qx 'collect_log_conf: valid' || fail "validate"

    # edit: the value in $EDITOR, validated, then compare-and-swap over what was read.
    EDITOR="sed -i s#/var/log/a.log#/var/log/c.log#" "${c[@]}" config edit >"$TEST_TMP/edit.txt"
    assert_grep "edit wrote" "$TEST_TMP/edit.txt" '^collect_log_conf: written at revision [0-9]+$'
    assert_eq "edited value, as laid out for the editor" "$(printf '[\n  {"path":"/var/log/c.log","topic":"a"},\n  {"path":"/var/log/b.log","topic":"b"}\n]')" \
        "$("${E[@]}" get --print-value-only collect_log_conf)"
    EDITOR="sed -i s#/var/log/c.log#/var/log/d.log#" "${c[@]}" config edit --host web7 | grep -qx 'collect_log_web7: unchanged' || fail "unchanged edit"
    assert_eq "an edit of a key without a value starts from []" "" "$("${E[@]}" get --print-value-only collect_log_web7)"

    # Per host: its own key; without one, the global value is what is in force for it.
    "${E[@]}" del collect_log_web9 >/dev/null
    "${c[@]}" config put --host web9 "$TEST_TMP/a.json" | grep -q '^collect_log_web9: written at revision [0-9]*$' || fail "put --host"
    assert_eq "per-host value" "$(cat "$TEST_TMP/a.json")" "$("${E[@]}" get --print-value-only collect_log_web9)"
    "${c[@]}" config get --host web8 -o json 2>"$TEST_TMP/get.err" | python3 "$Q" 'd["key"]' | grep -qx collect_log_conf || fail "fallback"
    assert_eq "fallback said" "collect_log_web8 has no value; the global collect_log_conf is in force" "$(cat "$TEST_TMP/get.err")"
}

test_logctl_search_and_follow() {
    local d=$TEST_TMP/s
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/app.log\",\"topic\":\"srch\"}]"
    etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/s-data" "$AGENT"
    start_agent
    transfer_ini "$TEST_TMP/t.ini" $((LC_FREE_PORT + 2)) 1 fleet-s
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/t.ini"
    wait_applied "$TEST_TMP/agent.log" s
    printf 'first needle\nhay\nsecond needle\n' >>"$d/app.log"
    local s=("$LOGCTL" -c "$TEST_TMP/t.ini")
    wait_until 60 "two matches" yields 2 eval '"${s[@]}" search needle --since 1h | wc -l'
    "${s[@]}" search needle --since 1h | sed 's/^[^ ]* //' >"$TEST_TMP/found.txt"
    assert_eq "newest first, as time host path: message" "$(hostname) $d/app.log: second needle
$(hostname) $d/app.log: first needle" "$(cat "$TEST_TMP/found.txt")"
    set +e
    "${s[@]}" search nothing-like-this --since 1h >/dev/null
    assert_eq "no match exits 1" 1 $?
    set -e

    lc_spawn follow "${s[@]}" search --follow 'late' --since 1h
    sleep 2
    echo 'a late line' >>"$d/app.log"
    wait_until 60 "follow printed the new line" grep -q "$d/app.log: a late line$" "$TEST_TMP/follow.log"
}

test_dlq_replay_after_the_mapping_is_fixed() {
    local d=$TEST_TMP/dq index
    mkdir -p "$d"
    # The day's index exists with a strict mapping: a line with another field is refused.
    index=fleetdlq-$(date -u +%Y.%m.%d)
    curl -sf -X PUT "$LC_ES_URL/$index" -H 'Content-Type: application/json' \
        -d '{"mappings":{"properties":{"json":{"dynamic":"strict","properties":{"code":{"type":"long"}}}}}}' >/dev/null
    etcd_put collect_log_conf "[{\"path\":\"$d/app.log\",\"topic\":\"fleetdlq\",\"json\":true}]"
    etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/dq-data" "$AGENT"
    start_agent
    transfer_ini "$TEST_TMP/t.ini" $((LC_FREE_PORT + 2)) 1 fleet-d
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/t.ini"
    wait_until 10 "applied" grep -q "$d/app.log -> topic fleetdlq" "$TEST_TMP/agent.log"
    echo '{"code":1}' >>"$d/app.log"
    echo '{"code":2,"extra":"x"}' >>"$d/app.log"
    local c=("$LOGCTL" -c "$TEST_TMP/t.ini")
    wait_until 60 "one dead letter" yields 1 eval '"${c[@]}" dlq list fleetdlq -o json | python3 "$Q" "len(d)"'
    "${c[@]}" dlq list fleetdlq -o json >"$TEST_TMP/dlq.json"
    assert_eq "the dead letter" '{"code":2,"extra":"x"}' "$(python3 "$Q" 'd[0]["value"]' <"$TEST_TMP/dlq.json")"
    [[ $(python3 "$Q" 'd[0]["source"]' <"$TEST_TMP/dlq.json") =~ ^fleetdlq/[0-9]+/1$ ]] || fail "source"
    local at
    at=$(python3 "$Q" '"%d:%d" % (d[0]["partition"], d[0]["offset"])' <"$TEST_TMP/dlq.json")
    python3 "$Q" 'd[0]["reason"]' <"$TEST_TMP/dlq.json" | grep -q strict_dynamic_mapping_exception || fail "reason"
    # The fix: the field is added to the mapping. Then the replay indexes it, once however often.
    curl -sf -X PUT "$LC_ES_URL/$index/_mapping" -H 'Content-Type: application/json' \
        -d '{"properties":{"json":{"dynamic":"strict","properties":{"extra":{"type":"keyword"}}}}}' >/dev/null
    "${c[@]}" dlq replay fleetdlq --at "$at" | grep -qx "replayed $at to fleetdlq" || fail "replay output"
    wait_until 60 "the replayed line indexed" yields 2 eval "python3 $REPO/tests/check_es.py count-of $LC_ES_URL '$index'"
    "${c[@]}" dlq replay fleetdlq --all >/dev/null
    sleep 5
    assert_eq "replayed twice, indexed once" 2 "$(python3 "$REPO/tests/check_es.py" count-of "$LC_ES_URL" "$index")"
}

test_logctl_usage_and_exit_codes() {
    "$LOGCTL" --help | grep -q 'Exit status' || fail "--help"
    "$LOGCTL" config put --help | grep -q -- '--if-revision' || fail "config put --help"
    set +e
    "$LOGCTL" frobnicate >/dev/null 2>&1
    assert_eq "usage error" 2 $?
    local out
    out=$("$LOGCTL" --endpoints http://127.0.0.1:1 status 2>&1)
    assert_eq "etcd unreachable" 3 $?
    set -e
    [[ $out == "logctl: etcd http://127.0.0.1:1"* ]] || fail "message names the endpoint: $out"
}

run_tests
