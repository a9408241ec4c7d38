#!/usr/bin/env bash
# Runs every check and test of Atelier: formatting, clippy, then the whole test
# suite (unit, integration and end-to-end) with cargo-nextest. Installs what is
# missing and starts RabbitMQ and PostgreSQL when they are not running.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/tools.sh"
cd "$ATELIER_ROOT"

ensure_build_deps
ensure_services
ensure_nextest
ensure_py_tools
ensure_browser

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The S3 blob store is a feature (the image builds with it): lint it too.
cargo clippy -p atelier-storage --features s3 --all-targets --locked -- -D warnings

# Kubernetes (API schemas + KEDA CRDs, strict), compose spec, hadolint, buf lint;
# crates/core/tests/deploy_files.rs checks what they mean (binaries, settings,
# ports, grace periods, KEDA values) in more depth.
log "deployment files"
scripts/check-deploy.sh

log "scaling model (docs/scaling.md)"
python3 scripts/scaling/test_sim.py

# Doc tests first (nextest does not run them), so nextest's summary closes the run.
log "doc tests"
cargo test --workspace --doc --locked

# Property tests (tests named fuzz_*) run a fixed budget of cases
# (PROPTEST_CASES in .cargo/config.toml); scripts/fuzz.sh runs them longer.

# Tests named restart_* stop and start the shared RabbitMQ, so they run alone,
# after everything else (and bring it back even when they fail).
log "cargo nextest"
status=0
cargo nextest run --workspace --locked --no-fail-fast -E 'not test(/^restart_/)' || status=$?
# The S3 store against moto's S3-compatible server (installed by ensure_py_tools).
log "cargo nextest: S3 blob store"
ATELIER_TEST_MOTO_SERVER="$(py_tool moto_server)" \
  cargo nextest run -p atelier-storage --features s3 --locked --no-fail-fast || status=$?
log "cargo nextest: broker restart tests, alone"
cargo nextest run --workspace --locked --no-fail-fast --test-threads 1 -E 'test(/^restart_/)' || status=$?
ensure_rabbitmq
exit "$status"
