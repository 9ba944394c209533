"""Image names as users write them (``hello-world``, ``ghcr.io/org/app:1``), normalised the way Docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from image_ref import DIGEST, REGISTRY, REPOSITORY

DOCKER_HUB = "docker.io"
"""Docker Hub's name in a normalised reference: what ``hello-world`` and ``index.docker.io/...`` become."""
DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})
"""Host names that all mean Docker Hub."""
DOCKER_HUB_API = "registry-1.docker.io"
"""Where Docker Hub's registry API answers; ``docker.io`` itself does not."""
OFFICIAL_NAMESPACE = "library"
"""Docker Hub's namespace of official images: ``hello-world`` is ``docker.io/library/hello-world``."""
DEFAULT_TAG = "latest"
"""The tag of a name given with neither tag nor digest, as ``docker pull`` takes it."""
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_NAME_LENGTH = 255
"""Docker's bound on registry and repository together."""
NAME_FORMS = "[<registry>/]<repository>[:<tag>][@sha256:<64 hex digits>]"


@dataclass(frozen=True, kw_only=True)
class ImageName:
    """A normalised image name: registry, repository, and the tag or digest to ask for."""

    registry: str
    """Registry host[:port]; ``docker.io`` for Docker Hub, whatever alias was written."""
    repository: str
    """Repository inside the registry; ``library/<name>`` for Docker Hub's official images."""
    tag: str | None = None
    """The tag written, or ``latest`` when neither tag nor digest was. Default none."""
    digest: str | None = None
    """The digest written, ``sha256:<hex>``. Default none."""

    @property
    def reference(self) -> str:
        """What the registry is asked for: the digest when there is one (Docker pulls by it), else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.registry}/{self.repository}{tag}{digest}"


def is_docker_hub(registry: str) -> bool:
    """Whether a registry host is one of Docker Hub's names."""
    return registry.lower() in DOCKER_HUB_ALIASES


def normalised(registry: str, repository: str) -> tuple[str, str]:
    """Registry and repository as Docker names them: Docker Hub as ``docker.io``, official images in ``library/``."""
    if not is_docker_hub(registry):
        return registry, repository
    return DOCKER_HUB, repository if "/" in repository else f"{OFFICIAL_NAMESPACE}/{repository}"


def api_host(registry: str) -> str:
    """The host[:port] whose ``/v2/`` API serves a registry's images."""
    return DOCKER_HUB_API if is_docker_hub(registry) else registry


def parse_image_name(value: str) -> ImageName | str:
    """The normalised name, or the reason ``value`` is not one.

    The first path component is the registry when it holds a ``.`` or a ``:`` or is ``localhost``, as in
    Docker; otherwise the whole name is on Docker Hub.
    """
    name, at, digest = value.partition("@")
    if at and not DIGEST.fullmatch(digest):
        return "a digest that is not sha256:<64 hex digits>"
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG.fullmatch(tag):
            return "a tag that is not 1 to 128 letters, digits, '_', '.' or '-' (not starting with '.' or '-')"
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not REGISTRY.fullmatch(first):
            return "an invalid registry host[:port]"
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if not REPOSITORY.fullmatch(repository):
        return "an invalid repository name (lowercase letters, digits, and '.', '_' or '-' between them)"
    registry, repository = normalised(registry, repository)
    if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
        return f"a name longer than {MAX_NAME_LENGTH} characters"
    return ImageName(
        registry=registry,
        repository=repository,
        tag=tag if tag or at else DEFAULT_TAG,
        digest=digest or None,
    )
