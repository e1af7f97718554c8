#!/usr/bin/env bash
# The model-lifecycle benchmark (issue #12): a version swap on a live server,
# with the server's default poll interval and with --repository_poll_seconds=1.
# Reports (a) the time from a version appearing on disk (atomic rename) to the
# first request it answers, and (b) Predict p50/p99 during the swaps vs steady
# state, under a closed-loop load (server/tools/lifecycle_bench_main.cc).
#
# Usage: scripts/lifecycle_bench.sh
# Environment (all optional):
#   LIFECYCLE_BENCH_SKIP_BUILD=1   use build/bin as it is
#   LIFECYCLE_BENCH_MODEL=mlp_bench   demo model swapped (mlp, mlp_bench)
#   LIFECYCLE_BENCH_SWAPS=3        versions published per run
#   LIFECYCLE_BENCH_CONCURRENCY=4  closed-loop callers
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
if [[ "${LIFECYCLE_BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C build -j "${JOBS:-$(nproc)}" microbatch-server microbatch-lifecycle-bench >/dev/null
fi
ARGS=(--model="${LIFECYCLE_BENCH_MODEL:-mlp_bench}" --swaps="${LIFECYCLE_BENCH_SWAPS:-3}"
      --concurrency="${LIFECYCLE_BENCH_CONCURRENCY:-4}")
echo "== default poll interval"
"$BIN/microbatch-lifecycle-bench" "${ARGS[@]}" --work_dir=build/lifecycle-bench/default
echo
echo "== --repository_poll_seconds=1"
"$BIN/microbatch-lifecycle-bench" "${ARGS[@]}" --work_dir=build/lifecycle-bench/poll1 \
  --repository_poll_seconds=1
