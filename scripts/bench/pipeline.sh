#!/usr/bin/env bash
# Whole-process wall time of the main job on one 1200x1600 photo: backgrounds
# 1,1,1, upscale x2, video and report, in one process (`atelier process`).
# Usage: scripts/bench/pipeline.sh [runs]   (default 11)
source "$(dirname "$0")/../lib/common.sh"
cd "$ATELIER_ROOT"

runs="${1:-11}"
ensure_build_deps
log "building atelier (release)"
cargo build --release --locked -p atelier-cli

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="$ATELIER_ROOT/target/release/atelier"
python3 "$ATELIER_ROOT/scripts/bench/interleave.py" --runs "$runs" \
  "full=$bin process $ATELIER_ROOT/examples/shirt-front.jpg --out $work/full --backgrounds 1,1,1 --upscale 2" \
  "images=$bin process $ATELIER_ROOT/examples/shirt-front.jpg --out $work/images --backgrounds 1,1,1 --upscale 2 --images-only"
