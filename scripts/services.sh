#!/usr/bin/env bash
# Starts, stops and reports the real services horsestream's integration tests talk to:
# a single-node Apache Kafka (KRaft) broker and PostgreSQL 15 with TimescaleDB and pgvector.
# State (data, logs, pid files) lives in $HORSESTREAM_HOME; run scripts/install-deps.sh first.
#
# Usage: scripts/services.sh start|stop|restart|status|env|pg-start|pg-stop|kafka-start|kafka-stop
#   start    idempotent; returns once both services really accept work
#   stop     stops both cleanly
#   pg-start, pg-stop   PostgreSQL alone (a test's private instance: set HORSESTREAM_HOME
#            and HS_PG_PORT)
#   kafka-start, kafka-stop   Kafka alone (a test's private broker: set HORSESTREAM_HOME,
#            HS_KAFKA_PORT, HS_KAFKA_CONTROLLER_PORT, and HS_KAFKA_LIBS to the installed jars)
#   status   says what runs (exit 0 only when both run)
#   env      prints `export` lines: eval "$(scripts/services.sh env)"
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${HS_START_TIMEOUT:=120}"        # seconds to wait for a service to accept work
: "${HS_KAFKA_HEAP:=512m}"
: "${HS_JAVA:=${JAVA_HOME:+$JAVA_HOME/bin/}java}"

KAFKA_PROPS="$HS_KAFKA_CONFIG/server.properties"
KAFKA_LOG4J="$HS_KAFKA_CONFIG/log4j2.properties"
KAFKA_BOOTSTRAP="127.0.0.1:$HS_KAFKA_PORT"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when pid $1 exists and is not a zombie. A killed daemon reparented to an init that does
# not reap (as in some sandboxes) stays a zombie, which `kill -0` still reports as alive.
pid_alive() {
  local state
  [[ "${1:-}" =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{ print $3 }' 2>/dev/null <"/proc/$1/stat") || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# ---------------------------------------------------------------- Kafka

kafka_java() {
  "$HS_JAVA" -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$HS_KAFKA_LOG_DIR" \
    -cp "$HS_KAFKA_LIBS/*" "$@"
}

# Client-side admin tools log to stderr only at WARN; keep their noise out of the broker log.
kafka_tool() {
  "$HS_JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$HS_KAFKA_CONFIG/tools-log4j2.properties" \
    -cp "$HS_KAFKA_LIBS/*" "$@"
}

kafka_pid() {
  local pid
  [ -f "$HS_KAFKA_PID" ] || return 1
  pid=$(cat "$HS_KAFKA_PID" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # Alive and really our broker (a stale pid file may name a recycled pid).
  local cmd
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmd" == *"kafka.Kafka $KAFKA_PROPS"* ]] || return 1
  echo "$pid"
}

kafka_write_config() {
  mkdir -p "$HS_KAFKA_CONFIG" "$HS_KAFKA_DATA" "$HS_KAFKA_LOG_DIR"
  cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$HS_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$HS_KAFKA_PORT,CONTROLLER://127.0.0.1:$HS_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$HS_KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$HS_KAFKA_DATA

# One node: every replication factor is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# The application creates its own topics.
auto.create.topics.enable=false
num.partitions=4
group.initial.rebalance.delay.ms=0

# Video chunks are large records.
message.max.bytes=67108864
replica.fetch.max.bytes=67108864
EOF
  cat >"$KAFKA_LOG4J" <<'EOF'
# Broker logging: one rolling file, $HORSESTREAM_HOME/kafka/logs/server.log.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 64MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
  cat >"$HS_KAFKA_CONFIG/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
EOF
}

kafka_format_once() {
  [ -f "$HS_KAFKA_DATA/meta.properties" ] && return 0
  local cluster_id
  cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid)
  log "kafka: formatting storage in $HS_KAFKA_DATA (cluster id $cluster_id)"
  kafka_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_PROPS" \
    >"$HS_KAFKA_LOG_DIR/format.log" 2>&1 ||
    { cat "$HS_KAFKA_LOG_DIR/format.log" >&2; die "kafka storage format failed (log: $HS_KAFKA_LOG_DIR/format.log)"; }
}

kafka_start() {
  if kafka_pid >/dev/null; then
    log "kafka: already running (pid $(kafka_pid), $KAFKA_BOOTSTRAP)"
    return 0
  fi
  if [ -f "$HS_KAFKA_PID" ]; then
    log "kafka: removing stale pid file (pid $(cat "$HS_KAFKA_PID" 2>/dev/null) not running)"
    rm -f "$HS_KAFKA_PID"
  fi
  ls "$HS_KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no Kafka jars in $HS_KAFKA_LIBS: run scripts/install-deps.sh"
  local p
  for p in "$HS_KAFKA_PORT" "$HS_KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is taken by another process (set HS_KAFKA_PORT / HS_KAFKA_CONTROLLER_PORT)"
  done
  kafka_write_config
  kafka_format_once
  log "kafka: starting on $KAFKA_BOOTSTRAP (log $HS_KAFKA_LOG)"
  # setsid: the broker outlives this shell and its process group; the inner sh records its
  # own pid, then becomes the JVM, so the pid file names the broker itself.
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner sh
  setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$HS_KAFKA_PID" \
    "$HS_JAVA" "-Xmx$HS_KAFKA_HEAP" "-Xms$HS_KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
    -Dkafka.logs.dir="$HS_KAFKA_LOG_DIR" -cp "$HS_KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >"$HS_KAFKA_STDOUT" 2>&1 &

  local deadline=$((SECONDS + HS_START_TIMEOUT))
  : >"$HS_KAFKA_LOG_DIR/check.log"
  # 1. the process is up and the listener accepts connections
  until port_open "$HS_KAFKA_PORT"; do
    if [ -s "$HS_KAFKA_PID" ] && ! pid_alive "$(cat "$HS_KAFKA_PID")"; then kafka_died; fi
    [ "$SECONDS" -lt "$deadline" ] || kafka_timeout
    sleep 0.5
  done
  # 2. the broker really serves metadata requests (admin client lists topics)
  until kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --list >/dev/null 2>>"$HS_KAFKA_LOG_DIR/check.log"; do
    kafka_pid >/dev/null || kafka_died
    [ "$SECONDS" -lt "$deadline" ] || kafka_timeout
    sleep 1
  done
  log "kafka: ready (pid $(kafka_pid))"
}

kafka_died() {
  tail -n 20 "$HS_KAFKA_STDOUT" "$HS_KAFKA_LOG" >&2 2>/dev/null || true
  die "kafka exited during start; see $HS_KAFKA_LOG and $HS_KAFKA_STDOUT"
}

kafka_timeout() {
  tail -n 20 "$HS_KAFKA_LOG" >&2 2>/dev/null || true
  die "kafka not ready after ${HS_START_TIMEOUT}s; see $HS_KAFKA_LOG (and $HS_KAFKA_LOG_DIR/check.log)"
}

kafka_stop() {
  local pid
  if ! pid=$(kafka_pid); then
    rm -f "$HS_KAFKA_PID"
    log "kafka: not running"
    return 0
  fi
  log "kafka: stopping pid $pid"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "kafka: still running after 60 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.5
  done
  rm -f "$HS_KAFKA_PID"
  log "kafka: stopped"
}

kafka_status() {
  local pid
  if pid=$(kafka_pid); then
    echo "kafka:    running (pid $pid) on $KAFKA_BOOTSTRAP, log $HS_KAFKA_LOG"
  else
    echo "kafka:    stopped"
    return 1
  fi
}

# ---------------------------------------------------------------- PostgreSQL

# initdb and the server refuse to run as root: run them as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The postmaster's pid when it really runs. Not `pg_ctl status`: a killed postmaster can linger
# as a zombie that kill -0 (and so pg_ctl, and the postmaster's own lock checks) take for alive.
pg_pid() {
  local pid
  pid=$(head -n1 "$HS_PG_DATA/postmaster.pid" 2>/dev/null) || return 1
  pid_alive "$pid" || return 1
  echo "$pid"
}

# Lock files naming a postmaster that is gone would make the next one refuse to start.
pg_remove_stale_locks() {
  local f pid
  for f in "$HS_PG_DATA/postmaster.pid" "$HS_PG_SOCKET_DIR/.s.PGSQL.$HS_PG_PORT.lock"; do
    [ -f "$f" ] || continue
    pid=$(head -n1 "$f" 2>/dev/null || true)
    pid_alive "$pid" && die "$f names live pid $pid, yet postgres does not answer; stop it first"
    log "postgres: removing stale $(basename "$f") (pid $pid not running)"
    rm -f "$f"
    [[ "$f" == *.lock ]] && rm -f "${f%.lock}"
  done
  return 0
}

pg_running() { pg_pid >/dev/null; }

psql_db() {
  PGOPTIONS='-c client_min_messages=warning' "$HS_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$HS_PG_PORT" -U "$HS_PG_USER" "$@"
}

# The postgres user must be able to reach its data dir below HORSESTREAM_HOME (under /root by
# default, mode 700): grant search (x) permission only, on the directories that lack it.
pg_grant_path() {
  [ "$(id -u)" -eq 0 ] || return 0
  local d="" part
  local -a parts
  IFS=/ read -r -a parts <<<"${HS_PG_DIR#/}"
  for part in "${parts[@]}"; do   # outermost first: /root before /root/.cache
    d="$d/$part"
    runuser -u postgres -- test -x "$d" && continue
    if command -v setfacl >/dev/null 2>&1 && setfacl -m u:postgres:x "$d" 2>/dev/null; then
      log "postgres: granted the postgres user search access to $d (ACL)"
    else
      chmod o+x "$d"
      log "postgres: made $d searchable (o+x) so the postgres user reaches $HS_PG_DIR"
    fi
  done
}

pg_init_once() {
  [ -f "$HS_PG_DATA/PG_VERSION" ] && return 0
  [ -x "$HS_PG_BIN/initdb" ] || die "$HS_PG_BIN/initdb missing: run scripts/install-deps.sh"
  mkdir -p "$HS_PG_DIR"
  pg_grant_path
  rm -rf "$HS_PG_DATA"
  mkdir -p "$HS_PG_DATA" "$HS_PG_SOCKET_DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$HS_PG_DIR" "$HS_PG_DATA" "$HS_PG_SOCKET_DIR"
  chmod 700 "$HS_PG_DATA"
  log "postgres: initdb in $HS_PG_DATA"
  as_pg "$HS_PG_BIN/initdb" --auth=trust -U "$HS_PG_USER" -E UTF8 --locale=C.UTF-8 \
    -D "$HS_PG_DATA" >"$HS_PG_DIR/initdb.log" 2>&1 ||
    { tail -n 20 "$HS_PG_DIR/initdb.log" >&2; die "initdb failed (log: $HS_PG_DIR/initdb.log)"; }
  echo "include_if_exists = 'horsestream.conf'" >>"$HS_PG_DATA/postgresql.conf"
}

pg_write_config() {
  local conf="$HS_PG_DATA/horsestream.conf"
  cat >"$conf" <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $HS_PG_PORT
unix_socket_directories = '$HS_PG_SOCKET_DIR'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
EOF
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$conf"
  return 0
}

pg_start() {
  if [ ! -f "/usr/share/postgresql/$HS_PG_MAJOR/extension/timescaledb.control" ] ||
    [ ! -f "/usr/share/postgresql/$HS_PG_MAJOR/extension/vector.control" ]; then
    die "TimescaleDB/pgvector not installed for PostgreSQL $HS_PG_MAJOR: run scripts/install-deps.sh"
  fi
  if pg_running; then
    log "postgres: already running on 127.0.0.1:$HS_PG_PORT"
  else
    pg_init_once
    port_open "$HS_PG_PORT" && die "port $HS_PG_PORT is taken by another process (set HS_PG_PORT)"
    pg_remove_stale_locks
    mkdir -p "$HS_PG_SOCKET_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$HS_PG_SOCKET_DIR"
    pg_write_config
    touch "$HS_PG_LOG"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$HS_PG_LOG"
    log "postgres: starting on 127.0.0.1:$HS_PG_PORT (log $HS_PG_LOG)"
    as_pg setsid -w "$HS_PG_BIN/pg_ctl" start -D "$HS_PG_DATA" -l "$HS_PG_LOG" -w -t "$HS_START_TIMEOUT" \
      >/dev/null 2>&1 ||
      { tail -n 20 "$HS_PG_LOG" >&2; die "postgres did not start; see $HS_PG_LOG"; }
  fi
  local deadline=$((SECONDS + HS_START_TIMEOUT))
  until "$HS_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$HS_PG_PORT" -U "$HS_PG_USER" -d postgres &&
    psql_db -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; do
    pg_running || { tail -n 20 "$HS_PG_LOG" >&2; die "postgres exited; see $HS_PG_LOG"; }
    [ "$SECONDS" -lt "$deadline" ] ||
      { tail -n 20 "$HS_PG_LOG" >&2; die "postgres not ready after ${HS_START_TIMEOUT}s; see $HS_PG_LOG"; }
    sleep 0.5
  done
  if [ "$(psql_db -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$HS_PG_DB'")" != 1 ]; then
    log "postgres: creating database $HS_PG_DB"
    psql_db -d postgres -c "CREATE DATABASE $HS_PG_DB"
  fi
  psql_db -d "$HS_PG_DB" -c 'CREATE EXTENSION IF NOT EXISTS timescaledb' \
    -c 'CREATE EXTENSION IF NOT EXISTS vector' >/dev/null
  [ "$(psql_db -d "$HS_PG_DB" -tAc \
    "SELECT count(*) FROM pg_extension WHERE extname IN ('timescaledb', 'vector')")" = 2 ] ||
    die "extensions timescaledb/vector missing in database $HS_PG_DB; see $HS_PG_LOG"
  log "postgres: ready (database $HS_PG_DB with timescaledb and vector)"
}

pg_stop() {
  if ! pg_running; then
    log "postgres: not running"
    return 0
  fi
  log "postgres: stopping"
  as_pg "$HS_PG_BIN/pg_ctl" stop -D "$HS_PG_DATA" -m fast -w -t 60 >/dev/null
  log "postgres: stopped"
}

pg_status() {
  if pg_running; then
    echo "postgres: running (pid $(pg_pid)) on 127.0.0.1:$HS_PG_PORT, log $HS_PG_LOG"
  else
    echo "postgres: stopped"
    return 1
  fi
}

# ---------------------------------------------------------------- commands

cmd_env() {
  printf 'export HORSESTREAM_HOME=%q\n' "$HORSESTREAM_HOME"
  printf 'export HORSESTREAM_KAFKA_BROKERS=%q\n' "$KAFKA_BOOTSTRAP"
  printf 'export HORSESTREAM_DATABASE_URL=%q\n' "postgres://$HS_PG_USER@127.0.0.1:$HS_PG_PORT/$HS_PG_DB"
  printf 'export ORT_DYLIB_PATH=%q\n' "$HS_ORT_LIB"
  local models="$HS_REPO_DIR/../shared/models"
  if [ -z "${HORSESTREAM_MODEL_DIR:-}" ] && [ -d "$models" ]; then
    printf 'export HORSESTREAM_MODEL_DIR=%q\n' "$(cd "$models" && pwd)"
  fi
}

cmd_status() {
  local rc=0
  kafka_status || rc=1
  pg_status || rc=1
  return "$rc"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [ "$#" -eq 1 ] || usage
  case "$1" in
    start)
      mkdir -p "$HORSESTREAM_HOME"
      timed postgres pg_start
      timed kafka kafka_start
      ;;
    stop)
      timed kafka kafka_stop
      timed postgres pg_stop
      ;;
    restart)
      "$0" stop
      "$0" start
      ;;
    # PostgreSQL alone (tests run a private instance with their own HORSESTREAM_HOME and
    # HS_PG_PORT to take it down without disturbing anyone else).
    pg-start) timed postgres pg_start ;;
    pg-stop) timed postgres pg_stop ;;
    # Kafka alone, likewise (a private broker a test restarts).
    kafka-start)
      mkdir -p "$HORSESTREAM_HOME"
      timed kafka kafka_start
      ;;
    kafka-stop) timed kafka kafka_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) usage ;;
  esac
}

main "$@"
