#!/usr/bin/env bash
# Backs up horsestream's TimescaleDB database into one file (pg_dump's custom format:
# compressed, every table, hypertable chunk and index, the extensions, the migrations table).
# Restore it with scripts/restore.sh, into a server with the same TimescaleDB version.
#
# Usage: scripts/backup.sh [-d DATABASE_URL] FILE
#   -d   postgres://… of the database to back up; default $HORSESTREAM_DATABASE_URL
#   FILE written atomically (FILE.partial, then renamed); an existing FILE is replaced
# The PostgreSQL client tools come from PostgreSQL 15's bin dir ($HS_PG_BIN in scripts/lib.sh)
# when it exists, else from PATH; they must not be older than the server.
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
while getopts "d:h" opt; do
  case "$opt" in
    d) url="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ "$#" -eq 1 ] || usage
file="$1"
[ -n "$url" ] || die "no database: pass -d postgres://… or set HORSESTREAM_DATABASE_URL"

psql="$(pg_tool psql)"
version="$("$psql" "$url" -XtAc "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")" ||
  die "cannot connect to the database to back up"
[ -n "$version" ] || die "the database has no timescaledb extension: is it horsestream's?"

start=$SECONDS
rm -f "$file.partial"
# TimescaleDB's catalog tables have circular foreign keys; pg_dump warns about them (for
# data-only dumps) and dumps them correctly. Those warnings are dropped, any other kept.
"$(pg_tool pg_dump)" --format=custom --file="$file.partial" "$url" 2> >(grep -vE \
  -e '^pg_dump: warning: there are circular foreign-key constraints on this table:$' \
  -e '^pg_dump: detail: (hypertable|chunk|continuous_agg)$' \
  -e '^pg_dump: hint: (You might not be able to restore|Consider using a full dump)' >&2) ||
  { rm -f "$file.partial"; die "pg_dump failed"; }
mv "$file.partial" "$file"
log "backup: $file ($(du -h "$file" | cut -f1), TimescaleDB $version) in $((SECONDS - start)) s"
