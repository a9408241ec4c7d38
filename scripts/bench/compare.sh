#!/usr/bin/env bash
# Whole-process upscale x2 of one 1024x1024 JPEG: `atelier upscale` against
# `vips resize --kernel lanczos3` and Pillow's LANCZOS, interleaved run by run so
# machine noise hits every tool alike. Prints medians and time ratios.
# Usage: scripts/bench/compare.sh [runs]   (default 21)
source "$(dirname "$0")/../lib/common.sh"
cd "$ATELIER_ROOT"

runs="${1:-21}"
ensure_build_deps
ensure_apt libvips-tools python3-pil
log "building atelier (release)"
cargo build --release --locked -p atelier-cli

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The same input for every tool: the bundled shirt photo, resized to 1024x1024, q90.
/usr/bin/python3 - "$ATELIER_ROOT/examples/shirt-front.jpg" "$work/in.jpg" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").resize((1024, 1024), Image.LANCZOS).save(sys.argv[2], quality=90)
PY

/usr/bin/python3 "$ATELIER_ROOT/scripts/bench/interleave.py" --runs "$runs" --baseline vips \
  "atelier=$ATELIER_ROOT/target/release/atelier upscale $work/in.jpg $work/atelier.jpg --factor 2" \
  "vips=vips resize $work/in.jpg $work/vips.jpg[Q=90] 2 --kernel lanczos3" \
  "pillow=/usr/bin/python3 -c \"from PIL import Image; im=Image.open('$work/in.jpg'); im.resize((im.width*2, im.height*2), Image.LANCZOS).save('$work/pillow.jpg', quality=90)\""
