#!/usr/bin/env bash
# The property/fuzz tests (every test named fuzz_*: the request parser, data:
# URIs, the JPEG/PNG/WebP decoders over mutated real files, stage messages)
# for longer than scripts/test.sh runs them, on stable Rust.
#
#   scripts/fuzz.sh [CASES]     # cases per property, default 20000
#
# A failure prints the minimal input; proptest stores it under
# proptest-regressions/ beside the test, to be committed with the fix.
source "$(dirname "$0")/lib/common.sh"
cd "$ATELIER_ROOT"

ensure_build_deps
ensure_nextest

export PROPTEST_CASES="${1:-20000}"
log "fuzz: $PROPTEST_CASES cases per property"
cargo nextest run --workspace --locked --no-fail-fast \
    --slow-timeout 600s -E 'test(/fuzz_/)'
