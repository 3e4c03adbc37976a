#!/usr/bin/env bash
# Sets up what the demo needs (FFmpeg libraries, ONNX Runtime; no servers) and runs
# `horsestream demo` on embedded defaults. Arguments go to `horsestream demo`, e.g. a video.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HORSESTREAM_HOME:-$HOME/.cache/horsestream}/target}"
bash scripts/install-deps.sh --demo
eval "$(bash scripts/services.sh env)"
cargo build --release --locked --bin horsestream
exec "$CARGO_TARGET_DIR/release/horsestream" demo "$@"
