#!/usr/bin/env python3
"""Checks the chart's Grafana dashboards (helm/horsestream/dashboards/*.json):

- each is a dashboard Grafana loads: title, uid, schemaVersion, panels with a gridPos, unique
  panel ids, Prometheus targets with a refId and an expression, the `datasource` variable;
- every metric name in every PromQL expression is either exported by the Rust sources
  (`src/` and each crate's `src/`; tests and benches do not count) or listed in
  dashboards/planned-metrics.txt; a listed name that has become exported is reported.

Metric names are what is left of an expression once strings, label matchers `{...}`, range
selectors `[...]`, grouping clauses (`by`, `without`, `on`, `ignoring`, `group_left`,
`group_right` with their label lists), function calls, keywords and numbers are removed.
Exported names: the literal name in a Rust source, or for names built as
`format!("horsestream_{name}_total")` the stem as a string literal in the same file.

Usage: check-dashboards.py REPO_DIR
"""
import json
import os
import re
import sys

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "atan2", "start", "end"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        tok = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("("):  # a function
            continue
        if tok in KEYWORDS or tok.startswith("$"):
            continue
        if m.start() > 0 and e[m.start() - 1] in "$.0123456789":
            continue  # a variable, or a number's exponent/suffix
        names.add(tok)
    return names


def base_name(name, known):
    if name in known:
        return name
    for suf in HIST_SUFFIXES:
        if name.endswith(suf) and name[: -len(suf)] in known:
            return name[: -len(suf)]
    return name


def rust_sources(repo):
    for top in sorted(os.listdir(repo)):
        if top in ("target", "tests", "benches", ".git", "helm", "deploy", "scripts"):
            continue
        src = os.path.join(repo, top) if top == "src" else os.path.join(repo, top, "src")
        if not os.path.isdir(src):
            continue
        for root, _, files in os.walk(src):
            for f in files:
                if f.endswith(".rs"):
                    path = os.path.join(root, f)
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        yield path, fh.read()


def exported(name, sources):
    for _, text in sources:
        if re.search(r"\b" + re.escape(name) + r"\b", text):
            return True
        m = re.fullmatch(r"horsestream_(\w+?)_total", name)
        if m and "horsestream_{name}_total" in text and f'"{m.group(1)}"' in text:
            return True
        m = re.fullmatch(r"horsestream_(\w+)", name)
        if m and "horsestream_{name}" in text and f'"{m.group(1)}"' in text:
            return True
    return False


def check_dashboard(path, errors):
    with open(path) as f:
        d = json.load(f)
    for key in ("title", "uid", "schemaVersion", "panels"):
        if key not in d:
            errors.append(f"{path}: no {key}")
    variables = {v.get("name") for v in d.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        errors.append(f"{path}: no `datasource` variable")
    exprs, ids = [], set()

    def walk(panels):
        for p in panels:
            if p.get("id") in ids:
                errors.append(f"{path}: panel id {p.get('id')} used twice")
            ids.add(p.get("id"))
            g = p.get("gridPos", {})
            if not all(k in g for k in ("h", "w", "x", "y")):
                errors.append(f"{path}: panel {p.get('title')!r} has no complete gridPos")
            if p.get("type") == "row":
                walk(p.get("panels", []))
                continue
            targets = p.get("targets", [])
            if not targets:
                errors.append(f"{path}: panel {p.get('title')!r} has no targets")
            for t in targets:
                if not t.get("refId") or not t.get("expr"):
                    errors.append(f"{path}: panel {p.get('title')!r} has a target without refId/expr")
                    continue
                if t.get("expr").count("(") != t.get("expr").count(")"):
                    errors.append(f"{path}: unbalanced parentheses in {t['expr']!r}")
                exprs.append((p.get("title"), t["expr"]))

    walk(d.get("panels", []))
    return exprs


def main(repo):
    chart = os.path.join(repo, "helm", "horsestream")
    planned = {}
    with open(os.path.join(chart, "dashboards", "planned-metrics.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                planned[line.split()[0]] = line
    sources = list(rust_sources(repo))
    errors, used = [], {}
    dashboards = sorted(
        os.path.join(chart, "dashboards", f)
        for f in os.listdir(os.path.join(chart, "dashboards")) if f.endswith(".json"))
    if not dashboards:
        errors.append("no dashboards in helm/horsestream/dashboards")
    for path in dashboards:
        for title, expr in check_dashboard(path, errors):
            for name in metric_names(expr):
                used.setdefault(name, (os.path.basename(path), title))
    n_exported = 0
    for raw, (file, title) in sorted(used.items()):
        name = base_name(raw, planned)
        # A histogram's _bucket/_sum/_count series are exported with the histogram.
        stems = [raw[: -len(s)] for s in HIST_SUFFIXES if raw.endswith(s)]
        if exported(name, sources) or exported(raw, sources) or any(
                exported(stem, sources) for stem in stems):
            n_exported += 1
            if name in planned:
                print(f"note: {name} is exported now: delete it from planned-metrics.txt", file=sys.stderr)
        elif name not in planned:
            errors.append(f"{file}: panel {title!r} uses {raw}, which no Rust source exports "
                          "and planned-metrics.txt does not list")
    for name in sorted(set(planned) - {base_name(n, planned) for n in used}):
        print(f"note: planned metric {name} is used by no dashboard", file=sys.stderr)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    print(f"dashboards: {len(dashboards)} file(s), {len(used)} metric names "
          f"({n_exported} exported, {len(used) - n_exported} planned or external)", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
