#!/usr/bin/env python3
"""Prints the shell script the dataflow StatefulSet's container runs (`sh -c ARGS[0]`), read
from rendered manifests on stdin, so scripts/helm-check.sh can check it with `sh -n` and
shellcheck."""
import sys

import yaml

for doc in yaml.safe_load_all(sys.stdin):
    if doc and doc.get("kind") == "StatefulSet":
        container = doc["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["/bin/sh", "-c"], container["command"]
        sys.stdout.write(container["args"][0])
        break
else:
    sys.exit("no StatefulSet in the rendered chart")
