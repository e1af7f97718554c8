#!/usr/bin/env bash
# Offline checks of the Dockerfiles and the Kubernetes manifests (run in CI by
# scripts/test.sh): renders every kustomization, validates the objects against
# the Kubernetes and prometheus-operator schemas (npm kubernetes-models),
# rejects unknown fields, parses the Dockerfiles (npm dockerfile-ast) and
# checks what they copy and run, and cross-checks flags, ports and the
# shutdown arithmetic against the built binaries' --help.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOL=tools/deploy-check
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

for cmd in kubectl node npm; do
  command -v "$cmd" >/dev/null || { echo "check-deploy: $cmd is required" >&2; exit 1; }
done
if [[ ! -d "$TOOL/node_modules" ]]; then
  (cd "$TOOL" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

manifests=()
for k in deploy/overlays/cpu deploy/overlays/gpu deploy/batch; do
  name=$(echo "$k" | tr / _)
  kubectl kustomize "$k" >"$OUT/$name.yaml"
  manifests+=("$OUT/$name.yaml")
  echo "check-deploy: rendered $k ($(grep -c '^kind:' "$OUT/$name.yaml") objects)"
done

help_args=()
if [[ -x build/bin/microbatch-server && -x build/bin/microbatch ]]; then
  build/bin/microbatch-server --helpfull >"$OUT/server-help.txt" 2>&1 || true
  build/bin/microbatch batch --help >"$OUT/client-help.txt" 2>&1 || true
  help_args=(--server-help "$OUT/server-help.txt" --client-help "$OUT/client-help.txt")
else
  echo "check-deploy: build/bin not built; flag names are not cross-checked"
fi

node "$TOOL/check.mjs" --repo "$ROOT" --manifests "$(IFS=,; echo "${manifests[*]}")" \
  --dockerfiles "$ROOT/Dockerfile,$ROOT/deploy/docker/Dockerfile.cuda" "${help_args[@]}"
