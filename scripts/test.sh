#!/usr/bin/env bash
# Runs every check and test of Atelier: formatting, clippy, then the whole test
# suite (unit, integration and end-to-end) with cargo-nextest. Installs what is
# missing and starts RabbitMQ and PostgreSQL when they are not running.
source "$(dirname "$0")/lib/common.sh"
cd "$ATELIER_ROOT"

ensure_build_deps
ensure_services
ensure_nextest

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Doc tests first (nextest does not run them), so nextest's summary closes the run.
log "doc tests"
cargo test --workspace --doc --locked

log "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast
