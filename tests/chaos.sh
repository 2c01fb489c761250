#!/usr/bin/env bash
# The chaos suite: the whole pipeline on the real engines (etcd as three members, Apache Kafka
# as three brokers with replication factor 3 and min.insync.replicas=2, OpenSearch behind
# lc-faultproxy, two transfers in one group) while writers append to many files and faults
# drawn from a printed seed are injected one at a time: kill -9 of the agent, of a transfer,
# of the broker leading the busiest partition and of an etcd member; SIGSTOP of a broker, of
# every broker and of the store; the store unreachable; 429 and 500 bursts; rotation storms
# (also while the agent or Kafka is away); config churn with invalid values; a transfer
# joining and leaving. tests/chaos.py runs it and compares, line by line, what was written
# with what was indexed. The test command uses seed 42 (a run that fails is replayed as it
# was); CHAOS_SEED=N draws another schedule, and scripts/soak.sh a random one, for longer.
export LC_KAFKA_ENGINE=apache LC_ES_ENGINE=opensearch
. "$(dirname "$0")/lib.sh"

test_nothing_lost_or_duplicated_under_faults() {
    local dir=$TEST_TMP/chaos i
    mkdir -p "$dir"
    lc_services etcd-cluster kafka-cluster es
    # The clusters' members use the ports 10 and 20 above the single services' (PORT_BASE + 11
    # to 15 and 21 to 25): the daemons take others.
    local proxy=127.0.0.1:$((LC_FREE_PORT + 16))
    LC_ETCD_URL=$LC_ETCD_CLUSTER_URLS LC_KAFKA_BROKERS=$LC_KAFKA_CLUSTER_BROKERS \
        agent_ini "$dir/agent.ini" "$dir/agent-data" "127.0.0.1:$((LC_FREE_PORT + 6))"
    for i in 1 2 3; do
        LC_ETCD_URL=$LC_ETCD_CLUSTER_URLS LC_KAFKA_BROKERS=$LC_KAFKA_CLUSTER_BROKERS \
            transfer_ini "$dir/transfer$i.ini" $((LC_FREE_PORT + 6 + i)) 2 lc-chaos "instance_id = chaos-$i"
    done
    etcd_put elasticsearch_config "{\"url_address\":[\"http://$proxy\"]}"
    CHAOS_DIR=$dir CHAOS_PROXY=$proxy CHAOS_SEED=${CHAOS_SEED:-42} LC_BIN_DIR=$BIN_DIR \
        SERVICES=$SERVICES TEST_TMP=$TEST_TMP python3 "$REPO/tests/chaos.py" ||
        fail "chaos.py found problems: its FAIL lines above say which"
}

run_tests
