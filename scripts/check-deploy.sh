#!/usr/bin/env bash
# Offline checks of the Dockerfiles and the Kubernetes manifests (run in CI by
# scripts/test.sh): renders every kustomization, validates the objects against
# the Kubernetes and prometheus-operator schemas (npm kubernetes-models),
# rejects unknown fields at every level of every kind (with a probe that
# proves it), lints the Dockerfiles (tools/deploy-check/dockerfile-lint.mjs:
# FROM names, numeric non-root USER = the manifests' uid:gid, no devel base in
# the final stage, C++ ABI of LibTorch, ARG placement, COPY sources), checks
# the prometheus-adapter rules, cross-checks flags, ports and the shutdown
# arithmetic against the built binaries' --help, and the defects that once
# shipped (PDB selector, GPU device and image paths, batch output directory,
# model repository at a volume root). Then runs the checker's own self-tests
# (tools/deploy-check/selftest.sh: each defect reintroduced must fail;
# CHECK_DEPLOY_SELFTEST=0 skips them).
#
# Needs kubectl (for `kubectl kustomize`; a standalone `kustomize` also
# works), node and npm; the first run installs the checker's npm packages
# (package-lock.json) from the npm registry, later runs are offline.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOL=tools/deploy-check
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for cmd in node npm; do
  command -v "$cmd" >/dev/null || { echo "check-deploy: $cmd is required" >&2; exit 1; }
done
if command -v kubectl >/dev/null; then
  render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
else
  echo "check-deploy: kubectl (or kustomize) is required: https://kubernetes.io/docs/tasks/tools/ (a static binary; no cluster needed)" >&2
  exit 1
fi
if [[ ! -d "$TOOL/node_modules" ]]; then
  (cd "$TOOL" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

manifests=()
for k in deploy/overlays/cpu deploy/overlays/gpu deploy/overlays/autoscale deploy/overlays/tls deploy/batch; do
  name=$(echo "$k" | tr / _)
  render "$k" >"$OUT/$name.yaml"
  manifests+=("$OUT/$name.yaml")
  echo "check-deploy: rendered $k ($(grep -c '^kind:' "$OUT/$name.yaml") objects)"
done
adapter_rules=$(ls deploy/overlays/*/prometheus-adapter-rules.yaml 2>/dev/null | sed "s|^|$ROOT/|" | paste -sd, -)

help_args=()
if [[ -x build/bin/microbatch-server && -x build/bin/microbatch ]]; then
  build/bin/microbatch-server --helpfull >"$OUT/server-help.txt" 2>&1 || true
  build/bin/microbatch batch --help >"$OUT/client-help.txt" 2>&1 || true
  help_args=(--server-help "$OUT/server-help.txt" --client-help "$OUT/client-help.txt")
else
  echo "check-deploy: build/bin not built; flag names are not cross-checked"
fi

node "$TOOL/check.mjs" --repo "$ROOT" --manifests "$(IFS=,; echo "${manifests[*]}")" \
  --dockerfiles "$ROOT/Dockerfile,$ROOT/deploy/docker/Dockerfile.cuda" --adapter-rules "$adapter_rules" "${help_args[@]}"

if [[ ${CHECK_DEPLOY_SELFTEST:-1} != 0 ]]; then
  "$TOOL/selftest.sh"
fi
