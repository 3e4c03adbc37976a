#!/usr/bin/env bash
# Installs everything horsestream's builds and integration tests need on a Debian 12 machine:
# apt packages (FFmpeg dev libs, PostgreSQL 15, GStreamer RTSP server), TimescaleDB and pgvector
# built from Debian trixie source packages, the ONNX Runtime shared library (from the PyPI
# wheel) and Apache Kafka broker jars (from Maven Central).
#
# Idempotent: every step checks first, so a second run is a fast no-op. Needs root for apt and
# for installing the PostgreSQL extensions; everything else lands in $HORSESTREAM_HOME.
# Usage: scripts/install-deps.sh [--demo]  (see scripts/README.md for the env vars)
#   --demo  only what `horsestream demo` needs: FFmpeg libraries and ONNX Runtime (no servers)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export DEBIAN_FRONTEND=noninteractive

DEMO_APT_PACKAGES=(
  # FFmpeg (ingest, ffmpeg-next) and bindgen
  ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev libclang-dev clang pkg-config unzip
  # OpenSSL for librdkafka's TLS and SASL_SSL (rdkafka's `ssl` feature)
  libssl-dev
)
APT_PACKAGES=(
  "${DEMO_APT_PACKAGES[@]}"
  # PostgreSQL 15 and what building TimescaleDB/pgvector from source needs
  "postgresql-$HS_PG_MAJOR" "postgresql-server-dev-$HS_PG_MAJOR" cmake make gcc dpkg-dev unzip
  # RTSP test camera (GStreamer RTSP server driven by Debian's /usr/bin/python3)
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-rtsp gstreamer1.0-tools
  # helm-check.sh: dashboard and docker-compose checks (Debian's /usr/bin/python3)
  python3-yaml
  # the web client's browser test: Playwright (playwright-core from npm) drives this Chromium
  chromium
)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && SUDO=(sudo) || SUDO=()
fi

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    "${SUDO[@]}" apt-get update -qq
    APT_UPDATED=1
  fi
}

pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

step_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  # Java 17+ and Maven run Kafka and fetch its jars; only install them when absent
  # (a JDK from elsewhere on PATH is fine).
  if [ "$DEMO_ONLY" -eq 0 ]; then
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    # The web client's build and its tests (scripts/web-build.sh, npm ci); a newer Node on
    # PATH is fine.
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
  fi
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt: all ${#APT_PACKAGES[@]} packages present"
    return 0
  fi
  log "apt: installing ${missing[*]}"
  apt_update_once
  local alog="$HS_BUILD_DIR/apt-install.log"
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$alog" 2>&1 ||
    { tail -n 30 "$alog" >&2; die "apt-get install failed (log: $alog)"; }
}

# The mirror this machine's own apt sources use for the main Debian archive (not security),
# from one-line (.list) or deb822 (.sources) files: the source whose suite is this release's
# codename (e.g. bookworm) with component main. Falls back to deb.debian.org.
debian_mirror() {
  local f uri="" codename
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-bookworm}")
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    uri=$(awk -v cn="${codename:-bookworm}" '$1 == "deb" || $1 == "deb-src" {
                 i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                 if ($i !~ /security/ && $(i+1) == cn && $(i+2) ~ /main/) { print $i; exit }
               }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -r "$f" ] || continue
      # deb822 stanzas: the URIs of a stanza that serves this release's main suite.
      uri=$(awk -v cn="${codename:-bookworm}" 'BEGIN { RS = ""; FS = "\n" }
                 { u = ""; s = ""; c = ""
                   for (i = 1; i <= NF; i++) {
                     if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u = a[1] }
                     if ($i ~ /^Suites:/) s = $i
                     if ($i ~ /^Components:/) c = $i
                   }
                   if (u != "" && u !~ /security/ && s !~ /security/ && c ~ /main/ && s ~ ("[ \t]" cn "([ \t]|$)")) { print u; exit } }' "$f")
      [ -n "$uri" ] && break
    done
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Private apt configuration whose only source is `deb-src MIRROR trixie main`; the system's
# sources, lists and caches are left untouched.
trixie_apt_conf() {
  local root="$HS_BUILD_DIR/apt-trixie" mirror keyring=""
  mirror=$(debian_mirror)
  mkdir -p "$root/sources.list.d" "$root/lists/partial" "$root/cache/archives/partial" "$root/preferences.d"
  [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] && keyring="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
  echo "deb-src ${keyring}${mirror} trixie main" >"$root/sources.list"
  cat >"$root/apt.conf" <<EOF
Dir::Etc::SourceList "$root/sources.list";
Dir::Etc::SourceParts "$root/sources.list.d";
Dir::Etc::PreferencesParts "$root/preferences.d";
Dir::State::Lists "$root/lists";
Dir::Cache "$root/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
Acquire::Languages "none";
EOF
  log "trixie sources from $mirror (config $root/apt.conf)"
  echo "$root/apt.conf"
}

step_pg_extensions() {
  local ext_dir="/usr/share/postgresql/$HS_PG_MAJOR/extension"
  local pg_config="$HS_PG_BIN/pg_config"
  local need=()
  [ -f "$ext_dir/vector.control" ] || need+=(pgvector)
  [ -f "$ext_dir/timescaledb.control" ] || need+=(timescaledb)
  if [ "${#need[@]}" -eq 0 ]; then
    log "pg extensions: timescaledb and vector present"
    return 0
  fi
  [ -x "$pg_config" ] || die "$pg_config missing: postgresql-server-dev-$HS_PG_MAJOR not installed?"

  local conf src="$HS_BUILD_DIR/src"
  conf=$(trixie_apt_conf)
  apt-get -c "$conf" update -qq
  rm -rf "$src" && mkdir -p "$src"
  local p names=()
  for p in "${need[@]}"; do names+=("$p/trixie"); done
  (cd "$src" && apt-get -c "$conf" source -qq "${names[@]}" >"$src/apt-source.log" 2>&1) ||
    { tail -n 30 "$src/apt-source.log" >&2; die "apt-get source ${names[*]} failed (log: $src/apt-source.log)"; }

  local d
  if [[ " ${need[*]} " == *" pgvector "* ]]; then
    d=$(find "$src" -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
    [ -n "$d" ] || die "pgvector source not unpacked in $src"
    log "building pgvector from $d"
    make -C "$d" -s PG_CONFIG="$pg_config" OPTFLAGS="" -j"$(nproc)"
    "${SUDO[@]}" make -C "$d" -s PG_CONFIG="$pg_config" OPTFLAGS="" install
  fi
  if [[ " ${need[*]} " == *" timescaledb "* ]]; then
    d=$(find "$src" -maxdepth 1 -type d -name 'timescaledb-*' | head -n1)
    [ -n "$d" ] || die "timescaledb source not unpacked in $src"
    log "building timescaledb (Apache-only) from $d"
    cmake -S "$d" -B "$d/build" -DCMAKE_BUILD_TYPE=Release -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF \
      -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$pg_config" >"$d/cmake.log" 2>&1 ||
      { tail -n 30 "$d/cmake.log" >&2; die "timescaledb cmake failed (log: $d/cmake.log)"; }
    cmake --build "$d/build" -j"$(nproc)" >"$d/build.log" 2>&1 ||
      { tail -n 30 "$d/build.log" >&2; die "timescaledb build failed (log: $d/build.log)"; }
    "${SUDO[@]}" cmake --install "$d/build" >/dev/null
  fi
  if [ ! -f "$ext_dir/vector.control" ] || [ ! -f "$ext_dir/timescaledb.control" ]; then
    die "extensions still missing in $ext_dir after build"
  fi
}

step_onnxruntime() {
  if [ -f "$HS_ORT_LIB" ]; then
    log "onnxruntime: $HS_ORT_LIB present"
    return 0
  fi
  local dl="$HS_BUILD_DIR/onnxruntime" v wheel="" pip=()
  if command -v pip3 >/dev/null 2>&1; then pip=(pip3); else pip=(python3 -m pip); fi
  rm -rf "$dl" && mkdir -p "$dl" "$HS_ORT_DIR"
  for v in $HS_ORT_VERSIONS; do
    if "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$dl" "onnxruntime==$v" >&2; then
      wheel=$(find "$dl" -maxdepth 1 -name "onnxruntime-$v-*.whl" | head -n1)
      [ -n "$wheel" ] && break
    fi
    log "onnxruntime $v not available, trying the next version"
  done
  [ -n "$wheel" ] || die "could not download any onnxruntime wheel of: $HS_ORT_VERSIONS"
  unzip -q -o -j "$wheel" 'onnxruntime/capi/libonnxruntime.so.*' -d "$dl/lib"
  local so
  so=$(find "$dl/lib" -maxdepth 1 -name 'libonnxruntime.so.*' | head -n1)
  [ -n "$so" ] || die "no libonnxruntime.so.* inside $wheel"
  mv -f "$so" "$HS_ORT_LIB.tmp" && mv -f "$HS_ORT_LIB.tmp" "$HS_ORT_LIB"
  log "onnxruntime: $(basename "$wheel") -> $HS_ORT_LIB"
}

step_kafka() {
  local stamp="$HS_KAFKA_LIBS/.horsestream-kafka-$HS_KAFKA_VERSION"
  if [ -f "$stamp" ]; then
    log "kafka: $HS_KAFKA_VERSION jars present in $HS_KAFKA_LIBS"
    return 0
  fi
  local tmp="$HS_KAFKA_DIR/libs.tmp"
  rm -rf "$tmp" && mkdir -p "$HS_KAFKA_DIR"
  local mlog="$HS_BUILD_DIR/kafka-mvn.log"
  mvn -B -Dstyle.color=never -f "$HS_SCRIPTS_DIR/kafka/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$HS_KAFKA_VERSION" -DoutputDirectory="$tmp" >"$mlog" 2>&1 ||
    { grep -E 'ERROR' "$mlog" | head -n 20 >&2
      die "maven could not resolve org.apache.kafka:kafka_2.13:$HS_KAFKA_VERSION (log: $mlog)"; }
  [ -f "$tmp/kafka_2.13-$HS_KAFKA_VERSION.jar" ] || die "kafka_2.13-$HS_KAFKA_VERSION.jar missing in $tmp"
  touch "$tmp/.horsestream-kafka-$HS_KAFKA_VERSION"
  rm -rf "$HS_KAFKA_LIBS" && mv "$tmp" "$HS_KAFKA_LIBS"
  log "kafka: $(find "$HS_KAFKA_LIBS" -name '*.jar' | wc -l) jars in $HS_KAFKA_LIBS"
}

DEMO_ONLY=0

# Helm, built from the Go module proxy (no prebuilt binary can be fetched here), for
# scripts/helm-check.sh.
step_helm() {
  local bin="$HORSESTREAM_HOME/bin/helm"
  if [ -x "$bin" ]; then
    log "helm: $bin present"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go is needed to build helm (apt-get install golang-go)"
  mkdir -p "$HORSESTREAM_HOME/bin"
  GOBIN="$HORSESTREAM_HOME/bin" go install "helm.sh/helm/v3/cmd/helm@${HS_HELM_VERSION:-v3.16.4}" \
    >"$HS_BUILD_DIR/helm-install.log" 2>&1 ||
    { tail -n 20 "$HS_BUILD_DIR/helm-install.log" >&2; die "building helm failed"; }
  log "helm: built $("$bin" version --short)"
}

# kubeconform, built from the Go module proxy like helm, for scripts/helm-check.sh.
step_kubeconform() {
  local bin="$HORSESTREAM_HOME/bin/kubeconform" v="${HS_KUBECONFORM_VERSION:-v0.8.0}"
  if [ -x "$bin" ] && [ -f "$HORSESTREAM_HOME/bin/.kubeconform-$v" ]; then
    log "kubeconform: $bin present"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go is needed to build kubeconform (apt-get install golang-go)"
  mkdir -p "$HORSESTREAM_HOME/bin"
  GOBIN="$HORSESTREAM_HOME/bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$v" \
    >"$HS_BUILD_DIR/kubeconform-install.log" 2>&1 ||
    { tail -n 20 "$HS_BUILD_DIR/kubeconform-install.log" >&2; die "building kubeconform failed"; }
  touch "$HORSESTREAM_HOME/bin/.kubeconform-$v"
  log "kubeconform: built $v"
}

# Kubernetes JSON schemas (v1.25 ... v1.37, strict) for kubeconform, from the PyPI wheel
# kubernetes-validate, which ships them; made resolvable from disk by helm/ci/k8s-schemas.py.
step_k8s_schemas() {
  local v="${HS_K8S_SCHEMAS_VERSION:-1.37.0}" dir="$HORSESTREAM_HOME/k8s-schemas" pip=()
  if [ -f "$dir/.kubernetes-validate-$v" ]; then
    log "k8s-schemas: $dir present"
    return 0
  fi
  if command -v pip3 >/dev/null 2>&1; then pip=(pip3); else pip=(python3 -m pip); fi
  rm -rf "$HS_BUILD_DIR/k8s-schemas" "$dir.tmp"
  "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$HS_BUILD_DIR/k8s-schemas" \
    "kubernetes-validate==$v" >&2 || die "pip could not download kubernetes-validate==$v"
  python3 "$HS_REPO_DIR/helm/ci/k8s-schemas.py" "$HS_BUILD_DIR"/k8s-schemas/*.whl "$dir.tmp"
  touch "$dir.tmp/.kubernetes-validate-$v"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "k8s-schemas: $(find "$dir" -maxdepth 1 -name 'v*' | wc -l) Kubernetes versions in $dir"
}

main() {
  if [ "${1:-}" = "--demo" ]; then
    DEMO_ONLY=1
    APT_PACKAGES=("${DEMO_APT_PACKAGES[@]}")
  elif [ -n "${1:-}" ]; then
    die "unknown option $1 (usage: install-deps.sh [--demo])"
  fi
  mkdir -p "$HORSESTREAM_HOME" "$HS_BUILD_DIR"
  log "HORSESTREAM_HOME=$HORSESTREAM_HOME"
  local start=$SECONDS
  timed apt step_apt
  if [ "$DEMO_ONLY" -eq 0 ]; then
    timed pg-extensions step_pg_extensions
  fi
  timed onnxruntime step_onnxruntime
  if [ "$DEMO_ONLY" -eq 0 ]; then
    timed kafka-jars step_kafka
    timed helm step_helm
    timed kubeconform step_kubeconform
    timed k8s-schemas step_k8s_schemas
  fi
  log "install-deps done in $((SECONDS - start)) s"
}

main "$@"
