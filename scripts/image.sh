#!/usr/bin/env bash
# Builds the CPU image with podman (no Docker daemon needed) and smoke-tests it.
#
#   scripts/image.sh            # base + lint + build + smoke (what CI runs)
#   scripts/image.sh base       # only make sure the Dockerfile's base images exist
#   scripts/image.sh lint       # only lint Dockerfile and deploy/docker/Dockerfile.cuda
#   scripts/image.sh build      # base + build
#   scripts/image.sh smoke      # only smoke-test an already built $IMAGE
#
# Base images: the names in the Dockerfile's `ARG BUILD_IMAGE=` / `ARG
# RUNTIME_IMAGE=` defaults. If they are not in local storage they are pulled
# (a registry is reachable); where no registry is reachable, a Debian root
# filesystem is made with debootstrap from the mirror apt uses on this host
# (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list) and imported under
# both names (the runtime one with docs, man pages and locales removed, as the
# official -slim images are). BASE_SOURCE=pull|debootstrap forces one way.
#
# Smoke test: ldd finds every library of the binaries, the BLAS is OpenBLAS,
# the image's user is the manifests' runAsUser:runAsGroup; the server runs
# non-root with --read-only and --cap-drop=ALL on the bundled demo models,
# answers Predict through the published port with the known numbers, serves
# /metrics and /readyz, and on SIGTERM keeps serving for --drain_seconds, then
# exits 0 within the grace period (podman stop -t, exit code from podman
# inspect). Exits non-zero on any failure.
#
# Environment: IMAGE (localhost/microbatch:ci), JOBS (2: compile jobs in the
# build), BASE_SOURCE (auto|pull|debootstrap), DEBIAN_MIRROR (from apt),
# MICROBATCH_IMAGE_CACHE (/var/tmp/microbatch-image: the debootstrap tarball),
# PODMAN_ROOT (/var/tmp/microbatch-podman: image storage and layer cache, kept
# between runs so that a warm run rebuilds only what changed; pruned above
# MAX_STORAGE_GB, default 30), STORAGE_DRIVER
# (overlay), CLIENT (the microbatch CLI used for Predict: build/bin/microbatch
# if built, else the one inside the image, run in a second container).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/microbatch:ci}
JOBS=${JOBS:-2}
BASE_SOURCE=${BASE_SOURCE:-auto}
CACHE=${MICROBATCH_IMAGE_CACHE:-/var/tmp/microbatch-image}
PODMAN_ROOT=${PODMAN_ROOT:-/var/tmp/microbatch-podman}
STORAGE_DRIVER=${STORAGE_DRIVER:-overlay}
# The Deployment's numbers (deploy/base): the smoke test stops the container
# with the pod's grace period minus the preStop sleep.
DEPLOYMENT=deploy/base/deployment.yaml
CONFIGMAP=deploy/base/configmap.yaml

log() { echo "image: $*" >&2; }
die() { echo "image: FAIL $*" >&2; exit 1; }
now() { date +%s; }

# podman, runc, debootstrap, jq: installed here on a fresh machine.
scripts/install-deps.sh --image >&2
for cmd in podman curl jq; do
  command -v "$cmd" >/dev/null || die "$cmd is required (apt-get install -y --no-install-recommends podman runc curl jq)"
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$CACHE" "$PODMAN_ROOT"
RUNTIME=runc
command -v runc >/dev/null || RUNTIME=crun
PODMAN=(podman --root "$PODMAN_ROOT/storage" --runroot "$PODMAN_ROOT/run" --storage-driver "$STORAGE_DRIVER"
  --runtime "$RUNTIME" --cgroup-manager cgroupfs --events-backend file)
pm() { "${PODMAN[@]}" "$@"; }
# Containers get this shell's limits: root podman asks for nofile 1048576,
# which fails ("error setting rlimit type 7") inside a container whose hard
# limit is lower. No systemd here, so no healthcheck timers either: the smoke
# test runs the image's HEALTHCHECK command itself.
RUN_OPTS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=8192:8192 --no-healthcheck)

dockerfile_default() { sed -n "s/^ARG $1=//p" "${2:-Dockerfile}" | head -1; }
# "debian:bookworm" -> "docker.io/library/debian:bookworm" (how short names
# resolve; an image tagged so is found by `FROM debian:bookworm` offline).
qualify() {
  local name=$1 first=${1%%/*}
  if [[ $name != */* ]]; then echo "docker.io/library/$name"
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then echo "docker.io/$name"
  else echo "$name"; fi
}

# The Debian mirror apt uses here: first deb822 URIs / sources.list entry that
# is not the security archive.
apt_mirror() {
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n';
         cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'; } \
       | grep -v -e security -e '^$' | grep -i debian | head -1)
  [[ -n $m ]] || m=http://deb.debian.org/debian
  echo "$m"
}

# Writes the apt sources the image should use: the host's Debian entries
# (same mirror, suites and signing keys as the host's apt).
write_apt_sources() {
  local root=$1 suite=$2 mirror=$3 copied=0
  rm -f "$root/etc/apt/sources.list"
  mkdir -p "$root/etc/apt/sources.list.d"
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && grep -qi "debian" "$f" && grep -q "Suites:.*$suite" "$f" || continue
    cp "$f" "$root/etc/apt/sources.list.d/" && copied=1
  done
  if ((copied == 0)); then
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$suite" "$mirror" "$suite" >"$root/etc/apt/sources.list"
  fi
}

debootstrap_base() {
  local build_name=$1 runtime_name=$2
  local tag=${build_name##*:}
  local suite=${tag%%-*}
  local mirror; mirror=$(apt_mirror)
  command -v debootstrap >/dev/null || die "debootstrap is required (apt-get install -y debootstrap)"
  local key; key=$(echo "$suite $mirror $(cat /etc/apt/sources.list.d/*.sources 2>/dev/null)" | sha256sum | cut -c1-12)
  local tarball="$CACHE/debian-$suite-minbase-$key.tar"
  if [[ -s $tarball ]]; then
    log "base: cached $tarball"
  else
    log "base: debootstrap --variant=minbase $suite from $mirror (a few minutes)"
    local root="$CACHE/rootfs.$$"
    rm -rf "$root"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$root"; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    write_apt_sources "$root" "$suite" "$mirror"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/* \
      "$root"/root/.bash_history
    # As the official images: no service starts inside a container build.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
    tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]')
  pm import -q "${changes[@]}" "$tarball" "$(qualify "$build_name")" >/dev/null
  if [[ $runtime_name != "$build_name" ]]; then
    # -slim: the same packages without documentation, man pages and locales,
    # and dpkg told not to install them later (the official images' recipe).
    local slim="$CACHE/rootfs-slim.$$"
    rm -rf "$slim" && mkdir -p "$slim"
    tar -C "$slim" -xf "$tarball"
    rm -rf "$slim"/usr/share/doc/* "$slim"/usr/share/man/* "$slim"/usr/share/info/* "$slim"/usr/share/locale/* \
      "$slim"/usr/share/lintian "$slim"/usr/share/linda
    mkdir -p "$slim/etc/dpkg/dpkg.cfg.d"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      >"$slim/etc/dpkg/dpkg.cfg.d/docker-slim"
    tar --numeric-owner -C "$slim" -c . | pm import -q "${changes[@]}" - "$(qualify "$runtime_name")" >/dev/null
    rm -rf "$slim"
  fi
  log "base: imported $(qualify "$build_name") and $(qualify "$runtime_name") from $tarball"
}

phase_base() {
  local build_name runtime_name missing=()
  build_name=$(dockerfile_default BUILD_IMAGE)
  runtime_name=$(dockerfile_default RUNTIME_IMAGE)
  [[ -n $build_name && -n $runtime_name ]] || die "Dockerfile has no ARG BUILD_IMAGE=/RUNTIME_IMAGE= defaults"
  for n in "$build_name" "$runtime_name"; do
    pm image exists "$(qualify "$n")" || missing+=("$n")
  done
  if ((${#missing[@]} == 0)); then log "base: $build_name and $runtime_name present"; return; fi
  if [[ $BASE_SOURCE != debootstrap ]]; then
    local ok=1
    for n in "${missing[@]}"; do
      log "base: pulling $(qualify "$n")"
      timeout 300 "${PODMAN[@]}" pull -q "$(qualify "$n")" >/dev/null 2>"$CACHE/pull.log" || { ok=0; break; }
    done
    if ((ok)); then return; fi
    [[ $BASE_SOURCE == pull ]] && { cat "$CACHE/pull.log" >&2; die "could not pull ${missing[*]}"; }
    log "base: no registry reachable ($(tail -1 "$CACHE/pull.log" | cut -c1-120)); making the base with debootstrap"
  fi
  debootstrap_base "$build_name" "$runtime_name"
}

phase_lint() {
  local tool=tools/deploy-check
  command -v node >/dev/null || die "node is required for the Dockerfile lint"
  if [[ ! -d $tool/node_modules ]]; then (cd "$tool" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); fi
  node "$tool/dockerfile-lint.mjs" --manifests-dir deploy Dockerfile deploy/docker/Dockerfile.cuda
}

phase_build() {
  # Layer cache bound: every source change adds a ~3 GB build stage; past
  # MAX_STORAGE_GB (default 30) the dangling layers are dropped first (the
  # next build then starts from the dependency layer, if still tagged, or cold).
  local used_gb
  used_gb=$(du -sx --block-size=1G "$PODMAN_ROOT/storage" 2>/dev/null | cut -f1)
  if ((${used_gb:-0} > ${MAX_STORAGE_GB:-30})); then
    log "build: storage ${used_gb} GB > ${MAX_STORAGE_GB:-30} GB: podman image prune"
    pm image prune -f >/dev/null
  fi
  log "build: podman build -t $IMAGE (JOBS=$JOBS)"
  pm build --network host --format docker --layers --pull=never --build-arg JOBS="$JOBS" \
    -t "$IMAGE" -f Dockerfile . >"$CACHE/build.log" 2>&1 \
    || { tail -40 "$CACHE/build.log" >&2; die "podman build failed (log: $CACHE/build.log)"; }
  grep -E '^(STEP|COMMIT|--> Using cache)' "$CACHE/build.log" | tail -40 >&2 || true
}

# ---------------------------------------------------------------- smoke test
SMOKE_NAME=microbatch-smoke-$$
cleanup() { pm rm -f -t 0 "$SMOKE_NAME" >/dev/null 2>&1 || true; }

yaml_int() { sed -n "s/^[[:space:]]*$1:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$2" | head -1; }
flag_value() { sed -n "s/^[[:space:]]*--$1=//p" "$CONFIGMAP" | head -1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Predict against the published port; prints the JSON response.
predict() {
  local target=$1; shift
  if [[ -n ${CLIENT:-} ]]; then
    "$CLIENT" predict --target "$target" --timeout_ms 10000 "$@"
  else
    pm run "${RUN_OPTS[@]}" --rm --network host --read-only --cap-drop=ALL --entrypoint /usr/local/bin/microbatch "$IMAGE" \
      predict --target "$target" --timeout_ms 10000 "$@"
  fi
}

# expect_close JSON JQ_PATH 'want array': every element within 1e-5.
expect_close() {
  local json=$1 path=$2 want=$3
  echo "$json" | jq -e --argjson want "$want" \
    "[$path | flatten[]] as \$got | (\$got|length) == (\$want|length) and
     ([\$got, \$want] | transpose | all(.[0] - .[1] | fabs < 1e-5))" >/dev/null \
    || die "Predict: $path is $(echo "$json" | jq -c "$path") , expected $want"
}

phase_smoke() {
  pm image exists "$IMAGE" || die "no image $IMAGE (run scripts/image.sh build)"
  trap cleanup EXIT
  local uid gid user
  uid=$(yaml_int runAsUser "$DEPLOYMENT"); gid=$(yaml_int runAsGroup "$DEPLOYMENT")
  [[ $(yaml_int fsGroup "$DEPLOYMENT") == "$gid" ]] || die "$DEPLOYMENT: fsGroup != runAsGroup"
  user=$(pm image inspect --format '{{.Config.User}}' "$IMAGE")
  [[ $user == "$uid:$gid" ]] || die "image USER is '$user', the manifests run as $uid:$gid"
  [[ -n $(pm image inspect --format '{{.Config.Healthcheck}}' "$IMAGE" | tr -d '<>nil{}[] ') ]] \
    || die "image has no HEALTHCHECK (build with --format docker)"
  log "smoke: USER $user matches runAsUser/runAsGroup/fsGroup of $DEPLOYMENT"

  # Every binary finds every library, and the BLAS is OpenBLAS.
  local ldd_out
  ldd_out=$(pm run "${RUN_OPTS[@]}" --rm --read-only --cap-drop=ALL --entrypoint /bin/sh "$IMAGE" -c \
    'for f in /usr/local/bin/microbatch-server /usr/local/bin/microbatch /usr/bin/curl; do echo "== $f"; ldd "$f" || echo "ldd failed: $f not found"; LD_BIND_NOW=1 "$f" --help 2>&1 >/dev/null | grep -E "symbol lookup error|error while loading|undefined symbol" | sed "s/^/not found: /"; done')
  if grep -q 'not found' <<<"$ldd_out"; then echo "$ldd_out" | grep -B3 'not found' >&2; die "ldd: libraries not found"; fi
  # libblas.so.3 must be OpenBLAS's (Debian's openblas-openmp/libblas.so.3
  # is a thin library over libopenblas.so.0), not the reference BLAS.
  local blas
  blas=$(pm run "${RUN_OPTS[@]}" --rm --read-only --cap-drop=ALL --entrypoint /bin/sh "$IMAGE" -c \
    'ldd /usr/local/bin/microbatch-server | grep -E "libblas.so.3|libopenblas"; grep -E "^(libblas.so.3|libopenblas)" /usr/local/share/microbatch/runtime-libs.txt')
  grep -q 'libopenblas.so.0 => /' <<<"$blas" || die "the server does not load libopenblas.so.0: $blas"
  grep -qE '^libblas.so.3[[:space:]].*openblas' <<<"$blas" || die "libblas.so.3 in the image is not OpenBLAS's: $blas"
  blas=$(echo "$blas" | grep -E '^libblas.so.3' | cut -f2)
  log "smoke: ldd finds all libraries of $(echo "$ldd_out" | grep -c '^==') binaries; libblas.so.3 = $blas (+ libopenblas.so.0)"

  # Start: non-root, read-only root filesystem, no capabilities, published ports.
  local gport mport drain grace period prestop stop_timeout
  gport=$(free_port); mport=$(free_port)
  drain=$(flag_value drain_seconds); grace=$(flag_value shutdown_grace_seconds)
  period=$(yaml_int terminationGracePeriodSeconds "$DEPLOYMENT")
  prestop=$(grep -A3 'preStop:' "$DEPLOYMENT" | sed -n 's/.*"sleep", "\([0-9]*\)".*/\1/p')
  stop_timeout=$((period - ${prestop:-0}))
  # LD_BIND_NOW=1: every symbol of every library resolved at start, so a
  # library missing from the image (or a stub standing in for one that is
  # used) fails here, not at the first call.
  pm run "${RUN_OPTS[@]}" -d --name "$SMOKE_NAME" -e LD_BIND_NOW=1 --read-only --cap-drop=ALL --security-opt no-new-privileges \
    --tmpfs /tmp:rw,size=64m -p "127.0.0.1:$gport:8500" -p "127.0.0.1:$mport:8502" "$IMAGE" \
    --model_repository=/opt/microbatch/demo-models --drain_seconds="$drain" --shutdown_grace_seconds="$grace" \
    --log_format=json >/dev/null
  local t0 ready=0
  t0=$(now)
  for _ in $(seq 1 180); do
    if curl -fsS "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; then ready=1; break; fi
    [[ $(pm inspect --format '{{.State.Running}}' "$SMOKE_NAME") == true ]] || break
    sleep 1
  done
  ((ready)) || { pm logs "$SMOKE_NAME" 2>&1 | tail -20 >&2; die "server not ready within 180 s"; }
  log "smoke: ready after $(($(now) - t0)) s (grpc 127.0.0.1:$gport, metrics 127.0.0.1:$mport)"
  local inside
  inside=$(pm exec "$SMOKE_NAME" sh -c 'id -u; id -g; grep CapEff /proc/1/status; touch /probe 2>&1 || true')
  [[ $(echo "$inside" | sed -n 1p) == "$uid" && $(echo "$inside" | sed -n 2p) == "$gid" ]] || die "server runs as $(head -2 <<<"$inside" | tr '\n' ' ')"
  grep -q 'CapEff:[[:space:]]*0000000000000000' <<<"$inside" || die "server has capabilities: $inside"
  grep -qi 'read-only' <<<"$inside" || die "root filesystem is writable: $inside"
  [[ $(pm inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$SMOKE_NAME") == true ]] || die "not --read-only"
  log "smoke: server runs as $uid:$gid, CapEff 0, root filesystem read-only"
  # The BLAS the running server really mapped (not only what ldd promises).
  pm exec "$SMOKE_NAME" grep -q 'libopenblas' /proc/1/maps || die "the running server has no libopenblas mapped"

  # Predict through the published port, numerically against known answers.
  if [[ -z ${CLIENT:-} && -x build/bin/microbatch ]]; then CLIENT=build/bin/microbatch; fi
  local out
  out=$(predict "127.0.0.1:$gport" --model identity --input 'x=[[1.5,-2,3.25,0.125]]') || die "Predict identity failed"
  expect_close "$out" .outputs.y.data '[1.5,-2,3.25,0.125]'
  out=$(predict "127.0.0.1:$gport" --model pair --input 'a=[[1,2,3]]' --input 'b=[[4,5,6]]') || die "Predict pair failed"
  expect_close "$out" .outputs.sum.data '[5,7,9]'
  expect_close "$out" .outputs.product.data '[4,10,18]'
  out=$(predict "127.0.0.1:$gport" --model mlp --input 'x=[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6]') \
    || die "Predict mlp failed"
  echo "$out" | jq -e '[.outputs.probs.data | flatten[]] | length == 4 and (add - 1 | fabs) < 1e-4' >/dev/null \
    || die "Predict mlp: probs do not sum to 1: $(echo "$out" | jq -c .outputs)"
  log "smoke: Predict identity, pair and mlp answer correctly (client: ${CLIENT:-microbatch in a second container})"

  # KServe v2 REST on the same port as /metrics.
  out=$(curl -fsS "http://127.0.0.1:$mport/v2/models/pair/infer" -d \
    '{"inputs":[{"name":"a","shape":[1,3],"datatype":"FP32","data":[1,2,3]},{"name":"b","shape":[1,3],"datatype":"FP32","data":[4,5,6]}]}') \
    || die "v2 REST infer failed"
  echo "$out" | jq -e '[.outputs[] | select(.name == "sum") | .data[]] == [5,7,9]' >/dev/null \
    || die "v2 REST infer: unexpected answer $out"
  curl -fsS -o /dev/null "http://127.0.0.1:$mport/v2/health/ready" || die "/v2/health/ready failed"
  log "smoke: KServe v2 REST infer and /v2/health/ready answer correctly"

  # /metrics and /readyz.
  local metrics
  metrics=$(curl -fsS "http://127.0.0.1:$mport/metrics") || die "/metrics failed"
  grep -q '^microbatch_model_ready{model="identity",version="1"} 1' <<<"$metrics" || die "/metrics: identity not ready"
  echo "$metrics" | grep '^microbatch_requests_total{' | grep 'method="Predict"' | grep 'code="OK"' |
    awk '{s+=$2} END {exit !(s>=3)}' \
    || die "/metrics: fewer than 3 OK Predict requests counted"
  for m in microbatch_requests_in_flight microbatch_queue_requests microbatch_instances_busy microbatch_queue_wait_seconds_bucket; do
    grep -q "^$m" <<<"$metrics" || die "/metrics: no $m (the autoscaling overlay uses it)"
  done
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/readyz") == 200 ]] || die "/readyz not 200"
  local hc
  hc=$(pm image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE" | jq -r '.[1:] | if .[0] == "CMD-SHELL" then .[1] else join(" ") end')
  pm exec "$SMOKE_NAME" sh -c "$hc" >/dev/null || die "the image's HEALTHCHECK ($hc) fails in the running container"
  log "smoke: /metrics ($(echo "$metrics" | grep -c '^microbatch_') series) and /readyz answer"

  # SIGTERM: NOT_SERVING at once, Predict still answered for --drain_seconds,
  # then exit 0 well within the grace period.
  t0=$(now)
  pm stop -t "$stop_timeout" "$SMOKE_NAME" >/dev/null 2>"$CACHE/stop.log" &
  local stopper=$!
  sleep 1
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/readyz" || true)
  [[ $code == 503 ]] || die "/readyz during the drain is $code, expected 503"
  out=$(predict "127.0.0.1:$gport" --model identity --input 'x=[[7]]') || die "Predict during the drain failed"
  expect_close "$out" .outputs.y.data '[7]'
  wait "$stopper" || die "podman stop failed: $(cat "$CACHE/stop.log")"
  local elapsed exit_code
  elapsed=$(($(now) - t0))
  exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$SMOKE_NAME")
  [[ $exit_code == 0 ]] || { pm logs "$SMOKE_NAME" 2>&1 | tail -10 >&2; die "exit code $exit_code after SIGTERM (137: killed at the grace period)"; }
  ((elapsed < stop_timeout)) || die "drain took $elapsed s, grace period $stop_timeout s"
  log "smoke: SIGTERM -> /readyz 503, Predict still served, exit 0 after $elapsed s (drain $drain s, grace $stop_timeout s = terminationGracePeriodSeconds $period - preStop ${prestop:-0})"
  cleanup
  trap - EXIT
}

phase_size() {
  local bytes
  bytes=$(pm image inspect --format '{{.Size}}' "$IMAGE")
  log "size: $IMAGE $((bytes / 1000000)) MB ($(pm images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE" | head -1))"
}

timed() {
  local name=$1 t; shift
  t=$(now)
  "$@"
  log "$name: $(($(now) - t)) s"
  echo "$name $(($(now) - t))" >>"$CACHE/durations.txt"
}

case "${1:-all}" in
  base) timed base phase_base ;;
  lint) timed lint phase_lint ;;
  build) timed base phase_base; timed build phase_build; phase_size ;;
  smoke) timed smoke phase_smoke ;;
  all)
    echo "--- $(date -Is)" >>"$CACHE/durations.txt"
    T=$(now)
    timed lint phase_lint
    timed base phase_base
    timed build phase_build
    phase_size
    timed smoke phase_smoke
    log "all passed in $(($(now) - T)) s"
    ;;
  *) echo "usage: $0 [all|base|lint|build|smoke]" >&2; exit 2 ;;
esac
