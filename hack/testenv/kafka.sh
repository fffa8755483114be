#!/usr/bin/env bash
# Apache Kafka for the local test environment (DESIGN §9): the release jars from Maven Central,
# run as one local process in KRaft combined mode (broker + controller, node.id=1) on free
# loopback ports.
#
#   hack/testenv/kafka.sh fetch    resolve the pinned release into $CACHE_DIR/kafka/<version>/libs (once)
#   hack/testenv/kafka.sh up       fetch if needed, then start the broker or reuse a healthy one;
#                                  writes $TESTENV_DIR/kafka.env (KAFKA_BROKERS, KAFKA_LIBS, KAFKA_VERSION)
#   hack/testenv/kafka.sh down     stop it (idempotent; data and kafka.env are kept for the next up)
#   hack/testenv/kafka.sh status   exit 0 when it runs and answers metadata requests
#   hack/testenv/kafka.sh clean    down, then delete its data dir and kafka.env
#
# KAFKA_HOME pointing at an unpacked Kafka 4.x distribution (with libs/kafka_2.13-*.jar) is
# honoured: its libs are used and nothing is fetched. KAFKA_JVM_OPTS adds JVM options.
# The tools classes run the same way, e.g.
#   . .testenv/kafka.env && java -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand \
#       --bootstrap-server "$KAFKA_BROKERS" --create --topic t --partitions 3
source "$(dirname "$0")/lib.sh"

COMP=kafka
KAFKA_PINNED_VERSION=4.1.2 # keep in sync with kafka.version in kafka/pom.xml
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/kafka" && pwd)
STATE_DIR=$TESTENV_DIR/kafka
DATA_DIR=$STATE_DIR/data
PROPS=$STATE_DIR/server.properties
ENV_FILE=$TESTENV_DIR/kafka.env
FETCH_LOG=$LOG_DIR/kafka-fetch.log
FORMAT_LOG=$LOG_DIR/kafka-format.log
READY_TIMEOUT=90

# --- prerequisites -----------------------------------------------------------------------------

JAVA=java
ensure_java() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then JAVA=$JAVA_HOME/bin/java; fi
  command -v "$JAVA" >/dev/null 2>&1 || { apt_install openjdk-17-jre-headless; JAVA=java; }
  local v major
  v=$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
  major=${v%%.*}
  [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)) \
    || die "Kafka 4 needs Java 17 or newer, but '$JAVA' is ${v:-unknown}; set JAVA_HOME or install openjdk-17-jre-headless"
}

ensure_python() { command -v python3 >/dev/null 2>&1 || apt_install python3; }

# --- jars ----------------------------------------------------------------------------------------

# resolve_libs -> sets LIBS, KAFKA_VERSION and FROM_HOME
resolve_libs() {
  FROM_HOME=
  if [[ -n ${KAFKA_HOME:-} ]] && compgen -G "$KAFKA_HOME/libs/kafka_2.13-*.jar" >/dev/null; then
    FROM_HOME=1
    LIBS=$(cd "$KAFKA_HOME/libs" && pwd)
    local jar
    jar=$(cd "$LIBS" && ls kafka_2.13-*.jar | grep -Ev -- '-(test|sources|javadoc|scaladoc)\.jar$' | head -n 1)
    KAFKA_VERSION=${jar#kafka_2.13-}
    KAFKA_VERSION=${KAFKA_VERSION%.jar}
    [[ ${KAFKA_VERSION%%.*} =~ ^[0-9]+$ ]] && ((${KAFKA_VERSION%%.*} >= 4)) \
      || log "warning: KAFKA_HOME has Kafka $KAFKA_VERSION; this script is made for 4.x"
    return 0
  fi
  [[ -n ${KAFKA_HOME:-} ]] && log "KAFKA_HOME=$KAFKA_HOME has no libs/kafka_2.13-*.jar; using the pinned release"
  KAFKA_VERSION=$KAFKA_PINNED_VERSION
  LIBS=$CACHE_DIR/kafka/$KAFKA_VERSION/libs
}

# the marker holds a hash of the pom, so editing the dependency list triggers a new resolve
fetch_stamp() { sha256sum "$HERE/pom.xml" | cut -c1-64; }
fetched() { [[ -f $LIBS/.fetched && $(<"$LIBS/.fetched") == "$(fetch_stamp)" ]]; }

cmd_fetch() {
  resolve_libs
  if [[ -n $FROM_HOME ]]; then
    log "kafka: using Kafka $KAFKA_VERSION from KAFKA_HOME ($LIBS); nothing to fetch"
    return 0
  fi
  fetched && return 0
  command -v mvn >/dev/null 2>&1 || apt_install maven
  ensure_java
  mkdir -p "$CACHE_DIR/kafka/$KAFKA_VERSION"
  exec 8>"$CACHE_DIR/kafka/.fetch.lock"
  flock -w 900 8 || die "timed out waiting for another Kafka fetch ($CACHE_DIR/kafka/.fetch.lock)"
  if fetched; then exec 8>&-; return 0; fi
  local tmp=$CACHE_DIR/kafka/$KAFKA_VERSION/libs.tmp.$$ t0=$SECONDS
  rm -rf "$tmp"
  log "kafka: fetching Apache Kafka $KAFKA_VERSION from Maven Central (log: $FETCH_LOG)"
  if ! mvn -B -q -ntp -Dstyle.color=never -f "$HERE/pom.xml" \
    -Dmaven.repo.local="$CACHE_DIR/m2" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$FETCH_LOG" 2>&1; then
    rm -rf "$tmp"
    die "fetching Kafka $KAFKA_VERSION with Maven failed; see $FETCH_LOG"
  fi
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar && -f $tmp/kafka-tools-$KAFKA_VERSION.jar ]] \
    || die "Maven did not produce kafka_2.13-$KAFKA_VERSION.jar / kafka-tools-$KAFKA_VERSION.jar; see $FETCH_LOG"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  fetch_stamp >"$LIBS/.fetched"
  exec 8>&-
  log "kafka: fetched Kafka $KAFKA_VERSION ($(ls "$LIBS" | wc -l) jars) in $((SECONDS - t0)) s into $LIBS"
}

# --- process -------------------------------------------------------------------------------------

# kafka_alive -> 0 when the pid file names a live broker of ours (not a recycled pid)
kafka_alive() {
  is_running "$COMP" || return 1
  tr '\0' ' ' <"/proc/$(<"$RUN_DIR/$COMP.pid")/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

forget_stale_pid() {
  if [[ -f $RUN_DIR/$COMP.pid ]] && ! kafka_alive; then rm -f "$RUN_DIR/$COMP.pid"; fi
}

broker_port() { local b; b=$(env_value "$COMP" KAFKA_BROKERS); echo "${b##*:}"; }
controller_port() { sed -n 's/^controller\.quorum\.voters=1@127\.0\.0\.1://p' "$PROPS" 2>/dev/null | tail -n 1; }

ready() { [[ -n ${1:-} ]] && python3 "$HERE/ready.py" "$1" 127.0.0.1 1; }

# pick_port PREVIOUS AVOID -> PREVIOUS when it is still free, else a fresh free port (never AVOID)
pick_port() {
  local prev=$1 avoid=$2 p
  if [[ $prev =~ ^[0-9]+$ && $prev != "$avoid" ]] && ! port_open "$prev"; then echo "$prev"; return; fi
  for _ in 1 2 3 4 5; do
    p=$(free_port)
    [[ $p != "$avoid" ]] && { echo "$p"; return; }
  done
  die "could not find a free port for Kafka"
}

write_env() {
  local port=$1 tmp=$ENV_FILE.tmp.$$
  {
    echo "KAFKA_BROKERS=127.0.0.1:$port"
    echo "KAFKA_LIBS=$LIBS"
    echo "KAFKA_VERSION=$KAFKA_VERSION"
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

render_props() {
  local bport=$1 cport=$2
  mkdir -p "$STATE_DIR" "$DATA_DIR"
  sed -e "s|@BROKER_PORT@|$bport|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
    "$HERE/server.properties.in" >"$PROPS"
}

random_cluster_id() {
  # a Kafka Uuid: 16 random bytes, URL-safe base64 without padding; the CLI rejects a leading '-'
  python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break'
}

format_storage() {
  [[ -f $DATA_DIR/meta.properties ]] && return 0
  local cid; cid=$(random_cluster_id)
  log "kafka: formatting $DATA_DIR (cluster id $cid)"
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$HERE/log4j2-tools.properties" -cp "$LIBS/*" \
    kafka.tools.StorageTool format --config "$PROPS" --cluster-id "$cid" --ignore-formatted \
    >"$FORMAT_LOG" 2>&1 || die "formatting the Kafka data dir failed; see $FORMAT_LOG"
}

start_broker() {
  local bport cport t0=$SECONDS
  bport=$(pick_port "$(broker_port)" "")
  cport=$(pick_port "$(controller_port)" "$bport")
  render_props "$bport" "$cport"
  format_storage
  local -a jvm=(
    -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOG_DIR"
  )
  # shellcheck disable=SC2206 # word splitting of user-supplied JVM options is intended
  [[ -n ${KAFKA_JVM_OPTS:-} ]] && jvm+=($KAFKA_JVM_OPTS)
  log "kafka: starting Kafka $KAFKA_VERSION on 127.0.0.1:$bport (controller 127.0.0.1:$cport, data $DATA_DIR)"
  # 8>&- 9>&-: the broker must not inherit (and so hold forever) the fetch / up-down locks
  start_bg "$COMP" "$JAVA" "${jvm[@]}" -cp "$LIBS/*" kafka.Kafka "$PROPS" 8>&- 9>&-
  # write the env first so that a later up finds the port even if this one is interrupted
  write_env "$bport"
  if ! (wait_for "$COMP" "$READY_TIMEOUT" ready "$bport"); then
    stop_comp "$COMP"
    exit 1
  fi
  log "kafka: ready on 127.0.0.1:$bport after $((SECONDS - t0)) s (pid $(<"$RUN_DIR/$COMP.pid"), log $LOG_DIR/$COMP.log)"
}

# serialises concurrent up/down calls (a parallel testenv-up may run several at once)
lock() {
  exec 9>"$RUN_DIR/$COMP.updown.lock"
  flock -w 300 9 || die "timed out waiting for another kafka.sh up/down ($RUN_DIR/$COMP.updown.lock)"
}

cmd_up() {
  cmd_fetch
  ensure_java
  ensure_python
  lock
  forget_stale_pid
  if kafka_alive; then
    local port; port=$(broker_port)
    if ready "$port"; then
      write_env "$port"
      log "kafka: reusing the running broker on 127.0.0.1:$port (pid $(<"$RUN_DIR/$COMP.pid"))"
      return 0
    fi
    if [[ -n $port ]]; then
      log "kafka: broker (pid $(<"$RUN_DIR/$COMP.pid")) is running but not ready yet; waiting"
      (wait_for "$COMP" "$READY_TIMEOUT" ready "$port") || { stop_comp "$COMP"; exit 1; }
      write_env "$port"
      log "kafka: reusing the running broker on 127.0.0.1:$port"
      return 0
    fi
    log "kafka: broker is running but its port is unknown (no $ENV_FILE); restarting it"
    stop_comp "$COMP"
  fi
  start_broker
}

cmd_down() {
  lock
  forget_stale_pid
  stop_comp "$COMP"
}

cmd_status() {
  forget_stale_pid
  local port; port=$(broker_port)
  if ! kafka_alive; then
    echo "kafka: not running"
    return 1
  fi
  if command -v python3 >/dev/null 2>&1 && ready "$port" 2>/dev/null; then
    echo "kafka: running (pid $(<"$RUN_DIR/$COMP.pid")) on 127.0.0.1:$port, $(env_value "$COMP" KAFKA_VERSION)"
    return 0
  fi
  echo "kafka: running (pid $(<"$RUN_DIR/$COMP.pid")) but not answering on 127.0.0.1:${port:-?}; see $LOG_DIR/$COMP.log"
  return 1
}

cmd_clean() {
  cmd_down
  rm -rf "$STATE_DIR" "$ENV_FILE"
  log "kafka: removed $STATE_DIR and $ENV_FILE"
}

case ${1:-} in
  fetch) cmd_fetch ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  *) die "usage: $0 fetch|up|down|status|clean" ;;
esac
