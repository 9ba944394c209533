"""The local platform's token-auth registry end to end: build, push, pull, verify and promote through the token flow.

One dev stack builds app/ and pushes it to the token registry (127.0.0.1:5443) with its registryPassword; its pods
pull with its image pull secret (containerd has no credentials for that registry); its verification passes. The
promotion's digest check then goes through 401 -> token issuer -> retry with credentials from a Docker config file,
then from the staging stack's own secret. Failures are asked of the real registry and issuer; an issuer that is down
is pinned in the unit layer (tests/unit/ops/test_registry.py), with no need to stop the platform's issuer.
Needs the full local platform, which `make test` starts. The tests run in file order and share the dev stack.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography import x509

from tests.e2e.test_exercise import kube_image, kube_object
from tests.e2e.test_promotion import Chain, deployed, make_chain
from tests.engine.fixtures import LocalRegistry, Teardowns, docker_config, token_registry_user
from tests.engine.workspace import Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

NAME = "token"
FIRST_PORT = 31681
ISSUER_SERVICE = "hello-pulumi-token-registry"


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
    registry: LocalRegistry,
    token_registry: LocalRegistry,
    pulumi_cli: str,
    teardowns: Teardowns,
) -> Iterator[Chain]:
    """dev built into and deployed from the token registry, pulling with its image pull secret; staging not yet
    deployed and without a pull secret of its own."""
    base = tmp_path_factory.mktemp(NAME)
    chain = make_chain(base, token_registry, NAME, FIRST_PORT)
    pull_with_secret(chain.dev, token_registry)
    # The base image stays in the platform's first registry: the build pulls it with the Docker config's login.
    chain.dev.env["DOCKER_CONFIG"] = str(docker_config(base / "docker-build", registry))
    with deployed(chain, teardowns, promoted=False) as made:
        yield made


@pytest.fixture(scope="module")
def reader() -> LocalRegistry:
    """The token registry's user that may pull only public/*."""
    return token_registry_user("HELLO_TOKEN_REGISTRY_READER", "HELLO_TOKEN_REGISTRY_READER_PASSWORD_FILE")


def pull_with_secret(workspace: Workspace, login: LocalRegistry) -> None:
    """The stack's pods pull with an image pull secret of LOGIN (``imagePull.username``, ``imagePullPassword``)."""
    workspace.pulumi("config", "set", "--path", "imagePull.username", login.username)
    workspace.set_secret("imagePullPassword", login.password)


def promote_with_docker_config(chain: Chain, directory: Path, *logins: LocalRegistry, yes: bool = False) -> str:
    """Promotes dev to staging with credentials only from a Docker config holding LOGINS; returns its stderr."""
    config = docker_config(directory, *logins)
    credentials = {"DOCKER_CONFIG": str(config), "REGISTRY_USERNAME": "", "REGISTRY_ADDRESS": ""}
    result = chain.promote("--from", "dev", "--to", "staging", *(["--yes"] if yes else []), credentials=credentials)
    return result.stderr


def test_dev_is_built_pushed_pulled_with_its_pull_secret_and_verified_on_the_token_registry(
    chain: Chain, token_registry: LocalRegistry
) -> None:
    outputs = chain.dev.outputs()
    image = outputs["imageRef"]
    repository, digest = image.split("@")

    assert repository == f"{token_registry.client.address}/hello-world-{NAME}"
    assert outputs["verifiedImageRef"] == image
    assert kube_image(f"{NAME}-dev") == image
    pod_spec = kube_object("deployment", "hello-world", f"{NAME}-dev")["spec"]["template"]["spec"]
    assert pod_spec["imagePullSecrets"], "the pods pull with the stack's pull secret"
    containerd = Path(os.environ["HELLO_RUN"]) / "containerd"
    assert token_registry.client.address not in (containerd / "config.toml").read_text()
    hosts = (containerd / "certs.d" / token_registry.client.address / "hosts.toml").read_text()
    assert not re.search(r"^\s*(auth|username|password|header)\b", hosts, re.MULTILINE), hosts
    assert token_registry.client.served_digest(f"hello-world-{NAME}", digest) == digest


def test_promotion_checks_the_digest_through_the_token_flow_with_a_docker_config(
    chain: Chain, token_registry: LocalRegistry, tmp_path: Path
) -> None:
    before = chain.staging_file()

    with_login = promote_with_docker_config(chain, tmp_path / "login", token_registry)
    without = promote_with_docker_config(chain, tmp_path / "none")

    # The check passed and the preview ran; without a terminal to confirm on, nothing is deployed.
    assert "not deploying without a terminal to confirm on" in with_login, with_login
    assert "no credentials were found for it" in without, without
    assert chain.staging_file() == before


def test_promotion_names_a_wrong_password_and_changes_nothing(
    chain: Chain, token_registry: LocalRegistry, tmp_path: Path
) -> None:
    before = chain.staging_file()
    wrong = LocalRegistry(token_registry.client, token_registry.username, "not-the-password")

    stderr = promote_with_docker_config(chain, tmp_path, wrong, yes=True)

    assert "the user or password (or access token) is wrong" in stderr, stderr
    assert "token issuer https://" in stderr
    assert "not-the-password" not in stderr
    assert chain.staging_file() == before


def test_promotion_names_a_user_without_pull_rights_on_the_repository(
    chain: Chain, reader: LocalRegistry, tmp_path: Path
) -> None:
    before = chain.staging_file()

    stderr = promote_with_docker_config(chain, tmp_path, reader, yes=True)

    assert "refused the token for it (insufficient_scope)" in stderr, stderr
    assert "may not pull this repository" in stderr
    assert chain.staging_file() == before


def test_issuer_grants_a_pull_only_user_no_push_and_the_registry_refuses_its_upload(reader: LocalRegistry) -> None:
    ca_cert = os.environ["HELLO_CA_CERT"]
    realm = f"https://{os.environ['HELLO_TOKEN_ISSUER']}/token"
    scopes = ["repository:public/hello:pull,push", f"repository:hello-world-{NAME}:pull"]

    answer = requests.get(
        realm,
        params={"service": ISSUER_SERVICE, "scope": scopes},
        auth=(reader.username, reader.password),
        verify=ca_cert,
        timeout=10,
    )
    token = answer.json()["token"]
    header = jwt.get_unverified_header(token)
    signer = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    claims = jwt.decode(token, signer.public_key(), algorithms=["RS256"], audience=ISSUER_SERVICE)  # type: ignore[arg-type]
    upload = requests.post(
        f"https://{reader.client.address}/v2/public/hello/blobs/uploads/",
        headers={"Authorization": f"Bearer {token}"},
        verify=ca_cert,
        timeout=10,
    )

    assert header["alg"] == "RS256"
    assert claims["sub"] == reader.username
    assert claims["access"] == [{"type": "repository", "name": "public/hello", "actions": ["pull"]}]
    assert claims["exp"] - claims["iat"] <= 300
    assert upload.status_code == 401
    assert 'error="insufficient_scope"' in upload.headers["WWW-Authenticate"]


def test_issuer_refuses_wrong_credentials_with_401(reader: LocalRegistry) -> None:
    realm = f"https://{os.environ['HELLO_TOKEN_ISSUER']}/token"
    query = urllib.parse.urlencode({"service": ISSUER_SERVICE, "scope": "repository:public/hello:pull"})

    answer = requests.get(
        f"{realm}?{query}", auth=(reader.username, "wrong"), verify=os.environ["HELLO_CA_CERT"], timeout=10
    )

    assert answer.status_code == 401
    assert "token" not in answer.json()


def test_promotion_with_the_staging_stack_s_pull_secret_deploys_the_digest_it_checked(
    chain: Chain, token_registry: LocalRegistry
) -> None:
    # A staging that runs images of the token registry, with the credentials its pods pull them with.
    placeholder = f"{token_registry.client.address}/hello-world-{NAME}@sha256:{'0' * 64}"
    chain.staging.pulumi("config", "set", "image", placeholder)
    pull_with_secret(chain.staging, token_registry)

    result = chain.promote("--from", "dev", "--to", "staging", "--yes", credentials={"DOCKER_CONFIG": "/nonexistent"})

    assert result.returncode == 0, result.stdout + result.stderr
    image = chain.dev.outputs()["imageRef"]
    assert kube_image(f"{NAME}-staging") == image
    assert chain.staging.outputs()["verifiedImageRef"] == image
