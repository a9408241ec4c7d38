#!/usr/bin/env bash
# Checks the scaling model against a real run on this machine: a fresh local
# stack (scripts/stack.sh: one process per stage, fixed replicas = 1), a
# closed-loop load by `atelier bench`, then the model fed with the stage
# timings that same run measured (GET /api/v1/status/queue), with the same
# clients and jobs. Prints measured and predicted p50/p95 and throughput, and
# what one job cost: CPU seconds per stage process, blob bytes written, and
# each process's peak RSS.
#
# Usage: scripts/scaling/validate.sh [requests] [clients]     (default 40 4)
#   ATELIER_BIN_DIR       binaries to run (default: the release build)
#   CONCURRENCY           ATELIER__WORKER__CONCURRENCY of every worker (default 2)
# The stack runs on its own ports, broker prefix and schema; it is stopped at the end.
source "$(dirname "$0")/../lib/common.sh"
cd "$ATELIER_ROOT"

requests="${1:-40}"
clients="${2:-4}"
concurrency="${CONCURRENCY:-2}"
run="scaling_$(date +%s)"
out="$ATELIER_ROOT/.stack/$run"
export ATELIER__BROKER__PREFIX="$run" ATELIER__DATABASE__SCHEMA="$run"
export ATELIER__WORKER__CONCURRENCY="$concurrency"
export ATELIER_GATEWAY_PORT="${ATELIER_GATEWAY_PORT:-18080}" ATELIER_STATUS_PORT="${ATELIER_STATUS_PORT:-15051}"
url="http://127.0.0.1:$ATELIER_GATEWAY_PORT"
bin="${ATELIER_BIN_DIR:-${CARGO_TARGET_DIR:-$ATELIER_ROOT/target}/release}/atelier"

scripts/stack.sh down >/dev/null 2>&1 || true
# A fresh schema needs a fresh key (stack.sh makes one when the file is missing).
rm -rf "$ATELIER_ROOT/.stack/blobs" "$ATELIER_ROOT/.stack/api-key"
scripts/stack.sh up
ATELIER_API_KEY="$(cat "$ATELIER_ROOT/.stack/api-key")"
export ATELIER_API_KEY
# Stop the stack, then drop this run's schema and queues (results stay in $out).
cleanup() {
  scripts/stack.sh down >/dev/null 2>&1 || true
  rm -f "$ATELIER_ROOT/.stack/api-key"
  psql -h 127.0.0.1 -U postgres -qc "drop schema if exists $run cascade" >/dev/null 2>&1 || true
  for q in $(as_root rabbitmqctl -q list_queues name 2>/dev/null | grep "^$run\."); do
    as_root rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
mkdir -p "$out"

# CPU seconds (user + system) of a service's process so far.
cpu_seconds() {
  local pid ticks
  pid="$(cat "$ATELIER_ROOT/.stack/$1.pid")"
  ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
  echo "scale=3; $ticks / $(getconf CLK_TCK)" | bc
}
services=(gateway analysis generation upscaling postprocess status)
declare -A cpu_before
for s in "${services[@]}"; do cpu_before[$s]="$(cpu_seconds "$s")"; done

log "measured: $requests jobs, $clients clients, concurrency $concurrency, one process per stage"
started=$(date +%s.%N)
"$bin" bench --url "$url" --requests "$requests" --concurrency "$clients" --endpoint full \
  --upscale --backgrounds 1,1,1 --image examples/shirt-front.jpg | tee "$out/bench.txt"
elapsed=$(echo "$(date +%s.%N) - $started" | bc)

curl -fsS -H "Authorization: Bearer $ATELIER_API_KEY" "$url/api/v1/status/queue" >"$out/queue.json"
blob_bytes="$(du -sb "$ATELIER_ROOT/.stack/blobs" | cut -f1)"
{
  echo "wall seconds: $elapsed"
  echo "measured throughput: $(echo "scale=3; $requests / $elapsed" | bc) jobs/s"
  echo "blob bytes written per job: $((blob_bytes / requests))"
  for s in "${services[@]}"; do
    echo "cpu seconds per job, $s: $(echo "scale=3; ($(cpu_seconds "$s") - ${cpu_before[$s]}) / $requests" | bc)"
  done
  # Peak resident memory of each process over the run (deploy/README.md: resources).
  for s in "${services[@]}"; do
    echo "peak RSS, $s: $(awk '/^VmHWM/ {print $2, $3}' "/proc/$(cat "$ATELIER_ROOT/.stack/$s.pid")/status")"
  done
} | tee "$out/costs.txt"

log "predicted by scripts/scaling/sim.py from this run's stage timings"
python3 - "$out/queue.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["stages"]:
    print(f"  {s['stage']:16} p50 {s['p50']:.3f}s  p95 {s['p95']:.3f}s")
PY
python3 scripts/scaling/sim.py --stages "$out/queue.json" --concurrency "$concurrency" --replicas 1 \
  --closed "$clients" --requests "$requests" | tee "$out/predicted.json"
log "results in $out"
