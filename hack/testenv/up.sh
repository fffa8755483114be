#!/usr/bin/env bash
# Starts (or reuses) every component of the test environment and writes .testenv/env (DESIGN §9):
#   KUBECONFIG=… DATABASE_URL=… REDIS_URL=… KAFKA_BROKERS=… PATH=<folder holding kubectl>:$PATH
# Idempotent: running components are reused, dead ones are restarted, nothing else changes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(dirname "${BASH_SOURCE[0]}")
started=$SECONDS

bash "$HERE/postgres.sh" up
bash "$HERE/redis.sh" up
# Kafka and the Kubernetes control plane are independent and each takes a while: start them together.
bash "$HERE/kafka.sh" up & kafka_pid=$!
bash "$HERE/k8s.sh" up & k8s_pid=$!
kafka_rc=0; k8s_rc=0
wait $kafka_pid || kafka_rc=$?
wait $k8s_pid || k8s_rc=$?
((kafka_rc == 0)) || die "Kafka failed to start (see the message above and $LOG_DIR/kafka.log)"
((k8s_rc == 0)) || die "the Kubernetes control plane failed to start (see the message above and $LOG_DIR/)"

tmp=$(mktemp "$TESTENV_DIR/env.XXXXXX")
{
  echo "# written by hack/testenv/up.sh — source it: set -a; . .testenv/env; set +a"
  echo "KUBECONFIG=$(env_value k8s KUBECONFIG)"
  echo "DATABASE_URL=$(env_value postgres DATABASE_URL)"
  echo "REDIS_URL=$(env_value redis REDIS_URL)"
  echo "KAFKA_BROKERS=$(env_value kafka KAFKA_BROKERS)"
  echo "K8S_BIN_DIR=$(env_value k8s K8S_BIN_DIR)"
  echo "KUBE_APISERVER_URL=$(env_value k8s KUBE_APISERVER_URL)"
  echo "KUBE_UNPRIVILEGED_TOKEN=$(env_value k8s KUBE_UNPRIVILEGED_TOKEN)"
  echo "KAFKA_LIBS=$(env_value kafka KAFKA_LIBS)"
  echo "PATH=$(env_value k8s K8S_BIN_DIR):\$PATH"
} >"$tmp"
mv "$tmp" "$TESTENV_DIR/env"
log "test environment ready in $((SECONDS - started)) s; source .testenv/env to use it"
