"""The registry a stack pulls its pinned image from, asked with the credentials its pods pull with."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from image_ref import ImageRef
from ops.registry import Registry, from_environment, local_platform_ca
from settings import PROJECT
from settings.stack_files import plain_config


def pull_user(work_dir: Path, stack: str) -> str | None:
    """The user of a stack's image pull secret (its ``imagePull.username``), if it has one."""
    pull = plain_config(work_dir, stack).get(f"{PROJECT}:imagePull")
    return str(pull["username"]) if isinstance(pull, dict) and pull.get("username") else None


def stack_registry(
    image: ImageRef,
    work_dir: Path,
    stack: str,
    pull_password: Callable[[], str],
    environ: Mapping[str, str] = os.environ,
) -> Registry:
    """The image's registry with the first credentials found, in the order users expect.

    The stack's own image pull secret (``imagePull.username`` and the secret ``imagePullPassword``, read by
    ``pull_password`` only when the stack has one), else ``REGISTRY_USERNAME``/``REGISTRY_PASSWORD`` when
    ``REGISTRY_ADDRESS`` names that registry, else the Docker config and its credential helpers, else none.

    Raises:
        RegistryError: When ``REGISTRY_ADDRESS`` is malformed or the Docker config is broken.
    """
    username = pull_user(work_dir, stack)
    if username is None:
        return from_environment(image.registry, environ)
    source = f"stack {stack!r}'s imagePull and imagePullPassword"
    return Registry(image.registry, username, pull_password(), source, local_platform_ca(image.registry, environ))
