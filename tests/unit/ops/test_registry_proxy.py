"""The registry client and proxies: this machine's registries are reached directly whatever the environment says,
other hosts through the proxy curl would choose (``no_proxy`` read as curl reads it), and nothing that could come
from an intermediary in clear is trusted: no plain-http redirect or token issuer off this machine.

A stand-in proxy on loopback records everything it receives and answers a forged digest.
"""

from __future__ import annotations

import base64
import http.server
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ops.registry import CredentialsWouldLeakError, NotARegistryError, Registry, is_loopback, proxy_for
from tests.conftest import serving

DIGEST = "sha256:" + "1" * 64
FORGED = "sha256:" + "6" * 64
USERNAME, PASSWORD = "hello", "s3cret-registry-password"
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass
class Recorder:
    """What a stand-in server received: request lines and their Authorization headers."""

    address: str = ""
    received: list[tuple[str, str | None]] = field(default_factory=list)


def recording(answer: str, redirect: str | None = None, challenge: str | None = None) -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            recorder.received.append((self.requestline, self.headers.get("Authorization")))
            if redirect is not None:
                self.send_response(307)
                self.send_header("Location", redirect)
            elif challenge is not None and not str(self.headers.get("Authorization")).startswith("Bearer "):
                self.send_response(401)
                self.send_header("WWW-Authenticate", challenge)
            else:
                self.send_response(200)
                self.send_header("Docker-Content-Digest", answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET = do_CONNECT = answer  # noqa: N815 - http.server's method names

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as port:
        recorder.address = f"127.0.0.1:{port}"
        yield recorder


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """A proxy that forges every answer, named by every proxy variable; no_proxy unset."""
    for found in recording(FORGED):
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, f"http://{found.address}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        yield found


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "localhost", "[::ffff:127.0.0.1]"])
def test_a_loopback_registry_gets_its_credentials_directly_and_its_own_answer_whatever_the_proxy_variables(
    proxy: Recorder, host: str
) -> None:
    for registry in recording(DIGEST):
        port = registry.address.rsplit(":", 1)[1]
        if host.startswith("["):
            try:
                socket.getaddrinfo("::ffff:127.0.0.1", int(port))
            except OSError:
                pytest.skip("this machine has no IPv6 to reach an IPv4-mapped address with")

        served = Registry(f"{host}:{port}", USERNAME, PASSWORD).served_digest("hello-world", DIGEST)

        assert served == DIGEST
        assert registry.received == [(f"HEAD /v2/hello-world/manifests/{DIGEST} HTTP/1.1", BASIC)]
    assert proxy.received == [], "the proxy saw a request meant for this machine's registry"


def test_a_redirect_to_plain_http_off_this_machine_is_refused_before_any_proxy_answers(proxy: Recorder) -> None:
    for registry in recording(DIGEST, redirect=f"http://mirror.example/v2/hello-world/manifests/{DIGEST}"):
        with pytest.raises(NotARegistryError, match=r"must redirect to https \(or plain http on this machine\)"):
            Registry(registry.address, USERNAME, PASSWORD).served_digest("hello-world", DIGEST)

    assert proxy.received == []


def test_a_plain_http_token_issuer_off_this_machine_gets_no_credentials(proxy: Recorder) -> None:
    challenge = 'Bearer realm="http://issuer.example/token",service="registry"'
    for registry in recording(DIGEST, challenge=challenge):
        with pytest.raises(CredentialsWouldLeakError, match="which is not https: credentials are not sent in clear"):
            Registry(registry.address, USERNAME, PASSWORD).served_digest("hello-world", DIGEST)

    assert proxy.received == []


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("https://registry.example.com/v2/", {}, {}),
        ("https://registry.example.com/v2/", {"https_proxy": "http://p:3128"}, {"https": "http://p:3128"}),
        ("https://registry.example.com/v2/", {"HTTPS_PROXY": "http://p:3128"}, {"https": "http://p:3128"}),
        ("http://registry.example.com/v2/", {"HTTP_PROXY": "http://p:3128"}, {}),
        ("http://registry.example.com/v2/", {"http_proxy": "http://p:3128"}, {"http": "http://p:3128"}),
        ("https://registry.example.com/v2/", {"ALL_PROXY": "http://p:3128"}, {"https": "http://p:3128"}),
        ("https://www.example.com/", {"https_proxy": "http://p", "no_proxy": "example.com"}, {}),
        ("https://example.com/", {"https_proxy": "http://p", "no_proxy": ".example.com"}, {}),
        ("https://badexample.com/", {"https_proxy": "http://p", "no_proxy": "example.com"}, {"https": "http://p"}),
        ("https://a.example.com/", {"https_proxy": "http://p", "NO_PROXY": "other.org, example.com"}, {}),
        ("https://a.example.com/", {"https_proxy": "http://p", "no_proxy": "*"}, {}),
        ("https://10.1.2.3/", {"https_proxy": "http://p", "no_proxy": "10.0.0.0/8"}, {}),
        ("https://11.1.2.3/", {"https_proxy": "http://p", "no_proxy": "10.0.0.0/8"}, {"https": "http://p"}),
        ("https://[2001:db8::5]/", {"https_proxy": "http://p", "no_proxy": "2001:db8::/32"}, {}),
        ("https://127.0.0.1:5443/v2/", {"https_proxy": "http://p"}, {}),
        ("http://registry.localhost:5000/v2/", {"http_proxy": "http://p"}, {}),
        ("http://[::1]:5000/v2/", {"http_proxy": "http://p"}, {}),
    ],
    ids=[
        "no-proxy-set",
        "https_proxy",
        "HTTPS_PROXY",
        "HTTP_PROXY-ignored-as-curl-does",
        "http_proxy",
        "ALL_PROXY",
        "no_proxy-subdomain",
        "no_proxy-leading-dot",
        "no_proxy-not-a-suffix-of-another-name",
        "NO_PROXY-list",
        "no_proxy-star",
        "no_proxy-cidr",
        "no_proxy-cidr-outside",
        "no_proxy-ipv6-cidr",
        "loopback-address",
        "localhost-subdomain",
        "loopback-ipv6",
    ],
)
def test_proxy_for_chooses_as_curl_does_and_never_for_this_machine(
    url: str, environ: dict[str, str], expected: dict[str, str]
) -> None:
    assert proxy_for(url, environ) == expected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1", True),
        ("2130706433", True),
        ("::1", True),
        ("[::ffff:127.0.0.1]", True),
        ("localhost.", True),
        ("registry.localhost", True),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("registry.example.com", False),
    ],
)
def test_is_loopback_knows_this_machine_in_every_form_a_resolver_reads(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
