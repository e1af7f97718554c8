#!/usr/bin/env bash
# Installs everything microbatch needs to build, test and run, from Debian 12.
# Safe to run again; does nothing when all packages are present.
# Usage: scripts/install-deps.sh [--runtime-only | --test | --image]
#   (none)          what building and running needs (scripts/demo.sh)
#                   (with ccache: rebuilds of unchanged files, here and in
#                   the image's build stage; CMakeLists.txt)
#   --test          and what scripts/test.sh needs beyond it: clang and
#                   libFuzzer (fuzz harnesses), shellcheck (script checks)
#   --image         what scripts/image.sh needs: podman, runc, debootstrap, jq
#   --runtime-only  the shared libraries the server and client load
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libtorch-dev libopenblas0-openmp
  libgtest-dev libgmock-dev libbenchmark-dev libxxhash-dev rapidjson-dev
  libmicrohttpd-dev libgnutls28-dev zlib1g-dev prometheus-cpp-dev nlohmann-json3-dev
  libcli11-dev libcurl4-openssl-dev libgoogle-perftools-dev
  libssl-dev prometheus curl procps openssl ccache
)
RUNTIME_PACKAGES=(
  libgrpc++1.51 libprotobuf32 libabsl20220623 libtorch1.13 libopenblas0-openmp
  libmicrohttpd12 libprometheus-cpp-core1.0 curl libcurl4 libtcmalloc-minimal4
)

TEST_PACKAGES=(clang-14 libfuzzer-14-dev libclang-rt-14-dev llvm-14 shellcheck)
IMAGE_PACKAGES=(podman runc buildah debootstrap jq curl ca-certificates)

case "${1:-}" in
  "") packages=("${BUILD_PACKAGES[@]}") ;;
  --test) packages=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  --image) packages=("${IMAGE_PACKAGES[@]}") ;;
  --runtime-only) packages=("${RUNTIME_PACKAGES[@]}") ;;
  *) echo "usage: scripts/install-deps.sh [--runtime-only | --test | --image]" >&2; exit 2 ;;
esac

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# A shared library whose bytes differ from its package's (a truncated or
# overwritten libtorch_cpu.so was seen on a reused machine) breaks linking in
# ways that look like our bug: reinstall such packages from the apt cache.
damaged=()
for p in libtorch1.13 libgrpc++1.51 libprotobuf32; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || continue
  if dpkg --verify "$p" 2>/dev/null | awk '$1 ~ /5/ && $NF ~ /\.so/ {bad = 1} END {exit !bad}'; then damaged+=("$p"); fi
done
if ((${#damaged[@]} > 0)); then
  echo "install-deps: reinstalling damaged ${damaged[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --reinstall "${damaged[@]}" >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --reinstall "${damaged[@]}" >/dev/null; }
fi

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
