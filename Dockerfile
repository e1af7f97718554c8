# microbatch server image (CPU). Build from the repository root:
#   scripts/image.sh                       # podman: base image, build, smoke test (CI)
#   docker build -t microbatch:latest .
#   docker build --build-arg DEMO_MODELS=0 -t microbatch:latest .       # no demo models
#   docker build --build-arg RUN_TESTS=1 -t microbatch:tested .         # also build and run the tests
#   docker build --build-arg BUILD_IMAGE=mirror.example.com/debian:bookworm \
#                --build-arg RUNTIME_IMAGE=mirror.example.com/debian:bookworm-slim .
# The build stage runs the same scripts CI runs (scripts/install-deps.sh,
# scripts/build.sh) without tests and benchmarks; the runtime stage holds the
# two binaries and only the shared libraries they load (an ldd-driven copy,
# scripts/collect-runtime-libs.sh): not LibTorch's package dependency tree.
#
# Layer cache: the ARGs that tune the build are declared after the
# dependency layer, so changing one (JOBS, RUN_TESTS, DEMO_MODELS...) reuses
# the installed packages; only the base image names come before FROM.

ARG BUILD_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY proto proto
COPY common common
COPY server server
COPY client client
COPY bench bench
COPY tests tests
COPY scripts/build.sh scripts/build.sh
ARG BUILD_TYPE=Release
# Compile jobs: Torch translation units need ~700 MB each.
ARG JOBS=2
# 1: also build the tests and benchmarks and run ctest in the build.
ARG RUN_TESTS=0
# Compiler cache in a cache mount (BuildKit or podman/buildah; kept by the
# builder between builds, never in an image): a rebuild after a source change
# recompiles only the changed translation units.
RUN --mount=type=cache,id=microbatch-ccache,target=/root/.cache/ccache \
    if [ "$RUN_TESTS" = "1" ]; then \
      BUILD_TYPE="$BUILD_TYPE" JOBS="$JOBS" scripts/build.sh \
      && (cd build && ctest --output-on-failure -j "$JOBS" --timeout 600); \
    else \
      BUILD_TYPE="$BUILD_TYPE" JOBS="$JOBS" scripts/build.sh -DMICROBATCH_BUILD_TESTS=OFF -DMICROBATCH_BUILD_BENCH=OFF; \
    fi
# The binaries and the libraries they load, OpenBLAS as the BLAS (checked).
# Debian's libtorch_cpu.so.1.13 lists OpenCV, FFmpeg, ZeroMQ, LevelDB and
# LMDB as DT_NEEDED but binds no symbol from them; they (and Qt, GDAL, ICU,
# codecs behind them: ~290 MB) are replaced by empty stubs, which the script
# proves harmless by starting every binary with LD_BIND_NOW=1 (and the smoke
# test runs the server so).
COPY scripts/collect-runtime-libs.sh scripts/collect-runtime-libs.sh
RUN STUB_LIBS_RE='^lib(opencv_[a-z0-9_]+|avcodec|avformat|avutil|swscale|swresample|zmq|leveldb|lmdb)\.so' \
    scripts/collect-runtime-libs.sh /runtime build/bin/microbatch-server build/bin/microbatch /usr/bin/curl

FROM build AS models
# 1 (default): demo models in /opt/microbatch/demo-models (the base
# Deployment's init container copies them); 0: the directory is empty.
ARG DEMO_MODELS=1
RUN mkdir -p /demo-models \
    && if [ "$DEMO_MODELS" = "1" ]; then build/bin/microbatch-make-models --output /demo-models --models mlp,pair,identity; fi

FROM ${RUNTIME_IMAGE} AS runtime
# uid and gid of the manifests' runAsUser/runAsGroup/fsGroup (deploy/base).
RUN groupadd --system --gid 10001 microbatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin microbatch \
    && mkdir -p /models && chown 10001:10001 /models
COPY --from=build /runtime/ /
RUN ldconfig
COPY --from=models /demo-models /opt/microbatch/demo-models
USER 10001:10001
EXPOSE 8500 8502
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8502/readyz || exit 1
# Demo: docker run -p 8500:8500 IMAGE --model_repository=/opt/microbatch/demo-models
# (a later flag wins). Kubernetes passes --flagfile=/etc/microbatch/flags.
ENTRYPOINT ["/usr/local/bin/microbatch-server", "--model_repository=/models", "--grpc_port=8500", "--metrics_port=8502"]
