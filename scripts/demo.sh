#!/usr/bin/env bash
# Installs dependencies, builds, writes a demo model repository and starts the
# server on it (gRPC on :8500, metrics on :8502). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
MODELS=${MODELS:-models}
if [[ ! -f "$MODELS/mlp/config.pbtxt" ]]; then
  build/bin/microbatch-make-models --output "$MODELS" --models mlp,pair
fi
cat <<MSG

microbatch demo: starting the server on $MODELS. In another terminal, try:

  build/bin/microbatch models
  build/bin/microbatch predict --model mlp --input 'x=[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6]'
  build/bin/microbatch predict --model pair --input 'a=[[1,2,3]]' --input 'b=[[4,5,6]]'

KServe v2 / Open Inference Protocol (REST on :8502, gRPC inference.GRPCInferenceService on :8500):

  curl -s localhost:8502/v2/models/pair
  curl -s localhost:8502/v2/models/pair/infer -d '{"inputs":[{"name":"a","shape":[1,3],"datatype":"FP32","data":[1,2,3]},{"name":"b","shape":[1,3],"datatype":"FP32","data":[4,5,6]}]}'

MSG
exec build/bin/microbatch-server --model_repository="$MODELS" "$@"
