#!/usr/bin/env bash
# The slideshow encoder alone, on the standard job's three variations (from
# `atelier process examples/shirt-front.jpg --images-only --backgrounds 1,1,1`):
# wall time of the render (median of N), file size, and SSIM / PSNR of the decoded
# video against the exact frames the encoder was given (raw yuv420p written by
# `atelier-video render --frames-out`, compared with ffmpeg's ssim/psnr filters).
# Each row is one encoder configuration, NAME=PRESET/X264_PARAMS (either part may
# be empty: the configured preset, the built-in tuned options); "tuned" is what
# the product uses.
# Usage: scripts/bench/video.sh [runs] [NAME=PRESET/X264_PARAMS ...]   (default 7 runs)
# ATELIER_BIN_DIR=DIR measures ready-made binaries (atelier and atelier-video) instead.
source "$(dirname "$0")/../lib/common.sh"
source "$(dirname "$0")/../lib/bench.sh"
cd "$ATELIER_ROOT"

runs="${1:-7}"
shift || true
ensure_build_deps
target="$(bench_bin_dir)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$target/atelier" process examples/shirt-front.jpg --out "$work/job" --backgrounds 1,1,1 --images-only >/dev/null 2>&1
mapfile -t images < <(ls "$work"/job/variations/*.jpg)
[ "${#images[@]}" -eq 3 ] || die "expected 3 variations, found ${#images[@]}"

configs=("tuned=/" "$@")
size="$(awk -F' = ' '/^width/{w=$2} /^height/{h=$2} /^\[report\]/{exit} END{print w "x" h}' config/default.toml)"
fps="$(awk -F' = ' '/^fps/{print $2; exit}' config/default.toml)"
printf '%-12s %9s %9s %8s %8s  %s\n' name median_s bytes ssim psnr_db preset/x264-params
for config in "${configs[@]}"; do
  name="${config%%=*}"; spec="${config#*=}"; preset="${spec%%/*}"; params="${spec#*/}"
  extra=(); [ -n "$params" ] && extra=(--x264-params "$params")
  export ATELIER__VIDEO__PRESET="${preset:-$(awk -F'"' '/^preset/{print $2; exit}' config/default.toml)}"
  times=()
  for _ in $(seq "$runs"); do
    line="$("$target/atelier-video" render --out "$work/$name.mp4" "${extra[@]}" "${images[@]}")"
    times+=("$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")")
  done
  median="$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')"
  "$target/atelier-video" render --out "$work/$name.mp4" --frames-out "$work/ref.yuv" "${extra[@]}" "${images[@]}" >/dev/null
  quality="$(ffmpeg -hide_banner -nostats -i "$work/$name.mp4" -f rawvideo -pix_fmt yuv420p -s "$size" -r "$fps" -i "$work/ref.yuv" \
    -lavfi '[0:v][1:v]ssim;[0:v][1:v]psnr' -f null - 2>&1)"
  ssim="$(grep -o 'SSIM .*All:[0-9.]*' <<<"$quality" | grep -o 'All:[0-9.]*' | cut -d: -f2)"
  psnr="$(grep -o 'PSNR .*average:[0-9.inf]*' <<<"$quality" | grep -o 'average:[0-9.inf]*' | cut -d: -f2)"
  printf '%-12s %9s %9s %8s %8s  %s\n' "$name" "$median" "$(stat -c %s "$work/$name.mp4")" "$ssim" "$psnr" "$ATELIER__VIDEO__PRESET/${params:-(built-in)}"
  rm -f "$work/ref.yuv"
done
echo "($runs runs each; crf and frame settings from config/default.toml [video])"
