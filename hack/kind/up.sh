#!/usr/bin/env bash
# make kind-up: creates the kind cluster (idempotent) and installs ingress-nginx for kind.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need "$KIND" "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.12.1}"

if "$KIND" get clusters | grep -qx "$KIND_CLUSTER"; then
  echo "kind cluster $KIND_CLUSTER exists"
else
  "$KIND" create cluster --name "$KIND_CLUSTER" --config "$ROOT/kind-config.yaml" --wait 120s
fi
kc apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX_VERSION/deploy/static/provider/kind/deploy.yaml"
kc -n ingress-nginx wait --for=condition=Ready pod --selector=app.kubernetes.io/component=controller --timeout=180s
echo "cluster $KIND_CLUSTER is up (context $KUBE_CONTEXT); next: make images kind-load deploy"
