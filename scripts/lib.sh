# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Sourced by the other scripts in scripts/: paths, ports, logging. Defines, runs nothing.
#
# All state lives outside the git clone, in HORSESTREAM_HOME, so a fresh clone (CI)
# reuses what an earlier run installed.

HS_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HS_REPO_DIR="$(cd "$HS_SCRIPTS_DIR/.." && pwd)"

: "${HORSESTREAM_HOME:=${HOME:-/root}/.cache/horsestream}"

# Ports (loopback only).
: "${HS_KAFKA_PORT:=19092}"
: "${HS_KAFKA_CONTROLLER_PORT:=19093}"
: "${HS_PG_PORT:=15432}"

# Versions.
: "${HS_KAFKA_VERSION:=4.3.1}"
: "${HS_ORT_VERSIONS:=1.32.0 1.31.0}"   # tried in order
: "${HS_PG_MAJOR:=15}"

# Derived paths.
HS_BUILD_DIR="$HORSESTREAM_HOME/build"
HS_ORT_DIR="$HORSESTREAM_HOME/onnxruntime"
HS_ORT_LIB="$HS_ORT_DIR/libonnxruntime.so"
HS_KAFKA_DIR="$HORSESTREAM_HOME/kafka"
: "${HS_KAFKA_LIBS:=$HS_KAFKA_DIR/libs}"   # a private broker (tests) may use the shared jars
HS_KAFKA_DATA="$HS_KAFKA_DIR/data"
HS_KAFKA_CONFIG="$HS_KAFKA_DIR/config"
HS_KAFKA_LOG_DIR="$HS_KAFKA_DIR/logs"
HS_KAFKA_LOG="$HS_KAFKA_LOG_DIR/server.log"
HS_KAFKA_STDOUT="$HS_KAFKA_LOG_DIR/stdout.log"
HS_KAFKA_PID="$HS_KAFKA_DIR/kafka.pid"
HS_PG_BIN="/usr/lib/postgresql/$HS_PG_MAJOR/bin"
HS_PG_DIR="$HORSESTREAM_HOME/postgres"
HS_PG_DATA="$HS_PG_DIR/data"
HS_PG_LOG="$HS_PG_DIR/postgres.log"
HS_PG_SOCKET_DIR="$HS_PG_DIR/run"
HS_PG_DB="horsestream"
HS_PG_USER="postgres"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# Run "$@" and log how long it took: `timed "step name" cmd args...`. The command runs in a
# subshell with `set -e` in force (a plain `cmd || rc=$?` would silently disable it inside
# shell functions), and its exit status is returned.
timed() {
  local name="$1" start rc
  shift
  start=$(date +%s.%N)
  set +e
  (set -e; "$@")
  rc=$?
  set -e
  log "$(awk -v n="$name" -v a="$start" -v b="$(date +%s.%N)" -v rc="$rc" \
    'BEGIN { printf "step %-16s %7.1f s%s", n, b - a, (rc == 0 ? "" : " (FAILED, exit " rc ")") }')"
  return "$rc"
}
