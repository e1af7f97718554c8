#!/usr/bin/env bash
# Configures and builds microbatch into build/ (binaries in build/bin/).
# Usage: scripts/build.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@" >/dev/null
# Torch translation units need ~700 MB each; two jobs fit this machine.
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
