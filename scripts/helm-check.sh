#!/usr/bin/env bash
# shellcheck disable=SC2016  # the expected lines below are literal chart text, `$` included
# Checks the Helm chart (helm/horsestream) and the single-host deployment (deploy/compose):
# - `helm lint` and `helm template` with the default, GPU, multi-process and lag-autoscaling
#   values (ci/*.yaml), and what they render: the timely hostfile and process index, GPU
#   resources, probes, autoscalers; missing required values are refused;
# - every rendered manifest validated by kubeconform against the Kubernetes JSON schemas of
#   the oldest and newest version the schema wheel ships (KEDA's ScaledObject has no schema
#   there: checked by the expectations below);
# - the dataflow container's shell script with `sh -n` and shellcheck;
# - the Grafana dashboards: structure, and every metric name exported by the Rust sources or
#   listed in dashboards/planned-metrics.txt (helm/ci/check-dashboards.py);
# - deploy/compose/docker-compose.yml (deploy/compose/check.py).
# helm and kubeconform are built from the Go module proxy and the schemas come from the PyPI
# wheel kubernetes-validate, all by scripts/install-deps.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
helm="$HORSESTREAM_HOME/bin/helm"
kubeconform="$HORSESTREAM_HOME/bin/kubeconform"
schemas="$HORSESTREAM_HOME/k8s-schemas"
py=/usr/bin/python3   # Debian's, with python3-yaml (install-deps.sh)
for tool in "$helm" "$kubeconform"; do
  [ -x "$tool" ] || die "$tool is not installed: run scripts/install-deps.sh"
done
[ -d "$schemas" ] || die "no Kubernetes schemas in $schemas: run scripts/install-deps.sh"
# Oldest and newest Kubernetes the schema wheel ships.
k8s_versions=(1.25.0 1.37.0)
chart=helm/horsestream
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

out=""
# render NAME [helm args...]: lint, render into $out and $work/NAME.yaml, validate the schemas.
render() {
  local name="$1" v
  shift
  "$helm" lint --quiet "$chart" "$@" >"$work/$name.lint" 2>&1 ||
    { cat "$work/$name.lint" >&2; die "helm lint failed for the $name values"; }
  out="$("$helm" template hs "$chart" --namespace farm "$@")"
  printf '%s\n' "$out" >"$work/$name.yaml"
  for v in "${k8s_versions[@]}"; do
    "$kubeconform" -strict -summary -kubernetes-version "$v" -skip ScaledObject \
      -schema-location "$schemas/{{ .NormalizedKubernetesVersion }}-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
      "$work/$name.yaml" >"$work/$name.kc" 2>&1 ||
      { cat "$work/$name.kc" >&2; die "the $name render is not valid Kubernetes $v"; }
    log "$name values, Kubernetes $v: $(tail -n 1 "$work/$name.kc")"
  done
  "$py" helm/ci/dataflow-script.py <"$work/$name.yaml" >"$work/$name.sh"
  sh -n "$work/$name.sh" || die "the dataflow script of the $name render is not valid sh"
  if command -v shellcheck >/dev/null 2>&1; then
    # SC3028: HOSTNAME is not POSIX, but the container runtime sets it to the pod's name.
    shellcheck -s sh -e SC3028 "$work/$name.sh" || die "shellcheck: the dataflow script of the $name render"
  fi
}
expect() { grep -qF -- "$1" <<<"$out" || die "rendered chart lacks: $1"; }
refuse() { ! grep -qF -- "$1" <<<"$out" || die "rendered chart has: $1"; }

# GPU nodes, 3 processes x 4 workers.
render gpu -f "$chart/ci/test-values.yaml"
expect 'kind: StatefulSet'
expect 'replicas: 3'
expect 'n=3'
expect 'echo "hs-dataflow-$i.hs-dataflow.farm.svc:2101" >> /tmp/hostfile'
expect '--process "${HOSTNAME##*-}"'
expect '--workers 4'
expect 'exec horsestream dataflow'
expect 'nvidia.com/gpu: 1'
expect 'HORSESTREAM_EXECUTION_PROVIDER: "cuda"'
expect 'kind: HorizontalPodAutoscaler'
expect 'claimName: horsestream-models'
expect 'name: HORSESTREAM_ADMIN_PASSWORD_HASH'
expect 'path: /api/v1/ready'
expect '--metrics-listen 0.0.0.0:9100'
expect 'HORSESTREAM_KAFKA_SECURITY_PROTOCOL: "sasl_ssl"'
expect 'HORSESTREAM_KAFKA_SSL_CA_LOCATION: /etc/horsestream/kafka-tls/ca.crt'
expect 'name: HORSESTREAM_KAFKA_SASL_PASSWORD'
expect 'secretName: horsestream-kafka-tls'
expect 'value: /etc/horsestream/api-tls/tls.crt'
expect 'secretName: horsestream-api-tls'
expect 'httpGet: {path: /api/v1/ready, port: http, scheme: HTTPS}'
expect '- "0.0.0.0:9102"'
refuse 'kind: ScaledObject'

# The defaults with only the required values.
render default -f "$chart/ci/default-values.yaml"
expect 'replicas: 2'
expect 'n=2'
expect 'HORSESTREAM_EXECUTION_PROVIDER: "cpu"'
refuse 'nvidia.com/gpu'
refuse 'grafana_dashboard'
refuse 'kind: ServiceAccount'

# CPU cluster of 4 processes x 2 workers, existing Secrets, fixed API size.
render multiprocess -f "$chart/ci/multiprocess-values.yaml"
expect 'replicas: 4'
expect 'n=4'
expect '--workers 2'
expect 'name: horsestream-db'
expect 'name: horsestream-jwt'
refuse 'kind: HorizontalPodAutoscaler'
refuse 'kind: Secret'

# Lag autoscaling through prometheus-adapter's external metrics, and the dashboard ConfigMap.
render autoscaling-hpa -f "$chart/ci/autoscaling-values.yaml"
expect 'name: kafka_consumergroup_lag'
expect 'consumergroup: "horsestream-dataflow"'
expect 'topic: "horsestream.chunks"'
expect 'averageValue: "30"'
expect 'name: horsestream_ingest_pending_streams'
expect 'kind: StatefulSet'
expect 'serviceAccountName: hs-dataflow'
expect 'resources: ["statefulsets/scale"]'
expect '/statefulsets/hs-dataflow/scale'
expect 'kill -TERM "$pid"'
expect 'grafana_dashboard: "1"'
expect 'horsestream.json: |'
refuse 'exec horsestream dataflow'
[ "$(grep -c '^kind: HorizontalPodAutoscaler' <<<"$out")" = 3 ] ||
  die "expected the api, dataflow and ingest HorizontalPodAutoscalers"
# The StatefulSet's and the ingest Deployment's sizes belong to the autoscalers.
# The dashboard ConfigMap carries the chart's dashboard files unchanged.
"$py" - "$work/autoscaling-hpa.yaml" "$chart/dashboards" <<'PY' ||
import glob, json, os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] in ("StatefulSet", "Deployment") and d["metadata"]["name"] != "hs-api":
        assert "replicas" not in d["spec"], d["metadata"]["name"] + " still sets replicas"
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "hs-dashboards")
files = sorted(glob.glob(os.path.join(sys.argv[2], "*.json")))
assert sorted(cm["data"]) == [os.path.basename(f) for f in files], sorted(cm["data"])
for f in files:
    assert json.loads(cm["data"][os.path.basename(f)]) == json.load(open(f)), f
PY
  die "autoscaling render: an autoscaled workload sets replicas, or the dashboard ConfigMap differs"

# The same through KEDA.
render autoscaling-keda -f "$chart/ci/autoscaling-values.yaml" --set lagAutoscaling.provider=keda
expect 'kind: ScaledObject'
expect 'apiVersion: keda.sh/v1alpha1'
expect 'type: kafka'
expect 'bootstrapServers: "kafka:9092"'
expect 'consumerGroup: "horsestream-dataflow"'
expect 'lagThreshold: "30"'
expect 'offsetResetPolicy: earliest'
expect 'type: prometheus'
expect 'query: "sum(horsestream_ingest_pending_streams{namespace=\"farm\"})"'
[ "$(grep -c '^kind: HorizontalPodAutoscaler' <<<"$out")" = 1 ] ||
  die "with KEDA only the api keeps a HorizontalPodAutoscaler"

# Refused values.
if "$helm" template hs "$chart" >/dev/null 2>&1; then
  die "the chart rendered without kafka.brokers / database.url / api.jwtSecret"
fi
if "$helm" template hs "$chart" -f "$chart/ci/autoscaling-values.yaml" \
  --set dataflow.autoscaling.maxProcesses=5 >/dev/null 2>&1; then
  die "the chart rendered a dataflow autoscaler with more workers than partitions"
fi
if "$helm" template hs "$chart" -f "$chart/ci/default-values.yaml" \
  --set lagAutoscaling.provider=custom >/dev/null 2>&1; then
  die "values.schema.json let an unknown lagAutoscaling.provider through"
fi
log "helm chart: lint, render, schema and expectation checks passed"

"$py" helm/ci/check-dashboards.py .
"$py" deploy/compose/check.py
