#!/usr/bin/env bash
# The result cache measured on `atelier serve` (release build): the same request
# computed (first on an empty cache, then with `Cache-Control: no-cache`, which
# does exactly a first request's work and stores it again) against the same
# request repeated (every stage reused), in alternating rounds. Prints each
# request's wall time, the medians and their ratio, and the server's own
# processing_times and metadata.cache of the last cold and the last warm job.
# Usage: scripts/bench/cache.sh [rounds] [endpoint: full|image] [backgrounds] [photo]
#   (default 7 rounds, full, 1,2,0, examples/shirt-front.jpg, upscale x2)
set -euo pipefail
# shellcheck source=../lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/bench.sh
source "$(dirname "$0")/../lib/bench.sh"
cd "$ATELIER_ROOT" || exit 1

rounds="${1:-7}"
endpoint="${2:-full}"
backgrounds="${3:-1,2,0}"
photo="${4:-examples/shirt-front.jpg}"
case "$endpoint" in
  full) path=/api/v1/generate ;;
  image) path=/api/v1/generate/image ;;
  *) die "endpoint: full or image, not $endpoint" ;;
esac

ensure_build_deps
bin="$(bench_bin_dir)/atelier"
work="$(mktemp -d)"

cleanup() { [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The request of API.md over the photo as a data: URI (white, plain, random
# counts as given; random scenes are seeded per job and so never reused).
python3 - "$photo" "$backgrounds" >"$work/body.json" <<'EOF'
import base64, json, sys
photo, counts = sys.argv[1], [int(n) for n in sys.argv[2].split(",")]
uri = "data:image/jpeg;base64," + base64.b64encode(open(photo, "rb").read()).decode()
print(json.dumps({"inputImages": [{"url": uri, "view": "front", "backgrounds": counts}],
                  "productType": "general", "gender": "male", "text": "Test 1", "upscale": True}))
EOF

key="$("$bin" keys create --name bench --admin --rate-per-minute 0 --max-in-flight 0 --data "$work/data" 2>/dev/null)"
start_serve "$bin" "$work/data" "$work/serve.log"
url="$SERVE_URL"

# One request; prints its wall time in seconds, keeps the body in $work/$1.json.
call() {
  local name="$1"
  shift
  curl -fsS -o "$work/$name.json" -w '%{time_total}\n' -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' "$@" --data-binary "@$work/body.json" "$url$path"
}

log "first request, empty cache"
call first >"$work/first.txt"
for round in $(seq "$rounds"); do
  log "round $round: computed (no-cache), then repeated (reused)"
  call cold -H 'Cache-Control: no-cache' >>"$work/cold.txt"
  call warm >>"$work/warm.txt"
done

python3 - "$work" "$rounds" "$endpoint" "$backgrounds" "$photo" "$bin" <<'EOF'
import json, statistics, sys
work, rounds, endpoint, backgrounds, photo, binary = sys.argv[1:]
read = lambda name: [float(x) for x in open(f"{work}/{name}.txt").read().split()]
first, cold, warm = read("first"), read("cold"), read("warm")
print(f"{binary} serve, {endpoint} endpoint, {photo}, backgrounds {backgrounds}, upscale x2, {rounds} rounds")
print(f"first request (empty cache): {first[0]:.3f} s")
print("computed (no-cache):  " + "  ".join(f"{t:.3f}" for t in cold))
print("repeated (reused):    " + "  ".join(f"{t:.3f}" for t in warm))
mc, mw = statistics.median(cold), statistics.median(warm)
print(f"median computed {mc:.3f} s, median repeated {mw:.3f} s: the repeat is {mc / mw:.1f}x faster")
for name in ("cold", "warm"):
    meta = json.load(open(f"{work}/{name}.json"))["metadata"]
    times = " ".join(f"{k}={v:.3f}" for k, v in meta["processing_times"].items())
    cache = " ".join(f"{k}={v['hits']}/{v['misses']}" for k, v in meta["cache"].items() if k != "bypassed")
    print(f"last {name}: {times}\n  cache hits/misses: {cache}")
EOF
