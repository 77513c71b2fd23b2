#!/bin/bash
# Run the scaler on rows at several seeds:  JOBS=FILE ./rows.sh TREE TAG
# FILE: lines "name run-args" (SEED in the args is replaced by 0..3, and the name gets -s0..-s3);
# each run is `python -m simulations run ARGS --policy scaler --out $OUT/TAG-name` in TREE (a checkout with
# .venv), two at a time, and prints "name attainment | gpu_hours | cold_starts | max_replicas".
# The output, sorted, goes to stdout; save it as $OUT/TAG.out for judge.py. Each row is one write (one
# string, not print's pieces: unbuffered, two workers' pieces interleaved into one line).
set -e
# Results are keyed by row name (here, static.py, judge.py): two sets' rows may not share one.
taken=$(cat "$(dirname "$0")"/*.txt | grep -v '^#' | awk 'NF {print $1}' | sort | uniq -d)
if [ -n "$taken" ]; then echo "rows.sh: row names used by two sets: $taken" >&2; exit 2; fi
TREE=$(cd "$1" && pwd); TAG=$2; OUT=$(mkdir -p "${OUT:-out/seeds}" && cd "${OUT:-out/seeds}" && pwd)
run1() {
  name=$1; shift
  (cd "$TREE" && .venv/bin/python -m simulations run "$@" --policy scaler --out "$OUT/$TAG-$name" \
    >/dev/null 2>"$OUT/$TAG-$name.err")
  "$TREE/.venv/bin/python" -c "import json; s = json.load(open('$OUT/$TAG-$name/summary.json'))['policies']['scaler']
print(f\"$name {s['slo_attainment']} | {s['gpu_hours']} | {s['cold_starts']} | {s['max_replicas']}\")"
}
export -f run1; export TREE TAG OUT
for s in 0 1 2 3; do grep -v '^#' "$JOBS" | grep . | sed "s/SEED/$s/; s/^\([a-z0-9]*\)/\1-s$s/"; done \
  | xargs -P 2 -L1 bash -c 'run1 "$@"' _ | sort
