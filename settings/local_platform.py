"""The local platform as stacks see it: where it keeps its cluster's kubeconfig and its registry, and
whether a stack's settings use either (then `make` starts the platform first).

The shell's side of the same facts is tooling/platform/env.sh (``HELLO_KUBECONFIG``, ``HELLO_REGISTRY``),
which overrides these defaults through the environment. What differs per machine (the base image's digest) the
platform writes to a file env.sh names, and reaches stacks only through this machine's copy of their stack file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import decoded_object
from settings.stack_files import read_known_settings

LOCAL_KUBECONFIG = "/var/lib/hello-pulumi/kube/admin.kubeconfig"
"""The local platform's admin kubeconfig (``$HELLO_KUBECONFIG``), the default ``cluster.kubeconfig``."""
LOCAL_REGISTRY = "127.0.0.1:5000"
"""The local platform's registry (``$HELLO_REGISTRY``)."""
LOCAL_TOKEN_REGISTRY = "127.0.0.1:5443"
"""The local platform's token-auth registry (``$HELLO_TOKEN_REGISTRY``), TLS from the platform's CA."""
PINNED_BASE_IMAGE_VARIABLE = "HELLO_BASE_IMAGE_PINNED_FILE"
"""Names the file where tooling/platform/base-image.sh records the Node base image pinned by the digest its registry
serves (one line, ``<registry>/<repository>@sha256:<hex>``); unset where no local platform was started."""
CHECKER_IMAGE_KEY = "checkerImage"
"""The key of ``verification`` that names the image the verification Job runs."""


@dataclass(frozen=True)
class Platform:
    """Where the local platform's cluster and registry are (``tooling/platform/env.sh``)."""

    kubeconfig: str = LOCAL_KUBECONFIG
    registry: str = LOCAL_REGISTRY
    token_registry: str = LOCAL_TOKEN_REGISTRY
    pinned_base_image: str | None = None
    """The Node base image pinned by digest, as the platform recorded it; None when it recorded none."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Platform:
        return cls(
            kubeconfig=environ.get("HELLO_KUBECONFIG") or LOCAL_KUBECONFIG,
            registry=environ.get("HELLO_REGISTRY") or LOCAL_REGISTRY,
            token_registry=environ.get("HELLO_TOKEN_REGISTRY") or LOCAL_TOKEN_REGISTRY,
            pinned_base_image=_recorded(environ.get(PINNED_BASE_IMAGE_VARIABLE)),
        )


def _recorded(path: str | None) -> str | None:
    """The one line a platform file holds; None when there is no such file (the program refuses a bad value)."""
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


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


def local_platform_settings(settings: Mapping[str, Any], platform: Platform, directory: Path) -> dict[str, Any]:
    """The settings this machine's copy of a stack file gets from the local platform, keys without the prefix.

    A stack on the local platform whose ``verification`` names no ``checkerImage`` runs its verification Job from
    the platform's Node base image, pinned by the digest this machine's registry serves: no image is pulled from
    outside, and the tracked stack file stays the same on every machine. Anything else gets nothing.
    """
    verification = decoded_object(settings.get("verification"))
    verification = verification if isinstance(verification, dict) else {}
    if CHECKER_IMAGE_KEY in verification or platform.pinned_base_image is None:
        return {}
    if not platform_uses(settings, platform, directory):
        return {}
    return {"verification": {**verification, CHECKER_IMAGE_KEY: platform.pinned_base_image}}
