#!/usr/bin/env bash
# make deploy: installs (or upgrades) the chart with the dev-kind values into the kind cluster,
# then applies the sample tenants. The KEK Secret is created once and never replaced: a new KEK
# would make every tenant's wrapped data key unreadable (DESIGN §5.2).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need openssl "apt-get install openssl"
HELM="$(bash "$ROOT/hack/helm.sh")"

# The namespace enforces Pod Security "restricted", like tenant namespaces.
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
kc label --overwrite namespace "$NAMESPACE" \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest

if ! kc -n "$NAMESPACE" get secret simptu-kek >/dev/null 2>&1; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  openssl rand 32 >"$tmp/kek"
  # `kek`: the raw 256-bit key (the operator); `kek-base64`: the same as text (the services' env).
  kc -n "$NAMESPACE" create secret generic simptu-kek \
    --from-file=kek="$tmp/kek" --from-literal=kek-base64="$(base64 -w0 <"$tmp/kek")"
  echo "created the KEK Secret $NAMESPACE/simptu-kek (back it up: losing it loses every tenant's data)"
fi

if ! kc -n "$NAMESPACE" get secret simptu-auth >/dev/null 2>&1; then
  # the SSO's cookie-signing keys (comma-separated; put a new one first to rotate)
  kc -n "$NAMESPACE" create secret generic simptu-auth --from-literal=cookie-keys="$(openssl rand -hex 32)"
fi

"$HELM" upgrade --install simptu "$ROOT/charts/simptu" --kube-context "$KUBE_CONTEXT" \
  --namespace "$NAMESPACE" -f "$ROOT/charts/simptu/ci/dev-kind-values.yaml" \
  --set images.tag="$IMG_TAG" --wait --timeout 10m
kc apply --server-side -f "$ROOT/config/samples/"
echo
echo "API docs:  http://api.simptu.localhost/v1/docs"
echo "WebSocket: ws://rt.simptu.localhost/socket/websocket"
echo "Tenants:   kubectl --context $KUBE_CONTEXT get tenants"
