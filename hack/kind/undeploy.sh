#!/usr/bin/env bash
# make undeploy: deletes the sample tenants while the operator still runs (so its finalizers
# clean up namespaces, topics and schemas), then uninstalls the release. The CRD and the KEK
# Secret stay (Helm never deletes crds/; `make uninstall` removes the CRD).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HELM="$(bash "$ROOT/hack/helm.sh")"
kc delete --ignore-not-found --wait --timeout=180s -f "$ROOT/config/samples/" || true
"$HELM" uninstall simptu --kube-context "$KUBE_CONTEXT" --namespace "$NAMESPACE" --ignore-not-found --wait
