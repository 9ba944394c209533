"""Claims that must be unique among the stacks of one cluster: the node port and the namespace.

Kubernetes reports a taken node port only when the second stack is applied, and a namespace
another stack uses would be taken over; both are found here from the stack files, before
anything is registered.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from settings import PROJECT
from settings.model import ClusterSettings, StackSettings, _integer, _object

Raw = Mapping[str, Any]


def cluster_identity(cluster: ClusterSettings) -> tuple[str, str | None]:
    """Two stacks with the same identity deploy to the same cluster."""
    return os.path.realpath(os.path.expanduser(cluster.kubeconfig)), cluster.context


def cluster_clashes(settings: StackSettings, other_stacks: Mapping[str, Raw]) -> list[str]:
    """Every claim of this stack that another stack of the same cluster makes too.

    Args:
        settings: The current stack's parsed settings.
        other_stacks: Raw config (keys without the project prefix) of the project's stacks, by name.
    """
    return node_port_clashes(settings, other_stacks) + namespace_clashes(settings, other_stacks)


def node_port_clashes(settings: StackSettings, other_stacks: Mapping[str, Raw]) -> list[str]:
    return _clashes("nodePort", settings.node_port, settings, other_stacks, lambda _, raw: _claimed_port(raw))


def namespace_clashes(settings: StackSettings, other_stacks: Mapping[str, Raw]) -> list[str]:
    return _clashes("namespace", settings.namespace, settings, other_stacks, _claimed_namespace)


def _clashes(
    key: str, value: object, settings: StackSettings, others: Mapping[str, Raw], claim: Callable[[str, Raw], object]
) -> list[str]:
    if value is None:
        return []
    here = cluster_identity(settings.cluster)
    kubeconfig, context = here
    return [
        f"{key} must be unique among the stacks of one cluster, got {value!r}, which stack '{name}' also claims "
        f"on the same cluster (kubeconfig {kubeconfig}, context {context or 'current'})"
        for name, raw in sorted(others.items())
        if name != settings.stack and claim(name, raw) == value and _cluster_of(raw) == here
    ]


# Another stack's own mistakes are reported when that stack runs, not here: read it leniently.
def _claimed_port(raw: Raw) -> int | None:
    try:
        return int(_integer(raw.get("nodePort")))
    except ValueError:
        return None


def _claimed_namespace(name: str, raw: Raw) -> object:
    return raw.get("namespace") or f"{PROJECT}-{name}"


def _cluster_of(raw: Raw) -> tuple[str, str | None]:
    try:
        return cluster_identity(ClusterSettings.model_validate(_object(raw.get("cluster") or {})))
    except (ValueError, ValidationError):
        return cluster_identity(ClusterSettings())
