#!/usr/bin/env bash
# The performance report (R1-R5, V2, C1-C2, M1, L1-L3), unattended, in about 12 minutes on a 2-core
# machine: builds, writes the benchmark models, measures the raw model limits
# in process (microbatch-rawbench), starts the server with --enable_echo,
# measures it with `microbatch bench`, and prints raw tables, served tables and
# R1-R5 and V2 with value, goal and PASS/MISS (bench/report.py). V2 (#13):
# the identity model through v1 Predict, v2 ModelInfer (gRPC) and REST in one
# run, each level through each front end in turn; a server without v2 or REST
# is measured through what it has (V2 then MISS).
#
# Usage: scripts/bench.sh
# Environment (all optional):
#   BENCH_SKIP_BUILD=1       use build/bin as it is (no scripts/build.sh)
#   BENCH_OUT=DIR            where JSON results, plots and the report go (build/bench/report)
#   BENCH_MODELS=DIR         benchmark model repository (build/bench/models; reused when present)
#   BENCH_WINDOW_MS=4000     measurement window; BENCH_WARMUP_MS=1500 warm-up per level
#   BENCH_MAX_WINDOWS=5      windows per level at most (3 when stable at once)
#   BENCH_RAW_SECONDS=2      rawbench time per batch size
#   BENCH_THREADS=1          LibTorch intra-op threads of models whose config sets none, for
#                            the server and rawbench alike (0: LibTorch's default, which on
#                            the server's executor threads changes with what ran on them before)
#   BENCH_R1_GOAL .. BENCH_R5_GOAL   goals of the issue (0.90, 0.35 ms, 0.85, 0.90, 0.90)
#   BENCH_V2_GOAL=0.95       v2/v1 throughput of the identity model at c=16
#   BENCH_C1_GOAL=0.90       response-cache hits: peak req/s / Echo peak req/s
#   BENCH_C2_GOAL=0.05       response-cache hits: c=1 p50 - Echo c=1 p50 (ms)
#   BENCH_PROTOCOL_WINDOW_MS=2000    measurement window of the front-end comparisons (R3, C1-C2, V2)
#   BENCH_COMPARE_ROUNDS=3   rounds of those comparisons (`microbatch bench --rounds`): each
#                            round runs every level through every front end in turn; the
#                            report takes each ratio within a round and prints their median
#   BENCH_SKIP_SWEEP=1      leave out the instances x intra-op threads sweep (bench/sweep.py)
#   BENCH_SWEEP_ROUNDS=2     A/B rounds of the sweep
#   BENCH_SKIP_LIVE_BULK=1   leave out L1-L3 (bench/live_bulk.py, about 4 minutes)
#   BENCH_LIVE_BULK_BUDGETS=0,1000,-1 bulk_run_budget_microseconds values compared (0: default)
#   BENCH_LIVE_BULK_ROUNDS=2 A/B rounds per budget
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$(date +%s)
OUT=${BENCH_OUT:-build/bench/report}
MODELS=${BENCH_MODELS:-build/bench/models}
WINDOW_MS=${BENCH_WINDOW_MS:-4000}
WARMUP_MS=${BENCH_WARMUP_MS:-1500}
MAX_WINDOWS=${BENCH_MAX_WINDOWS:-5}
RAW_SECONDS=${BENCH_RAW_SECONDS:-2}
THREADS=${BENCH_THREADS:-1}
R5_DEADLINE_MS=100
BIN=build/bin

log() { echo "[bench +$(($(date +%s) - T0))s] $*" >&2; }

# --- Dependencies: Debian's python3-torchvision (pulls python3-torch) for resnet18.
if ! dpkg-query -W -f='${Status}' python3-torchvision 2>/dev/null | grep -q "install ok installed"; then
  log "installing python3-torchvision"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-torchvision >/dev/null
fi

# --- Build.
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  log "building (scripts/build.sh)"
  scripts/build.sh
fi
for b in microbatch microbatch-server microbatch-rawbench microbatch-make-models; do
  [[ -x "$BIN/$b" ]] || { echo "bench: $BIN/$b is missing; build first" >&2; exit 1; }
done

# --- Models: mlp_bench and identity (C++), resnet18 (Python), and *_nobatch copies.
mkdir -p "$MODELS" "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.svg "$OUT"/report.txt
if [[ ! -f "$MODELS/mlp_bench/config.pbtxt" || ! -f "$MODELS/identity/config.pbtxt" ]]; then
  log "writing mlp_bench, identity"
  "$BIN/microbatch-make-models" --output "$MODELS" --models mlp_bench,identity >&2
fi
if [[ ! -f "$MODELS/resnet18/1/model.pt" ]]; then
  log "writing resnet18"
  /usr/bin/python3 scripts/make_bench_models.py --output "$MODELS" --models resnet18 >&2
fi
if [[ ! -f "$MODELS/resnet18_nobatch/config.pbtxt" || ! -f "$MODELS/mlp_bench_nobatch/config.pbtxt" ]]; then
  /usr/bin/python3 scripts/make_bench_models.py --output "$MODELS" --models --nobatch resnet18 mlp_bench >&2
fi

# identity_cached: the identity model with the response cache on (#17). The
# bench sends the same inputs on every call, so after the first every call is
# a cache hit.
if [[ ! -f "$MODELS/identity_cached/config.pbtxt" ]]; then
  mkdir -p "$MODELS/identity_cached/1"
  cp "$MODELS/identity/1/model.pt" "$MODELS/identity_cached/1/model.pt"
  { cat "$MODELS/identity/config.pbtxt"; echo "response_cache { max_bytes: 16777216 }"; } \
    >"$MODELS/identity_cached/config.pbtxt"
fi

# --- Raw limits, before the server starts (nothing else on the cores).
for model in resnet18 mlp_bench; do
  log "rawbench $model"
  timeout -k 5 150 "$BIN/microbatch-rawbench" --model_repository "$MODELS" --model "$model" \
    --seconds_per_size "$RAW_SECONDS" --default_intra_op_threads "$THREADS" --format json >"$OUT/raw_$model.json" 2>>"$OUT/rawbench.log" ||
    log "rawbench $model failed (see $OUT/rawbench.log)"
done

# --- Server.
SERVER_LOG="$OUT/server.log"
"$BIN/microbatch-server" --model_repository "$MODELS" --grpc_port 0 --metrics_port 0 --enable_echo \
  --default_intra_op_threads "$THREADS" --log_format json --drain_seconds 0 --shutdown_grace_seconds 5 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT
for _ in $(seq 1 600); do
  grep -q '"event":"server_ready"' "$SERVER_LOG" 2>/dev/null && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "bench: the server exited during startup:" >&2
    tail -20 "$SERVER_LOG" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q '"event":"server_ready"' "$SERVER_LOG" || { echo "bench: server not ready after 60 s" >&2; exit 1; }
port_of() { grep -o "\"event\":\"$1\",\"address\":\"[^\"]*" "$SERVER_LOG" | head -1 | sed 's/.*://'; }
TARGET="localhost:$(port_of grpc_listening)"
METRICS="localhost:$(port_of metrics_listening)"
log "server ready at $TARGET (metrics $METRICS)"

# Runs `microbatch bench` with the common flags; JSON to $OUT/$1.json. $2: the
# number of levels, which bounds the run (timeout) whatever the stability
# windows do.
bench() {
  local name=$1 levels=$2
  shift 2
  local limit=$((20 + levels * (5 + (WARMUP_MS + 2000 + MAX_WINDOWS * WINDOW_MS) / 1000)))
  log "bench $name: $*"
  timeout -k 5 "$limit" "$BIN/microbatch" bench --target "$TARGET" --metrics-url "$METRICS" \
    --window-ms "$WINDOW_MS" --warmup-ms "$WARMUP_MS" --max-windows "$MAX_WINDOWS" --format json \
    "$@" >"$OUT/$name.json" 2> >(tee -a "$OUT/bench.log" >&2) ||
    log "bench $name failed or timed out (see $OUT/bench.log)"
}

# Raw batch-1 throughput of resnet18 again, right around its served
# concurrency-1 run (R1): this machine's speed drifts by tens of percent within
# minutes, so R1 compares measurements taken seconds apart.
raw_b1() {
  timeout -k 5 60 "$BIN/microbatch-rawbench" --model_repository "$MODELS" --model resnet18 --batch_sizes 1 \
    --seconds_per_size 3 --default_intra_op_threads "$THREADS" --format json >"$OUT/$1.json" \
    2>>"$OUT/rawbench.log" || log "rawbench $1 failed (see $OUT/rawbench.log)"
}

# The front-end comparisons (R3, C1-C2, V2) run in ROUNDS rounds of short
# windows: each round runs every level through every front end in turn, and
# the report takes each ratio within a round and prints the median over the
# rounds. One pass gave ratios 0.70-1.13 for the same build in back-to-back
# runs on this machine (its speed drifts by tens of percent within minutes).
ROUNDS=${BENCH_COMPARE_ROUNDS:-3}
compare() {
  local name=$1 levels=$2
  shift 2
  WINDOW_MS=${BENCH_PROTOCOL_WINDOW_MS:-2000} MAX_WINDOWS=2 WARMUP_MS=1000 \
    bench "$name" $((levels * ROUNDS)) --rounds "$ROUNDS" "$@"
}
# R3: bare gRPC (Echo) vs the identity model at the same payload (1 row of 256
# FP32); --with-echo runs Echo right before each Predict level, so the ratio
# compares neighbouring measurements.
compare identity 4 --with-echo --model identity --shape x=256 --concurrency 16,64
# C1/C2 (#17): cache hits vs bare gRPC Echo, same payload, c=1 and peak, alternating.
compare cached 6 --with-echo --model identity_cached --shape x=256 --concurrency 1,16,64
# V2 (#13): the same identity payload through v1, v2 (gRPC) and REST in one
# run, each level through each front end in turn (the machine's drift hits
# all alike); a front end the server lacks is left out.
PROTOCOLS=v1
for p in v2 rest; do
  if "$BIN/microbatch" predict --protocol "$p" --target "$TARGET" --http "$METRICS" --timeout_ms 5000 \
    --model identity --input 'x=[0]' >/dev/null 2>>"$OUT/bench.log"; then
    PROTOCOLS="$PROTOCOLS,$p"
  else
    log "the server does not answer --protocol $p; left out of the front-end comparison (see $OUT/bench.log)"
  fi
done
compare protocols $((2 * $(echo "$PROTOCOLS" | tr ',' '\n' | wc -l))) --model identity --shape x=256 \
  --protocol "$PROTOCOLS" --http "$METRICS" --concurrency 1,16
# R2: served at concurrency 1 between two raw batch-1 runs; Echo of the same
# payload right before it (the transport's share of R2, for information).
log "rawbench resnet18 batch 1 (before)"
raw_b1 raw_resnet18_b1_before
bench resnet18_c1 2 --with-echo --model resnet18 --concurrency 1
log "rawbench resnet18 batch 1 (after)"
raw_b1 raw_resnet18_b1_after
# R1, R4: resnet18 closed-loop sweep (and the latency-throughput plot).
bench resnet18 7 --model resnet18 --concurrency 1,2,4,8,16,32,64 --plot "$OUT/resnet18.svg"
# R4: batching disabled at the same concurrency.
bench resnet18_nobatch 1 --model resnet18_nobatch --concurrency 64
bench mlp_bench 3 --model mlp_bench --concurrency 1,8,64 --plot "$OUT/mlp_bench.svg"
bench mlp_bench_nobatch 1 --model mlp_bench_nobatch --concurrency 64
# R5: open loop at twice the measured capacity, with a deadline.
CAPACITY=$(/usr/bin/python3 -c '
import json, sys
try:
    print(max(l["throughput"] for l in json.load(open(sys.argv[1]))["levels"]))
except Exception:
    print(0)' "$OUT/resnet18.json")
RATE=$(/usr/bin/python3 -c 'import sys; print(round(2 * float(sys.argv[1])))' "$CAPACITY")
if [[ "$RATE" -gt 0 ]]; then
  # (the common flags carry --warmup-ms: R5 sets its own through WARMUP_MS; a
  # second --warmup-ms is a usage error since the CLI moved to CLI11)
  WARMUP_MS=2000 bench r5 1 --model resnet18 --request-rate "$RATE" --deadline-ms "$R5_DEADLINE_MS"
else
  log "no resnet18 capacity measured; skipping R5"
fi
stop_server
trap - EXIT

# Instances x intra-op threads (#17): every layout that fits the cores, per
# model, with its own server (bench/sweep.py); the report names the best.
if [[ "${BENCH_SKIP_SWEEP:-0}" != 1 ]]; then
  log "instances x threads sweep (bench/sweep.py)"
  timeout -k 5 900 /usr/bin/python3 bench/sweep.py --bin "$BIN" --models "$MODELS" --out "$OUT" \
    --rounds "${BENCH_SWEEP_ROUNDS:-2}" >>"$OUT/bench.log" 2>&1 || log "sweep failed (see $OUT/bench.log)"
fi

# L1-L3 (#17): live Predict and a BatchPredict stream of mlp_bench on one
# model, with its own server (bench/live_bulk.py), for the default
# bulk_run_budget and two others.
if [[ "${BENCH_SKIP_LIVE_BULK:-0}" != 1 ]]; then
  log "live and bulk (bench/live_bulk.py)"
  timeout -k 5 900 /usr/bin/python3 bench/live_bulk.py --bin "$BIN" --models "$MODELS" --out "$OUT" \
    --threads "$THREADS" --budgets "${BENCH_LIVE_BULK_BUDGETS:-0,1000,-1}" --rounds "${BENCH_LIVE_BULK_ROUNDS:-2}" \
    2>>"$OUT/bench.log" || log "live_bulk failed (see $OUT/bench.log)"
fi

# --- Report.
{
  echo "microbatch performance report — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
  echo
  /usr/bin/python3 bench/report.py --dir "$OUT" \
    --r1-goal "${BENCH_R1_GOAL:-0.90}" --r2-goal "${BENCH_R2_GOAL:-0.35}" --r3-goal "${BENCH_R3_GOAL:-0.85}" \
    --r4-goal "${BENCH_R4_GOAL:-0.90}" --r5-goal "${BENCH_R5_GOAL:-0.90}" --v2-goal "${BENCH_V2_GOAL:-0.95}" --c1-goal "${BENCH_C1_GOAL:-0.90}" --c2-goal "${BENCH_C2_GOAL:-0.05}"
  echo
  echo "plots: $OUT/resnet18.svg $OUT/mlp_bench.svg; raw JSON and logs in $OUT/"
  echo "total time: $(($(date +%s) - T0)) s"
} | tee "$OUT/report.txt"
