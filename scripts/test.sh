#!/usr/bin/env bash
# Sets up the real services (Kafka, PostgreSQL + TimescaleDB + pgvector, ONNX Runtime, FFmpeg)
# and runs every check: rustfmt, clippy with warnings denied, and the whole workspace's tests,
# integration tests against those services included. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HORSESTREAM_HOME:-$HOME/.cache/horsestream}/target}"
# Incremental caches are per checkout path: a fresh clone (CI) never reuses them and they
# filled the disk here; dependencies are cached in the target dir either way.
export CARGO_INCREMENTAL=0
bash scripts/prune-target.sh
bash scripts/install-deps.sh
# Services this script starts, it stops again; ones already running are left alone.
if ! bash scripts/services.sh status >/dev/null 2>&1; then
  trap 'bash scripts/services.sh stop' EXIT
fi
bash scripts/services.sh start
eval "$(bash scripts/services.sh env)"
bash scripts/helm-check.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The web client: npm ci (when its lockfile changed), type check, bundle into web/dist.
bash scripts/web-build.sh
log="$(mktemp)"
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo prints one "test result" line per binary;
# a child process's stderr can land on the same line, so it is not matched at line start),
# then the name of every failed test.
awk '/test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
grep -E '^test .* \.\.\. FAILED$' "$log" | sed 's/^/failed: /' || true
rm -f "$log"
exit "$status"
