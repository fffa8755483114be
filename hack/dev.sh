#!/usr/bin/env bash
# `make dev`: the platform on this machine. Expects the test environment up and the CRD installed
# (the Makefile does both first), then runs the operator from source, applies the sample tenants,
# waits until they are Ready and prints where everything is. Ctrl-C stops what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
set -a; source .testenv/env; set +a
LOG_DIR=$ROOT/.testenv/logs
mkdir -p "$LOG_DIR"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "[dev] stopping…"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "[dev] stopped (the test environment keeps running; 'make testenv-down' stops it)"
}
trap cleanup INT TERM EXIT

# --- operator -------------------------------------------------------------------------------
export SIMPTU_KEK_CREATE_IF_MISSING=true            # development: create the local KEK Secret
export SIMPTU_APP_ROLE_PASSWORD=${SIMPTU_APP_ROLE_PASSWORD:-simptu-app-dev}
export SIMPTU_AGENT_READINESS=applied                 # no kubelet here: dedicated agents never run Pods
export SIMPTU_METRICS_PORT=${SIMPTU_METRICS_PORT:-8080} SIMPTU_PROBE_PORT=${SIMPTU_PROBE_PORT:-8081}
export SIMPTU_ENDPOINT_API=${SIMPTU_ENDPOINT_API:-http://127.0.0.1:3003/v1}
export SIMPTU_ENDPOINT_WEBSOCKET=${SIMPTU_ENDPOINT_WEBSOCKET:-ws://127.0.0.1:4000/socket/websocket}
export SIMPTU_ENDPOINT_ISSUER=${SIMPTU_ENDPOINT_ISSUER:-http://127.0.0.1:3001}
node operator/src/main.ts >"$LOG_DIR/operator.log" 2>&1 &
pids+=($!)
echo "[dev] operator started (log: .testenv/logs/operator.log, metrics :$SIMPTU_METRICS_PORT/metrics)"
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$SIMPTU_PROBE_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "[dev] the operator exited; see .testenv/logs/operator.log"; tail -20 "$LOG_DIR/operator.log"; exit 1; }
  sleep 1
done

# --- sample tenants ---------------------------------------------------------------------------
kubectl apply --server-side --field-manager=simptu-dev -f config/samples/
echo "[dev] waiting for the sample tenants to become Ready…"
kubectl wait --for=condition=Ready -f config/samples/ --timeout=180s || {
  kubectl get tenants
  echo "[dev] not all tenants are Ready; see 'kubectl describe tenant <name>' and .testenv/logs/operator.log"
}
kubectl get tenants

cat <<MSG

Simptu is running.
  Tenants:           kubectl get tenants   (source .testenv/env first)
  Operator metrics:  http://127.0.0.1:$SIMPTU_METRICS_PORT/metrics
  Operator health:   http://127.0.0.1:$SIMPTU_PROBE_PORT/readyz
  Database:          psql "$DATABASE_URL"   (registry: select * from platform.tenants)
  Kafka:             $KAFKA_BROKERS
  The API, the realtime hub, the SSO login and the agent join here as they are built (see the issues).
Press Ctrl-C to stop.
MSG
wait "${pids[0]}"
