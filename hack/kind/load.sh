#!/usr/bin/env bash
# make kind-load: copies the built images into the kind node (the chart's dev values use
# imagePullPolicy: Never, so nothing is pulled from a registry).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "$KIND" "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
for entry in "${SERVICES[@]}"; do
  "$KIND" load docker-image --name "$KIND_CLUSTER" "simptu/${entry%%:*}:$IMG_TAG"
done
