"""MOCK rendering: a stack's Kubernetes manifests from the program run under the test mocks, for scanners.

This is not the kubernetes provider's ``renderYamlToDirectory`` through the real engine: it runs
``__main__.py`` with Pulumi's mocks (tests/conftest.py), takes the inputs each Kubernetes
resource was registered with, fills in ``apiVersion`` and ``kind`` from its type token and writes
one YAML file per resource. Values that only a provider computes (the dev image's digest) are
the mocks' fakes. Use it until real rendering is available; the scanners read the same objects.

Usage: python scan/render_mock.py <stack> <output-dir>
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pulumi
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import Deploy, Registered  # noqa: E402
from tests.test_stacks import run_stack  # noqa: E402

HEADER = "# MOCK RENDERING (scan/render_mock.py): inputs registered under Pulumi mocks, not provider output.\n"


def api_version_and_kind(type_token: str) -> tuple[str, str] | None:
    """``kubernetes:apps/v1:Deployment`` -> ``("apps/v1", "Deployment")``; ``None`` for anything else."""
    package, _, rest = type_token.partition(":")
    module, _, kind = rest.partition(":")
    group, _, version = module.partition("/")
    if package != "kubernetes" or not version or not kind:
        return None
    return (version if group == "core" else f"{group}/{version}"), kind


def _integral(value: Any) -> Any:
    """``value`` with integral floats as ints: inputs pass through protobuf, where every number is a float."""
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifests(resources: Iterable[Registered]) -> list[dict[str, Any]]:
    """Kubernetes objects of the registered resources: the Namespace, then by kind and name."""
    objects = []
    for resource in resources:
        found = api_version_and_kind(resource.type)
        if found is not None:
            api_version, kind = found
            objects.append({"apiVersion": api_version, "kind": kind, **_integral(resource.inputs)})
    # Registration order varies between runs; the Namespace first keeps the files readable and stable.
    return sorted(objects, key=lambda obj: (obj["kind"] != "Namespace", obj["kind"], str(obj["metadata"]["name"])))


def render(stack: str, out_dir: Path, deploy: Deploy | None = None) -> list[Path]:
    """Writes ``<out_dir>/<stack>-<NN>-<kind>-<name>.yaml`` for each Kubernetes object of ``stack``.

    Args:
        stack: A stack with a ``Pulumi.<stack>.yaml`` file.
        out_dir: Created if missing.
        deploy: The harness to run the program with; default: a fresh one, reset afterwards.

    Returns:
        The files written.
    """
    runner = deploy or Deploy()
    try:
        objects = manifests(run_stack(runner, stack).resources)
    finally:
        if deploy is None:
            pulumi.runtime.set_all_config({}, [])
            pulumi.runtime.settings.reset_options()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, obj in enumerate(objects):
        path = out_dir / f"{stack}-{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(HEADER + yaml.safe_dump(obj, sort_keys=False))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    for path in render(argv[0], Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
