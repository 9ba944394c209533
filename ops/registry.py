"""Asks a registry, through the oras client, which digest it serves for a tag or digest.

oras (``oras.provider.Registry``) speaks the registry API and its token flow (``WWW-Authenticate: Bearer``,
as Docker Hub, GHCR, GitLab, Harbor, Quay and ECR answer); requests carries it. What this module adds is
policy, hooked into the session oras uses: where credentials come from, that they go to no other host,
timeouts, a bound on every answer, one token refresh, and a named error for each way a registry fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import inspect
import ipaddress
import json
import os
import re
import socket
import subprocess
import urllib.parse
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.auth.utils  # type: ignore[import-untyped]
import oras.provider  # type: ignore[import-untyped]
import requests
import requests.adapters

from image_ref import DIGEST, REGISTRY
from ops.image_names import DOCKER_HUB, TAG, api_host, is_docker_hub, normalised
from settings.local_platform import LOCAL_REGISTRY as DEFAULT_ADDRESS
from settings.local_platform import Platform

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
TIMEOUT_SECONDS = 10
"""Longest wait to connect to, or for the next bytes from, a registry or its token issuer."""
MAX_REDIRECTS = 5
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""Largest manifest (as the Content-Length of its HEAD says) or other answer read: containerd and the
distribution registry refuse manifests over 4 MiB, and a token is a few KiB."""
MAX_SHOWN_CHARS = 80
"""Longest piece of a registry's answer that an error message quotes."""
HELPER_TIMEOUT_SECONDS = 30
"""Longest wait for a Docker credential helper (it may ask a keychain or a cloud)."""
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
"""The key under which ``docker login`` stores Docker Hub's credentials, and what its helpers are asked for."""
CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')
WHERE_CREDENTIALS_GO = (
    "set the stack's imagePull.username and its secret imagePullPassword, or REGISTRY_ADDRESS={address} with "
    "REGISTRY_USERNAME and REGISTRY_PASSWORD, or `docker login {address}`"
)

# oras retries every failure five times, sleeping 3 s to 83 s between tries (131 s in all): a wrong
# password or a registry that is down would hold a `make up` for two minutes before saying so. This is
# its request without that decorator; a named error here is final.
_request = inspect.unwrap(oras.provider.Registry.do_request)


class RegistryError(Exception):
    """The registry could not be asked, refused, or answered nonsense; nothing was changed."""


class RegistryUnreachableError(RegistryError):
    """The registry or its token issuer cannot be reached in time."""


class CredentialsRequiredError(RegistryError):
    """The registry refuses anonymous pulls, and no credentials were found for it."""


class CredentialsRefusedError(RegistryError):
    """The registry or its token issuer refused the credentials (a wrong user or password)."""


class TokenIssuerError(RegistryError):
    """The registry's token issuer is down or answered something that is not a token."""


class TokenRefusedError(RegistryError):
    """The registry refused its issuer's token again after one refresh."""


class PullDeniedError(RegistryError):
    """The credentials are good but may not pull the repository (or it does not exist)."""


class NotARegistryError(RegistryError):
    """The answer is not a registry's: HTML, garbage, no digest, a redirect to another scheme."""


class RedirectLoopError(RegistryError):
    """The registry redirected more than MAX_REDIRECTS times."""


class AnswerTooLargeError(RegistryError):
    """An answer larger than any real manifest or token."""


class CredentialsWouldLeakError(RegistryError):
    """Another host than the registry asked for credentials, or a token issuer would get them in clear."""


class DockerConfigError(RegistryError):
    """The Docker config or its credential helper is broken."""


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
"""The OCI image spec's empty descriptor content: the config of an artifact that has none."""


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One file stored in a registry as an OCI artifact (evidence beside an image, say)."""

    artifact_type: str
    media_type: str
    """The media type of its one layer, the file."""
    content: bytes
    annotations: Mapping[str, str]


@dataclass(frozen=True, repr=False)
class Credentials:
    """A user and password for one registry, and where they were found (for messages, never the values)."""

    username: str
    password: str
    source: str
    """Where they came from: ``the stack's imagePullPassword``, ``REGISTRY_USERNAME and ...``, a Docker config."""

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r})"


def _shown(text: object) -> str:
    """Text a registry sent, safe to print: printable ASCII only, cut at MAX_SHOWN_CHARS."""
    printable = "".join(char if " " <= char <= "~" else "?" for char in str(text))
    return printable if len(printable) <= MAX_SHOWN_CHARS else printable[: MAX_SHOWN_CHARS - 1] + "…"


def is_loopback(host: str) -> bool:
    """Whether a host (no port) is this machine: ``localhost`` and its subdomains, or a loopback address in any of
    the forms a resolver takes (``127.1``, ``::ffff:127.0.0.1``), trailing dot or not."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        try:  # the shorthand IPv4 forms that inet_aton, and so the resolver, reads: 127.1, 2130706433
            address = ipaddress.IPv4Address(socket.inet_aton(name)) if re.fullmatch(r"[0-9a-fx.]+", name) else None
        except OSError:
            address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def proxy_for(url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The proxy a connection to ``url`` goes through, chosen as curl chooses it, or none.

    Never for this machine (:func:`is_loopback`), nor for a host that ``no_proxy`` (else ``NO_PROXY``) names:
    ``*`` alone names every host; an entry names that host and its subdomains (a leading dot is ignored), or, for
    an address, that address or a CIDR range holding it. Otherwise ``http_proxy`` for http (never ``HTTP_PROXY``,
    which a web server's CGI environment can set), ``https_proxy`` or ``HTTPS_PROXY`` for https, else ``all_proxy``
    or ``ALL_PROXY``.
    """
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or is_loopback(host) or _not_proxied(host, environ.get("no_proxy") or environ.get("NO_PROXY") or ""):
        return {}
    names = ["http_proxy"] if parts.scheme == "http" else ["https_proxy", "HTTPS_PROXY"]
    proxy = next((environ[name] for name in [*names, "all_proxy", "ALL_PROXY"] if environ.get(name)), None)
    return {parts.scheme: proxy} if proxy else {}


def _not_proxied(host: str, no_proxy: str) -> bool:
    if no_proxy.strip() == "*":
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in re.split(r"[\s,]+", no_proxy.lower()):
        if address is not None and "/" in entry:
            with suppress(ValueError):
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            continue
        pattern = entry.strip("[]").removeprefix(".").rstrip(".")
        if pattern and (host == pattern or (address is None and host.endswith(f".{pattern}"))):
            return True
    return False


def _host(address: str) -> str:
    """The host of a host[:port]."""
    return urllib.parse.urlsplit(f"//{address}").hostname or address


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or ""), port


class _BoundedBody:
    """A response's raw stream that refuses to read past MAX_ANSWER_BYTES (requests reads through ``read``)."""

    def __init__(self, raw: Any, too_large: Callable[[], RegistryError]) -> None:
        self.raw, self.too_large, self.read_bytes = raw, too_large, 0

    def read(self, amount: int | None = None, decode_content: bool = True, **_: object) -> bytes:
        chunk: bytes = self.raw.read(
            MAX_ANSWER_BYTES + 1 - self.read_bytes if amount is None else amount, decode_content=decode_content
        )
        self.read_bytes += len(chunk)
        if self.read_bytes > MAX_ANSWER_BYTES:
            self.raw.close()
            raise self.too_large()
        return chunk

    def close(self) -> None:
        self.raw.close()

    def release_conn(self) -> None:
        self.raw.release_conn()


class _Adapter(requests.adapters.HTTPAdapter):
    """Every connection: a timeout, no retry, its own proxy choice (none to loopback), a named error when it fails."""

    def __init__(self, address: str, environ: Mapping[str, str]) -> None:
        super().__init__(max_retries=0)
        self.address = address
        self.environ = environ

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        host = urllib.parse.urlsplit(request.url or "").hostname or ""
        # Chosen here for each connection, redirects and token issuers included: requests would take one choice
        # for the whole session, and its no_proxy rules are not curl's.
        kwargs["proxies"] = proxy_for(request.url or "", self.environ)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUT_SECONDS
        own = host == _host(api_host(self.address))
        who = f"registry {self.address}" if own else f"{host}, for registry {self.address},"
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.ConnectionError as error:
            cause = _innermost(error)
            if isinstance(cause, http.client.HTTPException):  # a status line or headers that are not HTTP
                raise NotARegistryError(f"{who} answered what is not HTTP: {_shown(cause)}") from error
            raise RegistryUnreachableError(f"{who} cannot be reached: {_shown(cause)}") from error
        except requests.exceptions.Timeout as error:
            raise RegistryUnreachableError(f"{who} did not answer within {TIMEOUT_SECONDS} s") from error


def _innermost(error: BaseException) -> BaseException:
    """The exception urllib3 and requests wrapped, for a message that says what happened."""
    while True:
        inner = getattr(error, "reason", None) or next(
            (arg for arg in reversed(error.args) if isinstance(arg, BaseException)), None
        )
        if not isinstance(inner, BaseException) or inner is error:
            return error
        error = inner


class _Watch:
    """Sees every answer the session gets (redirects and token issuer's too) and refuses what must not go on."""

    def __init__(self, registry: Registry, origin: tuple[str, str, int | None]) -> None:
        self.registry, self.origin = registry, origin
        self.realm: tuple[str, str, int | None, str] | None = None
        self.challenge: dict[str, str] = {}

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        address = self.registry.address
        origin = _origin(response.url)
        who = f"registry {address}" if origin == self.origin else f"{origin[1]}, for registry {address},"
        response.raw = _BoundedBody(
            response.raw, lambda: AnswerTooLargeError(f"{who} answered more than {MAX_ANSWER_BYTES} bytes")
        )
        if response.is_redirect:
            target = urllib.parse.urljoin(response.url, response.headers["Location"])
            parts = urllib.parse.urlsplit(target)
            # Plain http leaves this machine only through networks and proxies that could answer any digest.
            if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))):
                raise NotARegistryError(
                    f"{who} must redirect to https (or plain http on this machine), got {response.status_code} "
                    f"to {_shown(target)!r}"
                )
            return response
        if origin == self.origin:
            return self.registry_answer(response)
        parts = urllib.parse.urlsplit(response.url)
        if self.realm is not None and (*origin, parts.path) == self.realm:
            return self.issuer_answer(response)
        if response.status_code in (401, 403):
            raise CredentialsWouldLeakError(
                f"registry {address} redirected to {origin[1]}, which asks for credentials "
                f"({response.status_code}); they go only to {address}, and none were sent"
            )
        return response

    def registry_answer(self, response: requests.Response) -> requests.Response:
        address, code = self.registry.address, response.status_code
        sent = str(response.request.headers.get("Authorization", ""))
        if code == 200:
            size = response.headers.get("Content-Length", "0")
            if response.request.method == "HEAD" and size.isdigit() and int(size) > MAX_ANSWER_BYTES:
                raise AnswerTooLargeError(
                    f"registry {address} says the manifest is {size} bytes; no real manifest is over "
                    f"{MAX_ANSWER_BYTES} bytes"
                )
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind.startswith("text/"):
                raise NotARegistryError(
                    f"registry {address} answered {_shown(kind)}, not a manifest: is {address} a registry?"
                )
        if code == 403:
            raise PullDeniedError(self.denied(f"answered 403 {_shown(response.reason)}"))
        if code != 401:
            return response
        raw = response.headers.get("WWW-Authenticate", "")
        scheme = raw.split(" ", 1)[0].lower()
        if scheme == "bearer":
            self.bearer(raw, sent)
            return response
        if sent or self.registry.credentials is not None:
            raise CredentialsRefusedError(
                f"registry {address} answered 401 {_shown(response.reason)} to the credentials from "
                f"{self.registry.source}: the user or password is wrong"
            )
        raise CredentialsRequiredError(self.missing(f"registry {address} answered 401 {_shown(response.reason)}"))

    def bearer(self, raw: str, sent: str) -> None:
        """A token challenge: its issuer must be a web address, https unless it and the registry are plain http on
        this machine."""
        address = self.registry.address
        # The realm as oras will ask it (its own parse of the header); the error oras does not keep.
        realm = oras.auth.utils.parse_auth_header(raw).realm or ""
        self.challenge = {"realm": realm, "error": dict(_challenge_params(raw)).get("error", "")}
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotARegistryError(
                f"registry {address} names a token issuer that is not a web address: {_shown(realm)!r}"
            )
        if parts.scheme == "http" and (self.origin[0] == "https" or not is_loopback(parts.hostname)):
            raise CredentialsWouldLeakError(
                f"registry {address} names token issuer {_shown(realm)}, which is not https: "
                "credentials are not sent in clear"
            )
        self.realm = (*_origin(realm), parts.path)
        if sent.startswith("Bearer ") and self.challenge["error"] == "insufficient_scope":
            raise PullDeniedError(self.denied("refused the token for it (insufficient_scope)"))

    def issuer_answer(self, response: requests.Response) -> requests.Response:
        address, code = self.registry.address, response.status_code
        issuer = _shown(self.challenge.get("realm"))
        if code in (401, 403):
            if self.registry.credentials is None:
                raise CredentialsRequiredError(
                    self.missing(f"token issuer {issuer} of registry {address} refused an anonymous token ({code})")
                )
            raise CredentialsRefusedError(
                f"token issuer {issuer} of registry {address} answered {code} to the credentials from "
                f"{self.registry.source}: the user or password (or access token) is wrong"
            )
        if code != 200:
            raise TokenIssuerError(
                f"token issuer {issuer} of registry {address} answered {code} {_shown(response.reason)}; "
                "try again later"
            )
        try:
            answer = response.json()
        except ValueError as error:
            raise TokenIssuerError(
                f"token issuer {issuer} of registry {address} answered what is not a token: "
                f"{_shown(response.text[:MAX_SHOWN_CHARS])!r}"
            ) from error
        token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenIssuerError(f"token issuer {issuer} of registry {address} answered JSON without a token")
        return response

    def denied(self, what: str) -> str:
        who = "anonymous pulls" if self.registry.credentials is None else f"the credentials from {self.registry.source}"
        return f"registry {self.registry.address} {what}: {who} may not pull this repository, or it does not exist"

    def missing(self, what: str) -> str:
        return f"{what}, and no credentials were found for it: " + WHERE_CREDENTIALS_GO.format(
            address=self.registry.address
        )


def _challenge_params(raw: str) -> list[tuple[str, str]]:
    """The ``key="value"`` pairs of a WWW-Authenticate challenge (oras keeps only realm, service and scope)."""
    return [(key.lower(), value) for key, value in CHALLENGE_PARAM.findall(raw)]


class Registry:
    """A registry at ``address`` (host[:port]), asked with optional credentials; keeps its token between questions.

    Args:
        address: The registry's host[:port] as image references name it; ``docker.io`` is Docker Hub.
        username: The user to ask as. Default: anonymous.
        password: Its password or access token. Default: anonymous.
        source: Where the credentials came from, for error messages. Default: ``the credentials given``.
        ca_cert: A CA certificate file that the registry's and its token issuer's TLS certificates chain to;
            with it the registry is asked over https even on loopback (the local platform's token registry).
            Default: none, the system's CAs, and plain HTTP on loopback.
    """

    def __init__(
        self,
        address: str,
        username: str | None = None,
        password: str | None = None,
        source: str | None = None,
        ca_cert: str | None = None,
    ) -> None:
        self.address = address
        self.ca_cert = ca_cert
        self.credentials = (
            None
            if username is None or password is None
            else Credentials(username, password, source or "the credentials given")
        )
        self.source = self.credentials.source if self.credentials else "nowhere (anonymous)"
        self._client: Any = None

    @property
    def username(self) -> str | None:
        return None if self.credentials is None else self.credentials.username

    @property
    def password(self) -> str | None:
        return None if self.credentials is None else self.credentials.password

    def __repr__(self) -> str:
        # A repr reaches logs and tracebacks: it says whether there are credentials, never what they are.
        credentials = "<set>" if self.credentials is not None else "None"
        return f"Registry(address={self.address!r}, credentials={credentials})"

    @property
    def plain_http(self) -> bool:
        """Registries on loopback (the local platform's) speak plain HTTP, as Docker assumes, unless they have a CA."""
        return self.ca_cert is None and is_loopback(_host(self.address))

    def _oras(self) -> Any:
        if self._client is not None:
            return self._client
        host = api_host(self.address)
        client = oras.provider.Registry(
            hostname=host, insecure=self.plain_http, tls_verify=self.ca_cert or True, auth_backend="token"
        )
        session: requests.Session = client.session
        # No netrc, no environment proxy settings: credentials and proxies are this module's choice (_Adapter).
        session.trust_env = False
        session.max_redirects = MAX_REDIRECTS
        adapter = _Adapter(self.address, os.environ)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        scheme = "http" if self.plain_http else "https"
        session.hooks["response"].append(_Watch(self, _origin(f"{scheme}://{host}/")))
        if self.credentials is not None:
            client.auth.set_basic_auth(self.credentials.username, self.credentials.password)
        self._client = client
        return client

    def served_digest(self, repository: str, reference: str) -> str | None:
        """The digest served for a tag or digest, or None when the registry has no such manifest.

        Only the status line and headers are read (a HEAD request, which Docker Hub's pull limit does not count).
        A token that stops working mid-run is fetched anew once.

        Raises:
            RegistryError: One of its subclasses, for each way the registry can fail to answer (see above).
        """
        if not (DIGEST.fullmatch(reference) or TAG.fullmatch(reference)):
            raise RegistryError(f"reference must be a tag or sha256:<64 hex digits>, got {_shown(reference)!r}")
        response = self._ask("HEAD", repository, f"manifests/{reference}", {"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(f"registry {self.address} answered {response.status_code} {_shown(response.reason)}")
        digests = [value.strip() for value in response.headers.get("Docker-Content-Digest", "").split(",") if value]
        if len(digests) != 1 or not DIGEST.fullmatch(digests[0]):
            got = repr(_shown(response.headers["Docker-Content-Digest"])) if digests else "none"
            raise NotARegistryError(
                f"registry {self.address} must answer one Docker-Content-Digest of sha256:<64 hex digits>, got {got}"
            )
        return digests[0]

    def _url(self, repository: str, path: str) -> tuple[str, str]:
        """The repository as the registry names it, and the address of ``path`` under it."""
        registry, repository = normalised(self.address, repository)
        scheme = "http" if self.plain_http else "https"
        return repository, f"{scheme}://{api_host(registry)}/v2/{repository}/{path}"

    def _ask(
        self, method: str, repository: str, path: str, headers: Mapping[str, str], data: bytes | None = None
    ) -> requests.Response:
        """One request to the registry's API for ``repository``, with its credentials; a token that stops working
        mid-run is fetched anew once.

        Raises:
            RegistryError: One of its subclasses, for each way the registry can fail to answer.
        """
        repository, url = self._url(repository, path)
        return self._send(method, url, repository, headers, data)

    def _send(
        self, method: str, url: str, repository: str, headers: Mapping[str, str], data: bytes | None = None
    ) -> requests.Response:
        client = self._oras()
        for refreshed in (False, True):
            sent = dict(headers)
            if self.credentials is not None:
                # Sent to the registry itself at once (requests drops it on a redirect to another host),
                # so that a basic-auth registry answers the first request.
                token = f"{self.credentials.username}:{self.credentials.password}".encode()
                sent["Authorization"] = f"Basic {base64.b64encode(token).decode()}"
            try:
                response: requests.Response = _request(client, url, method, headers=sent, data=data)
            except requests.exceptions.TooManyRedirects as error:
                raise RedirectLoopError(
                    f"registry {self.address} redirected more than {MAX_REDIRECTS} times for {repository}"
                ) from error
            except requests.exceptions.RequestException as error:
                raise NotARegistryError(f"registry {self.address} cannot be asked: {_shown(error)}") from error
            except ValueError as error:  # oras: a 401 it could not answer; the watch names the usual ones first
                raise CredentialsRefusedError(f"registry {self.address}: {_shown(error)}") from error
            if response.status_code != 401:
                return response
            if refreshed:
                error_text = _shown(dict(_challenge_params(response.headers.get("WWW-Authenticate", ""))).get("error"))
                raise TokenRefusedError(
                    f"registry {self.address} refused its token issuer's token for {repository} again after one "
                    f"refresh ({error_text}); try again, and check the registry's clock and token lifetime"
                )
            client.auth.token = None  # expired, or revoked: one fresh token
        raise AssertionError("unreachable")  # pragma: no cover

    def push_artifact(self, repository: str, tag: str, artifact: Artifact) -> str:
        """Stores ``artifact`` as an OCI artifact (an image manifest with an empty config and one layer) under
        ``tag`` of ``repository``, as the OCI image spec's artifact guidance describes it.

        Returns:
            The digest of the manifest the registry stored.

        Raises:
            RegistryError: When the registry refuses the upload or cannot be asked.
        """
        if not TAG.fullmatch(tag):
            raise RegistryError(f"tag must match {TAG.pattern}, got {_shown(tag)!r}")
        # Uploads first, each with the push scope: a pull-scoped token from an earlier question would be refused.
        layer = self._upload_blob(repository, artifact.content)
        config = self._upload_blob(repository, EMPTY_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact.artifact_type,
            "config": {"mediaType": EMPTY_CONFIG_TYPE, "digest": config, "size": len(EMPTY_CONFIG)},
            "layers": [{"mediaType": artifact.media_type, "digest": layer, "size": len(artifact.content)}],
            "annotations": dict(artifact.annotations),
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        response = self._ask("PUT", repository, f"manifests/{tag}", {"Content-Type": OCI_MANIFEST}, body)
        if response.status_code not in (200, 201):
            raise RegistryError(
                f"registry {self.address} must store the manifest {tag} of {repository}, got "
                f"{response.status_code} {_shown(response.reason)}"
            )
        return f"sha256:{hashlib.sha256(body).hexdigest()}"

    def _upload_blob(self, repository: str, content: bytes) -> str:
        digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
        started = self._ask("POST", repository, "blobs/uploads/", {"Content-Type": "application/octet-stream"})
        location = started.headers.get("Location", "")
        if started.status_code != 202 or not location:
            raise RegistryError(
                f"registry {self.address} must start a blob upload to {repository} (202 and a Location), got "
                f"{started.status_code} {_shown(started.reason)}"
            )
        target = urllib.parse.urljoin(started.url, location)
        if _origin(target) != _origin(started.url):
            raise CredentialsWouldLeakError(
                f"registry {self.address} sent the upload to another host: {_shown(target)}; nothing was sent there"
            )
        joiner = "&" if urllib.parse.urlsplit(target).query else "?"
        url = f"{target}{joiner}{urllib.parse.urlencode({'digest': digest})}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(content))}
        stored = self._send("PUT", url, repository, headers, content)
        if stored.status_code not in (201, 204):
            raise RegistryError(
                f"registry {self.address} must store the blob {digest} in {repository}, got "
                f"{stored.status_code} {_shown(stored.reason)}"
            )
        return digest

    def fetch_artifact(self, repository: str, tag: str, artifact_type: str) -> Artifact | None:
        """The artifact of ``artifact_type`` that :meth:`push_artifact` stored under ``tag``, checked against its
        digests; None when the registry has no such tag.

        Raises:
            NotARegistryError: When the manifest or the blob is not what was stored (malformed, another type,
                a blob whose digest differs).
            RegistryError: When the registry cannot be asked.
        """
        if not TAG.fullmatch(tag):
            raise RegistryError(f"tag must match {TAG.pattern}, got {_shown(tag)!r}")
        where = f"{self.address}/{repository}:{tag}"
        response = self._ask("GET", repository, f"manifests/{tag}", {"Accept": OCI_MANIFEST})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(f"registry {self.address} answered {response.status_code} {_shown(response.reason)}")
        try:
            manifest = json.loads(response.content)
            layers = manifest["layers"]
            found_type = manifest.get("artifactType")
            (layer,) = layers
            media_type, digest, size = str(layer["mediaType"]), str(layer["digest"]), int(layer["size"])
            annotations = manifest.get("annotations") or {}
        except (ValueError, KeyError, TypeError) as error:
            raise NotARegistryError(
                f"{where} must be an OCI artifact manifest with one layer: {_shown(error)}"
            ) from error
        if found_type != artifact_type or not DIGEST.fullmatch(digest) or not 0 <= size <= MAX_ANSWER_BYTES:
            raise NotARegistryError(
                f"{where} must be an artifact of type {artifact_type} with one sha256 layer, got type "
                f"{_shown(found_type)!r}, layer {_shown(digest)!r} of {size} bytes"
            )
        blob = self._ask("GET", repository, f"blobs/{digest}", {})
        if blob.status_code != 200:
            raise RegistryError(
                f"registry {self.address} must serve the blob {digest} of {where}, got {blob.status_code}"
            )
        content = blob.content
        if f"sha256:{hashlib.sha256(content).hexdigest()}" != digest:
            raise NotARegistryError(f"registry {self.address} served a blob for {where} whose digest is not {digest}")
        shown = {str(key): str(value) for key, value in annotations.items()} if isinstance(annotations, dict) else {}
        return Artifact(artifact_type=artifact_type, media_type=media_type, content=content, annotations=shown)


def same_registry(first: str, second: str) -> bool:
    """Whether two host[:port] name the same registry (Docker Hub by any of its names)."""
    return normalised(first.lower(), "x")[0] == normalised(second.lower(), "x")[0]


def from_environment(
    address: str, environ: Mapping[str, str], run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> Registry:
    """The registry at ``address``, with the environment's credentials if configured for it, else Docker's.

    ``REGISTRY_USERNAME`` and ``REGISTRY_PASSWORD`` belong to one registry host[:port]: ``REGISTRY_ADDRESS``,
    else ``HELLO_REGISTRY``, else ``127.0.0.1:5000``. Otherwise a registry is asked with what the Docker config
    (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``) and its credential helpers hold for it,
    then, for the local platform's own registry, with the password `make platform` generated, or without
    credentials; an image reference cannot send credentials elsewhere. The local platform's token registry is
    asked over TLS, trusting the platform's CA (``local_platform_ca``).

    Raises:
        RegistryError: When the configured address is not a registry host[:port].
        DockerConfigError: When the Docker config or its helper is broken.
    """
    variable = next((name for name in ("REGISTRY_ADDRESS", "HELLO_REGISTRY") if environ.get(name)), None)
    configured = environ[variable] if variable else DEFAULT_ADDRESS
    if not REGISTRY.fullmatch(configured.lower()):
        raise RegistryError(
            f"{variable} must be a registry host[:port] such as {DEFAULT_ADDRESS}, got {_shown(configured)!r}"
        )
    username, password = environ.get("REGISTRY_USERNAME"), environ.get("REGISTRY_PASSWORD")
    ca_cert = local_platform_ca(address, environ)
    if same_registry(address, configured) and username is not None and password is not None:
        source = f"REGISTRY_USERNAME and REGISTRY_PASSWORD (for {configured})"
        return Registry(address, username, password, source, ca_cert)
    found = docker_credentials(address, environ, run) or local_platform_credentials(address, environ)
    if found is None:
        return Registry(address, ca_cert=ca_cert)
    return Registry(address, found.username, found.password, found.source, ca_cert)


def local_platform_ca(address: str, environ: Mapping[str, str]) -> str | None:
    """The local platform's CA certificate (``HELLO_CA_CERT``, set by tooling/platform/env.sh) for its registries,
    which speak TLS on loopback (tooling/platform/registry.sh, token-registry.sh); None for any other registry."""
    ca_cert = environ.get("HELLO_CA_CERT")
    platform = Platform.from_environment(environ)
    if not ca_cert or not any(same_registry(address, ours) for ours in (platform.registry, platform.token_registry)):
        return None
    return ca_cert


def local_platform_credentials(address: str, environ: Mapping[str, str]) -> Credentials | None:
    """The local platform's registry, asked as `make platform` set it up: ``HELLO_REGISTRY_USER`` and the
    password in ``HELLO_REGISTRY_PASSWORD_FILE`` (tooling/platform/env.sh), for that one registry only."""
    platform, user, password_file = (
        environ.get(name) for name in ("HELLO_REGISTRY", "HELLO_REGISTRY_USER", "HELLO_REGISTRY_PASSWORD_FILE")
    )
    if not (platform and user and password_file) or not same_registry(address, platform):
        return None
    try:
        password = Path(password_file).read_text().strip()
    except OSError:
        return None  # the platform has not started: the registry will say that no credentials came
    return Credentials(user, password, f"the local platform's registry password ({password_file})")


def docker_config_path(environ: Mapping[str, str]) -> Path:
    """Where Docker keeps its config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".docker" / "config.json"


def _config_keys(address: str) -> list[str]:
    """The keys a Docker config may hold a registry's entry under, as ``docker login`` writes them."""
    if is_docker_hub(address):
        return [DOCKER_HUB_CONFIG_KEY, DOCKER_HUB, "index.docker.io", "registry-1.docker.io"]
    return [address, f"https://{address}", f"http://{address}"]


def docker_credentials(
    address: str, environ: Mapping[str, str], run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> Credentials | None:
    """What the Docker config holds for a registry, as Docker reads it: its credHelper, else credsStore, else auths.

    Raises:
        DockerConfigError: When the config is not JSON, holds a malformed entry, or its helper fails.
    """
    path = docker_config_path(environ)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise DockerConfigError(f"{path} must be readable JSON, got {_shown(error)}") from error
    if not isinstance(config, dict):
        raise DockerConfigError(f"{path} must hold a JSON object, got {type(config).__name__}")
    helpers = config.get("credHelpers") or {}
    keys = _config_keys(address)
    helper = next((helpers[key] for key in keys if isinstance(helpers, dict) and helpers.get(key)), None)
    helper = helper or config.get("credsStore")
    if helper:
        return _from_helper(str(helper), keys[0], path, run)
    auths = config.get("auths") or {}
    entry = next((auths[key] for key in keys if isinstance(auths, dict) and isinstance(auths.get(key), dict)), None)
    if entry is None:
        return None
    if entry.get("identitytoken"):
        raise DockerConfigError(
            f"{path} holds an identity token for {address}, which only Docker's own client can use; "
            f"log in with a password or access token: `docker login {address}`"
        )
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]), f"{path} (auths)")
    if not entry.get("auth"):
        return None
    try:
        username, colon, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise DockerConfigError(f"{path}: the auth of {address} must be base64 of user:password") from error
    if not colon:
        raise DockerConfigError(f"{path}: the auth of {address} must be base64 of user:password")
    return Credentials(username, password, f"{path} (auths)")


def _from_helper(
    helper: str, key: str, path: Path, run: Callable[..., subprocess.CompletedProcess[str]]
) -> Credentials | None:
    """Asks ``docker-credential-<helper> get`` for a registry's credentials, as Docker does."""
    command = f"docker-credential-{helper}"
    try:
        result = run(
            [command, "get"], input=key, capture_output=True, text=True, timeout=HELPER_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError as error:
        raise DockerConfigError(f"{path} names credential helper {command}, which is not on PATH") from error
    except subprocess.TimeoutExpired as error:
        raise DockerConfigError(f"{command} did not answer within {HELPER_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        if "credentials not found" in result.stdout + result.stderr:
            return None
        raise DockerConfigError(f"{command} get failed ({result.returncode}): {_shown(result.stderr.strip())}")
    try:
        answer = json.loads(result.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as error:
        raise DockerConfigError(f"{command} must answer JSON with Username and Secret") from error
    if username == "<token>":
        raise DockerConfigError(
            f"{command} holds an identity token for {key}, which only Docker's own client can use; "
            "log in with a password or access token"
        )
    return Credentials(username, secret, command)
