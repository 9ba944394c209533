"""A minimal client of the Docker Registry HTTP API v2: does a registry still serve a digest?"""

from __future__ import annotations

import base64
import ipaddress
import urllib.error
import urllib.request
from dataclasses import dataclass

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
TIMEOUT_SECONDS = 10


class RegistryError(Exception):
    """The registry could not be asked, or refused the credentials."""


def _is_local(address: str) -> bool:
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Registry:
    """A registry at ``address`` (host[:port]), with optional basic-auth credentials."""

    address: str
    username: str | None = None
    password: str | None = None

    @property
    def base_url(self) -> str:
        # Registries on loopback (the local platform's) speak plain HTTP, as Docker assumes.
        scheme = "http" if _is_local(self.address) else "https"
        return f"{scheme}://{self.address}"

    def served_digest(self, repository: str, reference: str) -> str | None:
        """The digest served for a tag or digest, or None when the registry has no such manifest.

        Raises:
            RegistryError: When the registry cannot be reached or refuses the credentials.
        """
        request = urllib.request.Request(f"{self.base_url}/v2/{repository}/manifests/{reference}", method="HEAD")
        request.add_header("Accept", MANIFEST_TYPES)
        if self.username is not None and self.password is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                digest: str = response.headers["Docker-Content-Digest"]
                return digest
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise RegistryError(f"registry {self.address} answered {error.code} {error.reason}") from error
        except (urllib.error.URLError, OSError) as error:
            raise RegistryError(f"registry {self.address} cannot be reached: {error}") from error
