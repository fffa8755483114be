#!/usr/bin/env bash
# Builds Helm from the Go module proxy (no release tarball download needed) into
# .cache/helm/<version>/helm and prints its path. Idempotent: an existing binary is reused.
# `go install pkg@version` builds the module exactly as its go.mod pins it.
# @see https://go.dev/ref/mod#go-install
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
BIN_DIR="$ROOT/.cache/helm/$HELM_VERSION"
HELM="$BIN_DIR/helm"

# Someone else's helm (e.g. installed with a package manager) wins when HELM is set.
if [ -n "${HELM_BIN:-}" ]; then echo "$HELM_BIN"; exit 0; fi
if [ -x "$HELM" ]; then echo "$HELM"; exit 0; fi

command -v go >/dev/null || { echo "hack/helm.sh: Go is required to build Helm (or set HELM_BIN)" >&2; exit 1; }
mkdir -p "$BIN_DIR"
# Stamped the way Helm's own Makefile does it: its version, and the Kubernetes version that
# `helm template`/`helm lint` assume without a cluster (client-go v0.34 → 1.34 for v3.19).
K8S_MINOR="${HELM_K8S_MINOR:-34}"
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
  LDFLAGS="$LDFLAGS -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
done
GOBIN="$BIN_DIR" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install -ldflags "$LDFLAGS" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$HELM"
