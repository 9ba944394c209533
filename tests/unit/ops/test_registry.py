"""The registry client against HTTP servers on loopback: the token flow, credentials that stay with their registry,
and a named error for every way a registry or its token issuer fails.

Every server here listens on 127.0.0.0/8 and answers a bounded number of requests. A registry that answers with a
token challenge, or a broken one (HTML, garbage, loops, a huge manifest, a token issuer that is down), is a stand-in:
real registries do not give these answers on demand.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import ops.registry
from ops.registry import (
    AnswerTooLargeError,
    CredentialsRefusedError,
    CredentialsRequiredError,
    CredentialsWouldLeakError,
    NotARegistryError,
    PullDeniedError,
    RedirectLoopError,
    Registry,
    RegistryError,
    RegistryUnreachableError,
    TokenIssuerError,
    TokenRefusedError,
    from_environment,
)

DIGEST = "sha256:" + "1" * 64
REPOSITORY = "hello-world"
MANIFEST_PATH = f"/v2/{REPOSITORY}/manifests/{DIGEST}"
USERNAME = "hello"
PASSWORD = "s3cret-registry-password"
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "no_proxy")

Answer = tuple[int, list[tuple[str, str]], bytes]
"""Status, headers and body of one answer."""


@dataclass(frozen=True)
class Seen:
    """One request as a server received it."""

    method: str
    path: str
    authorization: str | None


@dataclass
class Server:
    """An HTTP server on loopback that answers through ``answer`` and records every request."""

    host: str
    answer: Callable[[Seen], Answer]
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"{self.host}:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"


def serves(digest: str) -> Callable[[Seen], Answer]:
    return lambda seen: (200, [("Docker-Content-Digest", digest)], b"")


def redirects(location: Callable[[], str]) -> Callable[[Seen], Answer]:
    return lambda seen: (307, [("Location", location())], b"")


def challenge(realm: str, error: str = "") -> tuple[str, str]:
    extra = f',error="{error}"' if error else ""
    return ("WWW-Authenticate", f'Bearer realm="{realm}",service="registry.test",scope="repository:x:pull"{extra}')


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy, no Docker config and no registry credentials from the machine reach these tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("REGISTRY_ADDRESS", "REGISTRY_USERNAME", "REGISTRY_PASSWORD", "HELLO_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Starts Server instances; stops them after the test."""
    started: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[Seen], Answer], host: str = "127.0.0.1") -> Server:
        server = Server(host, answer)

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                seen = Seen(self.command, self.path, self.headers.get("Authorization"))
                server.seen.append(seen)
                code, headers, body = server.answer(seen)
                self.send_response(code)
                if not any(name == "Content-Length" for name, _ in headers):
                    headers = [*headers, ("Content-Length", str(len(body)))]
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_GET = handle_one  # noqa: N815 - http.server's method names

            def log_message(self, format: str, *args: object) -> None:
                pass

        server.server = ThreadingHTTPServer((host, 0), Handler)
        started.append(server.server)
        threading.Thread(target=server.server.serve_forever, args=(0.05,), daemon=True).start()
        return server

    yield start
    for running in started:
        running.shutdown()
        running.server_close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes | None], tuple[str, list[int]]]]:
    """A TCP server on loopback that sends fixed bytes (None: nothing, ever) to one connection; address and count."""
    sockets: list[socket.socket] = []

    def start(payload: bytes | None) -> tuple[str, list[int]]:
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
                    if payload is None:
                        connection.recv(65536)  # until the client gives up
                    else:
                        connection.sendall(payload)
                except OSError:
                    pass  # the client stopped reading, as it should

        threading.Thread(target=answer_once, daemon=True).start()
        return f"127.0.0.1:{listener.getsockname()[1]}", connections

    yield start
    for listener in sockets:
        listener.close()


@dataclass
class TokenRegistry:
    """A registry that wants a token, and its issuer on another loopback host."""

    registry: Server
    issuer: Server
    tokens: list[str]
    """The tokens the issuer hands out, in turn."""
    accepted: set[str]
    """The tokens the registry takes now; a test empties it to let them expire."""


@pytest.fixture
def token_registry(serve: Callable[..., Server]) -> TokenRegistry:
    """A registry serving DIGEST to bearers of a token the issuer gives to USERNAME/PASSWORD."""
    state = TokenRegistry.__new__(TokenRegistry)
    state.tokens, state.accepted = [], set()
    handed: list[str] = []

    def issue(seen: Seen) -> Answer:
        if seen.authorization != BASIC:
            return 401, [], b'{"errors":[{"code":"UNAUTHORIZED"}]}'
        token = f"token-{len(handed) + 1}"
        handed.append(token)
        state.accepted.add(token)
        return 200, [("Content-Type", "application/json")], json.dumps({"token": token}).encode()

    state.issuer = serve(issue, host="127.0.0.2")

    def manifests(seen: Seen) -> Answer:
        given = (seen.authorization or "").removeprefix("Bearer ")
        if given not in state.accepted:
            error = "invalid_token" if seen.authorization and seen.authorization.startswith("Bearer") else ""
            return 401, [challenge(state.issuer.url("/token"), error)], b""
        return serves(DIGEST)(seen)

    state.registry = serve(manifests)
    state.tokens = handed
    return state


@pytest.mark.parametrize(
    ("second_host", "same_origin"),
    [(None, True), ("127.0.0.1", False), ("127.0.0.2", False)],
    ids=["same-origin-keeps-them", "another-port", "another-host"],
)
def test_registry_never_sends_credentials_across_a_redirect_to_another_origin(
    serve: Callable[..., Server], second_host: str | None, same_origin: bool
) -> None:
    moved = "/v2/moved/manifests/" + DIGEST
    first: Server
    if second_host is None:
        first = serve(lambda seen: serves(DIGEST)(seen) if seen.path == moved else redirects(lambda: moved)(seen))
        second = first
    else:
        second = serve(serves(DIGEST), host=second_host)
        first = serve(redirects(lambda: second.url(moved)))

    served = Registry(first.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)

    assert served == DIGEST
    assert first.seen[0] == Seen("HEAD", MANIFEST_PATH, BASIC)
    assert second.seen[-1] == Seen("HEAD", moved, BASIC if same_origin else None)


def test_registry_refuses_a_redirect_to_another_scheme_without_following_it(
    serve: Callable[..., Server], raw_server: Callable[[bytes | None], tuple[str, list[int]]]
) -> None:
    listener, connections = raw_server(b"220 ready\r\n")
    first = serve(redirects(lambda: f"ftp://{listener}/x"))

    with pytest.raises(NotARegistryError) as refused:
        Registry(first.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)

    assert (
        str(refused.value)
        == f"registry {first.address} must redirect to https (or plain http on this machine), got 307 to 'ftp://{listener}/x'"
    )
    assert connections == []


def test_registry_names_a_redirect_loop(serve: Callable[..., Server]) -> None:
    loop = serve(redirects(lambda: MANIFEST_PATH))

    with pytest.raises(RedirectLoopError, match=f"registry {loop.address} redirected more than 5 times"):
        Registry(loop.address).served_digest(REPOSITORY, DIGEST)

    assert len(loop.seen) == 6


def test_registry_sends_no_credentials_to_another_host_that_asks_for_them_after_a_redirect(
    serve: Callable[..., Server],
) -> None:
    elsewhere = serve(lambda seen: (401, [challenge("http://127.0.0.2:1/token")], b""), host="127.0.0.2")
    registry = serve(redirects(lambda: elsewhere.url(MANIFEST_PATH)))

    with pytest.raises(CredentialsWouldLeakError, match=re.escape("which asks for credentials (401); they go only to")):
        Registry(registry.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)

    assert [seen.authorization for seen in elsewhere.seen] == [None]


def test_registry_gets_a_token_from_the_issuer_the_registry_names_and_pulls_with_it(
    token_registry: TokenRegistry,
) -> None:
    registry = Registry(token_registry.registry.address, USERNAME, PASSWORD)

    assert registry.served_digest(REPOSITORY, DIGEST) == DIGEST

    (asked,) = token_registry.issuer.seen
    assert asked.authorization == BASIC
    assert asked.path.startswith("/token?")
    assert "service=registry.test" in asked.path
    assert "scope=repository%3Ax%3Apull" in asked.path
    assert token_registry.registry.seen[-1].authorization == "Bearer token-1"


def test_registry_refreshes_an_expired_token_once_and_goes_on(token_registry: TokenRegistry) -> None:
    registry = Registry(token_registry.registry.address, USERNAME, PASSWORD)
    registry.served_digest(REPOSITORY, DIGEST)
    token_registry.accepted.clear()  # token-1 expires

    assert registry.served_digest(REPOSITORY, DIGEST) == DIGEST
    assert token_registry.tokens == ["token-1", "token-2"]


def test_registry_names_a_token_refused_again_after_one_refresh(
    serve: Callable[..., Server], token_registry: TokenRegistry
) -> None:
    registry = Registry(token_registry.registry.address, USERNAME, PASSWORD)
    registry.served_digest(REPOSITORY, DIGEST)
    token_registry.accepted.clear()
    token_registry.accepted.add("never-issued")  # from now on no token works: the registry's clock is off
    original = token_registry.registry.answer

    def refusing(seen: Seen) -> Answer:
        token_registry.accepted.intersection_update({"never-issued"})
        return original(seen)

    token_registry.registry.answer = refusing

    with pytest.raises(TokenRefusedError, match="again after one refresh \\(invalid_token\\)"):
        registry.served_digest(REPOSITORY, DIGEST)

    assert token_registry.tokens == ["token-1", "token-2"]


@pytest.mark.parametrize(
    ("issuer_answer", "error", "message"),
    [
        (
            (401, [], b""),
            CredentialsRefusedError,
            "answered 401 to the credentials from the credentials given: the user or password",
        ),
        ((503, [], b"down"), TokenIssuerError, "answered 503 Service Unavailable; try again later"),
        (
            (200, [("Content-Type", "text/html")], b"<html>login</html>"),
            TokenIssuerError,
            "answered what is not a token: '<html>login</html>'",
        ),
        ((200, [], b'{"token": ""}'), TokenIssuerError, "answered JSON without a token"),
        ((200, [], b"{" * (5 * 1024 * 1024)), AnswerTooLargeError, "answered more than 4194304 bytes"),
    ],
    ids=["wrong-password", "issuer-down", "issuer-html", "no-token", "endless-token"],
)
def test_registry_names_a_token_issuer_that_refuses_or_fails(
    serve: Callable[..., Server], issuer_answer: Answer, error: type[RegistryError], message: str
) -> None:
    issuer = serve(lambda seen: issuer_answer, host="127.0.0.2")
    registry = serve(lambda seen: (401, [challenge(issuer.url("/token"))], b""))

    with pytest.raises(error, match=message.replace("(", "\\(").replace(")", "\\)")):
        Registry(registry.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)


def test_registry_names_a_token_issuer_that_cannot_be_reached(serve: Callable[..., Server]) -> None:
    closed = socket.create_server(("127.0.0.2", 0))
    port = closed.getsockname()[1]
    closed.close()
    registry = serve(lambda seen: (401, [challenge(f"http://127.0.0.2:{port}/token")], b""))

    with pytest.raises(RegistryUnreachableError, match=f"127.0.0.2, for registry {registry.address}, cannot be"):
        Registry(registry.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)


def test_registry_asks_anonymously_for_a_token_and_says_where_credentials_go_when_refused(
    serve: Callable[..., Server],
) -> None:
    issuer = serve(lambda seen: (401, [], b""), host="127.0.0.2")
    registry = serve(lambda seen: (401, [challenge(issuer.url("/token"))], b""))

    with pytest.raises(CredentialsRequiredError) as refused:
        Registry(registry.address).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value) == (
        f"token issuer {issuer.url('/token')} of registry {registry.address} refused an anonymous token (401), "
        "and no credentials were found for it: set the stack's imagePull.username and its secret "
        f"imagePullPassword, or REGISTRY_ADDRESS={registry.address} with REGISTRY_USERNAME and REGISTRY_PASSWORD, "
        f"or `docker login {registry.address}`"
    )
    assert [seen.authorization for seen in issuer.seen] == [None]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda issuer: (401, [challenge(issuer, "insufficient_scope")], b""),
            "refused the token for it .insufficient_scope.: the credentials from the credentials given may not pull",
        ),
        (lambda issuer: (403, [], b""), "answered 403 Forbidden: the credentials from the credentials given may not"),
    ],
    ids=["insufficient-scope", "forbidden"],
)
def test_registry_names_a_scope_without_pull_rights(
    serve: Callable[..., Server], answer: Callable[[str], Answer], message: str
) -> None:
    issuer = serve(lambda seen: (200, [], b'{"token": "weak"}'), host="127.0.0.2")
    registry = serve(
        lambda seen: answer(issuer.url("/token")) if seen.authorization else (401, [challenge(issuer.url("/t"))], b"")
    )

    with pytest.raises(PullDeniedError, match=message):
        Registry(registry.address, USERNAME, PASSWORD).served_digest(REPOSITORY, DIGEST)


def test_registry_names_a_wrong_password_of_a_basic_auth_registry(serve: Callable[..., Server]) -> None:
    registry = serve(lambda seen: (401, [("WWW-Authenticate", 'Basic realm="Registry Realm"')], b""))

    with pytest.raises(CredentialsRefusedError) as refused:
        Registry(registry.address, USERNAME, "wrong", "REGISTRY_USERNAME").served_digest(REPOSITORY, DIGEST)

    assert str(refused.value) == (
        f"registry {registry.address} answered 401 Unauthorized to the credentials from REGISTRY_USERNAME: "
        "the user or password is wrong"
    )
    assert len(registry.seen) == 1, "a basic realm is a name, not a token issuer to ask"


def test_registry_answers_none_for_a_digest_it_does_not_serve(serve: Callable[..., Server]) -> None:
    registry = serve(lambda seen: (404, [], b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'))

    assert Registry(registry.address).served_digest(REPOSITORY, DIGEST) is None


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            (200, [("Content-Type", "text/html; charset=utf-8")], b"<html></html>"),
            NotARegistryError,
            "answered text/html, not a manifest",
        ),
        (
            (200, [("Content-Length", str(100 * 1024 * 1024)), ("Docker-Content-Digest", DIGEST)], b""),
            AnswerTooLargeError,
            "says the manifest is 104857600 bytes; no real manifest is over 4194304 bytes",
        ),
        ((500, [], b""), RegistryError, "answered 500 Internal Server Error"),
    ],
    ids=["html", "huge-manifest", "server-error"],
)
def test_registry_names_an_answer_that_is_no_manifest(
    serve: Callable[..., Server], answer: Answer, error: type[RegistryError], message: str
) -> None:
    registry = serve(lambda seen: answer)

    with pytest.raises(error, match=message):
        Registry(registry.address).served_digest(REPOSITORY, DIGEST)


def test_registry_is_reached_without_the_environment_s_proxy_on_loopback(
    serve: Callable[..., Server],
    raw_server: Callable[[bytes | None], tuple[str, list[int]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, connections = raw_server(b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:" + b"2" * 64 + b"\r\n\r\n")
    registry = serve(serves(DIGEST))
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://{proxy}")

    assert from_environment(registry.address, {}).served_digest(REPOSITORY, DIGEST) == DIGEST
    assert connections == []


def test_registry_gives_up_on_a_registry_that_never_answers(
    raw_server: Callable[[bytes | None], tuple[str, list[int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, _ = raw_server(None)
    monkeypatch.setattr(ops.registry, "TIMEOUT_SECONDS", 0.5)

    with pytest.raises(RegistryUnreachableError, match=f"registry {address} did not answer within 0.5 s"):
        Registry(address).served_digest(REPOSITORY, DIGEST)


def test_from_environment_sends_credentials_only_to_the_registry_address_names(serve: Callable[..., Server]) -> None:
    configured = serve(serves(DIGEST))
    other = serve(serves(DIGEST))
    environ = {"REGISTRY_ADDRESS": configured.address, "REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": PASSWORD}

    for registry in (configured, other):
        assert from_environment(registry.address, environ).served_digest(REPOSITORY, DIGEST) == DIGEST

    assert configured.seen == [Seen("HEAD", MANIFEST_PATH, BASIC)]
    assert other.seen == [Seen("HEAD", MANIFEST_PATH, None)]


def test_from_environment_sends_credentials_only_to_the_local_registry_by_default(
    serve: Callable[..., Server],
) -> None:
    registry = serve(serves(DIGEST))
    environ = {"REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": PASSWORD}

    from_environment(registry.address, environ).served_digest(REPOSITORY, DIGEST)  # not 127.0.0.1:5000: none
    from_environment(registry.address, {**environ, "HELLO_REGISTRY": registry.address}).served_digest(
        REPOSITORY, DIGEST
    )

    assert [seen.authorization for seen in registry.seen] == [None, BASIC]


def test_from_environment_refuses_a_registry_address_that_is_not_host_and_port() -> None:
    with pytest.raises(RegistryError) as refused:
        from_environment("registry.example.com", {"REGISTRY_ADDRESS": "https://registry.example.com/"})

    assert str(refused.value) == (
        "REGISTRY_ADDRESS must be a registry host[:port] such as 127.0.0.1:5000, got 'https://registry.example.com/'"
    )


def test_registry_says_where_credentials_go_when_a_registry_wants_some_and_none_were_found(
    serve: Callable[..., Server],
) -> None:
    registry = serve(lambda seen: (401, [], b""))
    environ = {"REGISTRY_ADDRESS": "registry.example.com", "REGISTRY_USERNAME": USERNAME, "REGISTRY_PASSWORD": "x"}

    with pytest.raises(CredentialsRequiredError) as refused:
        from_environment(registry.address, environ).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value).startswith(
        f"registry {registry.address} answered 401 Unauthorized, and no credentials were found for it: "
    )


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
    ],
    ids=["missing", "short", "uppercase", "another-algorithm", "two-headers"],
)
def test_registry_refuses_an_answer_without_one_well_formed_digest(
    serve: Callable[..., Server], headers: list[tuple[str, str]], got: str
) -> None:
    registry = serve(lambda seen: (200, headers, b""))

    with pytest.raises(NotARegistryError) as refused:
        Registry(registry.address).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value) == (
        f"registry {registry.address} must answer one Docker-Content-Digest of sha256:<64 hex digits>, got {got}"
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nDocker-Content-Digest: " + b"a" * 300_000, "got more than 65536 bytes"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Filler: a\r\n" * 200 + b"\r\n", "got more than 100 headers"),
        (b"\x00\xffgarbage\r\n\r\n", "answered what is not HTTP"),
    ],
    ids=["endless-header-line", "too-many-headers", "garbage"],
)
def test_registry_reads_a_bounded_answer_and_refuses_the_rest(
    raw_server: Callable[[bytes | None], tuple[str, list[int]]], payload: bytes, reason: str
) -> None:
    address, _ = raw_server(payload)

    with pytest.raises(NotARegistryError) as refused:
        Registry(address).served_digest(REPOSITORY, DIGEST)

    assert str(refused.value).startswith(f"registry {address} answered what is not HTTP: ")
    assert reason in str(refused.value)


def test_registry_refuses_a_reference_that_is_neither_tag_nor_digest() -> None:
    with pytest.raises(RegistryError, match=re.escape("reference must be a tag or sha256:<64 hex digits>, got '../x'")):
        Registry("127.0.0.1:1").served_digest(REPOSITORY, "../x")


@pytest.mark.parametrize("show", [repr, str], ids=["repr", "str"])
def test_registry_repr_and_str_name_the_address_but_never_the_credentials(show: Callable[[object], str]) -> None:
    username = "robot$ci+token-c0ffee"
    registry = Registry("registry.example.com", username, PASSWORD)

    shown = show(registry)

    assert PASSWORD not in shown
    assert "c0ffee" not in shown
    assert shown == "Registry(address='registry.example.com', credentials=<set>)"
    assert show(Registry("registry.example.com")) == "Registry(address='registry.example.com', credentials=None)"
    assert PASSWORD not in show(registry.credentials)
