#!/usr/bin/env python3
"""Unpacks the Kubernetes JSON schemas that the PyPI wheel `kubernetes-validate` ships
(one folder per Kubernetes minor version, generated from each release's OpenAPI spec) into a
folder kubeconform reads with
  -schema-location 'DIR/{{ .NormalizedKubernetesVersion }}-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json'

The wheel's schemas point at their shared definitions with absolute references
(`"$id": "https://kubernetes.io/api/<kind>"`, `"$ref": "/api/_definitions.json#/..."`), which a
validator would try to fetch from kubernetes.io. Each kind file loses its `$id` and its
references become relative to the file (`_definitions.json#/...`), so everything resolves
from disk.

Usage: k8s-schemas.py WHEEL OUT_DIR   (only the *-local-strict folders are unpacked)
"""
import json
import os
import sys
import zipfile

PREFIX = "kubernetes_validate/kubernetes-json-schema/"
ABS_DEFS = "/api/_definitions.json#"


def relocate(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(ABS_DEFS):
                v = "_definitions.json#" + v[len(ABS_DEFS):]
            out[k] = relocate(v)
        return out
    if isinstance(node, list):
        return [relocate(v) for v in node]
    return node


def main(wheel, out_dir):
    count = 0
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not name.startswith(PREFIX) or not name.endswith(".json"):
                continue
            rel = name[len(PREFIX):]
            folder = rel.split("/", 1)[0]
            if not folder.endswith("-local-strict"):
                continue
            schema = json.loads(z.read(name))
            if isinstance(schema, dict):
                schema.pop("$id", None)
                schema = relocate(schema)
            path = os.path.join(out_dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(schema, f)
            count += 1
    if count == 0:
        sys.exit(f"no *-local-strict schemas found in {wheel}")
    print(f"{count} schema files in {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
