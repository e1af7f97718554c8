#!/usr/bin/env bash
# Self-tests of scripts/check-deploy.sh: each case copies the repository,
# reintroduces one defect (one that shipped once, or that a rule exists for)
# and expects check-deploy to fail with a message naming it. Also checks that
# the unmodified copy passes. Run by scripts/check-deploy.sh.
#   tools/deploy-check/selftest.sh [CASE...]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export CHECK_DEPLOY_SELFTEST=0

# A copy of the working tree without build outputs; node_modules and build/
# are linked (read-only use).
tar -C "$ROOT" --exclude=./.git --exclude='./build*' --exclude=./tools/deploy-check/node_modules \
  --exclude=./models -cf "$WORK/tree.tar" .
fresh() {
  local d="$WORK/case"
  rm -rf "$d" && mkdir -p "$d" && tar -C "$d" -xf "$WORK/tree.tar"
  ln -s "$ROOT/tools/deploy-check/node_modules" "$d/tools/deploy-check/node_modules"
  [[ -d $ROOT/build ]] && ln -s "$ROOT/build" "$d/build"
  echo "$d"
}
# yedit FILE PYTHON: edit every YAML document of FILE as `docs` (a list).
yedit() {
  node --input-type=module -e '
    import fs from "node:fs";
    import YAML from "'"$ROOT"'/tools/deploy-check/node_modules/yaml/dist/index.js";
    const file = process.argv[1];
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJSON());
    const edit = new Function("docs", process.argv[2]);
    edit(docs);
    fs.writeFileSync(file, docs.map((d) => YAML.stringify(d)).join("---\n"));
  ' "$1" "$2"
}

passed=0 failed=0
# expect NAME 'REGEX' <<'EOF' ... shell run in the copy ... EOF
expect() {
  local name=$1 regex=$2 d out rc
  if ((${#ONLY[@]})) && [[ ! " ${ONLY[*]} " == *" $name "* ]]; then cat >/dev/null; return; fi
  d=$(fresh)
  (cd "$d" && bash -euo pipefail -s) || { echo "selftest: $name: the mutation itself failed" >&2; failed=$((failed + 1)); return; }
  set +e
  out=$(cd "$d" && scripts/check-deploy.sh 2>&1)
  rc=$?
  set -e
  if [[ $regex == PASS ]]; then
    if ((rc == 0)); then passed=$((passed + 1)); echo "selftest: ok   $name (passes)"
    else failed=$((failed + 1)); echo "selftest: FAIL $name: expected to pass:"; echo "$out" | grep FAIL | head -5 || true; fi
  elif ((rc != 0)) && grep -qE -- "$regex" <<<"$out"; then
    passed=$((passed + 1)); echo "selftest: ok   $name: $(grep -E -m1 -- "$regex" <<<"$out" | sed 's/^check-deploy: FAIL //' | cut -c1-150)"
  else
    failed=$((failed + 1)); echo "selftest: FAIL $name: check-deploy exit $rc, no line matching /$regex/:"
    echo "$out" | grep FAIL | head -5 || true
  fi
}
ONLY=("$@")
export -f yedit
export ROOT

expect unmodified PASS <<'EOF'
true
EOF

# ---- 1. The PodDisruptionBudget protects the server's pods.
expect pdb-no-selector 'PodDisruptionBudget/microbatch: no selector' <<'EOF'
yedit deploy/base/pdb.yaml 'delete docs[0].spec.selector'
EOF
expect pdb-selects-nothing 'selects the pods of no Deployment' <<'EOF'
yedit deploy/base/pdb.yaml 'docs[0].spec.selector.matchLabels.tier = "frontend"'
EOF

# ---- 2. GPU overlay: CUDA device, and only paths the CUDA image has.
expect gpu-no-cuda-device 'requests a GPU but sets no CUDA device' <<'EOF'
yedit deploy/overlays/gpu/gpu-patch.yaml 'delete docs[0].spec.template.spec.initContainers'
EOF
expect gpu-image-lacks-demo-models 'reads /opt/microbatch/demo-models, which deploy/docker/Dockerfile.cuda' <<'EOF'
sed -i '/demo-models \/opt\/microbatch\/demo-models/d' deploy/docker/Dockerfile.cuda
EOF

# ---- 3. Batch jobs: the output directory exists before the client runs.
expect cronjob-no-output-dir 'CronJob/microbatch-nightly: --output /data/out/result.npy: directory /data/out' <<'EOF'
yedit deploy/batch/cronjob.yaml 'delete docs[0].spec.jobTemplate.spec.template.spec.initContainers'
EOF
expect job-no-output-dir 'Job/microbatch-sharded: --output .*directory /data/out' <<'EOF'
yedit deploy/batch/indexed-job.yaml 'docs[0].spec.template.spec.initContainers[0].command = ["mkdir", "-p", "/data/elsewhere"]'
EOF

# ---- 4. The model repository is not a volume's root (lost+found).
expect repository-at-volume-root 'is the root of volume .models.: a freshly formatted volume' <<'EOF'
sed -i 's|--model_repository=/models/repository|--model_repository=/models|' deploy/base/configmap.yaml
EOF
expect init-fills-another-directory 'init container load-models mounts .models. but does not fill /models/repository' <<'EOF'
sed -i 's|cp -r /opt/microbatch/demo-models/. /models/repository/|cp -r /opt/microbatch/demo-models/. /models/|; s|mkdir -p /models/repository \&\& ||' deploy/base/deployment.yaml
EOF

# ---- 5. Unknown fields, in every kind the overlays render, at depth.
expect unknown-field-configmap "ConfigMap/microbatch-flags: unknown field 'bogusField'" <<'EOF'
yedit deploy/base/configmap.yaml 'docs[0].bogusField = 1'
EOF
expect unknown-field-deployment "Deployment/microbatch.*unknown field 'bogusField'" <<'EOF'
yedit deploy/base/deployment.yaml 'docs[0].spec.template.spec.initContainers[0].securityContext.bogusField = 1'
EOF
expect unknown-field-service "Service/microbatch-headless.*unknown field 'bogusField'" <<'EOF'
yedit deploy/base/service.yaml 'docs[1].spec.ports[0].bogusField = 1'
EOF
expect unknown-field-pdb "PodDisruptionBudget/microbatch.*unknown field 'bogusField'" <<'EOF'
yedit deploy/base/pdb.yaml 'docs[0].spec.selector.bogusField = 1'
EOF
expect unknown-field-hpa "HorizontalPodAutoscaler/microbatch.*unknown field 'bogusField'" <<'EOF'
yedit deploy/overlays/autoscale/hpa-patch.yaml 'docs[0].spec.behavior.scaleUp.policies[0].bogusField = 1'
EOF
expect unknown-field-servicemonitor "ServiceMonitor/microbatch.*unknown field 'bogusField'" <<'EOF'
yedit deploy/base/servicemonitor.yaml 'docs[0].spec.endpoints[0].bogusField = 1'
EOF
expect unknown-field-prometheusrule "PrometheusRule/microbatch.*unknown field 'bogusField'" <<'EOF'
yedit deploy/base/prometheusrule.yaml 'docs[0].spec.groups[0].rules[1].bogusField = 1'
EOF
expect unknown-field-cronjob "CronJob/microbatch-nightly.*unknown field 'bogusField'" <<'EOF'
yedit deploy/batch/cronjob.yaml 'docs[0].spec.jobTemplate.spec.template.spec.containers[0].resources.bogusField = 1'
EOF
expect unknown-field-job "Job/microbatch-sharded.*unknown field 'bogusField'" <<'EOF'
yedit deploy/batch/indexed-job.yaml 'docs[0].spec.template.spec.containers[0].env[0].valueFrom.fieldRef.bogusField = 1'
EOF
expect unknown-field-pvc "PersistentVolumeClaim/microbatch-batch-data.*unknown field 'bogusField'" <<'EOF'
yedit deploy/batch/pvc.yaml 'docs[0].spec.resources.bogusField = 1'
EOF
expect unknown-field-adapter-rules "prometheus-adapter-rules.yaml: rules\[0\].name: unknown field 'bogusField'" <<'EOF'
yedit deploy/overlays/autoscale/prometheus-adapter-rules.yaml 'docs[0].rules[0].name.bogusField = 1'
EOF

# ---- Autoscaling overlay.
expect hpa-metric-not-served 'metric microbatch_queue_depth is served by no prometheus-adapter rule' <<'EOF'
sed -i 's/name: microbatch_requests_in_flight_1m/name: microbatch_queue_depth/' deploy/overlays/autoscale/hpa-patch.yaml
EOF
expect hpa-scaledown-shorter-than-warmup 'scaleDown.stabilizationWindowSeconds 60 < the pods. warm-up budget 300' <<'EOF'
sed -i 's/stabilizationWindowSeconds: 600/stabilizationWindowSeconds: 60/' deploy/overlays/autoscale/hpa-patch.yaml
EOF
expect adapter-rule-unknown-metric 'microbatch_requests_inflight is not a metric the server exports' <<'EOF'
sed -i 's/microbatch_requests_in_flight{namespace/microbatch_requests_inflight{namespace/' deploy/overlays/autoscale/prometheus-adapter-rules.yaml
EOF
# (promtool comes with package prometheus, scripts/install-deps.sh)
command -v promtool >/dev/null && expect adapter-rule-bad-promql 'metricsQuery is not valid PromQL' <<'EOF'
sed -i 's/and on (<<.GroupBy>>)/and on <<.GroupBy>>/' deploy/overlays/autoscale/prometheus-adapter-rules.yaml
EOF

# ---- Dockerfiles.
expect dockerfile-slim-surgery 'builds an image name from an ARG plus text' <<'EOF'
sed -i 's|^FROM ${RUNTIME_IMAGE} AS runtime|FROM ${BUILD_IMAGE}-slim AS runtime|' Dockerfile
EOF
expect dockerfile-arg-busts-deps 'ARG RUN_TESTS is declared before the dependency layer' <<'EOF'
sed -i '/^ARG RUN_TESTS=0$/d; s|^WORKDIR /src$|WORKDIR /src\nARG RUN_TESTS=0|' Dockerfile
EOF
expect dockerfile-user-not-numeric 'USER must be numeric uid:gid' <<'EOF'
sed -i 's/^USER 10001:10001$/USER microbatch/' Dockerfile
EOF
expect dockerfile-gid-mismatch 'runs as 10001:10002 with fsGroup 10002; the image.s USER is 10001:10001' <<'EOF'
sed -i 's/runAsGroup: 10001/runAsGroup: 10002/; s/fsGroup: 10001/fsGroup: 10002/' deploy/base/deployment.yaml
EOF
expect dockerfile-missing-common 'does not COPY common/tensor' <<'EOF'
sed -i '/^COPY common common$/d' Dockerfile
EOF
expect cuda-abi-mismatch 'disagrees with libtorch-shared-with-deps-2.6.0\+cu126.zip' <<'EOF'
sed -i 's|libtorch-cxx11-abi-shared-with-deps-2.6.0|libtorch-shared-with-deps-2.6.0|' deploy/docker/Dockerfile.cuda
EOF
expect cuda-devel-final-stage 'is a devel/SDK image: use a runtime base' <<'EOF'
sed -i 's|^FROM ${CUDA_RUNTIME_IMAGE} AS runtime|FROM ${CUDA_BUILD_IMAGE} AS runtime|' deploy/docker/Dockerfile.cuda
EOF
expect cuda-runtime-is-build-stage 'derives from stage build, which compiles' <<'EOF'
sed -i 's|^FROM ${CUDA_RUNTIME_IMAGE} AS runtime|FROM build AS runtime|' deploy/docker/Dockerfile.cuda
EOF
expect cuda-pytorch-wheel 'LibTorch of a PyTorch wheel' <<'EOF'
sed -i 's|-DCMAKE_PREFIX_PATH=/opt/libtorch|-DCMAKE_PREFIX_PATH="$(python -c "import torch; print(torch.utils.cmake_prefix_path)")"|' deploy/docker/Dockerfile.cuda
EOF

echo "selftest: $passed passed, $failed failed"
((failed == 0))
