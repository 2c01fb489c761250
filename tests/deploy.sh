#!/usr/bin/env bash
# Deployment: scripts/install.sh into a temporary root (layout, user, modes, settings kept,
# uninstall), the systemd units checked by systemd-analyze, and the installed agent run with
# the installed settings against a real etcd. Uses the static binaries of
# scripts/build-static.sh, as a server gets them.
. "$(dirname "$0")/lib.sh"

STATIC=${LC_STATIC_DIR:-$REPO/target/static/x86_64-unknown-linux-musl/release}
ROOT=$TEST_TMP/root
install_root() { "$REPO/scripts/install.sh" --root "$ROOT" --from "$STATIC" "$@"; }

test_install_into_a_root_gives_the_layout() {
    [ -x "$STATIC/log-agent" ] || fail "no static build in $STATIC: run scripts/build-static.sh"
    install_root >"$TEST_TMP/install.out" 2>&1 || fail "install.sh failed: $(cat "$TEST_TMP/install.out")"
    local layout
    layout=$(cd "$ROOT" && find usr etc/systemd etc/logcollect -type f -printf '%m %p\n' | sort -k2)
    assert_eq "installed files and modes" "640 etc/logcollect/agent.ini
640 etc/logcollect/transfer.ini
644 etc/systemd/system/log-agent.service
644 etc/systemd/system/log-transfer.service
644 usr/lib/sysusers.d/logcollect.conf
755 usr/local/bin/log-agent
755 usr/local/bin/log-transfer
755 usr/local/bin/logctl
644 usr/local/share/doc/logcollect/README.md" "$layout"
    cmp -s "$ROOT/usr/local/bin/log-agent" "$STATIC/log-agent" || fail "log-agent is not the static build"
    # The daemons' user, in adm to read /var/log; the settings belong to root and its group.
    local uid gid
    uid=$(awk -F: '$1 == "logcollect" { print $3 }' "$ROOT/etc/passwd")
    gid=$(awk -F: '$1 == "logcollect" { print $3 }' "$ROOT/etc/group")
    [ -n "$uid" ] || fail "no user logcollect in $ROOT/etc/passwd"
    assert_eq "user entry" "logcollect:x:$uid:$gid:logcollect log shipper:/var/lib/log-agent:/usr/sbin/nologin" \
        "$(grep '^logcollect:' "$ROOT/etc/passwd")"
    assert_eq "adm members" "logcollect" "$(awk -F: '$1 == "adm" { print $4 }' "$ROOT/etc/group")"
    assert_eq "settings owner" "0:$gid 750" "$(stat -c '%u:%g %a' "$ROOT/etc/logcollect")"
    assert_eq "agent.ini owner" "0:$gid" "$(stat -c '%u:%g' "$ROOT/etc/logcollect/agent.ini")"
    echo "ok: binaries, units, user logcollect ($uid, in adm), settings root:logcollect 0640"
    # A second install keeps settings edited since, and installs the rest again.
    echo "; edited" >>"$ROOT/etc/logcollect/agent.ini"
    rm "$ROOT/usr/local/bin/logctl"
    install_root >"$TEST_TMP/install2.out" 2>&1 || fail "second install failed"
    assert_grep "second install" "$TEST_TMP/install2.out" '^kept /etc/logcollect/agent.ini$'
    [ "$(tail -n 1 "$ROOT/etc/logcollect/agent.ini")" = "; edited" ] || fail "agent.ini was overwritten"
    [ -x "$ROOT/usr/local/bin/logctl" ] || fail "logctl not installed again"
    echo "ok: a second install keeps edited settings"
}

test_units_pass_systemd_analyze_verify() {
    install_root >/dev/null 2>&1 || fail "install.sh failed"
    local unit copy out
    for unit in log-agent log-transfer; do
        # ExecStart points at the installed binary, as on the host.
        copy=$TEST_TMP/$unit.service
        sed "s|/usr/local/bin/|$ROOT/usr/local/bin/|" "$ROOT/etc/systemd/system/$unit.service" >"$copy"
        out=$(systemd-analyze verify "$copy" 2>&1) || fail "$unit: systemd-analyze verify failed: $out"
        # It exits 0 on unknown keys and bad values, with a warning: none may appear.
        assert_eq "$unit: systemd-analyze verify says nothing" "" "$out"
        echo "ok: $unit.service verifies; $(systemd-analyze security --offline=yes "$copy" 2>&1 |
            grep -o 'Overall exposure level.*' | sed 's/ [^ ]*$//')"
    done
    # The agent can write its data_dir only: the state directory systemd creates for it.
    assert_grep "agent.ini data_dir" "$ROOT/etc/logcollect/agent.ini" '^data_dir = /var/lib/log-agent$'
    assert_grep "StateDirectory" "$ROOT/etc/systemd/system/log-agent.service" '^StateDirectory=log-agent$'
}

test_the_installed_agent_runs_with_the_installed_settings() {
    lc_services etcd
    install_root >/dev/null 2>&1 || fail "install.sh failed"
    local ini=$ROOT/etc/logcollect/agent.ini port=$LC_FREE_PORT
    # Only what differs on this test machine: the servers, the data_dir, the port.
    sed -i "s|^endpoints = .*|endpoints = $LC_ETCD_URL|; s|^data_dir = .*|data_dir = $TEST_TMP/data|;
        s|^http_listen = .*|http_listen = 127.0.0.1:$port|; s|^;name = web1|name = installed|" "$ini"
    etcd_put collect_log_conf "[{\"path\":\"$TEST_TMP/app.log\",\"topic\":\"installed\"}]"
    lc_spawn installed "$ROOT/usr/local/bin/log-agent" -c "$ini"
    wait_until 10 "installed agent healthy" curl -sf "http://127.0.0.1:$port/health"
    # Its heartbeat, under the name set in the installed file, read by the installed logctl.
    wait_until 10 "installed agent in logctl status" \
        yields '[["agent", "installed"]]' eval '"$ROOT/usr/local/bin/logctl" --endpoints "$LC_ETCD_URL" status -o json |
            python3 "$Q" "[[r[\"kind\"], r[\"name\"]] for r in d]"'
    echo "ok: the installed log-agent runs with /etc/logcollect/agent.ini and reports to etcd"
}

test_uninstall_keeps_settings_and_purge_removes_them() {
    install_root >/dev/null 2>&1 || fail "install.sh failed"
    install_root --uninstall >/dev/null || fail "uninstall failed"
    local left
    left=$(cd "$ROOT" && find usr etc/systemd etc/logcollect -type f | sort)
    assert_eq "left after --uninstall" "etc/logcollect/agent.ini
etc/logcollect/transfer.ini" "$left"
    install_root --uninstall --purge >/dev/null || fail "purge failed"
    [ ! -e "$ROOT/etc/logcollect" ] || fail "--purge left /etc/logcollect"
    echo "ok: --uninstall keeps the settings, --purge removes them"
}

test_the_compose_file_validates() {
    local dc=(docker-compose --env-file "$REPO/conf/deploy/compose.env" -f "$REPO/conf/deploy/docker-compose.yml")
    "${dc[@]}" config -q || fail "docker-compose refused conf/deploy/docker-compose.yml"
    assert_eq "services" "es01 etcd-init etcd1 etcd2 etcd3 kafka-users kafka1 kafka2 kafka3 kibana log-transfer setup" \
        "$("${dc[@]}" config --services | sort | tr '\n' ' ' | sed 's/ $//')"
    # The transfer runs the static build with the compose settings, which the transfer's
    # own parsing accepts once their files exist.
    "${dc[@]}" config >"$TEST_TMP/compose.yml"
    assert_grep "the static binary mounted" "$TEST_TMP/compose.yml" "$REPO/target/static/x86_64-unknown-linux-musl/release/log-transfer:/usr/local/bin/log-transfer:ro"
    local certs=$TEST_TMP/certs ini=$TEST_TMP/compose-transfer.ini
    mkdir -p "$certs/ca" "$certs/transfer"
    make_ca "$certs/ca" ca
    mv "$certs/ca/ca.pem" "$certs/ca/ca.crt"
    printf 'secret\n' >"$certs/transfer/kafka-password"
    printf 'secret\n' >"$certs/transfer/elastic-password"
    chmod 600 "$certs/transfer/"*
    sed "s|/etc/logcollect/certs|$certs|; s|^endpoints = .*|endpoints = $LC_ETCD_URL|; s|^http_listen = .*|http_listen = 127.0.0.1:$LC_FREE_PORT|" \
        "$REPO/conf/deploy/compose-transfer.ini" >"$ini"
    lc_services etcd
    lc_spawn transfer "$STATIC/log-transfer" -c "$ini"
    wait_until 15 "the transfer started" grep -q 'kafka kafka1:9092,kafka2:9092,kafka3:9092 (sasl_ssl)' "$TEST_TMP/transfer.log"
    lc_alive transfer || fail "the transfer refused the compose settings: $(cat "$TEST_TMP/transfer.log")"
}

run_tests
