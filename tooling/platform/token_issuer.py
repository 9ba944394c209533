"""The local platform's registry token issuer: HTTP Basic in, an RS256 JWT for the token registry out.

It answers ``GET /token?service=...&scope=repository:<name>:<actions>`` as Docker Hub's and GHCR's issuers do
(the distribution project's token specification): the caller's user and password are checked, and the token
grants, for each scope asked, only the actions that user holds on that repository. The registry trusts the
token because its header carries the signing certificate (``x5c``, and ``kid``, the key's libtrust id) and that
certificate is the registry's ``rootcertbundle``.

Run by tooling/platform/token-registry.sh as ``python token_issuer.py CONFIG``; CONFIG is a JSON file (0600)
naming the TLS and signing files and, per user, a password file and the rights; no secret is on the command line.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import http.server
import json
import secrets
import ssl
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

TOKEN_PATH = "/token"
TOKEN_SECONDS = 300
"""How long a token lasts: long enough for one push of a layer, short as the specification advises."""
ACTIONS = ("pull", "push", "delete")
HANDSHAKE_SECONDS = 10
MAX_FORM_BYTES = 64 * 1024
"""Largest OAuth2 form read (and dropped): a user, a password and a few scopes."""
"""Longest wait for a client's TLS handshake or its next bytes."""
MAX_SCOPES = 16
"""A client asks for one or two scopes (a push may add the repository it mounts from); more is not a client."""


@dataclass(frozen=True)
class User:
    """A user of the issuer: a password, and the actions it holds on the repositories its patterns match."""

    name: str
    password: str
    rights: Mapping[str, Sequence[str]]
    """Repository pattern (``fnmatch``, such as ``*`` or ``public/*``) to the actions it grants."""

    def __repr__(self) -> str:
        return f"User(name={self.name!r})"


@dataclass(frozen=True)
class Issuer:
    """What a token says and who signs it."""

    service: str
    """The registry's service name: the ``aud`` of each token, and the only ``service`` answered."""
    issuer: str
    """The ``iss`` of each token, as the registry's ``auth.token.issuer`` expects it."""
    signing_key: RSAPrivateKey
    signing_cert: x509.Certificate
    users: Mapping[str, User]

    def authenticate(self, authorization: str | None) -> User | None:
        """The user whose HTTP Basic credentials these are, or None (no header, another scheme, a wrong password)."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        user = self.users.get(name)
        # Compared in constant time, and against a throwaway value for an unknown user, so timing tells nothing.
        expected = user.password if user is not None else secrets.token_urlsafe(32)
        if not colon or not hmac.compare_digest(password.encode(), expected.encode()) or user is None:
            return None
        return user

    def token(self, user: User, service: str, scopes: Sequence[str], now: float | None = None) -> dict[str, Any]:
        """The token answer for USER: its JWT grants only the asked actions the user holds.

        Raises:
            ValueError: When the service is not this registry's or a scope is malformed.
        """
        if service != self.service:
            raise ValueError(f"service must be {self.service!r}, got {service!r}")
        if len(scopes) > MAX_SCOPES:
            raise ValueError(f"at most {MAX_SCOPES} scopes, got {len(scopes)}")
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.issuer,
            "sub": user.name,
            "aud": self.service,
            "exp": issued + TOKEN_SECONDS,
            "nbf": issued - 1,
            "iat": issued,
            "jti": secrets.token_hex(16),
            "access": [entry for entry in (granted(user, scope) for scope in scopes) if entry["actions"]],
        }
        certificate = self.signing_cert.public_bytes(serialization.Encoding.DER)
        headers = {"kid": libtrust_key_id(self.signing_cert), "x5c": [base64.b64encode(certificate).decode()]}
        token = jwt.encode(claims, self.signing_key, algorithm="RS256", headers=headers)
        return {
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_SECONDS,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued)),
        }


def granted(user: User, scope: str) -> dict[str, Any]:
    """The ``access`` entry for one scope (``repository:<name>:<actions>``): the asked actions USER holds.

    Raises:
        ValueError: When the scope is not ``<type>:<name>:<actions>``.
    """
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        raise ValueError(f"scope must be <type>:<name>:<actions>, got {scope!r}")
    asked = [action for action in actions.split(",") if action]
    held: set[str] = set()
    if kind == "repository":
        for pattern, allowed in user.rights.items():
            if fnmatch.fnmatchcase(name, pattern):
                held.update(allowed)
    return {"type": kind, "name": name, "actions": [action for action in asked if action in held]}


def libtrust_key_id(certificate: x509.Certificate) -> str:
    """The key id distribution's registry computes for a trusted key: the first 240 bits of the SHA-256 of its
    DER public key, base32, in twelve groups of four joined by colons."""
    public = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(public).digest()[:30]).decode()
    return ":".join(encoded[index : index + 4] for index in range(0, len(encoded), 4))


def load(config_path: Path) -> tuple[Issuer, dict[str, Any]]:
    """The issuer a config file describes, and the config (for the listener's address and TLS files).

    Raises:
        ValueError: When the config lacks a field, names a right that is no action, or the signing key is not RSA.
    """
    config = json.loads(config_path.read_text())
    key = serialization.load_pem_private_key(Path(config["signing_key"]).read_bytes(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"signing_key must be an RSA key (RS256), got {type(key).__name__}")
    users = {}
    for name, entry in config["users"].items():
        rights = {pattern: list(actions) for pattern, actions in entry["rights"].items()}
        unknown = sorted({action for actions in rights.values() for action in actions} - set(ACTIONS))
        if unknown:
            raise ValueError(f"rights of {name} must be among {', '.join(ACTIONS)}, got {', '.join(unknown)}")
        users[name] = User(name, Path(entry["password_file"]).read_text().strip(), rights)
    issuer = Issuer(
        service=config["service"],
        issuer=config["issuer"],
        signing_key=key,
        signing_cert=x509.load_pem_x509_certificate(Path(config["signing_cert"]).read_bytes()),
        users=users,
    )
    return issuer, config


class _Handler(http.server.BaseHTTPRequestHandler):
    issuer: Issuer
    server_version = "hello-token-issuer"
    sys_version = ""

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != TOKEN_PATH:
            self.answer(404, {"errors": [{"code": "NOT_FOUND", "message": f"tokens are at {TOKEN_PATH}"}]})
            return
        user = self.issuer.authenticate(self.headers.get("Authorization"))
        if user is None:
            self.answer(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "a user and password are required"}]},
                [("WWW-Authenticate", f'Basic realm="{self.issuer.service}"')],
            )
            return
        query = urllib.parse.parse_qs(parts.query)
        try:
            answer = self.issuer.token(user, (query.get("service") or [""])[0], query.get("scope", []))
        except ValueError as error:
            self.answer(400, {"errors": [{"code": "DENIED", "message": str(error)}]})
            return
        self.answer(200, answer)

    def do_POST(self) -> None:
        # The OAuth2 form of the token request: clients (containerd, BuildKit) fall back to GET on 404. Its form
        # (it holds the password) is read and dropped first: answering an unread request resets the connection.
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            self.close_connection = True
        else:
            self.rfile.read(int(length))
        self.answer(404, {"errors": [{"code": "UNSUPPORTED", "message": "use GET with HTTP Basic"}]})

    def answer(self, code: int, body: Mapping[str, Any], headers: Sequence[tuple[str, str]] = ()) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _TLSServer(http.server.ThreadingHTTPServer):
    """Each connection's TLS handshake runs in its own thread, bounded: a stalled client holds up no other."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            print(f"{client_address[0]}: no TLS handshake: {error}", flush=True)
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()  # the TLS socket took the connection over: closing the plain one would not end it


def serve(config_path: Path) -> None:
    """Serve tokens over HTTPS on the config's ``listen`` address until killed."""
    issuer, config = load(config_path)
    host, _, port = config["listen"].rpartition(":")
    handler = type("Handler", (_Handler,), {"issuer": issuer})
    server = _TLSServer((host, int(port)), handler)
    server.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.context.minimum_version = ssl.TLSVersion.TLSv1_2
    server.context.load_cert_chain(config["tls_cert"], config["tls_key"])
    print(f"token issuer for {issuer.service} on https://{config['listen']}{TOKEN_PATH}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: token_issuer.py CONFIG.json")
    serve(Path(sys.argv[1]))
