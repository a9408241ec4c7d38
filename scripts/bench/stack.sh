#!/usr/bin/env bash
# Stack versus embedded: the same job sent to the running stack (gateway, RabbitMQ,
# four workers) and run by `atelier process` (one process per job, no broker), each
# at concurrency 1 and at the chosen concurrency.
# Usage: scripts/bench/stack.sh [requests] [concurrency] [extra `atelier bench` options]
#   (default 20 jobs, 5 clients; e.g. scripts/bench/stack.sh 40 8 --upscale --endpoint full)
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
cd "$ATELIER_ROOT" || exit 1

requests="${1:-20}"
concurrency="${2:-5}"
shift $(($# < 2 ? $# : 2))

scripts/stack.sh up
bin="${ATELIER_BIN_DIR:-${CARGO_TARGET_DIR:-$ATELIER_ROOT/target}/release}/atelier"
url="http://127.0.0.1:${ATELIER_GATEWAY_PORT:-8080}"
ATELIER_API_KEY="$(cat .stack/api-key)"
export ATELIER_API_KEY

log "stack: $requests jobs through $url"
"$bin" bench --url "$url" --requests "$requests" --concurrency "$concurrency" --compare "$@"
log "embedded: the same jobs with atelier process"
"$bin" bench --embedded --requests "$requests" --concurrency "$concurrency" --compare "$@"
