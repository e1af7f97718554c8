#!/usr/bin/env bash
# Runs the whole test suite, each step timed (summary at the end):
#   1. install dependencies, plain build, every test (ctest);
#   2. every test again under AddressSanitizer + UndefinedBehaviorSanitizer
#      (build-asan/: our code instrumented; LibTorch, gRPC, protobuf and
#      abseil are Debian's and not);
#   3. the core, metrics, HTTP and service-layer tests under ThreadSanitizer
#      (build-tsan/; the service tests use the fake backend, see
#      tests/service_tests.cmake and tests/tsan.supp);
#   4. every libFuzzer harness for FUZZ_SECONDS (default 12) each
#      (scripts/fuzz.sh, build-fuzz/);
#   5. the deploy checks;
#   6. the shell scripts (scripts/check-scripts.sh: shellcheck, and no
#      early-exit reader fed from a variable under pipefail).
# SKIP_SANITIZERS=1 or SKIP_FUZZ=1 leave out steps 2-3 or 4 (local use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
export JOBS

STEPS=()
STEP_NAME=""
STEP_START=0
RUN_START=$(date +%s)
step() {
  end_step
  STEP_NAME=$1
  STEP_START=$(date +%s)
  echo "== $STEP_NAME"
}
end_step() {
  if [[ -n "$STEP_NAME" ]]; then
    STEPS+=("$(printf '%6ds  %s' $(( $(date +%s) - STEP_START )) "$STEP_NAME")")
    STEP_NAME=""
  fi
}
summary() {
  local rc=$?
  end_step
  echo "== step durations"
  printf '%s\n' "${STEPS[@]}"
  printf '%6ds  total (%s)\n' $(( $(date +%s) - RUN_START )) "$([[ $rc -eq 0 ]] && echo passed || echo FAILED)"
}
trap summary EXIT

step "install deps"
scripts/install-deps.sh --test

step "build"
scripts/build.sh

step "ctest"
(cd build && ctest --output-on-failure -j "$JOBS" --timeout 600)

if [[ "${SKIP_SANITIZERS:-0}" != 1 ]]; then
  # Sanitizer runtime options, each explained in tests/sanitizers.md.
  ASAN_ENV=(
    "ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=0:strict_init_order=1:check_initialization_order=1:abort_on_error=0:halt_on_error=1"
    "LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  )
  step "build ASan+UBSan"
  BUILD_DIR=build-asan BUILD_TYPE=Debug scripts/build.sh -DMICROBATCH_ASAN=ON -DMICROBATCH_BUILD_BENCH=OFF
  step "ctest ASan+UBSan"
  # MemoryBoundTest measures the server's RSS against its memory budget, and
  # LifecycleMemoryTest RSS across model load/unload cycles; under ASan RSS
  # also holds the quarantine of freed memory, redzones and shadow memory
  # (measured +530 MiB for a 48 MiB budget), so they run in the plain ctest
  # only.
  (cd build-asan && env "${ASAN_ENV[@]}" ctest --output-on-failure -j "$JOBS" --timeout 900 \
    -E '^(MemoryBoundTest|LifecycleMemoryTest)\.')

  TSAN_TESTS=(core_test metrics_test http_server_test service_test)
  step "build TSan"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMICROBATCH_TSAN=ON \
    -DMICROBATCH_CORE_ONLY=OFF -DMICROBATCH_BUILD_BENCH=OFF >/dev/null
  ninja -C build-tsan -j "$JOBS" "${TSAN_TESTS[@]}"
  step "ctest TSan (core, metrics, http, service)"
  (cd build-tsan && \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp" \
    ctest --output-on-failure -j "$JOBS" --timeout 900 -L '^(core|metrics|http|service)$')
fi

if [[ "${SKIP_FUZZ:-0}" != 1 ]]; then
  step "fuzz (${FUZZ_SECONDS:-12}s per harness)"
  scripts/fuzz.sh "${FUZZ_SECONDS:-12}"
fi

if [[ -x scripts/check-deploy.sh ]]; then
  step "deploy checks"
  scripts/check-deploy.sh
fi

step "script checks"
scripts/check-scripts.sh
