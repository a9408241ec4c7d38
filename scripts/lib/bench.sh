# Helpers shared by the benchmark scripts that drive `atelier serve`.
# Sourced after common.sh.

# A TCP port nothing listens on now (the kernel's choice).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Prints the folder of the `atelier` binary to measure: $ATELIER_BIN_DIR when set
# (ready-made binaries, e.g. target/debug), else the release build, made first.
bench_bin_dir() {
  if [ -n "${ATELIER_BIN_DIR:-}" ]; then
    echo "$ATELIER_BIN_DIR"
    return
  fi
  log "building atelier (release)"
  cargo build --release --locked -p atelier-cli >&2
  echo "${CARGO_TARGET_DIR:-$ATELIER_ROOT/target}/release"
}

# Starts `atelier serve` on free ports over the data folder $2, logging to $3,
# and waits until it is ready. Sets SERVE_PID and SERVE_URL.
# Usage: start_serve BIN DATA_DIR LOG_FILE
start_serve() {
  local bin="$1" data="$2" logfile="$3" port grpc
  port="$(free_port)"
  grpc="$(free_port)"
  SERVE_URL="http://127.0.0.1:$port"
  "$bin" serve --bind "127.0.0.1:$port" --grpc "127.0.0.1:$grpc" --data "$data" 2>"$logfile" &
  SERVE_PID=$!
  until curl -fsS -o /dev/null "$SERVE_URL/readyz" 2>/dev/null; do
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$logfile"; die "atelier serve exited"; }
    sleep 0.005
  done
}
