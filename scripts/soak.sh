#!/usr/bin/env bash
# The soak: the chaos suite (tests/chaos.sh) for longer, with more files and lines, and faults
# drawn at random from every kind until the time is up. Not part of the test command.
#
# Usage: scripts/soak.sh [LINES] [FILES] [DURATION_S] [SEED]
#   LINES       lines to write in all, spread over the files and the duration  [2000000]
#   FILES       numbered log files written at once                             [20]
#   DURATION_S  seconds of faults                                              [3600]
#   SEED        the schedule's seed (printed; the same seed replays it)        [random]
# Needs the debug build (cargo build --workspace). LC_KEEP_TMP=1 keeps the logs and the
# result (result.json) in the printed directory.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-2000000} files=${2:-20} duration=${3:-3600} seed=${4:-$RANDOM}
case "$lines$files$duration$seed" in *[!0-9]*) sed -n '4,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;; esac
[ "$files" -gt 0 ] && [ "$duration" -gt 0 ] || { echo "soak: FILES and DURATION_S must be above 0" >&2; exit 2; }
# The numbered files, the JSON file and the churn file are written at the same rate.
rate=$(python3 -c "print(max(1.0, $lines / ($files + 2) / $duration))")
echo "soak: $lines lines over $files files in ${duration}s ($rate lines/s a file), seed $seed"
CHAOS_FILES=$files CHAOS_RATE=$rate CHAOS_DURATION=$duration CHAOS_SEED=$seed bash tests/chaos.sh
