#!/usr/bin/env bash
# The evidence behind the autoscaling target (deploy/overlays/autoscale):
# for each closed-loop concurrency, the bench's throughput and latency and
# the server's own microbatch_requests_in_flight (what the HPA sees, sampled
# every 0.5 s and averaged) plus microbatch_queue_requests and
# microbatch_instances_busy for comparison.
#   scripts/autoscale-measure.sh [CONCURRENCIES]      # default 1,2,4,8,16,32,64
# Needs build/bin (scripts/build.sh). Runs the server on the demo models like
# scripts/demo.sh, with CPUS cores (default 2 = the Deployment's cpu limit)
# through taskset; the bench client runs on the remaining cores if any.
# Measure on an otherwise idle machine: the numbers are meaningless when other
# jobs share the cores (check `uptime`).
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${1:-1,2,4,8,16,32,64}
MODEL=${MODEL:-mlp}
CPUS=${CPUS:-2}
[[ -x build/bin/microbatch-server && -x build/bin/microbatch ]] || { echo "autoscale-measure: build first (scripts/build.sh)" >&2; exit 1; }
WORK=$(mktemp -d)
server_pid=""
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

build/bin/microbatch-make-models --output "$WORK/models" --models "$MODEL" >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GPORT=$(port); MPORT=$(port)
server_cpus=0-$((CPUS - 1))
taskset -c "$server_cpus" build/bin/microbatch-server --model_repository="$WORK/models" --grpc_port="$GPORT" \
  --metrics_port="$MPORT" --log_format=json 2>"$WORK/server.log" &
server_pid=$!
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$MPORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
client_cpus=$CPUS-$(($(nproc) - 1))
((CPUS < $(nproc))) || client_cpus=0-$(($(nproc) - 1))

gauge() {  # sum of a gauge over the model's series
  curl -fsS "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" -v model="$MODEL" \
    'index($0, m "{") == 1 && index($0, "model=\"" model "\"") {s += $NF} END {printf "%g\n", s}'
}
echo "uptime: $(uptime)"
printf '%-11s %-10s %-9s %-9s %-12s %-12s %-12s\n' concurrency "rows/s" "p50 ms" "p99 ms" in_flight queue_reqs instances_busy
IFS=, read -ra levels <<<"$LEVELS"
for c in "${levels[@]}"; do
  : >"$WORK/samples"
  (while true; do
     echo "$(gauge microbatch_requests_in_flight) $(gauge microbatch_queue_requests) $(gauge microbatch_instances_busy)" >>"$WORK/samples"
     sleep 0.5
   done) &
  sampler=$!
  taskset -c "$client_cpus" build/bin/microbatch bench --target "127.0.0.1:$GPORT" --model "$MODEL" --concurrency "$c" \
    --warmup-ms 1000 --window-ms 2000 --max-windows 5 --format json >"$WORK/bench.json" 2>/dev/null
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  read -r inflight queue busy < <(tail -n +3 "$WORK/samples" | awk '{a+=$1; b+=$2; c+=$3; n++} END {if (n) printf "%.2f %.2f %.2f\n", a/n, b/n, c/n; else print "- - -"}')
  read -r tput p50 p99 < <(jq -r '.levels[0] | [(.rows_per_s | floor), (.latency_ms.p50 * 100 | round / 100),
      (.latency_ms.p99 * 100 | round / 100)] | @tsv' "$WORK/bench.json")
  printf '%-11s %-10s %-9s %-9s %-12s %-12s %-12s\n' "$c" "$tput" "$p50" "$p99" "$inflight" "$queue" "$busy"
done
echo "uptime after: $(uptime)"
