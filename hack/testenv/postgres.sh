#!/usr/bin/env bash
# PostgreSQL for the test environment: Debian's server binaries, a cluster under .testenv/postgres,
# listening on a free loopback port. Subcommands: up | down | status.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMP=postgres
DATA=$TESTENV_DIR/postgres/data
SOCK=$TESTENV_DIR/postgres/sock
PG_USER=postgres
PG_PASSWORD=postgres
PG_DB=simptu

pg_bindir() {
  local d
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then pg_config --bindir; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $d/initdb && -x $d/postgres ]] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}

ensure_binaries() {
  BIN=$(pg_bindir || true)
  if [[ -z ${BIN:-} ]]; then
    apt_install postgresql
    BIN=$(pg_bindir || true)
    [[ -n ${BIN:-} ]] || die "PostgreSQL binaries not found after installing the 'postgresql' package"
  fi
}

# PostgreSQL refuses to run as root: run it as the 'postgres' system user then.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

healthy() {
  local port; port=$(env_value $COMP PGPORT)
  [[ -n $port ]] && is_running $COMP && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"
}

cmd_up() {
  ensure_binaries
  if healthy; then log "postgres: reusing the running server on port $(env_value $COMP PGPORT)"; return; fi
  stop_comp $COMP
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  mkdir -p "$DATA" "$SOCK"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres:postgres "$TESTENV_DIR/postgres"
    # the server user must be able to reach its data directory through the work tree
    local d=$TESTENV_DIR; while [[ $d != / ]]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  fi
  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "postgres: initialising a cluster in $DATA"
    local pw; pw=$(mktemp); echo "$PG_PASSWORD" >"$pw"; chmod 644 "$pw"
    as_pg "$BIN/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/postgres-initdb.log" 2>&1 \
      || die "initdb failed; see $LOG_DIR/postgres-initdb.log"
    rm -f "$pw"
  fi
  local port; port=$(env_value $COMP PGPORT)
  if [[ -z $port ]] || port_open "$port"; then port=$(free_port); fi
  : >"$LOG_DIR/$COMP.log"; [[ $(id -u) -eq 0 ]] && chown postgres "$LOG_DIR/$COMP.log"
  # fsync off and a small footprint: this cluster holds throwaway test data only.
  local as=(); [[ $(id -u) -eq 0 ]] && as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  start_bg $COMP "${as[@]}" "$BIN/postgres" -D "$DATA" -p "$port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$SOCK" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=300 -c shared_buffers=128MB -c max_prepared_transactions=50 \
    -c log_min_messages=warning -c password_encryption=scram-sha-256
  wait_for $COMP 60 "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"
  {
    echo "PGPORT=$port"
    echo "DATABASE_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
  } >"$TESTENV_DIR/$COMP.env"
  if ! as_pg "$BIN/psql" -h "$SOCK" -p "$port" -U "$PG_USER" -d postgres -tAc "select 1 from pg_database where datname='$PG_DB'" | grep -q 1; then
    as_pg "$BIN/psql" -q -h "$SOCK" -p "$port" -U "$PG_USER" -d postgres -c "create database $PG_DB" \
      || die "could not create database $PG_DB; see $LOG_DIR/$COMP.log"
  fi
  log "postgres: ready on 127.0.0.1:$port"
}


case ${1:-} in
  up) cmd_up ;;
  down) stop_comp $COMP ;;
  status) ensure_binaries; healthy ;;
  *) die "usage: $0 up|down|status" ;;
esac
