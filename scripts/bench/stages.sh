#!/usr/bin/env bash
# The standard job (examples/shirt-front.jpg, 1200x1600, backgrounds 1,1,1, x2,
# video and report) through `atelier process` and through the Python peer
# (scripts/bench/peer.py: Pillow, numpy, the ffmpeg CLI, openpyxl, a thread pool),
# interleaved run by run. Prints the median whole-process wall time of each, their
# ratio, and the median time of every stage; writes the medians as JSON and, with
# --chart FILE.svg, draws them (scripts/bench/charts.py).
# Usage: scripts/bench/stages.sh [runs] [--chart FILE.svg]   (default 7 runs)
source "$(dirname "$0")/../lib/common.sh"
cd "$ATELIER_ROOT"

runs="${1:-7}"; shift || true
chart=""; [ "${1:-}" = "--chart" ] && chart="$2"
ensure_build_deps
ensure_apt python3-pil python3-numpy python3-openpyxl ffmpeg
log "building atelier (release)"
cargo build --release --locked -p atelier-cli
bin="${CARGO_TARGET_DIR:-$ATELIER_ROOT/target}/release/atelier"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
photo="$ATELIER_ROOT/examples/shirt-front.jpg"
for round in $(seq 0 "$runs"); do
  # Alternate which goes first; round 0 is a warm-up and not counted.
  order=(atelier peer); [ $((round % 2)) -eq 1 ] && order=(peer atelier)
  for who in "${order[@]}"; do
    rm -rf "$work/out"
    start=$(date +%s.%N)
    if [ "$who" = atelier ]; then
      "$bin" process "$photo" --out "$work/out" --backgrounds 1,1,1 --upscale 2 >/dev/null 2>&1
      times="$(/usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["metadata"]["processing_times"]))' "$work/out/result.json")"
    else
      times="$(/usr/bin/python3 scripts/bench/peer.py "$photo" "$work/out" --backgrounds 3 --factor 2)"
    fi
    wall=$(printf %.4f "$(echo "$(date +%s.%N) - $start" | bc)")
    [ "$round" -gt 0 ] && echo "{\"who\": \"$who\", \"wall\": $wall, \"stages\": $times}" >>"$work/samples.jsonl"
  done
done
/usr/bin/python3 - "$work/samples.jsonl" "$work/medians.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {}
for who in ("atelier", "peer"):
    mine = [r for r in rows if r["who"] == who]
    stages = {k: statistics.median(r["stages"][k] for r in mine)
              for k in ("analysis", "generation", "upscaling", "post_processing")}
    out[who] = {"wall": statistics.median(r["wall"] for r in mine), "stages": stages, "runs": len(mine)}
json.dump(out, open(sys.argv[2], "w"), indent=1)
a, p = out["atelier"], out["peer"]
print(f"{'':16} {'atelier':>9} {'peer':>9} {'ratio':>7}")
print(f"{'wall (process)':16} {a['wall']:9.3f} {p['wall']:9.3f} {a['wall'] / p['wall']:7.2f}")
for k in a["stages"]:
    print(f"{k:16} {a['stages'][k]:9.3f} {p['stages'][k]:9.3f} {a['stages'][k] / p['stages'][k]:7.2f}")
print(f"(medians of {a['runs']} interleaved runs each)")
PY
cat "$work/medians.json"
[ -n "$chart" ] && /usr/bin/python3 scripts/bench/charts.py stages "$work/medians.json" "$chart"
exit 0
