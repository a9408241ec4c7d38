#!/usr/bin/env bash
# Runs the whole Atelier stack as local processes on this machine's RabbitMQ and
# PostgreSQL (started, and installed when missing, by ensure_services).
#
# Usage: scripts/stack.sh up | down | status | restart NAME | logs NAME [-f]
#   NAME is one of: status analysis generation upscaling postprocess gateway
#
#   up       builds the binaries (release) unless ATELIER_BIN_DIR is set, then starts
#            status, the four workers and the gateway, and returns once every one is
#            ready. A second `up` while all are running does nothing.
#   down     SIGTERM to every service, SIGKILL after ATELIER_STACK_GRACE seconds.
#   status   pid and state of each service (exit 1 unless every one is ready).
#   restart  stops and starts one service (and waits until it is ready).
#   logs     the last lines of a service's log (-f to follow).
#
# State lives in .stack/: NAME.pid, NAME.log (the previous run's in NAME.log.1),
# blobs/ (the shared blob store), api-key (an admin key for this development
# stack, made by the first `up`: curl -H "Authorization: Bearer $(cat .stack/api-key)").
# This is a development stack: it lets the gateway fetch input URLs on private
# networks (127.0.0.1 included), which the defaults refuse. Environment:
#   ATELIER_BIN_DIR          use the binaries in this folder instead of building
#   ATELIER_GATEWAY_PORT     gateway port on 127.0.0.1 (default 8080)
#   ATELIER_STATUS_PORT      status gRPC port on 127.0.0.1 (default 50051)
#   ATELIER__GATEWAY__BIND, ATELIER__STATUS__BIND, ATELIER__*   win over the above
#   ATELIER_OPS_HOST         address of every service's ops listener (127.0.0.1);
#                            ports: gateway 9100, status 9101, analysis 9102,
#                            generation 9103, upscaling 9104, postprocess 9105
#                            (/healthz, /readyz, /metrics; readiness is polled there)
#   ATELIER_STACK_TIMEOUT    seconds each service may take to become ready (60)
#   ATELIER_STACK_GRACE      seconds between SIGTERM and SIGKILL on stop (70)
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
cd "$ATELIER_ROOT" || exit 1

SERVICES=(status analysis generation upscaling postprocess gateway)
WORKERS=(analysis generation upscaling postprocess)
STATE_DIR="$ATELIER_ROOT/.stack"
READY_TIMEOUT="${ATELIER_STACK_TIMEOUT:-60}"
# Workers finish in-flight jobs for worker.shutdown_grace_seconds (60) on SIGTERM.
GRACE="${ATELIER_STACK_GRACE:-70}"
OPS_HOST="${ATELIER_OPS_HOST:-127.0.0.1}"

GATEWAY_BIND="${ATELIER__GATEWAY__BIND:-127.0.0.1:${ATELIER_GATEWAY_PORT:-8080}}"
STATUS_BIND="${ATELIER__STATUS__BIND:-127.0.0.1:${ATELIER_STATUS_PORT:-50051}}"
GATEWAY_PORT="${GATEWAY_BIND##*:}"
STATUS_PORT="${STATUS_BIND##*:}"
STATUS_URL="${ATELIER__GATEWAY__STATUS_URL:-http://127.0.0.1:$STATUS_PORT}"
# Development only: examples may be served from this machine.
ALLOW_PRIVATE="${ATELIER__GATEWAY__FETCH__ALLOW_PRIVATE_NETWORKS:-true}"
KEY_FILE="$STATE_DIR/api-key"
BLOBS_URL="${ATELIER__BLOBS__URL:-file://$STATE_DIR/blobs}"

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

binary_name() {
  case "$1" in
    gateway | status | analysis | generation | upscaling | postprocess) echo "atelier-$1" ;;
    *) die "unknown service '$1' (one of: ${SERVICES[*]})" ;;
  esac
}

bin_dir() {
  if [ -n "${ATELIER_BIN_DIR:-}" ]; then
    echo "$ATELIER_BIN_DIR"
  else
    echo "${CARGO_TARGET_DIR:-$ATELIER_ROOT/target}/release"
  fi
}

# Builds every service binary in one cargo run (a no-op when up to date), unless
# ATELIER_BIN_DIR points at ready-made ones.
build() {
  local dir name
  dir="$(bin_dir)"
  if [ -n "${ATELIER_BIN_DIR:-}" ]; then
    for name in "${SERVICES[@]}"; do
      [ -x "$dir/$(binary_name "$name")" ] || die "ATELIER_BIN_DIR=$dir has no executable $(binary_name "$name")"
    done
    return 0
  fi
  ensure_build_deps
  log "building the services (release)"
  cargo build --release --locked -p atelier-gateway -p atelier-worker -p atelier-status -p atelier-cli
}

pid_file() { echo "$STATE_DIR/$1.pid"; }
log_file() { echo "$STATE_DIR/$1.log"; }

# The pid of a running service, or nothing (a stale pid file is removed). The
# process must still be our binary, so a recycled pid is not mistaken for it.
service_pid() {
  local file pid
  file="$(pid_file "$1")"
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(binary_name "$1")"; then
    echo "$pid"
  else
    rm -f "$file"
  fi
}

service_port() {
  case "$1" in
    gateway) echo "$GATEWAY_PORT" ;;
    status) echo "$STATUS_PORT" ;;
    *) echo "" ;;
  esac
}

# The ops listener's port of a service (config/default.toml's [ops] defaults).
ops_port() {
  case "$1" in
    gateway) echo 9100 ;;
    status) echo 9101 ;;
    analysis) echo 9102 ;;
    generation) echo 9103 ;;
    upscaling) echo 9104 ;;
    postprocess) echo 9105 ;;
  esac
}

# Who listens on a port (for error messages).
port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed 's/.*users:/users:/' | head -n 1; }

show_log_tail() {
  local file
  file="$(log_file "$1")"
  printf -- '--- last lines of %s ---\n' "$file" >&2
  tail -n 40 "$file" >&2 2>/dev/null || true
  printf -- '---\n' >&2
}

# True when the service answers as ready.
is_ready() {
  local name="$1" pid="$2"
  kill -0 "$pid" 2>/dev/null || return 1
  local host="$OPS_HOST"
  case "$host" in 0.0.0.0 | "" | "[::]") host=127.0.0.1 ;; esac
  curl -fsS -o /dev/null --max-time 2 "http://$host:$(ops_port "$name")/readyz" 2>/dev/null
}

# Polls until the service is ready; on failure prints its log and stops it.
# A third argument `fresh` marks a process just started.
wait_ready() {
  local name="$1" pid="$2" fresh="${3:-}" deadline=$((SECONDS + READY_TIMEOUT))
  until is_ready "$name" "$pid"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$name"
      rm -f "$(pid_file "$name")"
      die "$name exited during start-up (see $(log_file "$name"))"
    fi
    if [ $SECONDS -ge $deadline ]; then
      show_log_tail "$name"
      stop_service "$name"
      die "$name not ready after ${READY_TIMEOUT}s (see $(log_file "$name"))"
    fi
    sleep 0.5
  done
  # A worker that logged "consuming" and died right after is not ready.
  if [ "$fresh" = fresh ] && [[ " ${WORKERS[*]} " == *" $name "* ]]; then
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$name"
      rm -f "$(pid_file "$name")"
      die "$name exited right after start-up (see $(log_file "$name"))"
    fi
  fi
  [ "$fresh" = fresh ] && log "$name ready (pid $pid)"
  return 0
}

start_service() {
  local name="$1" pid port bin file
  pid="$(service_pid "$name")"
  if [ -n "$pid" ]; then
    wait_ready "$name" "$pid"
    return 0
  fi
  for port in $(service_port "$name") $(ops_port "$name"); do
    if port_open "$port"; then
      die "cannot start $name: port $port is taken by another process ($(port_owner "$port"))"
    fi
  done
  bin="$(bin_dir)/$(binary_name "$name")"
  [ -x "$bin" ] || die "missing binary $bin"
  file="$(log_file "$name")"
  [ -f "$file" ] && mv -f "$file" "$file.1"
  log "starting $name"
  # nohup: the service outlives this script and the terminal it ran from.
  ATELIER_CONFIG_DIR="${ATELIER_CONFIG_DIR:-$ATELIER_ROOT/config}" \
    ATELIER__GATEWAY__BIND="$GATEWAY_BIND" \
    ATELIER__STATUS__BIND="$STATUS_BIND" \
    ATELIER__GATEWAY__STATUS_URL="$STATUS_URL" \
    ATELIER__BLOBS__URL="$BLOBS_URL" \
    ATELIER__GATEWAY__FETCH__ALLOW_PRIVATE_NETWORKS="$ALLOW_PRIVATE" \
    ATELIER__OPS__BIND="$OPS_HOST:$(ops_port "$name")" \
    nohup "$bin" </dev/null >"$file" 2>&1 &
  pid=$!
  echo "$pid" >"$(pid_file "$name")"
  wait_ready "$name" "$pid" fresh
}

# SIGTERM, then SIGKILL after the grace period (`signalled`: TERM already sent).
stop_service() {
  local name="$1" signalled="${2:-}" pid deadline
  pid="$(service_pid "$name")"
  if [ -z "$pid" ]; then
    rm -f "$(pid_file "$name")"
    return 0
  fi
  if [ "$signalled" != signalled ]; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
  fi
  deadline=$((SECONDS + GRACE))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      log "$name still running after ${GRACE}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$(pid_file "$name")"
}

all_running() {
  local name
  for name in "${SERVICES[@]}"; do
    [ -n "$(service_pid "$name")" ] || return 1
  done
}

cmd_up() {
  mkdir -p "$STATE_DIR/blobs"
  local name
  if all_running; then
    for name in "${SERVICES[@]}"; do wait_ready "$name" "$(service_pid "$name")"; done
    ensure_dev_key
    log "the stack is already running"
    cmd_status
    return 0
  fi
  ensure_services
  build
  for name in "${SERVICES[@]}"; do start_service "$name"; done
  ensure_dev_key
  log "stack up: gateway http://${GATEWAY_BIND}, status gRPC ${STATUS_BIND}, logs in $STATE_DIR"
  log "API key (admin, unlimited) in $KEY_FILE"
}

# An admin key without limits for this development stack, made once (keys are
# shown only when made, so it is kept in $KEY_FILE, readable by its owner only).
ensure_dev_key() {
  local name
  [ -s "$KEY_FILE" ] && return 0
  name="dev-$(date +%s)"
  (umask 077 && ATELIER_CONFIG_DIR="${ATELIER_CONFIG_DIR:-$ATELIER_ROOT/config}" \
    "$(bin_dir)/atelier" keys create --name "$name" --admin --rate-per-minute 0 --max-in-flight 0 \
    >"$KEY_FILE.tmp" 2>/dev/null) || die "could not make an API key for the stack"
  mv -f "$KEY_FILE.tmp" "$KEY_FILE"
}

cmd_down() {
  local name pid
  # Gateway first (no new work), then the workers together, then status last
  # so it records what the workers finished.
  stop_service gateway
  for name in "${WORKERS[@]}"; do
    pid="$(service_pid "$name")"
    if [ -n "$pid" ]; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for name in "${WORKERS[@]}"; do stop_service "$name" signalled; done
  stop_service status
  log "stack down"
}

cmd_status() {
  local name pid state port all=0
  printf '%-12s %-8s %-8s %s\n' SERVICE PID STATE ENDPOINT
  for name in "${SERVICES[@]}"; do
    pid="$(service_pid "$name")"
    port="$(service_port "$name")"
    if [ -z "$pid" ]; then
      state=stopped all=1
    elif is_ready "$name" "$pid"; then
      state=ready
    else
      state=starting all=1
    fi
    case "$name" in
      gateway) port="http://$GATEWAY_BIND" ;;
      status) port="grpc://$STATUS_BIND" ;;
      *) port="queue atelier.$name" ;;
    esac
    printf '%-12s %-8s %-8s %s\n' "$name" "${pid:--}" "$state" "$port"
  done
  return "$all"
}

cmd_restart() {
  local name="$1"
  binary_name "$name" >/dev/null
  mkdir -p "$STATE_DIR/blobs"
  ensure_services
  build
  stop_service "$name"
  start_service "$name"
}

cmd_logs() {
  local file
  binary_name "$1" >/dev/null
  file="$(log_file "$1")"
  [ -f "$file" ] || die "no log for $1 yet ($file)"
  if [ "${2:-}" = "-f" ]; then tail -n 100 -f "$file"; else tail -n 200 "$file"; fi
}

mkdir -p "$STATE_DIR"
case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) [ $# -eq 2 ] || usage; cmd_restart "$2" ;;
  logs) [ $# -ge 2 ] || usage; cmd_logs "$2" "${3:-}" ;;
  *) usage ;;
esac
