#!/usr/bin/env bash
# Measurements of the bulk path (BatchPredict), printed as one report:
#  1. peak server RSS while streaming 100,000 rows vs 1,000,000 rows (mlp),
#     each on a fresh server, from /proc/<pid>/status VmHWM;
#  2. BatchPredict rows/s on mlp_bench (MLP 256-1024-1024-10) vs the raw
#     in-process best-batch rows/s of the same model (microbatch-rawbench);
#  3. Predict p50/p99 on mlp_bench at concurrency 4, without and with a
#     concurrent BatchPredict stream saturating the same model.
# Needs /usr/bin/python3 with numpy (Debian python3-numpy) to write inputs.
# Usage: scripts/bulk_bench.sh   (BULK_SKIP_BUILD=1 to use build/bin as is)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
OUT=${BULK_OUT:-build/bulk_bench}
mkdir -p "$OUT"
if [[ "${BULK_SKIP_BUILD:-0}" != 1 ]]; then scripts/build.sh; fi
if ! /usr/bin/python3 -c "import numpy" 2>/dev/null; then
  apt-get install -y -qq python3-numpy >/dev/null
fi
MODELS="$OUT/models"
[[ -f "$MODELS/mlp/config.pbtxt" ]] || "$BIN/microbatch-make-models" --output "$MODELS" --models mlp,mlp_bench >/dev/null

/usr/bin/python3 - "$OUT" <<'PY'
import sys, numpy as np, os
out = sys.argv[1]
rng = np.random.RandomState(0)
for rows in (100_000, 1_000_000):
    p = f"{out}/mlp_{rows}.npy"
    if not os.path.exists(p):
        np.save(p, rng.rand(rows, 16).astype(np.float32))
p = f"{out}/mlp_bench_200000.npy"
if not os.path.exists(p):
    np.save(p, rng.rand(200_000, 256).astype(np.float32))
PY

PORT=18600
start_server() {
  "$BIN/microbatch-server" --model_repository "$MODELS" --grpc_port $PORT --metrics_port -1 \
    --host 127.0.0.1 --drain_seconds 0 2>"$OUT/server.log" &
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q server_ready "$OUT/server.log" 2>/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }

echo "== 1. Peak server RSS while streaming (mlp, chunks of 1,000 rows, window 4)"
declare -A RSS
for rows in 100000 1000000; do
  start_server
  before=$(hwm_kb)
  start=$(date +%s.%N)
  "$BIN/microbatch" batch --target 127.0.0.1:$PORT --model mlp --input "$OUT/mlp_$rows.npy" \
    --output "$OUT/out_$rows.npy" --outputs logits --chunk-rows 1000 2>/dev/null
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  RSS[$rows]=$(hwm_kb)
  printf "  %8d rows: peak RSS %d KiB (after warm-up %d KiB), %.2f s, %.0f rows/s\n" \
    "$rows" "${RSS[$rows]}" "$before" "$secs" "$(echo "$rows / $secs" | bc -l)"
  stop_server
done
printf "  ratio peak(1M) / peak(100k) = %.3f (goal <= 1.10)\n" "$(echo "${RSS[1000000]} / ${RSS[100000]}" | bc -l)"

echo "== 2. BatchPredict vs raw in-process best batch (mlp_bench 256-1024-1024-10)"
raw=$("$BIN/microbatch-rawbench" --model_repository "$MODELS" --model mlp_bench --batch_sizes 1,32,64,128 \
  --seconds_per_size 2 --format csv 2>/dev/null)
echo "$raw" | sed 's/^/  raw: /'
best=$(echo "$raw" | awk -F, 'NR > 1 && $3 + 0 > best { best = $3 + 0 } END { print best }')
start_server
start=$(date +%s.%N)
"$BIN/microbatch" batch --target 127.0.0.1:$PORT --model mlp_bench --input "$OUT/mlp_bench_200000.npy" \
  --output "$OUT/out_bench.npy" --chunk-rows 1024 2>/dev/null
secs=$(echo "$(date +%s.%N) - $start" | bc)
served=$(echo "200000 / $secs" | bc -l)
printf "  BatchPredict: %.0f rows/s; raw best batch: %.0f rows/s; ratio %.3f\n" "$served" "$best" \
  "$(echo "$served / $best" | bc -l)"

echo "== 3. Predict latency on mlp_bench (concurrency 4), without and with a concurrent bulk stream"
bench() {
  "$BIN/microbatch" bench --target 127.0.0.1:$PORT --model mlp_bench --concurrency 4 --window-ms 4000 \
    --warmup-ms 1000 --max-windows 3 --format csv 2>/dev/null
}
alone=$(bench)
echo "$alone" | sed 's/^/  alone: /'
"$BIN/microbatch" batch --target 127.0.0.1:$PORT --model mlp_bench --input "$OUT/mlp_bench_200000.npy" \
  --output "$OUT/out_bg.npy" --chunk-rows 1024 2>/dev/null &
BULK_PID=$!
sleep 1
with=$(bench)
kill "$BULK_PID" 2>/dev/null || true
wait "$BULK_PID" 2>/dev/null || true
echo "$with" | sed 's/^/  with bulk: /'
stop_server
