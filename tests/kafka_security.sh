#!/usr/bin/env bash
# Kafka over TLS and SASL: the agent and the transfer against an Apache Kafka 4 broker with an
# SSL listener that asks for a client certificate and a SASL_SSL listener with SCRAM-SHA-512,
# besides the PLAINTEXT one this file reads back through. The certificates are made here with
# openssl, the SCRAM user with Kafka's own ConfigCommand. A wrong CA, a missing client
# certificate and a wrong password are each said in words naming the [kafka] setting, and
# nothing written meanwhile is lost once the setting is mended.
. "$(dirname "$0")/lib.sh"

SECURE=$TEST_TMP/secure
SSL_PORT=$((LC_FREE_PORT + 5))
SASL_PORT=$((LC_FREE_PORT + 6))
mkdir -p "$SECURE"
make_ca "$SECURE" ca
make_ca "$SECURE" other
make_cert "$SECURE" broker ca "DNS:localhost,IP:127.0.0.1"
make_cert "$SECURE" agent ca "DNS:log-agent"
# Kafka's PEM key store: the private key (PKCS#8) and the certificate in one file.
cat "$SECURE/broker.key" "$SECURE/broker.pem" >"$SECURE/broker-keystore.pem"
cat >"$SECURE/server.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:$LC_KAFKA_PORT,CONTROLLER://127.0.0.1:$LC_KAFKA_CONTROLLER_PORT,SSL://127.0.0.1:$SSL_PORT,SASL_SSL://127.0.0.1:$SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$LC_KAFKA_PORT,SSL://127.0.0.1:$SSL_PORT,SASL_SSL://127.0.0.1:$SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$SECURE/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECURE/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
PROPS
LC_KAFKA_ENGINE=apache LC_KAFKA_PROPERTIES=$SECURE/server.properties lc_services etcd kafka es
# The SCRAM user the daemons log in as.
printf 'right-password\n' >"$SECURE/password"
printf 'wrong-password\n' >"$SECURE/wrong-password"
chmod 600 "$SECURE/password" "$SECURE/wrong-password"
java -Xmx256m -cp "$KAFKA_LIBS/*" kafka.admin.ConfigCommand --bootstrap-server "$LC_KAFKA_BROKERS" \
    --alter --entity-type users --entity-name lc --add-config 'SCRAM-SHA-512=[password=right-password]' \
    >"$TEST_TMP/scram.out" 2>&1 || { cat "$TEST_TMP/scram.out" >&2; exit 1; }

HOST=$(hostname)
WRITE=$REPO/tests/write_lines.py
CHECK_ES=$REPO/tests/check_es.py
AGENT=127.0.0.1:$LC_FREE_PORT
etcd_put elasticsearch_config "{\"url_address\":[\"$LC_ES_URL\"]}"

# with_kafka INI BROKERS LINE...: INI's [kafka] reaches BROKERS with these settings.
with_kafka() {
    sed -i "s|^brokers = .*|brokers = $2|" "$1"
    printf '%s\n' "${@:3}" | sed -i '/^\[kafka\]$/r /dev/stdin' "$1"
}

# agent_at BROKERS LINE...: the agent ini, reaching the broker this way.
agent_at() {
    agent_ini "$TEST_TMP/agent.ini" "$TEST_TMP/agent-data" "$AGENT"
    with_kafka "$TEST_TMP/agent.ini" "$@"
}

# transfer_at GROUP BROKERS LINE...: the transfer ini, in consumer group GROUP.
transfer_at() {
    transfer_ini "$TEST_TMP/transfer.ini" $((LC_FREE_PORT + 1)) 1 "$1"
    with_kafka "$TEST_TMP/transfer.ini" "${@:2}"
}

# kafka_errors ADDR: the daemon's count of errors librdkafka reported.
kafka_errors() { metric "$1" 'logcollect_agent_errors_total{kind="kafka"}'; }

# records TOPIC: the records of TOPIC, read through the plaintext listener.
records() { "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" "$1" 0 5 2>/dev/null; }

# exactly_lines TOPIC PATH: the topic holds exactly PATH's lines, once each, in order.
exactly_lines() {
    "$BIN_DIR/lc-kafka" consume "$LC_KAFKA_BROKERS" "$1" "$(wc -l <"$2")" 60 >"$TEST_TMP/$1.json"
    python3 "$REPO/tests/check_kafka.py" exact "$TEST_TMP/$1.json" "$HOST" "$2"
}

test_ssl_with_a_client_certificate_loses_nothing_while_misconfigured() {
    local d=$TEST_TMP/tls
    collect_one tls
    # The wrong CA: the agent says which setting to change, keeps running, and keeps the lines.
    agent_at "127.0.0.1:$SSL_PORT" "security_protocol = ssl" "ca_file = $SECURE/other.pem" \
        "client_cert = $SECURE/agent.pem" "client_key = $SECURE/agent.key"
    start_agent
    wait_applied "$TEST_TMP/agent.log" tls
    python3 "$WRITE" seq "$d/app.log" 1 500 5000
    wait_until 30 "the CA error" grep -q 'set \[kafka\] ca_file to the CA that signed it' "$TEST_TMP/agent.log"
    echo "ok: $(grep -o 'kafka: ssl://.*' "$TEST_TMP/agent.log" | head -n 1 | cut -c1-400)"
    lc_alive agent || fail "the agent stopped on a TLS error"
    assert_eq "records in Kafka while the CA is wrong" 0 "$(records tls | wc -l)"
    lc_kill agent
    # The right CA but no client certificate: the broker asks for one.
    agent_at "127.0.0.1:$SSL_PORT" "security_protocol = ssl" "ca_file = $SECURE/ca.pem"
    start_agent
    wait_until 30 "the client certificate error" grep -q 'set \[kafka\] client_cert and client_key' "$TEST_TMP/agent.log"
    echo "ok: $(grep -o 'kafka: ssl://.*client_cert.*' "$TEST_TMP/agent.log" | head -n 1 | cut -c1-400)"
    lc_kill agent
    # Both: every line, once, in order; then more lines while it runs.
    agent_at "127.0.0.1:$SSL_PORT" "security_protocol = ssl" "ca_file = $SECURE/ca.pem" \
        "client_cert = $SECURE/agent.pem" "client_key = $SECURE/agent.key"
    start_agent
    python3 "$WRITE" seq "$d/app.log" 501 1000 5000
    exactly_lines tls "$d/app.log"
    echo "ok: 1000 lines over TLS with a client certificate, none lost, none twice"
    # The transfer reads them over the same listener, with its own certificate.
    make_cert "$SECURE" transfer ca "DNS:log-transfer"
    transfer_at tls-group "127.0.0.1:$SSL_PORT" "security_protocol = ssl" "ca_file = $SECURE/ca.pem" \
        "client_cert = $SECURE/transfer.pem" "client_key = $SECURE/transfer.key"
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/transfer.ini"
    wait_until 60 "1000 documents" python3 "$CHECK_ES" count "$LC_ES_URL" 'tls-*' 1000
    python3 "$CHECK_ES" seq "$LC_ES_URL" 'tls-*' 1000
}

test_sasl_ssl_scram_sha_512_loses_nothing_while_the_password_is_wrong() {
    local d=$TEST_TMP/sasl
    collect_one sasl
    local sasl=("security_protocol = sasl_ssl" "sasl_mechanism = SCRAM-SHA-512" "sasl_username = lc"
        "ca_file = $SECURE/ca.pem")
    agent_at "127.0.0.1:$SASL_PORT" "${sasl[@]}" "sasl_password_file = $SECURE/wrong-password"
    start_agent
    wait_applied "$TEST_TMP/agent.log" sasl
    python3 "$WRITE" seq "$d/app.log" 1 500 5000
    wait_until 30 "the password error" grep -q 'the broker refuses the credentials: check \[kafka\] sasl_username' "$TEST_TMP/agent.log"
    echo "ok: $(grep -o 'kafka: sasl_ssl://.*' "$TEST_TMP/agent.log" | head -n 1 | cut -c1-400)"
    [ "$(kafka_errors "$AGENT")" -ge 1 ] || fail "no Kafka error counted"
    # The secret is in no log line and no metric.
    ! grep -q 'wrong-password' "$TEST_TMP/agent.log" || fail "the password is in the log"
    ! curl -sf "http://$AGENT/metrics" | grep -q 'wrong-password' || fail "the password is in /metrics"
    assert_eq "records in Kafka while the password is wrong" 0 "$(records sasl | wc -l)"
    lc_kill agent
    agent_at "127.0.0.1:$SASL_PORT" "${sasl[@]}" "sasl_password_file = $SECURE/password"
    start_agent
    python3 "$WRITE" seq "$d/app.log" 501 1000 5000
    exactly_lines sasl "$d/app.log"
    echo "ok: 1000 lines over SASL_SSL (SCRAM-SHA-512), none lost, none twice"
    transfer_at sasl-group "127.0.0.1:$SASL_PORT" "${sasl[@]}" "sasl_password_file = $SECURE/password"
    lc_spawn transfer "$BIN_DIR/log-transfer" -c "$TEST_TMP/transfer.ini"
    wait_until 60 "1000 documents" python3 "$CHECK_ES" count "$LC_ES_URL" 'sasl-*' 1000
    python3 "$CHECK_ES" seq "$LC_ES_URL" 'sasl-*' 1000
}

test_a_secret_file_others_can_read_is_warned_about() {
    local pw=$TEST_TMP/open-password
    printf 'right-password\n' >"$pw"
    chmod 644 "$pw"
    collect_one open
    agent_at "127.0.0.1:$SASL_PORT" "security_protocol = sasl_ssl" "sasl_mechanism = SCRAM-SHA-512" \
        "sasl_username = lc" "sasl_password_file = $pw" "ca_file = $SECURE/ca.pem"
    start_agent
    wait_applied "$TEST_TMP/agent.log" open
    assert_grep "warning" "$TEST_TMP/agent.log" "$pw: holds a secret and every user can read it"
}

run_tests
