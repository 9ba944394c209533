"""Container image references pinned by digest: parse, format, compare."""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
REGISTRY = re.compile(r"(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+|[a-z0-9.-]+:[0-9]{1,5})(:[0-9]{1,5})?")
REPOSITORY = re.compile(r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*")
PINNED_FORM = "<registry>/<repository>@sha256:<64 hex digits>"


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """An image pinned by digest: ``<registry>/<repository>@sha256:<hex>``."""

    registry: str
    repository: str
    digest: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"

    def with_digest(self, digest: str) -> ImageRef:
        """The same repository at another digest."""
        return ImageRef(registry=self.registry, repository=self.repository, digest=digest)


def parse_image_ref(value: str) -> ImageRef | str:
    """Returns the parsed reference, or the reason it is not one.

    Patterns match whole strings (``fullmatch``), so a trailing newline is refused too.
    """
    name, sep, digest = value.partition("@")
    if not sep or not DIGEST.fullmatch(digest):
        return "not pinned by a sha256 digest"
    registry, slash, repository = name.partition("/")
    if not slash or not REGISTRY.fullmatch(registry):
        return "no registry host"
    if not REPOSITORY.fullmatch(repository):
        return "an invalid repository name"
    return ImageRef(registry=registry, repository=repository, digest=digest)
