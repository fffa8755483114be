#!/usr/bin/env bash
# Kubernetes part of the test environment (DESIGN §9): etcd, kube-apiserver and
# kube-controller-manager as local processes, plus kubectl.
#
#   k8s.sh build    ensure the binaries exist (built once from the Go module proxy, cached)
#   k8s.sh up       build if needed, then start or reuse etcd, kube-apiserver, kube-controller-manager
#   k8s.sh down     stop them (idempotent; etcd data, pki and k8s.env are kept)
#   k8s.sh status   exit 0 when all of them are healthy
#
# Binaries: $CACHE_DIR/k8s/<k8s-version>/bin/{etcd,kube-apiserver,kube-controller-manager,kubectl},
# built from the wrapper modules in hack/testenv/k8s-build/. When KUBEBUILDER_ASSETS names a folder
# holding etcd and kube-apiserver (envtest binaries), those are used and nothing is built.
#
# Writes $TESTENV_DIR/kubeconfig (context simptu-testenv, admin token) and
# $TESTENV_DIR/k8s.env: KUBECONFIG, K8S_BIN_DIR, KUBE_APISERVER_URL, KUBE_CA_FILE,
# KUBE_UNPRIVILEGED_TOKEN, KUBE_ADMIN_TOKEN, KUBERNETES_VERSION.
source "$(dirname "$0")/lib.sh"

K8S_VERSION=v1.34.4   # k8s.io/kubernetes; staging modules pinned to v0.34.4 in k8s-build/kubernetes/go.mod
ETCD_VERSION=v3.6.16  # go.etcd.io/etcd/server/v3, see k8s-build/etcd/go.mod
BUILD_SRC=$ROOT_DIR/hack/testenv/k8s-build
BUILD_TIMEOUT=${K8S_BUILD_TIMEOUT:-5400}   # seconds; the first build takes several minutes on 2 cores
START_TIMEOUT=${K8S_START_TIMEOUT:-90}

PKI_DIR=$TESTENV_DIR/pki
ETCD_DATA=$TESTENV_DIR/etcd
KUBECONFIG_FILE=$TESTENV_DIR/kubeconfig
ENV_FILE=$TESTENV_DIR/k8s.env
PORTS_FILE=$RUN_DIR/k8s.ports   # ports of the last run, reused on restart
SA_ISSUER=https://kubernetes.default.svc.cluster.local
ADMIN_USER=simptu-testenv-admin
UNPRIV_USER=simptu-test-unprivileged

# ---------------------------------------------------------------- binaries

BIN_DIR=""          # folder with etcd, kube-apiserver, kubectl (and kube-controller-manager)
KCM_BIN=""          # empty when no controller-manager is available (KUBEBUILDER_ASSETS without it)
KUBE_VERSION=""

build_bin_dir() { echo "$CACHE_DIR/k8s/$K8S_VERSION/bin"; }

# do_build OUT_DIR: runs in the background, output goes to the build log
do_build() {
  local out=$1 tmp=$1/../.tmp
  rm -rf "$tmp"; mkdir -p "$tmp"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local x="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  set -x
  go version
  local need_k8s=0 b
  for b in kube-apiserver kube-controller-manager kubectl; do [[ -x $out/$b ]] || need_k8s=1; done
  if ((need_k8s)); then
    (cd "$BUILD_SRC/kubernetes" && go build -trimpath -ldflags "-s -w$x" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  fi
  if [[ ! -x $out/etcd ]]; then
    (cd "$BUILD_SRC/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  fi
  set +x
  for b in "$tmp"/*; do [[ -e $b ]] && mv -f "$b" "$out/"; done
  rmdir "$tmp"
}

ensure_built() {
  local out; out=$(build_bin_dir)
  local b missing=()
  for b in etcd kube-apiserver kube-controller-manager kubectl; do [[ -x $out/$b ]] || missing+=("$b"); done
  ((${#missing[@]} == 0)) && return 0
  command -v go >/dev/null || die "Go is needed to build ${missing[*]} (or set KUBEBUILDER_ASSETS to a folder with etcd, kube-apiserver and kubectl)"
  mkdir -p "$out"
  # one build at a time, even when several scripts run up at once
  exec 8>"$out/../.build.lock"
  if ! flock -n 8; then
    log "another process is building the Kubernetes binaries; waiting for it"
    flock -w "$BUILD_TIMEOUT" 8 || die "timed out waiting for the other build; see $LOG_DIR/k8s-build.log"
    missing=()
    for b in etcd kube-apiserver kube-controller-manager kubectl; do [[ -x $out/$b ]] || missing+=("$b"); done
    if ((${#missing[@]} == 0)); then exec 8>&-; return 0; fi
  fi
  local logf=$LOG_DIR/k8s-build.log
  log "building ${missing[*]} (kubernetes $K8S_VERSION, etcd $ETCD_VERSION) into $out"
  log "the first build takes several minutes; progress in $logf"
  : >"$logf"
  # own session, so that an interrupted or timed-out build can be stopped as a whole
  setsid bash "$0" __build "$out" >>"$logf" 2>&1 </dev/null &
  local pid=$! start=$SECONDS next=$((SECONDS + 60))
  trap 'kill -TERM -- -'"$pid"' 2>/dev/null' EXIT
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start >= BUILD_TIMEOUT)); then
      kill -TERM -- "-$pid" 2>/dev/null || true
      die "building the Kubernetes binaries took longer than ${BUILD_TIMEOUT} s; see $logf"
    fi
    sleep 1
    if ((SECONDS >= next)); then log "still building ($((SECONDS - start)) s)"; next=$((next + 60)); fi
  done
  local rc=0; wait "$pid" || rc=$?
  trap - EXIT
  exec 8>&-
  ((rc == 0)) || die "building the Kubernetes binaries failed (exit $rc); see $logf (last lines below)
$(tail -n 20 "$logf")"
  for b in "${missing[@]}"; do [[ -x $out/$b ]] || die "build finished but $out/$b is missing; see $logf"; done
  log "built ${missing[*]} in $((SECONDS - start)) s"
}

resolve_bins() {
  local assets=${KUBEBUILDER_ASSETS:-}
  if [[ -n $assets && -x $assets/etcd && -x $assets/kube-apiserver ]]; then
    assets=$(cd "$assets" && pwd)
    if [[ -x $assets/kubectl ]]; then
      BIN_DIR=$assets
    else
      # K8S_BIN_DIR must hold kubectl too: link the assets next to a kubectl from PATH
      local k=$(build_bin_dir)/kubectl
      [[ -x $k ]] || k=$(command -v kubectl || true)
      [[ -n $k ]] || die "KUBEBUILDER_ASSETS=$assets has no kubectl, there is none on PATH and none built; run without KUBEBUILDER_ASSETS once to build it"
      BIN_DIR=$TESTENV_DIR/k8s-bin
      rm -rf "$BIN_DIR"; mkdir -p "$BIN_DIR"
      ln -s "$assets"/* "$BIN_DIR/"
      ln -sf "$k" "$BIN_DIR/kubectl"
    fi
    if [[ -x $assets/kube-controller-manager ]]; then
      KCM_BIN=$BIN_DIR/kube-controller-manager
    else
      log "KUBEBUILDER_ASSETS has no kube-controller-manager: not running it (namespaces will not finish deleting, no garbage collection)"
      KCM_BIN=""
    fi
    KUBE_VERSION=$("$BIN_DIR/kube-apiserver" --version 2>/dev/null | awk '{print $2}') || true
    [[ -n $KUBE_VERSION ]] || KUBE_VERSION=unknown
    return 0
  fi
  [[ -z $assets ]] || log "KUBEBUILDER_ASSETS=$assets lacks etcd or kube-apiserver; using the cached build"
  ensure_built
  BIN_DIR=$(build_bin_dir)
  KCM_BIN=$BIN_DIR/kube-controller-manager
  KUBE_VERSION=$K8S_VERSION
}

# ---------------------------------------------------------------- pki

PKI_FILES=(ca.crt ca.key apiserver.crt apiserver.key sa.key sa.pub admin.crt admin.key tokens.csv)

ensure_pki() {
  local f ok=1
  for f in "${PKI_FILES[@]}"; do [[ -s $PKI_DIR/$f ]] || ok=0; done
  ((ok)) && return 0
  command -v openssl >/dev/null || apt_install openssl
  log "generating certificates and tokens in $PKI_DIR"
  # components started with the old pki would not trust the new one
  stop_all quiet
  rm -rf "$PKI_DIR"; mkdir -p "$PKI_DIR"; chmod 700 "$PKI_DIR"
  (
    cd "$PKI_DIR"
    exec >>"$LOG_DIR/k8s-pki.log" 2>&1
    set -e
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=simptu-testenv-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf '%s\n' \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
      >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=$ADMIN_USER"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    rm -f ./*.csr ./*.ext ca.srl
    # token,user,uid,"groups" (see --token-auth-file)
    {
      echo "$(openssl rand -hex 24),$ADMIN_USER,$ADMIN_USER,\"system:masters\""
      echo "$(openssl rand -hex 24),$UNPRIV_USER,$UNPRIV_USER"
    } >tokens.csv
    chmod 600 ./*.key tokens.csv
  ) || die "generating certificates failed; see $LOG_DIR/k8s-pki.log"
}

admin_token() { awk -F, -v u="$ADMIN_USER" '$2 == u {print $1}' "$PKI_DIR/tokens.csv"; }
unpriv_token() { awk -F, -v u="$UNPRIV_USER" '$2 == u {print $1}' "$PKI_DIR/tokens.csv"; }

# ---------------------------------------------------------------- state

ETCD_PORT="" ETCD_PEER_PORT="" APISERVER_PORT="" KCM_PORT="" APISERVER_ETCD_PORT="" KCM_APISERVER_PORT=""

load_ports() {
  if [[ -f $PORTS_FILE ]]; then
    ETCD_PORT=$(sed -n 's/^ETCD_PORT=//p' "$PORTS_FILE")
    ETCD_PEER_PORT=$(sed -n 's/^ETCD_PEER_PORT=//p' "$PORTS_FILE")
    APISERVER_PORT=$(sed -n 's/^APISERVER_PORT=//p' "$PORTS_FILE")
    APISERVER_ETCD_PORT=$(sed -n 's/^APISERVER_ETCD_PORT=//p' "$PORTS_FILE")
    KCM_PORT=$(sed -n 's/^KCM_PORT=//p' "$PORTS_FILE")
    KCM_APISERVER_PORT=$(sed -n 's/^KCM_APISERVER_PORT=//p' "$PORTS_FILE")
  fi
  if [[ -z $APISERVER_PORT ]]; then
    local url; url=$(env_value k8s KUBE_APISERVER_URL)
    APISERVER_PORT=${url##*:}
  fi
}

save_ports() {
  write_if_changed "$PORTS_FILE" "$(printf '%s\n' "ETCD_PORT=$ETCD_PORT" "ETCD_PEER_PORT=$ETCD_PEER_PORT" \
    "APISERVER_PORT=$APISERVER_PORT" "APISERVER_ETCD_PORT=$APISERVER_ETCD_PORT" "KCM_PORT=$KCM_PORT" "KCM_APISERVER_PORT=$KCM_APISERVER_PORT")"
}

# write_if_changed FILE CONTENT: leaves the file alone when it already holds CONTENT
write_if_changed() {
  local file=$1 content=$2
  if [[ -f $file ]] && [[ $(<"$file") == "$content" ]]; then return 0; fi
  printf '%s\n' "$content" >"$file.tmp.$$"
  mv -f "$file.tmp.$$" "$file"
}

# pick_port VAR: keeps the previous port unless something else listens on it now
pick_port() {
  local var=$1 p=${!1}
  if [[ -z $p ]] || port_open "$p"; then p=$(free_port); fi
  printf -v "$var" '%s' "$p"
}

# alive COMP BINARY: the pid file names a live process running BINARY (guards against reused pids)
alive() {
  is_running "$1" || return 1
  local pid; pid=$(<"$RUN_DIR/$1.pid")
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# drop a pid file that points at some other process, so stop_comp never signals it
forget_stale() {
  local comp=$1 bin=$2
  if is_running "$comp" && ! alive "$comp" "$bin"; then rm -f "$RUN_DIR/$comp.pid"; fi
}

# prefix for start_bg: the daemons must not inherit the lock file descriptors 8 and 9
NOLOCK=(bash -c 'exec 8>&- 9>&-; exec "$@"' _)

# poll TIMEOUT CMD...: like wait_for but returns 1 instead of dying
poll() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.5
  done
}

# ---------------------------------------------------------------- health checks

etcd_healthy() {
  [[ -n $ETCD_PORT ]] && curl -sf -m 3 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}

apiserver_ready() {
  [[ -n $APISERVER_PORT ]] && [[ $(curl -sf -m 5 --cacert "$PKI_DIR/ca.crt" \
    -H "Authorization: Bearer $(admin_token)" "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null) == ok ]]
}

kcm_healthy() {
  [[ -n $KCM_PORT ]] && [[ $(curl -sk -m 3 "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null) == ok ]]
}

# ---------------------------------------------------------------- components

start_etcd() {
  pick_port ETCD_PORT; pick_port ETCD_PEER_PORT
  mkdir -p "$ETCD_DATA"; chmod 700 "$ETCD_DATA"
  log "starting etcd on 127.0.0.1:$ETCD_PORT (data in $ETCD_DATA)"
  start_bg etcd "${NOLOCK[@]}" "$BIN_DIR/etcd" \
    --name=simptu-testenv \
    --data-dir="$ETCD_DATA" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="simptu-testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true \
    --log-level=warn
  save_ports
  wait_for etcd 60 etcd_healthy
}

start_apiserver() {
  pick_port APISERVER_PORT
  log "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
  write_client_files
  start_bg kube-apiserver "${NOLOCK[@]}" "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --cert-dir="$PKI_DIR/apiserver-generated" \
    --tls-cert-file="$PKI_DIR/apiserver.crt" \
    --tls-private-key-file="$PKI_DIR/apiserver.key" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --authorization-mode=RBAC \
    --token-auth-file="$PKI_DIR/tokens.csv" \
    --service-account-issuer="$SA_ISSUER" \
    --api-audiences="$SA_ISSUER" \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --allow-privileged=true \
    --profiling=false
  APISERVER_ETCD_PORT=$ETCD_PORT
  save_ports
  wait_for kube-apiserver "$START_TIMEOUT" apiserver_ready
}

kcm_controllers() {
  # old short names are accepted as aliases by every release
  local c=namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation,root-ca-cert-publisher
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  if [[ $minor =~ ^[0-9]+$ ]] && ((minor >= 30)); then c+=,validatingadmissionpolicy-status-controller; fi
  echo "$c"
}

start_kcm() {
  pick_port KCM_PORT
  log "starting kube-controller-manager (healthz on https://127.0.0.1:$KCM_PORT)"
  write_kcm_kubeconfig
  start_bg kube-controller-manager "${NOLOCK[@]}" "$KCM_BIN" \
    --kubeconfig="$PKI_DIR/kcm.kubeconfig" \
    --controllers="$(kcm_controllers)" \
    --service-account-private-key-file="$PKI_DIR/sa.key" \
    --root-ca-file="$PKI_DIR/ca.crt" \
    --use-service-account-credentials=false \
    --leader-elect=false \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --cert-dir="$PKI_DIR/kcm-generated" \
    --profiling=false
  KCM_APISERVER_PORT=$APISERVER_PORT
  save_ports
  wait_for kube-controller-manager 60 kcm_healthy
}

# the controller-manager's own kubeconfig (admin client certificate), not editable by users
write_kcm_kubeconfig() {
  write_if_changed "$PKI_DIR/kcm.kubeconfig" "apiVersion: v1
kind: Config
clusters:
- name: simptu-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI_DIR/ca.crt
users:
- name: $ADMIN_USER
  user:
    client-certificate: $PKI_DIR/admin.crt
    client-key: $PKI_DIR/admin.key
contexts:
- name: simptu-testenv
  context:
    cluster: simptu-testenv
    user: $ADMIN_USER
current-context: simptu-testenv"
  chmod 600 "$PKI_DIR/kcm.kubeconfig"
}

# The kubeconfig authenticates with the admin token rather than the admin client certificate
# ($PKI_DIR/admin.{crt,key}, O=system:masters): a client certificate would win over any
# `kubectl --token=...` given on top of it, which is how tests switch identities.
write_client_files() {
  local b64='base64 -w0'
  write_if_changed "$KUBECONFIG_FILE" "apiVersion: v1
kind: Config
clusters:
- name: simptu-testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 <"$PKI_DIR/ca.crt")
users:
- name: $ADMIN_USER
  user:
    token: $(admin_token)
contexts:
- name: simptu-testenv
  context:
    cluster: simptu-testenv
    user: $ADMIN_USER
current-context: simptu-testenv"
  chmod 600 "$KUBECONFIG_FILE"
  write_if_changed "$ENV_FILE" "KUBECONFIG=$KUBECONFIG_FILE
K8S_BIN_DIR=$BIN_DIR
KUBE_APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
KUBE_CA_FILE=$PKI_DIR/ca.crt
KUBE_UNPRIVILEGED_TOKEN=$(unpriv_token)
KUBE_ADMIN_TOKEN=$(admin_token)
KUBERNETES_VERSION=$KUBE_VERSION"
}

stop_all() {
  local quiet=${1:-}
  forget_stale kube-controller-manager kube-controller-manager
  forget_stale kube-apiserver kube-apiserver
  forget_stale etcd etcd
  stop_comp kube-controller-manager
  stop_comp kube-apiserver
  stop_comp etcd
  [[ -n $quiet ]] || log "k8s: etcd, kube-apiserver and kube-controller-manager are stopped"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  exec 9>"$RUN_DIR/k8s.lock"
  flock -w 600 9 || die "another k8s.sh up/down holds $RUN_DIR/k8s.lock"
  resolve_bins
  ensure_pki
  load_ports
  local started=() reused=()

  # etcd
  forget_stale etcd etcd
  if alive etcd etcd && poll 20 etcd_healthy; then
    reused+=(etcd)
  else
    is_running etcd && { log "etcd is running but unhealthy; restarting it"; stop_comp etcd; }
    start_etcd; started+=(etcd)
  fi

  # kube-apiserver: must talk to the current etcd port
  forget_stale kube-apiserver kube-apiserver
  # after an etcd restart give the apiserver time to reconnect before restarting it too
  local grace=10; ((${#started[@]} == 0)) || grace=30
  if alive kube-apiserver kube-apiserver && [[ $APISERVER_ETCD_PORT == "$ETCD_PORT" ]] \
    && poll "$grace" apiserver_ready; then
    reused+=(kube-apiserver)
  else
    is_running kube-apiserver && { log "kube-apiserver is running but not ready (or on an old etcd); restarting it"; stop_comp kube-apiserver; }
    start_apiserver; started+=(kube-apiserver)
  fi
  write_client_files

  # kube-controller-manager (restart when the apiserver came back on another port)
  if [[ -n $KCM_BIN ]]; then
    forget_stale kube-controller-manager kube-controller-manager
    if alive kube-controller-manager kube-controller-manager && [[ $KCM_APISERVER_PORT == "$APISERVER_PORT" ]] \
      && poll 10 kcm_healthy; then
      reused+=(kube-controller-manager)
    else
      is_running kube-controller-manager && { log "kube-controller-manager is unhealthy; restarting it"; stop_comp kube-controller-manager; }
      start_kcm; started+=(kube-controller-manager)
    fi
  fi
  save_ports

  if ((${#started[@]} == 0)); then
    log "k8s: reusing running ${reused[*]} (kube-apiserver https://127.0.0.1:$APISERVER_PORT)"
  else
    log "k8s: started ${started[*]}${reused[*]:+; reused ${reused[*]}} (kube-apiserver https://127.0.0.1:$APISERVER_PORT, $KUBE_VERSION)"
  fi
  log "k8s: KUBECONFIG=$KUBECONFIG_FILE, environment in $ENV_FILE"
}

cmd_down() {
  exec 9>"$RUN_DIR/k8s.lock"
  flock -w 120 9 || die "another k8s.sh up/down holds $RUN_DIR/k8s.lock"
  stop_all
}

cmd_status() {
  load_ports
  local rc=0
  if alive etcd etcd && etcd_healthy; then log "etcd: healthy (127.0.0.1:$ETCD_PORT)"; else log "etcd: not running/healthy"; rc=1; fi
  if alive kube-apiserver kube-apiserver && [[ -f $PKI_DIR/tokens.csv ]] && apiserver_ready; then
    log "kube-apiserver: ready (https://127.0.0.1:$APISERVER_PORT)"
  else log "kube-apiserver: not running/ready"; rc=1; fi
  local assets=${KUBEBUILDER_ASSETS:-}
  if [[ -n $assets && -x $assets/etcd && -x $assets/kube-apiserver && ! -x $assets/kube-controller-manager ]]; then
    log "kube-controller-manager: not used (KUBEBUILDER_ASSETS has none)"
  elif alive kube-controller-manager kube-controller-manager && kcm_healthy; then
    log "kube-controller-manager: healthy"
  else log "kube-controller-manager: not running/healthy"; rc=1; fi
  return "$rc"
}

case ${1:-} in
  __build) do_build "$2" ;;   # internal: the background build started by ensure_built
  build) resolve_bins; log "k8s binaries in $BIN_DIR ($KUBE_VERSION)" ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: $0 build|up|down|status" ;;
esac
