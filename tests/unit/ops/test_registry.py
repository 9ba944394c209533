"""The registry client against real HTTP servers on loopback: credentials stay with their registry, answers are hostile.

Every server here listens on 127.0.0.0/8 and answers a bounded number of requests.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from image_ref import ImageRef
from ops.promotion import PromotionError, registry_for
from ops.registry import Registry, RegistryError

DIGEST = "sha256:" + "1" * 64
REPOSITORY = "hello-world"
MANIFEST_PATH = f"/v2/{REPOSITORY}/manifests/{DIGEST}"
USERNAME = "hello"
PASSWORD = "s3cret-registry-password"
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

Answer = tuple[int, str, list[tuple[str, str]]]
"""Status, reason and headers of one answer."""


@dataclass(frozen=True)
class Seen:
    """One request as a server received it."""

    method: str
    path: str
    authorization: str | None


@dataclass
class FakeRegistry:
    """An HTTP server on loopback that answers by path and records every request."""

    host: str
    answer: Callable[[str], Answer]
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"{self.host}:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"


def serves(digest: str) -> Callable[[str], Answer]:
    return lambda path: (200, "OK", [("Docker-Content-Digest", digest)])


def redirects(location: Callable[[], str]) -> Callable[[str], Answer]:
    return lambda path: (307, "Temporary Redirect", [("Location", location())])


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go straight to the loopback servers, never through a proxy of the environment."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeRegistry]]:
    """Starts FakeRegistry servers; stops them after the test."""
    started: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str], Answer], host: str = "127.0.0.1") -> FakeRegistry:
        registry = FakeRegistry(host, answer)

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                registry.seen.append(Seen(self.command, self.path, self.headers.get("Authorization")))
                code, reason, headers = registry.answer(self.path)
                self.send_response(code, reason)
                for name, value in [*headers, ("Content-Length", "0")]:
                    self.send_header(name, value)
                self.end_headers()

            do_HEAD = do_GET = handle_one  # noqa: N815 - http.server's method names

            def log_message(self, format: str, *args: object) -> None:
                pass

        registry.server = ThreadingHTTPServer((host, 0), Handler)
        started.append(registry.server)
        threading.Thread(target=registry.server.serve_forever, args=(0.05,), daemon=True).start()
        return registry

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes], tuple[str, list[int]]]]:
    """A TCP server on loopback that sends fixed bytes to at most one connection; returns its address and a count."""
    sockets: list[socket.socket] = []

    def start(payload: bytes) -> tuple[str, list[int]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(15)
        sockets.append(listener)
        connections: list[int] = []

        def answer_once() -> None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            with connection:
                try:
                    connection.recv(65536)
                    connection.sendall(payload)
                except OSError:
                    pass  # the client stopped reading, as it should

        threading.Thread(target=answer_once, daemon=True).start()
        return f"127.0.0.1:{listener.getsockname()[1]}", connections

    yield start
    for listener in sockets:
        listener.close()


@pytest.mark.parametrize(
    ("second_host", "same_origin"),
    [(None, True), ("127.0.0.1", False), ("127.0.0.2", False)],
    ids=["same-origin-keeps-them", "another-port", "another-host"],
)
def test_registry_never_sends_credentials_across_a_redirect_to_another_origin(
    serve: Callable[..., FakeRegistry], second_host: str | None, same_origin: bool
) -> None:
    moved = "/v2/moved/manifests/" + DIGEST
    first: FakeRegistry
    if second_host is None:
        first = serve(lambda path: serves(DIGEST)(path) if path == moved else redirects(lambda: moved)(path))
        second = first
    else:
        second = serve(serves(DIGEST), host=second_host)
        first = serve(redirects(lambda: second.url(moved)))

    served = Registry(first.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)

    assert served == DIGEST
    assert first.seen[0] == Seen("HEAD", MANIFEST_PATH, BASIC)
    assert second.seen[-1] == Seen("HEAD", moved, BASIC if same_origin else None)


def test_registry_refuses_a_redirect_to_another_scheme_without_following_it(
    serve: Callable[..., FakeRegistry], raw_server: Callable[[bytes], tuple[str, list[int]]]
) -> None:
    listener, connections = raw_server(b"220 ready\r\n")
    first = serve(redirects(lambda: f"ftp://{listener}/x"))

    with pytest.raises(RegistryError) as refused:
        Registry(first.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)

    assert (
        str(refused.value)
        == f"registry {first.address} must redirect to http or https, got 307 to 'ftp://{listener}/x'"
    )
    assert connections == []


def test_registry_for_sends_credentials_only_to_the_registry_address_names(
    serve: Callable[..., FakeRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = serve(serves(DIGEST))
    other = serve(serves(DIGEST))
    monkeypatch.setenv("REGISTRY_ADDRESS", configured.address)
    monkeypatch.setenv("REGISTRY_USERNAME", USERNAME)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)

    for registry in (configured, other):
        image = ImageRef(registry=registry.address, repository=REPOSITORY, digest=DIGEST)
        assert registry_for(image).served_digest(REPOSITORY, DIGEST) == DIGEST

    assert configured.seen == [Seen("HEAD", MANIFEST_PATH, BASIC)]
    assert other.seen == [Seen("HEAD", MANIFEST_PATH, None)]


def test_registry_for_sends_credentials_only_to_the_local_registry_by_default(
    serve: Callable[..., FakeRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = serve(serves(DIGEST))
    image = ImageRef(registry=registry.address, repository=REPOSITORY, digest=DIGEST)
    monkeypatch.delenv("REGISTRY_ADDRESS", raising=False)
    monkeypatch.delenv("HELLO_REGISTRY", raising=False)
    monkeypatch.setenv("REGISTRY_USERNAME", USERNAME)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)

    registry_for(image).served_digest(REPOSITORY, DIGEST)  # not 127.0.0.1:5000: no credentials
    monkeypatch.setenv("HELLO_REGISTRY", registry.address)
    registry_for(image).served_digest(REPOSITORY, DIGEST)  # the local registry as HELLO_REGISTRY names it

    assert [seen.authorization for seen in registry.seen] == [None, BASIC]


def test_registry_error_says_when_a_registry_asking_for_credentials_was_sent_none(
    serve: Callable[..., FakeRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = serve(lambda path: (401, "Unauthorized", []))
    monkeypatch.setenv("REGISTRY_ADDRESS", "registry.example.com")
    monkeypatch.setenv("REGISTRY_USERNAME", USERNAME)
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)

    with pytest.raises(RegistryError) as refused:
        registry_for(ImageRef(registry=registry.address, repository=REPOSITORY, digest=DIGEST)).served_digest(
            REPOSITORY, DIGEST
        )

    assert str(refused.value) == (
        f"registry {registry.address} answered 401 Unauthorized and was sent no credentials "
        "(REGISTRY_USERNAME and REGISTRY_PASSWORD go only to the registry REGISTRY_ADDRESS names)"
    )


def test_registry_for_refuses_a_registry_address_that_is_not_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_ADDRESS", "https://registry.example.com/")
    image = ImageRef(registry="registry.example.com", repository=REPOSITORY, digest=DIGEST)

    with pytest.raises(
        PromotionError,
        match=re.escape(
            "REGISTRY_ADDRESS must be a registry host[:port] such as 127.0.0.1:5000, got 'https://registry.example.com/'"
        ),
    ):
        registry_for(image)


@pytest.mark.parametrize(
    ("headers", "got"),
    [
        ([], "none"),
        ([("Docker-Content-Digest", "sha256:abc")], "'sha256:abc'"),
        ([("Docker-Content-Digest", "sha256:" + "A" * 64)], "'sha256:" + "A" * 64 + "'"),
        ([("Docker-Content-Digest", "sha512:" + "1" * 128)], "'sha512:" + "1" * 72 + "…'"),
        (
            [("Docker-Content-Digest", DIGEST), ("Docker-Content-Digest", DIGEST)],
            "'" + f"{DIGEST}, {DIGEST}"[:79] + "…'",
        ),
        ([("Docker-Content-Digest", "\x1b]0;owned\x07" + DIGEST)], "'?]0;owned?" + DIGEST[:69] + "…'"),
    ],
    ids=["missing", "short", "uppercase", "another-algorithm", "two-headers", "terminal-escapes"],
)
def test_registry_refuses_an_answer_without_one_well_formed_digest(
    serve: Callable[..., FakeRegistry], headers: list[tuple[str, str]], got: str
) -> None:
    registry = serve(lambda path: (200, "OK", headers))

    with pytest.raises(RegistryError) as refused:
        Registry(registry.address).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value) == (
        f"registry {registry.address} must answer one Docker-Content-Digest of sha256:<64 hex digits>, got {got}"
    )


def test_registry_error_quotes_at_most_80_printable_characters_of_a_reason(
    serve: Callable[..., FakeRegistry],
) -> None:
    registry = serve(lambda path: (500, "\x1b]0;owned\x07" + "x" * 5000, []))

    with pytest.raises(RegistryError) as refused:
        Registry(registry.address).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value) == f"registry {registry.address} answered 500 ?]0;owned?" + "x" * 69 + "…"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: " + b"a" * 300_000,
            "got more than 65536 bytes when reading header line",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Filler: a\r\n" * 200 + b"\r\n", "got more than 100 headers"),
    ],
    ids=["endless-header-line", "too-many-headers"],
)
def test_registry_reads_a_bounded_answer_and_refuses_the_rest(
    raw_server: Callable[[bytes], tuple[str, list[int]]], payload: bytes, reason: str
) -> None:
    address, _ = raw_server(payload)

    with pytest.raises(RegistryError) as refused:
        Registry(address).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value) == f"registry {address} answered what is not HTTP: {reason}"


@pytest.mark.parametrize("show", [repr, str], ids=["repr", "str"])
def test_registry_repr_and_str_name_the_address_but_never_the_credentials(show: Callable[[object], str]) -> None:
    username = "robot$ci+token-c0ffee"
    registry = Registry("registry.example.com", username, PASSWORD)

    shown = show(registry)

    assert "registry.example.com" in shown
    assert PASSWORD not in shown
    assert "c0ffee" not in shown
    assert "robot" not in shown
    assert shown == "Registry(address='registry.example.com', credentials=<set>)"
    assert show(Registry("registry.example.com")) == "Registry(address='registry.example.com', credentials=None)"
