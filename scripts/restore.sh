#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh into an empty database, the way TimescaleDB
# documents it: CREATE EXTENSION timescaledb, timescaledb_pre_restore(), pg_restore,
# timescaledb_post_restore() (also when pg_restore failed, so the database never stays in
# restoring mode), then ANALYZE.
#
# Usage: scripts/restore.sh [-d DATABASE_URL] [-c] FILE
#   -d   postgres://… of the database to restore into; default $HORSESTREAM_DATABASE_URL
#   -c   create that database first (on the same server, connecting to its `postgres` db)
# The target must hold no tables yet, and its server the same TimescaleDB version as the
# backup's (pgvector too). Objects are restored without their original owner: the user of
# DATABASE_URL owns them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

pg_tool() {
  if [ -x "$HS_PG_BIN/$1" ]; then echo "$HS_PG_BIN/$1"; else command -v "$1" || die "$1 not found"; fi
}

url="${HORSESTREAM_DATABASE_URL:-}"
create=0
while getopts "d:ch" opt; do
  case "$opt" in
    d) url="$OPTARG" ;;
    c) create=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ "$#" -eq 1 ] || usage
file="$1"
[ -n "$url" ] || die "no database: pass -d postgres://… or set HORSESTREAM_DATABASE_URL"
[ -f "$file" ] || die "no backup file $file"

psql="$(pg_tool psql)"
pg_restore="$(pg_tool pg_restore)"
"$pg_restore" --list "$file" >/dev/null || die "$file is not a pg_dump custom-format backup"

# postgres://user:pw@host:port/db?params → db, and the same URL on the `postgres` database.
rest="${url#*://}"
db="${rest#*/}"
db="${db%%\?*}"
[[ "$rest" == */* && -n "$db" ]] || die "DATABASE_URL names no database: $url"
[[ "$db" =~ ^[A-Za-z0-9_]+$ ]] || die "database name $db: only letters, digits and _ are handled"
query=""
[[ "$rest" == *\?* ]] && query="?${rest#*\?}"
admin_url="${url%%://*}://${rest%%/*}/postgres$query"

if [ "$create" -eq 1 ]; then
  "$psql" "$admin_url" -Xqv ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" ||
    die "cannot create database $db"
fi
tables="$("$psql" "$url" -XtAc "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN \
  ('pg_catalog', 'information_schema', '_timescaledb_catalog', '_timescaledb_config', \
   '_timescaledb_internal', '_timescaledb_cache', 'timescaledb_information', \
   'timescaledb_experimental', '_timescaledb_functions', '_timescaledb_debug')")" ||
  die "cannot connect to $db"
[ "$tables" = 0 ] || die "database $db already holds $tables tables: restore into an empty one"

start=$SECONDS
"$psql" "$url" -XqtAv ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS timescaledb' \
  -c 'SELECT timescaledb_pre_restore()' >/dev/null || die "timescaledb_pre_restore() failed"
post_restore() {
  "$psql" "$url" -XqtAv ON_ERROR_STOP=1 -c 'SELECT timescaledb_post_restore()' >/dev/null ||
    die "timescaledb_post_restore() failed: run it by hand in $db"
}
log "restore: pg_restore $file into $db"
if ! "$pg_restore" --no-owner --exit-on-error --dbname="$url" "$file"; then
  post_restore
  die "pg_restore failed; $db holds a partial restore: drop it and retry"
fi
post_restore
"$psql" "$url" -XqtAv ON_ERROR_STOP=1 -c 'ANALYZE' >/dev/null
log "restore: $db restored from $file in $((SECONDS - start)) s"
