# Shared helpers for Atelier's scripts: install what is missing, start the local
# services, never prompt. Sourced by demo.sh, test.sh and the bench scripts.
# Safe to run any number of times.

set -euo pipefail

ATELIER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ATELIER_ROOT

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly, or through sudo when we are not root).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    die "need root to run: $*"
  fi
}

# Installs the named Debian packages that are not installed yet.
ensure_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# What building the workspace needs: FFmpeg for the video, protoc for the
# protobuf messages, cmake + nasm to build the bundled libjpeg-turbo (SIMD JPEG).
BUILD_PACKAGES=(libssl-dev 
  build-essential pkg-config clang libclang-dev cmake nasm protobuf-compiler ffmpeg
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev
  libavdevice-dev libswresample-dev
)

ensure_build_deps() {
  ensure_apt "${BUILD_PACKAGES[@]}"
  command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] ||
    die "cargo not found: install the Rust toolchain (rustup, Rust >= 1.95) first"
  export PATH="$HOME/.cargo/bin:$PATH"
}

ensure_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to $2 seconds for TCP port $1 on 127.0.0.1.
wait_port() {
  local deadline=$((SECONDS + $2))
  until port_open "$1"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

ensure_rabbitmq() {
  ensure_apt rabbitmq-server
  port_open 5672 && return 0
  # The node may be up with its application stopped (rabbitmqctl stop_app).
  if as_root timeout 30 rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting the RabbitMQ application"
    as_root timeout 60 rabbitmqctl start_app >/dev/null
    as_root timeout 120 rabbitmqctl await_startup >/dev/null
    wait_port 5672 60 && return 0
  fi
  log "starting RabbitMQ"
  # Debian's wrapper re-runs the server as the rabbitmq user: its folders must be its own.
  as_root mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
  as_root chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
  as_root rabbitmq-server -detached
  as_root timeout 120 rabbitmqctl await_startup >/dev/null
  wait_port 5672 60 || die "RabbitMQ did not open port 5672"
}

ensure_postgres() {
  ensure_apt postgresql
  port_open 5432 && return 0
  log "starting PostgreSQL"
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 60 || die "PostgreSQL did not open port 5432"
}

ensure_services() {
  ensure_rabbitmq
  ensure_postgres
}
