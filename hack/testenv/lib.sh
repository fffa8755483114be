#!/usr/bin/env bash
# Shared helpers for the test environment scripts (DESIGN §9).
# Every component script sources this file and follows the same layout:
#   $TESTENV_DIR/run/<comp>.pid    pid of the running process
#   $TESTENV_DIR/<comp>.env        KEY=VALUE lines the component contributes to .testenv/env
#   $TESTENV_DIR/logs/<comp>.log   its log
#   $CACHE_DIR/...                 downloads and builds that survive testenv-down
set -euo pipefail

ROOT_DIR=${ROOT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TESTENV_DIR=${TESTENV_DIR:-$ROOT_DIR/.testenv}
CACHE_DIR=${CACHE_DIR:-$ROOT_DIR/.cache}
LOG_DIR=$TESTENV_DIR/logs
RUN_DIR=$TESTENV_DIR/run
mkdir -p "$LOG_DIR" "$RUN_DIR" "$CACHE_DIR"

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }

# is_running COMP -> 0 when the pid file names a live process
is_running() {
  local pidfile=$RUN_DIR/$1.pid
  [[ -f $pidfile ]] || return 1
  local pid; pid=$(<"$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# free_port -> prints a TCP port on 127.0.0.1 that nobody listens on right now
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# port_open PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for COMP TIMEOUT_SECONDS CMD... -> runs CMD until it succeeds; dies with the log path on timeout
wait_for() {
  local comp=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! is_running "$comp"; then
      die "$comp exited during start-up; see $LOG_DIR/$comp.log (last lines below)
$(tail -n 20 "$LOG_DIR/$comp.log" 2>/dev/null)"
    fi
    if ((SECONDS >= deadline)); then
      die "$comp did not become ready in ${timeout} s; see $LOG_DIR/$comp.log"
    fi
    sleep 0.5
  done
}

# start_bg COMP CMD... -> starts CMD detached (own session) with its log and pid file
start_bg() {
  local comp=$1; shift
  : >"$LOG_DIR/$comp.log"
  setsid "$@" >>"$LOG_DIR/$comp.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$comp.pid"
}

# stop_comp COMP -> TERM, then KILL after 10 s; idempotent
stop_comp() {
  local comp=$1 pidfile=$RUN_DIR/$1.pid
  if is_running "$comp"; then
    local pid; pid=$(<"$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    log "$comp stopped"
  fi
  rm -f "$pidfile"
}

# env_value COMP KEY -> value of KEY in $TESTENV_DIR/COMP.env
env_value() { [[ -f $TESTENV_DIR/$1.env ]] || return 0; sed -n "s/^$2=//p" "$TESTENV_DIR/$1.env" | tail -n 1; }

# need_root_for PACKAGE -> dies with a clear message unless we can apt-get install
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    die "missing $*; install the Debian package(s) with: sudo apt-get install -y $*"
  fi
  log "installing Debian package(s): $*"
  if [[ ! -f $CACHE_DIR/.apt-updated ]] || [[ -n $(find "$CACHE_DIR/.apt-updated" -mmin +1440 2>/dev/null) ]]; then
    apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 || die "apt-get update failed; see $LOG_DIR/apt.log"
    touch "$CACHE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 \
    || die "apt-get install $* failed; see $LOG_DIR/apt.log"
}
