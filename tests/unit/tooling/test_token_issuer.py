"""The local platform's token issuer (tooling/platform/token_issuer.py): who gets a token, and what it grants.

Pure logic on a key and certificate made here; the real issuer behind the real registry is in
tests/e2e/test_token_registry.py.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import re
import sys
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.conftest import ROOT

SERVICE = "registry.test"


def load_issuer() -> ModuleType:
    """token_issuer.py, which the platform runs as a script in its own venv, loaded as a module."""
    spec = importlib.util.spec_from_file_location("token_issuer", ROOT / "tooling" / "platform" / "token_issuer.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


token_issuer = load_issuer()


@pytest.fixture(scope="module")
def issuer() -> Any:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    users = {
        "writer": token_issuer.User("writer", "writer-password", {"*": ["pull", "push"]}),
        "reader": token_issuer.User("reader", "reader-password", {"public/*": ["pull"]}),
    }
    return token_issuer.Issuer(SERVICE, "issuer.test", key, certificate, users)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("user", "scope", "actions"),
    [
        ("writer", "repository:team/app:pull,push", ["pull", "push"]),
        ("writer", "repository:team/app:pull,push,delete", ["pull", "push"]),
        ("reader", "repository:public/app:pull,push", ["pull"]),
        ("reader", "repository:team/app:pull", []),
        ("writer", "registry:catalog:*", []),
    ],
    ids=["writer-pushes", "nobody-deletes", "reader-pulls-public-only", "reader-nothing-elsewhere", "no-catalog"],
)
def test_granted_gives_only_the_asked_actions_the_user_holds(
    issuer: Any, user: str, scope: str, actions: list[str]
) -> None:
    entry = token_issuer.granted(issuer.users[user], scope)

    assert entry["actions"] == actions


def test_granted_refuses_a_scope_that_is_not_type_name_actions(issuer: Any) -> None:
    with pytest.raises(ValueError, match=re.escape("scope must be <type>:<name>:<actions>, got 'nonsense'")):
        token_issuer.granted(issuer.users["writer"], "nonsense")


@pytest.mark.parametrize(
    ("authorization", "user"),
    [
        (basic("writer", "writer-password"), "writer"),
        (basic("writer", "reader-password"), None),
        (basic("stranger", "writer-password"), None),
        ("Bearer writer-password", None),
        (None, None),
        ("Basic not-base64!", None),
    ],
    ids=["right", "wrong-password", "unknown-user", "not-basic", "anonymous", "garbage"],
)
def test_authenticate_knows_a_user_only_by_its_own_password(
    issuer: Any, authorization: str | None, user: str | None
) -> None:
    found = issuer.authenticate(authorization)

    assert (found.name if found else None) == user


def test_token_is_rs256_signed_by_the_certificate_in_its_header_and_grants_what_was_asked(issuer: Any) -> None:
    answer = issuer.token(issuer.users["reader"], SERVICE, ["repository:public/app:pull,push"], now=1_000_000)

    header = jwt.get_unverified_header(answer["token"])
    certificate = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    claims = jwt.decode(
        answer["token"],
        certificate.public_key(),  # type: ignore[arg-type]
        algorithms=["RS256"],
        audience=SERVICE,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert certificate == issuer.signing_cert
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", header["kid"])
    assert header["kid"] == token_issuer.libtrust_key_id(certificate)
    assert {key: claims[key] for key in ("iss", "sub", "aud", "iat", "nbf", "exp")} == {
        "iss": "issuer.test",
        "sub": "reader",
        "aud": SERVICE,
        "iat": 1_000_000,
        "nbf": 999_999,
        "exp": 1_000_000 + token_issuer.TOKEN_SECONDS,
    }
    assert claims["access"] == [{"type": "repository", "name": "public/app", "actions": ["pull"]}]
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])
    assert answer["access_token"] == answer["token"]
    assert answer["expires_in"] == token_issuer.TOKEN_SECONDS


def test_token_refuses_another_registry_s_service(issuer: Any) -> None:
    with pytest.raises(ValueError, match=re.escape("service must be 'registry.test', got 'elsewhere'")):
        issuer.token(issuer.users["writer"], "elsewhere", [])
