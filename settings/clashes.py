"""The node port and the namespace, which a stack must not share with another stack of its cluster."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from settings import PROJECT
from settings.model import ClusterSettings, StackSettings

Raw = Mapping[str, Any]


def node_port_clashes(settings: StackSettings, other_stacks: Mapping[str, Raw]) -> list[str]:
    """Kubernetes would refuse a taken node port only when the second stack is applied: say so before."""
    return _clashes("nodePort", settings.node_port, settings, other_stacks)


def namespace_clashes(settings: StackSettings, other_stacks: Mapping[str, Raw]) -> list[str]:
    """A namespace another stack uses would be taken over, and deleted with this stack."""
    return _clashes("namespace", settings.namespace, settings, other_stacks)


def _clashes(key: str, value: object, settings: StackSettings, others: Mapping[str, Raw]) -> list[str]:
    kubeconfig, context = here = _identity(settings.cluster)
    return [
        f"{key} must be unique among the stacks of one cluster, got {value!r}, which stack '{name}' also claims "
        f"on the same cluster (kubeconfig {kubeconfig}, context {context or 'current'})"
        for name, raw in sorted(others.items())
        if value is not None and name != settings.stack and _claim(key, name, raw) == str(value)
        if _identity(raw.get("cluster")) == here
    ]


# Another stack's own mistakes are reported when that stack runs, not here: read it leniently.
def _claim(key: str, name: str, raw: Raw) -> str:
    return str(raw.get(key) or (f"{PROJECT}-{name}" if key == "namespace" else None))


def _identity(cluster: object) -> tuple[str, str | None]:
    """Two stacks with the same identity deploy to the same cluster; a cluster setting in error is the local one."""
    try:
        settings = ClusterSettings.model_validate(cluster or {})
    except ValueError:
        settings = ClusterSettings()
    return os.path.realpath(os.path.expanduser(settings.kubeconfig)), settings.context
