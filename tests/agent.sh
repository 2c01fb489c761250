#!/usr/bin/env bash
# log-agent against a real etcd and a real Kafka-protocol broker: what reaches Kafka is read
# back with lc-kafka (rdkafka, no consumer group) and compared with the files by
# tests/check_kafka.py.
# engines: each set
. "$(dirname "$0")/lib.sh"

lc_services etcd kafka

HOST=$(hostname)
METRICS=127.0.0.1:$LC_FREE_PORT
CHECK=$REPO/tests/check_kafka.py
REGISTRY=$REPO/tests/check_registry.py
WRITE=$REPO/tests/write_lines.py
AGENT_INI=$TEST_TMP/agent.ini
LOG=$TEST_TMP/agent.log

agent_ini "$AGENT_INI" "$TEST_TMP/data" "$METRICS"


# consume TOPIC MIN OUT: every record of TOPIC, once at least MIN arrived.
consume() {
    "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" "$1" "$2" 90 >"$3" && return
    # What the agent read, had acknowledged and still held, and what it said last.
    curl -sf "http://$METRICS/metrics" | grep -E '^logcollect_agent_(lines|bytes_behind|kafka|errors)' >&2
    grep -v DEBUG "$LOG" | tail -n 15 >&2
    fail "topic $1: $(wc -l <"$3") of $2 records arrived"
}

count_records() { "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" "$1" 0 30 | wc -l; }

# agent_metric NAME: the agent's series NAME.
agent_metric() { metric "$METRICS" "$1"; }

# file_lines KIND PATH N: the agent's lines_KIND_total (read or acked) of PATH is N.
file_lines() { yields "$3" agent_metric "logcollect_agent_lines_$1_total{path=\"$2\"}"; }

# registry_offset PATH: the acknowledged offset the registry holds for the file at PATH.
registry_offset() { python3 "$REGISTRY" offset "$TEST_TMP/data" "$1"; }

test_two_files_exact_lines_offsets_headers() {
    local d=$TEST_TMP/two
    mkdir -p "$d"
    etcd_put collect_log_conf "[{\"path\":\"$d/a.log\",\"topic\":\"two\"},{\"path\":\"$d/b.log\",\"topic\":\"two\"}]"
    start_agent
    wait_until 5 "config applied" grep -q 'revision [0-9]*: 2 entries' "$LOG"
    # Both files appear after the entry is applied: read from their first byte.
    python3 "$WRITE" mixed "$d/a.log" 10000 1 &
    local wa=$!
    python3 "$WRITE" mixed "$d/b.log" 10000 2 &
    wait $wa $!
    consume two 20000 "$TEST_TMP/two.json"
    python3 "$CHECK" exact "$TEST_TMP/two.json" "$HOST" "$d/a.log" "$d/b.log"
    wait_until 5 "all acknowledged" file_lines acked "$d/a.log" 10000
    assert_eq "bytes behind" 0 "$(agent_metric "logcollect_agent_bytes_behind{path=\"$d/b.log\"}")"
}

test_rename_rotation_while_writing() {
    local d=$TEST_TMP/rename
    collect_one rename
    start_agent
    wait_applied "$LOG" rename
    python3 "$WRITE" seq "$d/app.log" 1 6000 3000 --rotate-every 1000 --rotate rename
    consume rename 6000 "$TEST_TMP/rename.json"
    python3 "$CHECK" seq "$TEST_TMP/rename.json" 6000
    assert_eq "rotated files" 5 "$(ls "$d" | grep -c 'app.log\.')"
    # The renamed files are closed once read and idle.
    wait_until 15 "renamed files closed" has_count 5 "app.log: renamed or deleted, read to its end; closing" "$LOG"
}

test_copytruncate_while_writing() {
    local d=$TEST_TMP/copytruncate
    collect_one copytruncate
    start_agent
    wait_applied "$LOG" copytruncate
    # The writer does not wait for the agent: lines not read yet when the file is truncated
    # are read from the copy (app.log.1).
    python3 "$WRITE" seq "$d/app.log" 1 4000 4000 --rotate-every 1000 --rotate copytruncate
    consume copytruncate 4000 "$TEST_TMP/ct.json"
    python3 "$CHECK" seq "$TEST_TMP/ct.json" 4000
    assert_eq "truncations seen" 3 "$(grep -c 'truncated; reading it again from the start' "$LOG")"
    echo "    truncations whose end was read from the copy: $(metric "$METRICS" logcollect_agent_truncated_files_finished_from_copy_total)"
}

# ship_through NAME LINES RATE CMD...: the agent ships NAME/app.log while a writer appends
# LINES numbered lines at RATE a second and CMD (the trouble) runs meanwhile; all LINES records
# of topic NAME are then read into $TEST_TMP/NAME.json.
ship_through() {
    local name=$1 lines=$2 rate=$3
    shift 3
    collect_one "$name"
    start_agent
    wait_applied "$LOG" "$name"
    python3 "$WRITE" seq "$TEST_TMP/$name/app.log" 1 "$lines" "$rate" &
    local writer=$!
    "$@"
    wait "$writer"
    consume "$name" "$lines" "$TEST_TMP/$name.json"
}

# restart_agent_with SIGNAL: 1.5 s in (after a registry write with acknowledged offsets: at
# most one a second), the agent gets SIGNAL and is started again.
restart_agent_with() {
    local rc=0
    sleep 1.5
    lc_kill agent "$1" || rc=$?
    [ "$1" = KILL ] || [ "$rc" = 0 ] || fail "agent exited $rc on SIG$1"
    start_agent
}

test_kill_9_mid_stream_loses_nothing() {
    ship_through kill 20000 5000 restart_agent_with KILL
    python3 "$CHECK" seq "$TEST_TMP/kill.json" 20000 --dups-ok
    grep -q 'tailing from offset [1-9]' "$LOG" || fail "the restarted agent did not resume from its registry"
}

test_sigterm_flushes_so_a_restart_sends_nothing_twice() {
    ship_through term 10000 5000 restart_agent_with TERM
    assert_grep "graceful stop" "$LOG" 'log-agent stopped'
    # Everything sent before the stop was acknowledged and recorded: no line twice.
    python3 "$CHECK" seq "$TEST_TMP/term.json" 10000
}

test_changed_entry_is_restarted_on_its_new_topic() {
    local d=$TEST_TMP/change
    mkdir -p "$d"
    # Empty when the entry is applied, so that its end is its start; written once tailed.
    : >"$d/x.log"
    etcd_put collect_log_conf "[{\"path\":\"$d\",\"topic\":\"change_old\"}]"
    start_agent
    # A directory entry: every regular file directly in it.
    wait_until 5 "x.log tailed" grep -q "$d/x.log: tailing from offset 0 to topic change_old" "$LOG"
    echo "seq=1 old topic" >>"$d/x.log"
    consume change_old 1 "$TEST_TMP/old.json"
    etcd_put collect_log_conf "[{\"path\":\"$d\",\"topic\":\"change_new\"}]"
    wait_until 3 "tailer restarted" grep -q "$d/x.log: no longer configured as it was" "$LOG"
    echo "seq=2 new topic" >>"$d/x.log"
    consume change_new 1 "$TEST_TMP/new.json"
    assert_eq "new topic's records" "seq=2 new topic" "$(python3 "$CHECK" values "$TEST_TMP/new.json")"
    assert_eq "old topic's records" 1 "$(count_records change_old)"
    assert_eq "tailers started for x.log" 2 "$(grep -c "$d/x.log: tailing from" "$LOG")"
    if grep -q 'records waiting' "$LOG"; then fail "a stall was reported where there was none"; fi
}

# freeze_broker SECONDS: 3 s in, the broker is stopped (SIGSTOP) for SECONDS.
freeze_broker() {
    local kafka_pid
    kafka_pid=$(cat "$LC_RUN/kafka.pid")
    sleep 3
    kill -STOP "$kafka_pid"
    sleep "$1"
    kill -CONT "$kafka_pid"
}

if [ "$LC_KAFKA_ENGINE" = apache ]; then
    # A broker frozen for 30 s: once, on Apache Kafka, as servers run it (45 s a run).
    test_broker_frozen_30s_nothing_lost_memory_bounded() {
        ship_through outage 20000 500 freeze_broker 30
        assert_grep "stall reported" "$LOG" 'kafka: [0-9]+ records waiting .* for an acknowledgement'
        assert_grep "recovery reported" "$LOG" 'kafka: acknowledging again after' 
        python3 "$CHECK" seq "$TEST_TMP/outage.json" 20000 --dups-ok
        local peak
        peak=$(awk '/VmHWM/ { print $2 }' "/proc/${LC_PIDS[agent]}/status")
        echo "    agent peak RSS: ${peak} kB"
        [ "$peak" -lt 65536 ] || fail "agent peak RSS ${peak} kB is not under 64 MB"
    }

    # restart_broker SECONDS: 2 s in, the broker is stopped for SECONDS, then started again.
    restart_broker() {
        sleep 2
        "$SERVICES" stop kafka
        sleep "$1"
        "$SERVICES" start kafka
    }

    # Only a broker that keeps its data can be stopped and started again.
    test_broker_stopped_and_restarted_nothing_lost() {
        ship_through restart 6000 500 restart_broker 8
        python3 "$CHECK" seq "$TEST_TMP/restart.json" 6000 --dups-ok
        # The outage is said when it starts, not at every reconnection attempt, and no
        # "0/1 brokers are down" contradicts it.
        local said
        said=$(grep -c 'ERROR .*kafka' "$LOG" || true)
        echo "    kafka error lines during the 8 s outage: $said"
        [ "$said" -ge 1 ] && [ "$said" -le 4 ] || fail "$said kafka error lines: $(grep 'ERROR .*kafka' "$LOG" | cut -c1-200)"
        ! grep -q ' 0/[0-9]* brokers are down' "$LOG" || fail "a contradictory 0/N brokers are down"
    }

    # Rotation while no tailer has the file. start_backlog leaves lines that Kafka has not
    # acknowledged when the agent is killed (-9); the test then rotates the files, starts Kafka
    # and the agent again, which must find the renamed files by identity and finish them. Kafka
    # is stopped, not frozen: a frozen broker would still take the requests the killed agent had
    # sent, once thawed, and hide a loss. Only a broker that keeps its data can be stopped.

    # write_seq NAME FIRST LAST [FILE]: lines seq=FIRST..LAST appended to $TEST_TMP/NAME/FILE
    # (default app.log) at once.
    write_seq() { python3 "$WRITE" seq "$TEST_TMP/$1/${4:-app.log}" "$2" "$3" 100000; }

    # start_backlog NAME [ENTRY_JSON]: NAME/app.log (topic NAME, plus the given entry) gets lines
    # 1..1000, all acknowledged and on disk in the registry; then Kafka is stopped and lines
    # 1001..2000 are written and read. Kafka is started again when the test ends, whatever happens.
    start_backlog() {
        local f=$TEST_TMP/$1/app.log
        mkdir -p "$TEST_TMP/$1"
        etcd_put collect_log_conf "[{\"path\":\"$f\",\"topic\":\"$1\"}${2:+,$2}]"
        trap '"$SERVICES" start kafka >/dev/null; kill_spawned' EXIT
        start_agent
        wait_applied "$LOG" "$1"
        write_seq "$1" 1 1000
        wait_until 30 "1000 lines acknowledged" file_lines acked "$f" 1000
        wait_until 5 "offset of line 1000 in the registry" yields "$(stat -c %s "$f")" registry_offset "$f"
        "$SERVICES" stop kafka
        write_seq "$1" 1001 2000
        wait_until 10 "2000 lines read" file_lines read "$f" 2000
    }

    # restart_all: Kafka started again, then the agent (killed before).
    restart_all() {
        "$SERVICES" start kafka
        start_agent
    }

    test_rename_while_the_agent_is_down_loses_nothing() {
        local d=$TEST_TMP/rotdown
        start_backlog rotdown
        lc_kill agent KILL || true
        mv "$d/app.log" "$d/app.log.1"
        write_seq rotdown 2001 3000
        restart_all
        consume rotdown 3000 "$TEST_TMP/rotdown.json"
        python3 "$CHECK" seq "$TEST_TMP/rotdown.json" 3000 --dups-ok
        assert_eq "renamed files found and finished" 1 "$(agent_metric logcollect_agent_moved_files_resumed_total)"
        assert_grep "found by identity" "$LOG" "$d/app.log: renamed to $d/app.log.1 while not tailed .* finishing it from offset [1-9]"
        # Read to its end, closed and all acknowledged: its entry leaves the registry.
        wait_until 20 "finished file's entry dropped" yields absent registry_offset "$d/app.log.1"
    }

    # copytruncate while the agent is down: the lines after the acknowledged offset are in the
    # copy only. Found beside the file by its head, the copy is finished; the file's new content
    # is read from its start.
    test_copytruncate_while_the_agent_is_down_loses_nothing() {
        local d=$TEST_TMP/ctdown
        start_backlog ctdown
        lc_kill agent KILL || true
        cp "$d/app.log" "$d/app.log.1"
        : >"$d/app.log"
        write_seq ctdown 2001 3000
        restart_all
        consume ctdown 3000 "$TEST_TMP/ctdown.json"
        python3 "$CHECK" seq "$TEST_TMP/ctdown.json" 3000 --dups-ok
        assert_eq "copies finished" 1 "$(agent_metric logcollect_agent_truncated_files_finished_from_copy_total)"
        assert_eq "nothing reported unfinished" 0 "$(agent_metric logcollect_agent_unfinished_files_total)"
        assert_grep "found by its head" "$LOG" "$d/app.log: truncated while not tailed \\(copytruncate, file [0-9:]+\\); finishing it from offset [1-9][0-9]* in its copy $d/app.log.1"
    }

    test_two_renames_while_the_agent_is_down_lose_nothing() {
        local d=$TEST_TMP/rottwo
        start_backlog rottwo
        # Rotated once while the agent runs (Kafka still stopped): a second file with a backlog.
        mv "$d/app.log" "$d/app.log.1"
        write_seq rottwo 2001 3000
        wait_until 10 "3000 lines read" file_lines read "$d/app.log" 3000
        lc_kill agent KILL || true
        # And once more while it is down: .1 -> .2, app.log -> .1, a new app.log.
        mv "$d/app.log.1" "$d/app.log.2"
        mv "$d/app.log" "$d/app.log.1"
        write_seq rottwo 3001 4000
        restart_all
        consume rottwo 4000 "$TEST_TMP/rottwo.json"
        python3 "$CHECK" seq "$TEST_TMP/rottwo.json" 4000 --dups-ok
        assert_eq "renamed files found and finished" 2 "$(agent_metric logcollect_agent_moved_files_resumed_total)"
    }

    test_renamed_file_closed_unacknowledged_then_the_agent_is_down_loses_nothing() {
        local d=$TEST_TMP/rotkill
        start_backlog rotkill
        mv "$d/app.log" "$d/app.log.1"
        write_seq rotkill 2001 2500
        # Its tailer read it to its end and closed it; Kafka has not acknowledged its last lines.
        wait_until 15 "renamed file closed" grep -q "$d/app.log: renamed or deleted, read to its end; closing" "$LOG"
        wait_until 10 "2500 lines read" file_lines read "$d/app.log" 2500
        lc_kill agent KILL || true
        restart_all
        consume rotkill 2500 "$TEST_TMP/rotkill.json"
        python3 "$CHECK" seq "$TEST_TMP/rotkill.json" 2500 --dups-ok
        assert_eq "renamed files found and finished" 1 "$(agent_metric logcollect_agent_moved_files_resumed_total)"
    }

    test_rotated_file_deleted_while_the_agent_is_down_is_reported_once() {
        local d=$TEST_TMP/rotdel ino offset
        mkdir -p "$d"
        start_backlog rotdel "{\"path\":\"$d/other.log\",\"topic\":\"rotdel_other\"}"
        write_seq rotdel 1 500 other.log
        wait_until 10 "other.log read" file_lines read "$d/other.log" 500
        ino=$(stat -c %i "$d/app.log")
        offset=$(registry_offset "$d/app.log")
        lc_kill agent KILL || true
        mv "$d/app.log" "$d/app.log.1"
        rm "$d/app.log.1"
        write_seq rotdel 2001 2500
        restart_all
        wait_until 10 "unfinished file counted" yields 1 agent_metric logcollect_agent_unfinished_files_total
        assert_grep "warning with path, inode and offset" "$LOG" \
            "WARN.*$d/app.log: file [0-9]+:$ino:[0-9]+ \(inode $ino\) .* lines after offset $offset may be missing"
        consume rotdel 1500 "$TEST_TMP/rotdel.json"
        python3 "$CHECK" seq "$TEST_TMP/rotdel.json" 2500 --dups-ok --lost 1001..2000
        # The other file of the same directory lost nothing.
        write_seq rotdel 501 1000 other.log
        consume rotdel_other 1000 "$TEST_TMP/other.json"
        python3 "$CHECK" seq "$TEST_TMP/other.json" 1000 --dups-ok
        # Said once: a restart does not report it again.
        local applied
        applied=$(grep -c 'applied configuration' "$LOG")
        lc_kill agent TERM || fail "agent did not stop cleanly"
        start_agent
        wait_until 10 "configuration applied again" has_more "$applied" 'applied configuration' "$LOG"
        assert_eq "unfinished files after the restart" 0 "$(agent_metric logcollect_agent_unfinished_files_total)"
        assert_eq "warnings" 1 "$(grep -c "$d/app.log: file .* may be missing" "$LOG")"
    }

    # An independent reader: Kafka's own Java console consumer, from the broker's jars.
    test_kafka_console_consumer_reads_what_the_agent_sent() {
        local d=$TEST_TMP/javacheck
        collect_one javacheck
        start_agent
        wait_applied "$LOG" javacheck
        python3 "$WRITE" seq "$d/app.log" 1 300 1000
        consume javacheck 300 "$TEST_TMP/java.json"
        java -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
            --bootstrap-server "$LC_KAFKA_BROKERS" --topic javacheck --from-beginning --max-messages 300 \
            --timeout-ms 30000 --property print.headers=true --property print.key=true \
            >"$TEST_TMP/java.txt" 2>"$TEST_TMP/java.err" || fail "console consumer: $(tail -3 "$TEST_TMP/java.err")"
        python3 "$CHECK" console "$TEST_TMP/java.txt" "$d/app.log" "$HOST" || fail "console consumer output"
    }
fi

test_etcd_add_remove_invalid_and_cached_config() {
    local d=$TEST_TMP/reload
    mkdir -p "$d"
    local a="{\"path\":\"$d/a.log\",\"topic\":\"reload_a\"}" b="{\"path\":\"$d/b.log\",\"topic\":\"reload_b\"}"
    echo "before b is configured" >"$d/b.log"
    etcd_put collect_log_conf "[$a]"
    start_agent
    wait_until 5 "config applied" grep -q 'revision [0-9]*: 1 entries' "$LOG"

    # Added: its lines flow within 3 s. The file existed: only lines written after count.
    etcd_put collect_log_conf "[$a,$b]"
    wait_until 3 "b configured" grep -q "$d/b.log: tailing from offset 23" "$LOG"
    echo "seq=1 b added" >>"$d/b.log"
    local t0=$SECONDS
    "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" reload_b 1 3 >"$TEST_TMP/b1.json" || fail "b's line did not arrive within 3 s"
    assert_eq "b's records" "seq=1 b added" "$(python3 "$CHECK" values "$TEST_TMP/b1.json")"

    # Removed: its lines stop.
    etcd_put collect_log_conf "[$a]"
    wait_until 3 "b stopped" grep -q "$d/b.log: no longer configured" "$LOG"
    echo "seq=2 after removal" >>"$d/b.log"
    echo "seq=1 a still flows" >>"$d/a.log"
    consume reload_a 1 "$TEST_TMP/a1.json"
    assert_eq "b's records after removal" 1 "$(count_records reload_b)"

    # Invalid: the agent says why and keeps the last good configuration.
    etcd_put collect_log_conf "[$a,{\"path\":\"$d/c.log\"}]"
    wait_until 3 "invalid value reported" grep -q 'entry 1: missing topic; keeping the last good configuration' "$LOG"
    echo "seq=2 a after invalid" >>"$d/a.log"
    consume reload_a 2 "$TEST_TMP/a2.json"

    # etcd down at start: the cached configuration is used.
    lc_kill agent TERM || fail "agent did not stop cleanly"
    "$SERVICES" stop etcd
    start_agent
    wait_until 5 "cached config used" grep -q 'using the cached configuration' "$LOG"
    echo "seq=3 a with etcd down" >>"$d/a.log"
    consume reload_a 3 "$TEST_TMP/a3.json"
    python3 "$CHECK" seq "$TEST_TMP/a3.json" 3
    lc_services etcd
}

test_odd_lines_late_files_and_multiline() {
    local d=$TEST_TMP/odd
    mkdir -p "$d/logs"
    etcd_put collect_log_conf "[{\"path\":\"$d/logs/*.log\",\"topic\":\"odd\"},
        {\"path\":\"$d/java.log\",\"topic\":\"odd_java\",\"multiline_start\":\"^\\\\d{4}-\\\\d{2}-\\\\d{2} \",\"multiline_timeout_ms\":300}]"
    start_agent
    wait_until 5 "config applied" grep -q 'revision [0-9]*: 2 entries' "$LOG"
    # A file that appears late, with a non-UTF-8 line and a 5 MiB line (cut at 1 MiB).
    sleep 1
    python3 "$WRITE" odd "$d/logs/late.log"
    cat >"$d/java.log" <<'LOG'
2026-11-27 10:00:00 INFO started
2026-11-27 10:00:01 ERROR request failed
java.lang.IllegalStateException: boom
	at com.example.Handler.handle(Handler.java:42)
	at com.example.Server.run(Server.java:7)
2026-11-27 10:00:02 INFO recovered
LOG
    consume odd 4 "$TEST_TMP/odd.json"
    python3 "$CHECK" odd "$TEST_TMP/odd.json" || fail "odd lines"
    consume odd_java 3 "$TEST_TMP/java.json"
    python3 "$CHECK" multiline "$TEST_TMP/java.json" || fail "multiline"
}

test_unreadable_file_is_reported_and_retried() {
    local d=$TEST_TMP/perm
    mkdir -p "$d"
    echo "seq=1 secret" >"$d/locked.log"
    chmod 000 "$d/locked.log"
    etcd_put collect_log_conf "[{\"path\":\"$d/locked.log\",\"topic\":\"perm\",\"start\":\"beginning\"}]"
    # Root reads any file: run this agent as nobody.
    mkdir -p "$TEST_TMP/data-nobody"
    sed "s|^data_dir = .*|data_dir = $TEST_TMP/data-nobody|" "$AGENT_INI" >"$TEST_TMP/agent-nobody.ini"
    chown -R nobody "$TEST_TMP/data-nobody"
    chmod 755 "$TEST_TMP" "$d"
    lc_spawn agent setpriv --reuid=nobody --regid=nogroup --clear-groups \
        "$BIN_DIR/log-agent" -c "$TEST_TMP/agent-nobody.ini"
    wait_until 10 "permission error reported" grep -q "$d/locked.log: cannot open: Permission denied" "$LOG"
    chmod 644 "$d/locked.log"
    consume perm 1 "$TEST_TMP/perm.json"
    python3 "$CHECK" seq "$TEST_TMP/perm.json" 1
    grep -q "$d/locked.log: can be opened now" "$LOG" || fail "recovery not logged"
}

run_tests
