"""A stand-in ``kubectl`` for the tests that run `python -m ops` on a stack with an Ingress: it answers
``kubectl ... get <kind>/<name> ... --output=name`` as a cluster holding every object asked for, except those
``FAKE_KUBECTL_MISSING`` lists (``secret/x,ingressclass/y``); ``get ingressclass`` lists
``FAKE_KUBECTL_CLASSES``. ``FAKE_KUBECTL_FAILS`` makes it fail as an unreachable cluster does. No cluster is asked.
"""

from __future__ import annotations

import sys
from pathlib import Path

KUBECTL = """
import os, sys
args = sys.argv[1:]
log = os.environ.get("FAKE_KUBECTL_LOG")
if log:
    with open(log, "a") as f:
        f.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_KUBECTL_FAILS"):
    print("Unable to connect to the server: dial tcp 127.0.0.1:6443: connect: connection refused", file=sys.stderr)
    sys.exit(1)
asked = args[args.index("get") + 1:]
missing = set(filter(None, os.environ.get("FAKE_KUBECTL_MISSING", "").split(",")))
groups = {"ingressclass": "ingressclass.networking.k8s.io"}
for reference in (a for a in asked if not a.startswith("-")):
    kind, _, name = reference.partition("/")
    if not name:
        for found in filter(None, os.environ.get("FAKE_KUBECTL_CLASSES", "").split(",")):
            print(f"{groups.get(kind, kind)}/{found}")
    elif reference not in missing:
        print(f"{groups.get(kind, kind)}/{name}")
"""


def install_kubectl(bin_dir: Path) -> Path:
    """Writes the stand-in as ``bin_dir/kubectl``; put ``bin_dir`` first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{KUBECTL}")
    kubectl.chmod(0o755)
    return kubectl
