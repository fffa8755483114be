#!/usr/bin/env bash
# make kind-down: deletes the kind cluster and everything in it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "$KIND" "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
"$KIND" delete cluster --name "$KIND_CLUSTER"
