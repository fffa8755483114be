# Shared by hack/kind/*.sh. Overridable: KIND_CLUSTER, IMG_TAG, NAMESPACE, KIND, DOCKER.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-simptu}"
IMG_TAG="${IMG_TAG:-dev}"
NAMESPACE="${NAMESPACE:-simptu-system}"
KIND="${KIND:-kind}"
DOCKER="${DOCKER:-docker}"
KUBE_CONTEXT="kind-$KIND_CLUSTER"
# Services that have a Dockerfile today (services/agent and services/auth join when they land).
SERVICES=()
for df in "$ROOT/operator/Dockerfile" "$ROOT"/services/*/Dockerfile; do
  [ -f "$df" ] && SERVICES+=("$(basename "$(dirname "$df")"):${df#"$ROOT/"}")
done
need() { command -v "$1" >/dev/null || { echo "$1 is required: $2" >&2; exit 1; }; }
kc() { kubectl --context "$KUBE_CONTEXT" "$@"; }
