#!/usr/bin/env bash
# Run one benchmark in two checkouts alternately (before/after figures on the same machine, same load), N times each;
# prints one JSON line per run: {"tree", "run", "load", "wall_s", "result": <the benchmark's JSON>}.
# usage: benchmarks/compare_trees.sh BEFORE_DIR AFTER_DIR N ARGS...   e.g.
#   git worktree add /tmp/before <rev>; ln -s "$PWD/.venv" /tmp/before/.venv
#   benchmarks/compare_trees.sh /tmp/before . 2 benchmarks/store.py --frames 5000
set -uo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); n=$3; shift 3
for i in $(seq 1 "$n"); do
  for tree in "$before" "$after"; do
    cd "$tree" || exit 1
    start=$(date +%s)
    out=$(flock /tmp/bench.lock .venv/bin/python "$@" 2>/dev/null | tail -1)
    echo "{\"tree\": \"$tree\", \"run\": $i, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"wall_s\": $(( $(date +%s) - start )), \"result\": ${out:-null}}"
  done
done
