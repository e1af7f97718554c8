#!/usr/bin/env bash
# A/B of two server builds on one model, alternating rounds in one run (this
# machine's speed drifts by tens of percent over minutes, so only ratios of
# neighbouring rounds mean anything). Prints each round and the median ratio.
#
# Usage: scripts/ab_servers.sh A_SERVER_BIN B_SERVER_BIN [rounds] [bench flags...]
#   default bench flags: --model identity --shape x=256 --concurrency 16
#   any --protocol of `microbatch bench` (v1, v2, rest; the HTTP port is
#   found like the gRPC one), e.g. ... 8 --model identity --shape x=256
#   --concurrency 16 --protocol rest
#   models: identity, mlp, mlp_bench, identity_cached (response cache on)
# Example (before/after of a change):
#   git worktree add /tmp/before <commit> && (cd /tmp/before && scripts/build.sh)
#   scripts/ab_servers.sh /tmp/before/build/bin/microbatch-server build/bin/microbatch-server 4
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
ROUNDS=${3:-4}
shift $(($# < 3 ? $# : 3))
FLAGS=("$@")
((${#FLAGS[@]})) || FLAGS=(--model identity --shape x=256 --concurrency 16)
CLI=build/bin/microbatch
MODELS=$(mktemp -d)
trap 'rm -rf "$MODELS"; kill $(jobs -p) 2>/dev/null || true' EXIT
build/bin/microbatch-make-models --output "$MODELS" --models identity,mlp,mlp_bench >/dev/null
# identity_cached: identity with the response cache on (every repeat a hit).
mkdir -p "$MODELS/identity_cached/1"
cp "$MODELS/identity/1/model.pt" "$MODELS/identity_cached/1/model.pt"
{ cat "$MODELS/identity/config.pbtxt"; echo "response_cache { max_bytes: 16777216 }"; } \
  >"$MODELS/identity_cached/config.pbtxt"

# Starts `$1` on a free port, runs one bench level, prints requests/s.
round() {
  local bin=$1 log
  log=$(mktemp)
  "$bin" --model_repository "$MODELS" --grpc_port 0 --metrics_port 0 --host 127.0.0.1 \
    --drain_seconds 0 >"$log" 2>&1 &
  local pid=$! port="" http=""
  for _ in $(seq 1 300); do
    port=$(grep -o 'grpc_listening address=[^ ]*' "$log" | head -1 | sed 's/.*://') || true
    http=$(grep -o 'metrics_listening address=[^ ]*' "$log" | head -1 | sed 's/.*://') || true
    grep -q server_ready "$log" && [[ -n "$port" && -n "$http" ]] && break
    sleep 0.1
  done
  "$CLI" bench --target "127.0.0.1:$port" --http "127.0.0.1:$http" --window-ms 3000 --warmup-ms 1000 --max-windows 3 \
    --stable-windows 2 --format json "${FLAGS[@]}" 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["levels"][0]["throughput"], 1))'
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$log"
}

ratios=()
for r in $(seq 1 "$ROUNDS"); do
  if ((r % 2)); then a=$(round "$A"); b=$(round "$B"); else b=$(round "$B"); a=$(round "$A"); fi
  ratio=$(python3 -c "print(round($b / $a, 3) if $a else 0)")
  ratios+=("$ratio")
  echo "round $r: A $a req/s, B $b req/s, B/A $ratio"
done
python3 -c "import statistics,sys; print('median B/A', statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
