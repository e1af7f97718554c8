#!/usr/bin/env bash
# Runs the whole test suite: installs dependencies, builds, runs every test
# (ctest), then the core and metrics tests again under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

echo "== ctest"
(cd build && ctest --output-on-failure -j "$(nproc)" --timeout 600)

echo "== ThreadSanitizer: core"
cmake -S . -B build-tsan -G Ninja -DMICROBATCH_CORE_ONLY=ON -DMICROBATCH_TSAN=ON >/dev/null
ninja -C build-tsan
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --output-on-failure -j "$(nproc)" --timeout 600)

if [[ -x scripts/check-deploy.sh ]]; then
  echo "== deploy checks"
  scripts/check-deploy.sh
fi
