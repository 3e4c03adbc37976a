#!/usr/bin/env bash
# Builds the web client (web/: TypeScript + React, bundled by esbuild) into web/dist, which
# `horsestream api --web-dir web/dist` serves at `/`. Packages come from the npm registry
# through the committed web/package-lock.json (`npm ci`, only when the lockfile changed since
# the last install). Fast when nothing changed: the type check and the bundle take seconds.
# Usage: bash scripts/web-build.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../web"
command -v node >/dev/null 2>&1 || { echo "web-build: node (20+) is needed" >&2; exit 1; }
if ! cmp -s package-lock.json node_modules/.hs-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.hs-lock
fi
npx --no-install tsc --noEmit
node build.mjs
