#!/usr/bin/env bash
# shellcheck disable=SC2016  # the expected lines below are literal chart text, `$` included
# Lints and renders the Helm chart (helm/horsestream) and checks what it renders: the timely
# hostfile and process index of the dataflow StatefulSet, GPU resources, and that missing
# required values are refused. Helm is built from the Go module proxy by install-deps.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
helm="$HORSESTREAM_HOME/bin/helm"
[ -x "$helm" ] || die "helm is not installed: run scripts/install-deps.sh"
chart=helm/horsestream
"$helm" lint "$chart" -f "$chart/ci/test-values.yaml"
out="$("$helm" template hs "$chart" -f "$chart/ci/test-values.yaml" --namespace farm)"
expect() { grep -qF -- "$1" <<<"$out" || die "rendered chart lacks: $1"; }
expect 'kind: StatefulSet'
expect 'replicas: 3'
expect 'echo "hs-dataflow-$i.hs-dataflow.farm.svc:2101" >> /tmp/hostfile'
expect '--process "${HOSTNAME##*-}"'
expect '--workers 4'
expect 'nvidia.com/gpu: 1'
expect 'HORSESTREAM_EXECUTION_PROVIDER: "cuda"'
expect 'kind: HorizontalPodAutoscaler'
expect 'claimName: horsestream-models'
expect 'name: HORSESTREAM_ADMIN_PASSWORD_HASH'
expect 'path: /api/v1/ready'
expect '--metrics-listen 0.0.0.0:9100'
if "$helm" template hs "$chart" >/dev/null 2>&1; then
  die "the chart rendered without kafka.brokers / database.url / api.jwtSecret"
fi
log "helm chart: lint and render checks passed"
