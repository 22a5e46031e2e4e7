#!/usr/bin/env bash
# run.sh FUZZER SECONDS SEED_DIR REGRESSION_DIR
# Replays every saved crash input, then fuzzes for SECONDS starting from the
# seed corpus (new inputs go to a scratch folder, not into the repository).
# A crash leaves its input in the scratch folder and fails the run; copy it to
# REGRESSION_DIR once the bug is fixed, so it is replayed forever after.
set -euo pipefail
fuzzer=$1 seconds=$2 seeds=$3 regressions=$4
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if compgen -G "$regressions/*" >/dev/null; then
  "$fuzzer" -runs=1 "$regressions"/* >"$scratch/replay.log" 2>&1 || { cat "$scratch/replay.log"; exit 1; }
fi
mkdir "$scratch/corpus"
if ! "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$scratch/" "$scratch/corpus" "$seeds" >"$scratch/fuzz.log" 2>&1; then
  tail -n 60 "$scratch/fuzz.log"
  for crash in "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-*; do
    [ -e "$crash" ] || continue
    echo "--- $crash (base64):"; base64 "$crash"
  done
  exit 1
fi
grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$scratch/fuzz.log" | tail -n 2
