#!/usr/bin/env bash
# User-space instructions per request inside the server, by front end, counted
# by valgrind's callgrind: a deterministic comparison of two server builds (or
# of front ends) where timing on this shared VM drifts by tens of percent.
# What it does not count: the kernel (syscalls, wake-ups, TCP; 35-45% of the
# server's CPU by `perf` at c=16) and waiting. Under valgrind the threads run
# one at a time, so batches are smaller than at full speed: compare counts of
# one run with each other, not with a production profile.
#
# Usage: scripts/count_instructions.sh [SERVER_BIN ...]   (default build/bin/microbatch-server)
# Environment (all optional):
#   FRONTS="echo v1 v2"   front ends measured (echo, v1, v2, rest), in turn
#   CONCURRENCY=4         requests in flight
#   WINDOW_MS=8000        measurement per front end (at ~1/50 of full speed)
#   KEEP=DIR              keep each callgrind profile there (callgrind_annotate them)
# Prints one line per server and front end: requests, instructions, instructions/request.
# Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "count_instructions: needs valgrind (apt-get install valgrind)" >&2
  exit 1
fi
SERVERS=("$@")
((${#SERVERS[@]})) || SERVERS=(build/bin/microbatch-server)
FRONTS=${FRONTS:-echo v1 v2}
CONCURRENCY=${CONCURRENCY:-4}
WINDOW_MS=${WINDOW_MS:-8000}
CLI=build/bin/microbatch
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
build/bin/microbatch-make-models --output "$WORK/models" --models identity >/dev/null

# Runs one bench level through front end $1; prints the OK responses.
run() {
  local front=$1 flags
  case $front in
    echo) flags=(--echo) ;;
    *) flags=(--protocol "$front" --http "$HTTP") ;;
  esac
  "$CLI" bench --target "$TARGET" --model identity --shape x=256 "${flags[@]}" --concurrency "$CONCURRENCY" \
    --window-ms "$WINDOW_MS" --warmup-ms 0 --max-windows 1 --format json 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["levels"][-1]["ok"])'
}

for server in "${SERVERS[@]}"; do
  log=$WORK/server.log
  # --idle_spin_us=0: an idle executor's polling would be counted as work.
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" --dump-instr=no --collect-jumps=no \
    "$server" --model_repository "$WORK/models" --grpc_port 0 --metrics_port 0 --host 127.0.0.1 \
    --default_intra_op_threads 1 --drain_seconds 0 --enable_echo --idle_spin_us=0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1200); do
    grep -q server_ready "$log" && break
    kill -0 "$pid" 2>/dev/null || { echo "count_instructions: $server exited:" >&2; tail -5 "$log" >&2; exit 1; }
    sleep 0.5
  done
  TARGET=127.0.0.1:$(grep -o 'grpc_listening address=[^ ]*' "$log" | head -1 | sed 's/.*://')
  HTTP=127.0.0.1:$(grep -o 'metrics_listening address=[^ ]*' "$log" | head -1 | sed 's/.*://')
  for front in $FRONTS; do run "$front" >/dev/null; done  # warm-up: first calls, lazy set-up
  for front in $FRONTS; do
    callgrind_control -z "$pid" >/dev/null
    n=$(run "$front")
    callgrind_control -d "$front" "$pid" >/dev/null
    profile=$(find "$WORK" -name "cg.out.$pid.*" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
    ir=$(callgrind_annotate "$profile" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1; exit}')
    printf '%-40s %-5s %7d requests %12d instructions %8d per request\n' "$server" "$front" "$n" "$ir" $((ir / n))
    if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "$profile" "$KEEP/$(basename "$server").$front.callgrind"; fi
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
