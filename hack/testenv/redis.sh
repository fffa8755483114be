#!/usr/bin/env bash
# Redis for the test environment: Debian's redis-server on a free loopback port, data under
# .testenv/redis, no persistence. Subcommands: up | down | status.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMP=redis
DATA=$TESTENV_DIR/redis

ensure_binaries() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
    # Debian's package may start a system-wide server on 6379; ours runs on its own port regardless.
  fi
}

healthy() {
  local port; port=$(env_value $COMP REDIS_PORT)
  [[ -n $port ]] && is_running $COMP && [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]
}

cmd_up() {
  ensure_binaries
  if healthy; then log "redis: reusing the running server on port $(env_value $COMP REDIS_PORT)"; return; fi
  stop_comp $COMP
  mkdir -p "$DATA"
  local port; port=$(env_value $COMP REDIS_PORT)
  if [[ -z $port ]] || port_open "$port"; then port=$(free_port); fi
  start_bg $COMP redis-server --port "$port" --bind 127.0.0.1 --dir "$DATA" --save '' --appendonly no \
    --daemonize no --protected-mode yes --maxclients 2000 --loglevel warning
  wait_for $COMP 30 bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $port ping) == PONG ]]"
  {
    echo "REDIS_PORT=$port"
    echo "REDIS_URL=redis://127.0.0.1:$port"
  } >"$TESTENV_DIR/$COMP.env"
  log "redis: ready on 127.0.0.1:$port"
}

case ${1:-} in
  up) cmd_up ;;
  down) stop_comp $COMP ;;
  status) healthy ;;
  *) die "usage: $0 up|down|status" ;;
esac
