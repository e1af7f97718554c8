#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/, clang-14) into build-fuzz/ and
# runs each for N seconds (default 60), one after another, starting from its
# seed corpus tests/fuzz/corpus/<harness>/. New inputs go to a scratch corpus
# (build-fuzz/corpus/<harness>/, kept between runs), never into the seeds.
# A crash, leak, sanitizer report or FUZZ_CHECK failure stops the script
# with exit 1; the reproducer is written to build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [seconds] [harness...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
HARNESSES=("$@")
if [[ ${#HARNESSES[@]} -eq 0 ]]; then
  HARNESSES=(fuzz_predict_request fuzz_batch_framing fuzz_model_config fuzz_npy fuzz_csv fuzz_v2_request fuzz_http_body)
fi

CXX_CLANG=$(command -v clang++-14 || command -v clang++ || true)
if [[ -z "$CXX_CLANG" ]]; then
  echo "fuzz: clang++-14 is required (apt-get install clang-14 libfuzzer-14-dev)" >&2
  exit 1
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$CXX_CLANG" \
  -DMICROBATCH_FUZZ=ON >/dev/null
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "${HARNESSES[@]}"

mkdir -p "$BUILD_DIR/artifacts"
export TMPDIR=${TMPDIR:-/tmp}
# Leaks are checked (detect_leaks=1): the harnesses free everything they make.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for h in "${HARNESSES[@]}"; do
  corpus="$BUILD_DIR/corpus/$h"
  mkdir -p "$corpus"
  echo "== fuzz $h (${SECONDS_EACH}s)"
  start=$(date +%s)
  # -rss_limit_mb: well below the machine; -max_len: configs and framed
  # streams are small; -timeout: a single input taking 10 s is a hang.
  if ! "$BUILD_DIR/bin/$h" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$h-" \
      "$corpus" "tests/fuzz/corpus/$h" >"$BUILD_DIR/$h.log" 2>&1; then
    tail -50 "$BUILD_DIR/$h.log" >&2
    echo "fuzz: $h FAILED; reproducer in $BUILD_DIR/artifacts/" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$BUILD_DIR/$h.log" | tr '\n' ' '
  echo "corpus=$(ls "$corpus" | wc -l) time=$(( $(date +%s) - start ))s"
done
