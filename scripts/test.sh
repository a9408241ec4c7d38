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

# The compose file, validated without a Docker engine by Debian's docker-compose (v1);
# the Rust test crates/core/tests/deploy_files.rs checks it (and k8s) in more depth.
log "docker-compose config"
ensure_apt docker-compose
docker-compose -f docker-compose.yml config -q

# Doc tests first (nextest does not run them), so nextest's summary closes the run.
log "doc tests"
cargo test --workspace --doc --locked

# Property tests (tests named fuzz_*) run a fixed budget of cases here;
# scripts/fuzz.sh runs the same properties for longer.
export ATELIER_FUZZ_CASES="${ATELIER_FUZZ_CASES:-64}"

# Tests named restart_* stop and start the shared RabbitMQ, so they run alone,
# after everything else (and bring it back even when they fail).
log "cargo nextest"
status=0
cargo nextest run --workspace --locked --no-fail-fast -E 'not test(/^restart_/)' || status=$?
log "cargo nextest: broker restart tests, alone"
cargo nextest run --workspace --locked --no-fail-fast --test-threads 1 -E 'test(/^restart_/)' || status=$?
ensure_rabbitmq
exit "$status"
