# microbatch server image (CPU). Build from the repository root:
#   docker build -t microbatch:latest .
#   docker build --build-arg RUN_TESTS=1 --build-arg DEMO_MODELS=1 -t microbatch:demo .
# The build stage runs the same scripts CI runs (scripts/install-deps.sh,
# scripts/build.sh); the runtime stage holds only runtime libraries.

ARG DEBIAN_IMAGE=debian:bookworm

FROM ${DEBIAN_IMAGE} AS build
ARG RUN_TESTS=0
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY server server
COPY client client
COPY bench bench
COPY tests tests
COPY scripts scripts
RUN BUILD_TYPE=Release scripts/build.sh
RUN if [ "$RUN_TESTS" = "1" ]; then cd build && ctest --output-on-failure -j "$(nproc)"; fi

FROM build AS models
RUN build/bin/microbatch-make-models --output /models --models mlp,pair

FROM ${DEBIAN_IMAGE}-slim AS runtime
ARG DEMO_MODELS=0
COPY scripts/install-deps.sh /usr/local/share/microbatch/install-deps.sh
RUN /usr/local/share/microbatch/install-deps.sh --runtime-only && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin microbatch \
    && mkdir -p /models /opt/microbatch/demo-models && chown microbatch /models
COPY --from=build /src/build/bin/microbatch-server /src/build/bin/microbatch /usr/local/bin/
COPY --from=models /models /opt/microbatch/demo-models
# DEMO_MODELS=1 serves the demo repository by default; otherwise mount /models.
RUN if [ "$DEMO_MODELS" = "1" ]; then cp -r /opt/microbatch/demo-models/. /models/; fi
USER 10001
EXPOSE 8500 8502
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8502/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/microbatch-server", "--model_repository=/models", "--grpc_port=8500", "--metrics_port=8502"]
