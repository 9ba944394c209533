"""The local platform as stacks see it: where it keeps its cluster's kubeconfig and its registry, and
whether a stack's settings use either (then `make` starts the platform first).

The shell's side of the same facts is tooling/platform/env.sh (``HELLO_KUBECONFIG``, ``HELLO_REGISTRY``),
which overrides these defaults through the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings.stack_files import read_known_settings

LOCAL_KUBECONFIG = "/var/lib/hello-pulumi/kube/admin.kubeconfig"
"""The local platform's admin kubeconfig (``$HELLO_KUBECONFIG``), the default ``cluster.kubeconfig``."""
LOCAL_REGISTRY = "127.0.0.1:5000"
"""The local platform's registry (``$HELLO_REGISTRY``)."""
LOCAL_TOKEN_REGISTRY = "127.0.0.1:5443"
"""The local platform's token-auth registry (``$HELLO_TOKEN_REGISTRY``), TLS from the platform's CA."""


@dataclass(frozen=True)
class Platform:
    """Where the local platform's cluster and registry are (``tooling/platform/env.sh``)."""

    kubeconfig: str = LOCAL_KUBECONFIG
    registry: str = LOCAL_REGISTRY
    token_registry: str = LOCAL_TOKEN_REGISTRY

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Platform:
        return cls(
            kubeconfig=environ.get("HELLO_KUBECONFIG") or LOCAL_KUBECONFIG,
            registry=environ.get("HELLO_REGISTRY") or LOCAL_REGISTRY,
            token_registry=environ.get("HELLO_TOKEN_REGISTRY") or LOCAL_TOKEN_REGISTRY,
        )


def platform_uses(settings: Mapping[str, Any], platform: Platform, directory: Path) -> list[str]:
    """What in a stack's settings uses the local platform; empty when the stack needs none of it.

    A stack uses it when it deploys with the platform's kubeconfig (the default ``cluster.kubeconfig``),
    pushes to one of the platform's registries (``build.registry``), or runs an image from one (``image``).
    Values that are not what the settings expect count as the defaults: the program refuses them anyway.
    """
    uses = []
    cluster = settings.get("cluster")
    kubeconfig = cluster.get("kubeconfig") if isinstance(cluster, dict) else None
    kubeconfig = kubeconfig if isinstance(kubeconfig, str) and kubeconfig else LOCAL_KUBECONFIG
    if _same_file(kubeconfig, platform.kubeconfig, directory) or _same_file(kubeconfig, LOCAL_KUBECONFIG, directory):
        uses.append(f"it deploys with the local platform's kubeconfig ({kubeconfig})")
    build = settings.get("build")
    image = settings.get("image")
    for what, address in (("registry", platform.registry), ("token registry", platform.token_registry)):
        if isinstance(build, dict) and build.get("registry") == address:
            uses.append(f"it pushes to the local platform's {what} ({address})")
        if isinstance(image, str) and image.split("/", 1)[0] == address:
            uses.append(f"it runs an image from the local platform's {what} ({address})")
    return uses


def _same_file(path: str, other: str, directory: Path) -> bool:
    def resolved(value: str) -> str:
        return os.path.realpath(directory / os.path.expanduser(value))

    return resolved(path) == resolved(other)


def uses_local_platform(directory: Path, stack: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """What in a stack uses the local platform (empty: nothing, so `make` need not start it).

    Raises:
        StackFileError: When the stack has no file, or its file is broken.
    """
    return platform_uses(read_known_settings(directory, stack), Platform.from_environment(environ), directory)
