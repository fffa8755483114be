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
export SIMPTU_DEDICATED_AGENT_READINESS=applied                 # no kubelet here: dedicated agents never run Pods
export SIMPTU_METRICS_PORT=${SIMPTU_METRICS_PORT:-8080} SIMPTU_PROBE_PORT=${SIMPTU_PROBE_PORT:-8081}
export SIMPTU_ENDPOINT_API=${SIMPTU_ENDPOINT_API:-http://127.0.0.1:3003/v1}
export SIMPTU_ENDPOINT_WEBSOCKET=${SIMPTU_ENDPOINT_WEBSOCKET:-ws://127.0.0.1:4000/socket/websocket}
export SIMPTU_ENDPOINT_ISSUER=${SIMPTU_ENDPOINT_ISSUER:-http://127.0.0.1:3001}
# --- platform Secrets (before the operator reads them) ------------------------------------------
# What a cluster install gets from its admin (docs/install.md): the database URLs and Redis URL
# the operator hands to dedicated agents (iron-gym runs one). Idempotent: apply, don't create.
APP_DB_URL=$(node -e 'const u=new URL(process.env.DATABASE_URL);u.username=process.env.SIMPTU_APP_ROLE??"simptu_app";u.password=process.env.SIMPTU_APP_ROLE_PASSWORD;console.log(u.toString())')
kubectl create namespace simptu-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n simptu-system create secret generic simptu-database --dry-run=client -o yaml \
  --from-literal=admin-url="$DATABASE_URL" --from-literal=app-url="$APP_DB_URL" \
  --from-literal=app-password="$SIMPTU_APP_ROLE_PASSWORD" | kubectl apply -f - >/dev/null
kubectl -n simptu-system create secret generic simptu-redis --dry-run=client -o yaml \
  --from-literal=url="$REDIS_URL" | kubectl apply -f - >/dev/null

# The samples' channel credentials (placeholders: no message leaves this machine in development).
kubectl -n simptu-system create secret generic iron-gym-twilio --dry-run=client -o yaml \
  --from-literal=accountSid=ACdev00000000000000000000000000000 --from-literal=authToken=dev-twilio-token \
  | kubectl apply -f - >/dev/null
kubectl -n simptu-system create secret generic harbor-hotel-meta --dry-run=client -o yaml \
  --from-literal=pageAccessToken=dev-page-token --from-literal=appSecret=dev-app-secret \
  | kubectl apply -f - >/dev/null

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
kubectl get -f config/samples/

# --- services ---------------------------------------------------------------------------------
# They connect as the services' NOINHERIT login role the operator created, unwrap tenant keys
# with the KEK from the platform Secret, and verify tokens against the SSO's JWKS.
KEK=$(kubectl -n simptu-system get secret simptu-kek -o jsonpath='{.data.kek}')
ISSUER=${SIMPTU_ENDPOINT_ISSUER}
JWKS_URI=$ISSUER/jwks

start_service() { # name, port, command…
  local name=$1 port=$2; shift 2
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && { echo "[dev] $name ready on :$port (log: .testenv/logs/$name.log)"; return; }
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "[dev] $name exited; see .testenv/logs/$name.log"; tail -20 "$LOG_DIR/$name.log"; exit 1; }
    sleep 1
  done
  echo "[dev] $name did not become ready in 60 s; see .testenv/logs/$name.log"; exit 1
}

# Development mail catcher (hack/dev-mail.ts): every mail the platform sends — the agent's e-mail
# replies and staff messages, the SSO's mails — is logged and kept under .dev/mail/, none delivered.
MAIL_PORT=${SIMPTU_DEV_MAIL_PORT:-1025}
SMTP_URL=smtp://127.0.0.1:$MAIL_PORT
SIMPTU_DEV_MAIL_PORT=$MAIL_PORT node hack/dev-mail.ts >"$LOG_DIR/mail.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  (exec 3<>"/dev/tcp/127.0.0.1/$MAIL_PORT") 2>/dev/null && { echo "[dev] mail catcher on $SMTP_URL (log: .testenv/logs/mail.log, mails: .dev/mail/)"; break; }
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "[dev] the mail catcher exited; see .testenv/logs/mail.log"; tail -20 "$LOG_DIR/mail.log"; exit 1; }
  sleep 1
done

if [[ -f services/auth/src/main.ts ]]; then
  # development: the SSO migrates its `auth` schema with the superuser URL; see docs/auth.md for the
  # least-privilege role in production
  SIMPTU_AUTH_DATABASE_URL=$DATABASE_URL SIMPTU_AUTH_REDIS_URL=$REDIS_URL SIMPTU_AUTH_KEK=$KEK \
  SIMPTU_AUTH_ISSUER=$ISSUER SIMPTU_AUTH_PORT=3001 SIMPTU_AUTH_COOKIE_KEYS=simptu-dev-cookie-key-0123456789abcdef \
  SIMPTU_AUTH_MAIL_SMTP_URL=$SMTP_URL \
    start_service auth 3001 node services/auth/src/main.ts
fi
SIMPTU_API_DATABASE_URL=$APP_DB_URL SIMPTU_API_KEK=$KEK SIMPTU_API_PORT=3003 \
SIMPTU_API_AUTH_ISSUER=$ISSUER SIMPTU_API_AUTH_JWKS_URI=$JWKS_URI \
  start_service api 3003 node services/api/src/main.ts
SIMPTU_REALTIME_DATABASE_URL=$APP_DB_URL SIMPTU_REALTIME_REDIS_URL=$REDIS_URL SIMPTU_REALTIME_KAFKA_BROKERS=$KAFKA_BROKERS \
SIMPTU_REALTIME_KEK_BASE64=$KEK SIMPTU_REALTIME_PORT=4000 \
SIMPTU_REALTIME_AUTH_ISSUER=$ISSUER SIMPTU_REALTIME_AUTH_JWKS_URI=$JWKS_URI \
  start_service realtime 4000 node services/realtime/src/main.ts
if [[ -f services/agent/src/main.ts ]]; then
  SIMPTU_AGENT_DATABASE_URL=$APP_DB_URL SIMPTU_AGENT_REDIS_URL=$REDIS_URL SIMPTU_AGENT_KAFKA_BROKERS=$KAFKA_BROKERS \
  SIMPTU_AGENT_KEK=$KEK SIMPTU_AGENT_MODE=pool SIMPTU_AGENT_METRICS_PORT=3005 \
  SIMPTU_AGENT_CHANNELS_SMTP_URL=$SMTP_URL \
    start_service agent 3005 node services/agent/src/main.ts
fi

cat <<MSG

Simptu is running.
  Tenants:           kubectl get tenants   (source .testenv/env first)
  API:               http://127.0.0.1:3003/v1   — docs at http://127.0.0.1:3003/docs
  WebSocket hub:     ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0   (Phoenix Channels V2)
  SSO:               $ISSUER   (login, discovery at $ISSUER/.well-known/openid-configuration)
  Operator metrics:  http://127.0.0.1:$SIMPTU_METRICS_PORT/metrics
  Database:          psql "$DATABASE_URL"   (registry: select * from platform.tenants)
  Kafka:             $KAFKA_BROKERS
  Mail (caught):     $SMTP_URL — logged in .testenv/logs/mail.log, kept in .dev/mail/*.eml
  Logs:              .testenv/logs/{operator,auth,api,realtime,agent,mail}.log
Press Ctrl-C to stop.
MSG
wait "${pids[0]}"
