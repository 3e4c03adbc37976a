#!/usr/bin/env python3
"""Checks deploy/compose/docker-compose.yml without a container engine (CI has none).

1. config/ (Go, compose-go + BuildKit's Dockerfile parser) loads the file with example.env
   the way `docker compose config` does: Compose-spec schema, interpolation, anchors and
   normalisation; it also parses every Dockerfile a service builds. Its JSON model is then
   checked against the repository:
2. every build context/Dockerfile exists, and every file a Dockerfile COPYs from the context;
3. the horsestream services run real subcommands (src/commands/<name>.rs) with flags the
   binary has, and get only environment variables the Rust sources read;
4. the Kafka and PostgreSQL addresses, user, password and database point at the services of
   the file; `service_healthy` dependencies have a healthcheck; the model directory is mounted;
   published ports are unique; the backup service runs scripts/backup.sh.

Usage: /usr/bin/python3 deploy/compose/check.py   (from anywhere; needs go on PATH)
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
errors = []


def err(msg):
    errors.append(msg)


def rust_sources():
    for top in sorted(os.listdir(REPO)):
        src = os.path.join(REPO, top) if top == "src" else os.path.join(REPO, top, "src")
        if top in ("target", ".git") or not os.path.isdir(src):
            continue
        for root, _, files in os.walk(src):
            for f in files:
                if f.endswith(".rs"):
                    with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                        yield fh.read()


def load():
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "compose-config")
        if subprocess.run(["go", "build", "-o", exe, "."], cwd=os.path.join(HERE, "config")).returncode:
            sys.exit("deploy/compose/config: go build failed")
        out = subprocess.run(
            [exe, "-f", os.path.join(HERE, "docker-compose.yml"), "-env-file",
             os.path.join(HERE, "example.env")],
            stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit("docker-compose.yml: not a valid Compose file (compose-config's message above)")
    return json.loads(out.stdout)


def env_file():
    values = {}
    with open(os.path.join(HERE, "example.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                values[k] = v
    return values


def dockerfile_copies(path, context):
    """Sources of COPY/ADD lines without --from, relative to the build context."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
            continue
        for src in args[:-1]:
            if not glob.glob(os.path.join(context, src)):
                err(f"{os.path.relpath(path, REPO)}: COPY {src}: no such file in the build context")


def main():
    model = load()
    services = model["services"]
    expected = {"kafka", "timescaledb", "ingest", "dataflow", "api", "backup"}
    if set(services) != expected:
        err(f"services are {sorted(services)}, expected {sorted(expected)}")
    sources = list(rust_sources())
    all_src = "\n".join(sources)
    env = env_file()

    for name, s in services.items():
        b = s.get("build")
        if b:
            df = os.path.join(b["context"], b.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(df):
                err(f"{name}: no Dockerfile {df}")
            elif os.path.relpath(df, REPO).split(os.sep)[:2] != ["helm", "images"]:
                err(f"{name}: builds {df}, not one of helm/images")
            else:
                dockerfile_copies(df, b["context"])
        for dep, spec in (s.get("depends_on") or {}).items():
            if dep not in services:
                err(f"{name}: depends on unknown service {dep}")
            elif spec.get("condition") == "service_healthy" and not services[dep].get("healthcheck"):
                err(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")

    # The horsestream image's services.
    hs = {n: s for n, s in services.items() if s.get("image", "").startswith("horsestream:")}
    if set(hs) != {"ingest", "dataflow", "api"}:
        err(f"services on the horsestream image: {sorted(hs)}")
    for name, s in hs.items():
        cmd = s.get("command") or []
        if not cmd or not os.path.isfile(os.path.join(REPO, "src", "commands", f"{cmd[0]}.rs")):
            err(f"{name}: `horsestream {cmd[:1]}` is no subcommand (src/commands/)")
        for flag in (a for a in cmd if a.startswith("--")):
            field = flag[2:].split("=")[0].replace("-", "_")
            if not re.search(rf"\bpub {field}\s*:", all_src):
                err(f"{name}: flag {flag} is not an argument of the binary (no field {field})")
        for var in s.get("environment") or {}:
            if not re.search(rf'"{re.escape(var)}"', all_src):
                err(f"{name}: sets {var}, which no Rust source reads")

        envs = s.get("environment") or {}
        brokers = envs.get("HORSESTREAM_KAFKA_BROKERS", "")
        for hostport in filter(None, brokers.split(",")):
            host, _, port = hostport.partition(":")
            kafka = services.get(host)
            if not kafka or (kafka.get("environment") or {}).get("KAFKA_PORT") != port:
                err(f"{name}: broker {hostport} is no Kafka service of the file")
            elif (kafka.get("environment") or {}).get("KAFKA_ADVERTISED_HOST") != host:
                err(f"{name}: the broker advertises another host than {host}")
        if not brokers:
            err(f"{name}: no HORSESTREAM_KAFKA_BROKERS")
        check_db(name, envs.get("HORSESTREAM_DATABASE_URL"), services, env)

    df = hs.get("dataflow", {})
    model_dir = (df.get("environment") or {}).get("HORSESTREAM_MODEL_DIR")
    if model_dir not in [v.get("target") for v in df.get("volumes") or []]:
        err(f"dataflow: HORSESTREAM_MODEL_DIR={model_dir} is not a mounted volume")

    backup = services.get("backup", {})
    check_db("backup", (backup.get("environment") or {}).get("HORSESTREAM_DATABASE_URL"), services, env)
    mounts = {v.get("target"): v.get("source") for v in backup.get("volumes") or []}
    if os.path.realpath(mounts.get("/scripts", "")) != os.path.join(REPO, "scripts") or \
            "/scripts/backup.sh" not in " ".join(backup.get("entrypoint") or []):
        err("backup: does not run the repository's scripts/backup.sh")

    published = [p.get("published") for s in services.values() for p in s.get("ports") or []]
    if len(published) != len(set(published)):
        err(f"a host port is published twice: {published}")

    if errors:
        print("\n".join(f"docker-compose.yml: {e}" for e in errors), file=sys.stderr)
        sys.exit(1)
    print(f"docker-compose: {len(services)} services valid (compose-go), consistent with "
          "helm/images, the binary's subcommands, flags and variables", file=sys.stderr)


def check_db(name, url, services, env):
    if not url:
        err(f"{name}: no HORSESTREAM_DATABASE_URL")
        return
    u = urlparse(url)
    db = services.get(u.hostname)
    denv = (db or {}).get("environment") or {}
    if not db or u.port != 5432:
        err(f"{name}: database host {u.hostname}:{u.port} is no PostgreSQL service of the file")
    elif (u.username, u.password, u.path.lstrip("/")) != (
            denv.get("POSTGRES_USER"), denv.get("POSTGRES_PASSWORD"), denv.get("POSTGRES_DB")):
        err(f"{name}: database user/password/name differ from the {u.hostname} service's")
    if u.password != env.get("POSTGRES_PASSWORD"):
        err(f"{name}: database password is not POSTGRES_PASSWORD from the env file")


if __name__ == "__main__":
    main()
