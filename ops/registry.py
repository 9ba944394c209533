"""A minimal client of the Docker Registry HTTP API v2: does a registry still serve a digest?"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from image_ref import DIGEST, REGISTRY
from settings.local_platform import LOCAL_REGISTRY as DEFAULT_ADDRESS

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
TIMEOUT_SECONDS = 10
MAX_REDIRECTS = 5
MAX_SHOWN_CHARS = 80
"""Longest piece of a registry's answer that an error message quotes."""
DEFAULT_PORTS = {"http": 80, "https": 443}
CREDENTIALS = "REGISTRY_USERNAME and REGISTRY_PASSWORD go only to the registry REGISTRY_ADDRESS names"


class RegistryError(Exception):
    """The registry could not be asked, refused the credentials, or answered nonsense."""


def from_environment(address: str, environ: Mapping[str, str]) -> Registry:
    """The registry at ``address``, with the environment's credentials only if they were configured for it.

    ``REGISTRY_USERNAME`` and ``REGISTRY_PASSWORD`` belong to one registry host[:port]: ``REGISTRY_ADDRESS``,
    else ``HELLO_REGISTRY``, else ``127.0.0.1:5000``. Any other registry is asked without credentials, so an
    image reference cannot send them elsewhere.

    Raises:
        RegistryError: When the configured address is not a registry host[:port].
    """
    variable = next((name for name in ("REGISTRY_ADDRESS", "HELLO_REGISTRY") if environ.get(name)), None)
    configured = environ[variable] if variable else DEFAULT_ADDRESS
    if not REGISTRY.fullmatch(configured.lower()):
        raise RegistryError(
            f"{variable} must be a registry host[:port] such as {DEFAULT_ADDRESS}, got {_shown(configured)!r}"
        )
    if address.lower() != configured.lower():
        return Registry(address)
    return Registry(address, environ.get("REGISTRY_USERNAME"), environ.get("REGISTRY_PASSWORD"))


def _is_local(address: str) -> bool:
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(text: str) -> str:
    """Text a registry sent, safe to print: printable ASCII only, cut at MAX_SHOWN_CHARS."""
    printable = "".join(char if " " <= char <= "~" else "?" for char in text)
    return printable if len(printable) <= MAX_SHOWN_CHARS else printable[: MAX_SHOWN_CHARS - 1] + "…"


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of a URL, or None when it has none that can be compared."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a registry's redirects over HTTP(S) only; credentials never go to another origin."""

    max_redirections = MAX_REDIRECTS

    def __init__(self, address: str) -> None:
        self.address = address

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in DEFAULT_PORTS:
            raise RegistryError(
                f"registry {self.address} must redirect to http or https, got {code} to {_shown(newurl)!r}"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        origin = _origin(req.full_url)
        if origin is None or _origin(new.full_url) != origin:
            new.remove_header("Authorization")
        new.method = req.get_method()  # urllib would turn a HEAD into a GET
        return new


@dataclass(frozen=True, repr=False)
class Registry:
    """A registry at ``address`` (host[:port]), with optional basic-auth credentials."""

    address: str
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        # A repr reaches logs and tracebacks: it says whether there are credentials, never what they are.
        credentials = "<set>" if self.username is not None or self.password is not None else "None"
        return f"Registry(address={self.address!r}, credentials={credentials})"

    @property
    def base_url(self) -> str:
        # Registries on loopback (the local platform's) speak plain HTTP, as Docker assumes.
        scheme = "http" if _is_local(self.address) else "https"
        return f"{scheme}://{self.address}"

    def served_digest(self, repository: str, reference: str) -> str | None:
        """The digest served for a tag or digest, or None when the registry has no such manifest.

        Only the status line and headers are read (a HEAD request), which http.client bounds.

        Raises:
            RegistryError: When the registry cannot be reached, refuses the credentials or answers
                without a well-formed ``Docker-Content-Digest``.
        """
        request = urllib.request.Request(f"{self.base_url}/v2/{repository}/manifests/{reference}", method="HEAD")
        request.add_header("Accept", MANIFEST_TYPES)
        with_credentials = self.username is not None and self.password is not None
        if with_credentials:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        opener = urllib.request.build_opener(_Redirects(self.address))
        try:
            with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                digests: list[str] = response.headers.get_all("Docker-Content-Digest") or []
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 404:
                return None
            unsent = "" if with_credentials or error.code != 401 else f" and was sent no credentials ({CREDENTIALS})"
            raise RegistryError(
                f"registry {self.address} answered {error.code} {_shown(str(error.reason))}{unsent}"
            ) from error
        except (urllib.error.URLError, OSError) as error:
            raise RegistryError(f"registry {self.address} cannot be reached: {_shown(str(error))}") from error
        except (http.client.HTTPException, ValueError) as error:
            # http.client stops at 100 header lines of 64 KiB each; more is not a registry's answer.
            raise RegistryError(f"registry {self.address} answered what is not HTTP: {_shown(str(error))}") from error
        if len(digests) != 1 or not DIGEST.fullmatch(digests[0]):
            got = repr(_shown(", ".join(digests))) if digests else "none"
            raise RegistryError(
                f"registry {self.address} must answer one Docker-Content-Digest of sha256:<64 hex digits>, got {got}"
            )
        return digests[0]
