#!/usr/bin/env bash
# The project's whole test suite, as CI runs it on a fresh machine:
# installs the real services, checks formatting and lints, runs the unit tests and every
# shell test in tests/ against real etcd, Kafka (Tansu) and Elasticsearch API (osmem-server).
# Ends with the line "N passed, M failed"; exits non-zero if anything failed.
#
# Usage: scripts/test.sh [tests/NAME.sh ...]   (default: every tests/*.sh)
#
# Test files marked "# engines: each set" run once per engine set of LOGCOLLECT_ENGINES:
#   standin  the Tansu broker and osmem-server;
#   real     Apache Kafka 4 (KRaft) and an OpenSearch 2.19 node, from Maven Central jars;
#   both     (default) the two.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()

# took NAME START: how long NAME ran since START (a $SECONDS), for keeping the whole under 45 min.
took() { echo "-- $1: $((SECONDS - $2)) s"; }

# step NAME CMD...: one check that counts as one test.
step() {
    local name=$1 start=$SECONDS
    shift
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
    took "$name" "$start"
}

case ${LOGCOLLECT_ENGINES:-both} in
    standin) step "install services" scripts/services.sh install ;;
    real) step "install services" env LC_KAFKA_ENGINE=apache LC_ES_ENGINE=opensearch scripts/services.sh install ;;
    *)
        step "install services (stand-ins)" scripts/services.sh install
        step "install services (real engines)" env LC_KAFKA_ENGINE=apache LC_ES_ENGINE=opensearch scripts/services.sh install
        ;;
esac
step "install test tools" scripts/services.sh install tools build
step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo build" cargo build --workspace --quiet
step "static musl build" scripts/build-static.sh

# Unit tests count one by one, from cargo's own summary lines.
echo "== cargo test"
unit_start=$SECONDS
unit_log=$(mktemp)
cargo test --workspace --no-fail-fast 2>&1 | tee "$unit_log" | grep -E '^(test |test result|error|failures|thread .* panicked|  left|  right| right)' || true
unit_rc=${PIPESTATUS[0]}
read -r up uf < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$unit_log")
passed=$((passed + up))
failed=$((failed + uf))
if [ "$unit_rc" != 0 ] && [ "$uf" = 0 ]; then
    failed=$((failed + 1)) # a build error: no summary line to count
    failures+=("cargo test (exit $unit_rc)")
fi
grep -E '^test .* FAILED$' "$unit_log" | while read -r _ name _; do echo "FAIL unit $name"; done
rm -f "$unit_log"
took "cargo test" "$unit_start"

# Shell tests: each file reports one line per test into a shared results file.
results=$(mktemp)
export LC_RESULTS=$results
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(tests/*.sh)
case ${LOGCOLLECT_ENGINES:-both} in
    standin) engines=(standin) ;;
    real) engines=(real) ;;
    both) engines=(standin real) ;;
    *) echo "LOGCOLLECT_ENGINES=$LOGCOLLECT_ENGINES: expected real, standin or both" >&2; exit 2 ;;
esac
# run_file FILE [ENGINE_SET]
run_file() {
    echo "== $1${2:+ (engines: $2)}"
    local before rc kafka=tansu es=osmem start=$SECONDS
    [ "${2:-}" = real ] && kafka=apache es=opensearch
    before=$(wc -l <"$results")
    LC_ENGINE_SET=${2:-} LC_KAFKA_ENGINE=$kafka LC_ES_ENGINE=$es bash "$1"
    rc=$?
    if [ "$rc" != 0 ] && [ "$(wc -l <"$results")" = "$before" ]; then
        echo "fail $1${2:+[$2]} (exit $rc before any test ran)" >>"$results"
    fi
    took "$1${2:+ (engines: $2)}" "$start"
}
for f in "${files[@]}"; do
    [ "$(basename "$f")" = lib.sh ] && continue
    if grep -q '^# engines: each set' "$f"; then
        for e in "${engines[@]}"; do run_file "$f" "$e"; done
    else
        run_file "$f"
    fi
done
passed=$((passed + $(grep -c '^pass ' "$results")))
failed=$((failed + $(grep -c '^fail ' "$results")))
while read -r _ name; do failures+=("$name"); done < <(grep '^fail ' "$results")
rm -f "$results"

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "in $((SECONDS / 60)) min $((SECONDS % 60)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
