#!/usr/bin/env bash
# Installs everything microbatch needs to build, test and run, from Debian 12.
# Safe to run again; does nothing when all packages are present.
# Usage: scripts/install-deps.sh [--runtime-only]
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libtorch-dev libopenblas0-openmp
  libgtest-dev libgmock-dev libbenchmark-dev
  libcivetweb-dev nlohmann-json3-dev
  libcli11-dev libcurl4-openssl-dev
  prometheus curl procps
)
RUNTIME_PACKAGES=(
  libgrpc++1.51 libprotobuf32 libabsl20220623 libtorch1.13 libopenblas0-openmp libcivetweb1 curl
  libcurl4
)

packages=("${BUILD_PACKAGES[@]}")
if [[ "${1:-}" == "--runtime-only" ]]; then packages=("${RUNTIME_PACKAGES[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
