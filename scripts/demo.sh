#!/usr/bin/env bash
# The main job, end to end: builds the `atelier` command (release) and runs the
# whole pipeline on the bundled example photos, in this process, no broker.
# Usage: scripts/demo.sh [output-folder]   (default: out/demo)
source "$(dirname "$0")/lib/common.sh"
cd "$ATELIER_ROOT"

out="${1:-out/demo}"
ensure_build_deps

log "building atelier (release)"
cargo build --release --locked -p atelier-cli

log "processing examples/*.jpg into $out"
rm -rf "$out"
target/release/atelier process examples/shirt-front.jpg examples/dress-front.jpg examples/trousers-back.jpg \
  --view front --view front --view back --backgrounds 1,1,1 --upscale 2 --product-type general \
  --text "Studio product shot" --out "$out"

log "results"
find "$out" -type f \( -name '*.jpg' -o -name '*.mp4' -o -name '*.xlsx' -o -name '*.json' \) \
  -not -path '*/inputs/*' | sort
echo
echo "Open $out/result.json for the API response, $out/video.mp4 and $out/report.xlsx."
