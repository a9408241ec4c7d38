#!/usr/bin/env bash
# How `atelier process` grows with the work: one 24-megapixel photo (4500x6000,
# the bundled shirt enlarged), upscale x4, video and report, for 1 to 96
# variations (variations = inputs x backgrounds; 12 per input at 4,4,4, up to 8
# inputs). Wall time and the peak memory of the whole process tree (atelier and
# its video helper, scripts/bench/treemem.py), median of N runs.
# Usage: scripts/bench/scaling.sh [runs] [factor]   (default 3 runs, x4)
# ATELIER_BIN_DIR=DIR measures a ready-made atelier (and its atelier-video) instead.
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/bench.sh"
cd "$ATELIER_ROOT"

runs="${1:-3}"
factor="${2:-4}"
ensure_build_deps
ensure_apt python3-pil
bin="$(bench_bin_dir)/atelier"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$ATELIER_ROOT/examples/shirt-front.jpg" "$work/big.jpg" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").resize((4500, 6000), Image.LANCZOS).save(sys.argv[2], quality=90)
PY

# variations inputs backgrounds
cases=("1 1 1,0,0" "3 1 1,1,1" "12 1 4,4,4" "24 2 4,4,4" "48 4 4,4,4" "96 8 4,4,4")
printf '%10s %6s %11s %8s %8s %12s\n' variations inputs backgrounds wall_s peak_mb s_per_var
for case in "${cases[@]}"; do
  read -r n inputs backgrounds <<<"$case"
  images=(); for _ in $(seq "$inputs"); do images+=("$work/big.jpg"); done
  walls=(); peaks=()
  for _ in $(seq "$runs"); do
    rm -rf "$work/out"
    line="$(/usr/bin/python3 scripts/bench/treemem.py "$bin" process "${images[@]}" --out "$work/out" \
      --backgrounds "$backgrounds" --upscale "$factor")"
    walls+=("$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$line")")
    peaks+=("$(sed -n 's/.*peak_mb=\([0-9]*\).*/\1/p' <<<"$line")")
  done
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
  wall="$(median "${walls[@]}")"; peak="$(median "${peaks[@]}")"
  printf '%10s %6s %11s %8s %8s %12s\n' "$n" "$inputs" "$backgrounds" "$wall" "$peak" \
    "$(awk -v w="$wall" -v n="$n" 'BEGIN{printf "%.3f", w/n}')"
done
echo "(x$factor, video and report; median of $runs runs each)"
