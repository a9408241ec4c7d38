#!/usr/bin/env bash
# `atelier serve` measured: time from start to ready, idle memory, then the same
# job through its API and with `atelier process` (one process per job, no
# server), side by side in alternating rounds, at concurrency 1 and 8.
# Usage: scripts/bench/serve.sh [requests] [rounds] [extra `atelier bench` options]
#   (default 16 jobs, 3 rounds; e.g. scripts/bench/serve.sh 16 3 --upscale --endpoint full)
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/bench.sh
source "$(dirname "$0")/../lib/bench.sh"
cd "$ATELIER_ROOT" || exit 1

requests="${1:-16}"
rounds="${2:-3}"
shift $(($# < 2 ? $# : 2))

ensure_build_deps
bin="$(bench_bin_dir)/atelier"
work="$(mktemp -d)"

cleanup() { [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ATELIER_API_KEY="$("$bin" keys create --name bench --admin --rate-per-minute 0 --max-in-flight 0 --data "$work/data" 2>/dev/null)"
export ATELIER_API_KEY
started="$(date +%s.%N)"
start_serve "$bin" "$work/data" "$work/serve.log"
url="$SERVE_URL"
pid="$SERVE_PID"
ready="$(date +%s.%N)"
printf 'ready after %.3f s\n' "$(echo "$ready - $started" | bc)"
sleep 2
printf 'idle RSS %.1f MB\n' "$(echo "$(ps -o rss= -p "$pid") / 1024" | bc -l)"

for concurrency in 1 8; do
  for round in $(seq "$rounds"); do
    log "round $round, $concurrency clients: serve"
    "$bin" bench --url "$url" --requests "$requests" --concurrency "$concurrency" "$@" | tee -a "$work/serve-$concurrency.txt"
    log "round $round, $concurrency clients: embedded"
    "$bin" bench --embedded --requests "$requests" --concurrency "$concurrency" "$@" | tee -a "$work/embedded-$concurrency.txt"
  done
done
printf 'peak RSS of serve: %.1f MB\n' "$(echo "$(grep VmHWM /proc/"$pid"/status | awk '{print $2}') / 1024" | bc -l)"
