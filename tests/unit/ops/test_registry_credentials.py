"""Where a registry's credentials come from, in the order users expect: the stack's own, the environment's for the
one registry they name, then the Docker config and its credential helpers. Pure logic; helpers are stand-ins."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from image_ref import ImageRef
from ops.registry import DockerConfigError, docker_credentials, from_environment
from ops.stack_registry import stack_registry

ADDRESS = "registry.example.com"
IMAGE = ImageRef(registry=ADDRESS, repository="hello-world", digest="sha256:" + "1" * 64)
ENVIRONMENT = {"REGISTRY_ADDRESS": ADDRESS, "REGISTRY_USERNAME": "env-user", "REGISTRY_PASSWORD": "env-password"}


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def docker_config(tmp_path: Path) -> Callable[[dict[str, Any]], dict[str, str]]:
    """Writes a Docker config; returns an environment whose DOCKER_CONFIG points at it."""

    def write(config: dict[str, Any]) -> dict[str, str]:
        (tmp_path / "config.json").write_text(json.dumps(config))
        return {"DOCKER_CONFIG": str(tmp_path)}

    return write


def helper(answers: dict[str, str], calls: list[list[str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A stand-in for subprocess.run that answers `docker-credential-<name> get` from ``answers`` by server URL."""

    def run(command: list[str], *, input: str, **_: object) -> subprocess.CompletedProcess[str]:
        calls.append([*command, input])
        if command[0] == "docker-credential-missing":
            raise FileNotFoundError(command[0])
        if input not in answers:
            return subprocess.CompletedProcess(command, 1, "credentials not found in native keychain\n", "")
        return subprocess.CompletedProcess(command, 0, answers[input], "")

    return run


def project_with_pull_user(directory: Path, stack: str, username: str | None) -> Path:
    pull = f"  hello-world:imagePull:\n    username: {username}\n" if username else ""
    (directory / f"Pulumi.{stack}.yaml").write_text(f"config:\n  hello-world:image: {IMAGE}\n{pull}")
    return directory


def test_stack_registry_prefers_the_stack_s_own_pull_credentials_to_the_environment_s(tmp_path: Path) -> None:
    project = project_with_pull_user(tmp_path, "qa", "puller")

    registry = stack_registry(IMAGE, project, "qa", lambda: "stack-password", ENVIRONMENT)

    assert (registry.username, registry.password) == ("puller", "stack-password")
    assert registry.source == "stack 'qa''s imagePull and imagePullPassword"


def test_stack_registry_without_pull_settings_takes_the_environment_s_then_docker_s(
    tmp_path: Path, docker_config: Callable[[dict[str, Any]], dict[str, str]]
) -> None:
    project = project_with_pull_user(tmp_path, "qa", None)
    docker = docker_config({"auths": {ADDRESS: {"auth": basic("docker-user", "docker-password")}}})
    never: Callable[[], str] = lambda: pytest.fail("no pull secret to read")  # noqa: E731

    from_env = stack_registry(IMAGE, project, "qa", never, {**ENVIRONMENT, **docker})
    from_docker = stack_registry(IMAGE, project, "qa", never, docker)

    assert (from_env.username, from_env.password) == ("env-user", "env-password")
    assert (from_docker.username, from_docker.password) == ("docker-user", "docker-password")
    assert from_docker.source.endswith("config.json (auths)")


def test_from_environment_gives_the_environment_s_credentials_to_no_other_registry(
    docker_config: Callable[[dict[str, Any]], dict[str, str]],
) -> None:
    docker = docker_config({})

    registry = from_environment("ghcr.io", {**ENVIRONMENT, **docker})

    assert registry.credentials is None


def test_from_environment_asks_the_local_platform_s_registry_last_with_its_generated_password(
    tmp_path: Path, docker_config: Callable[[dict[str, Any]], dict[str, str]]
) -> None:
    (tmp_path / "password").write_text("generated\n")
    platform = {
        "HELLO_REGISTRY": "127.0.0.1:5000",
        "HELLO_REGISTRY_USER": "hello",
        "HELLO_REGISTRY_PASSWORD_FILE": str(tmp_path / "password"),
    }
    empty = docker_config({})

    local = from_environment("127.0.0.1:5000", {**platform, **empty})
    elsewhere = from_environment(ADDRESS, {**platform, **empty})
    not_started = from_environment("127.0.0.1:5000", {**platform, **empty, "HELLO_REGISTRY_PASSWORD_FILE": "/none"})
    docker = docker_config({"auths": {"127.0.0.1:5000": {"auth": basic("docker-user", "docker-password")}}})
    docker_first = from_environment("127.0.0.1:5000", {**platform, **docker})

    assert (local.username, local.password) == ("hello", "generated")
    assert local.source == f"the local platform's registry password ({tmp_path / 'password'})"
    assert elsewhere.credentials is None
    assert (docker_first.username, docker_first.password) == ("docker-user", "docker-password")
    assert not_started.credentials is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("docker.io", "https://index.docker.io/v1/"),
        ("index.docker.io", "https://index.docker.io/v1/"),
        ("ghcr.io", "ghcr.io"),
    ],
    ids=["docker-hub", "docker-hub-alias", "ghcr"],
)
def test_docker_credentials_reads_auths_under_the_key_docker_login_writes(
    docker_config: Callable[[dict[str, Any]], dict[str, str]], address: str, key: str
) -> None:
    environ = docker_config(
        {"auths": {key: {"auth": basic("me", "pat")}, "other.example.com": {"auth": basic("x", "y")}}}
    )

    found = docker_credentials(address, environ)

    assert found is not None
    assert (found.username, found.password) == ("me", "pat")


def test_docker_credentials_asks_the_registry_s_cred_helper_before_creds_store_and_auths(
    docker_config: Callable[[dict[str, Any]], dict[str, str]],
) -> None:
    environ = docker_config(
        {
            "auths": {ADDRESS: {"auth": basic("inline", "ignored")}},
            "credHelpers": {ADDRESS: "ecr-login"},
            "credsStore": "desktop",
        }
    )
    calls: list[list[str]] = []
    answers = {ADDRESS: json.dumps({"Username": "AWS", "Secret": "ecr-token"})}

    found = docker_credentials(ADDRESS, environ, helper(answers, calls))

    assert found is not None
    assert (found.username, found.password, found.source) == ("AWS", "ecr-token", "docker-credential-ecr-login")
    assert calls == [["docker-credential-ecr-login", "get", ADDRESS]]


def test_docker_credentials_asks_the_creds_store_with_docker_hub_s_server_url(
    docker_config: Callable[[dict[str, Any]], dict[str, str]],
) -> None:
    environ = docker_config({"credsStore": "pass"})
    calls: list[list[str]] = []
    answers = {"https://index.docker.io/v1/": json.dumps({"Username": "me", "Secret": "hub-token"})}

    found = docker_credentials("docker.io", environ, helper(answers, calls))
    nothing = docker_credentials("ghcr.io", environ, helper(answers, calls))

    assert found is not None
    assert found.password == "hub-token"
    assert nothing is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "must be readable JSON"),
        ("[]", "must hold a JSON object, got list"),
        (json.dumps({"auths": {ADDRESS: {"auth": "bm90LXBhaXJlZA=="}}}), "must be base64 of user:password"),
        (json.dumps({"auths": {ADDRESS: {"identitytoken": "t"}}}), "holds an identity token"),
        (json.dumps({"credHelpers": {ADDRESS: "missing"}}), "names credential helper docker-credential-missing, which"),
    ],
    ids=["not-json", "not-an-object", "auth-without-colon", "identity-token", "helper-not-on-path"],
)
def test_docker_credentials_names_a_broken_docker_config(tmp_path: Path, config: str, message: str) -> None:
    (tmp_path / "config.json").write_text(config)

    with pytest.raises(DockerConfigError, match=message):
        docker_credentials(ADDRESS, {"DOCKER_CONFIG": str(tmp_path)}, helper({}, []))


def test_docker_credentials_reads_home_s_docker_config_without_docker_config(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {ADDRESS: {"auth": basic("a", "b")}}}))

    found = docker_credentials(ADDRESS, {"HOME": str(tmp_path)})

    assert found is not None
    assert found.username == "a"
    assert docker_credentials(ADDRESS, {"HOME": str(tmp_path / "nowhere")}) is None


@pytest.mark.parametrize(
    ("address", "ca_cert", "plain_http"),
    [
        ("127.0.0.1:5443", "/ca/ca.crt", False),
        ("127.0.0.1:5000", "/ca/ca.crt", False),
        ("127.0.0.1:5001", None, True),
        (ADDRESS, None, False),
    ],
    ids=["token-registry", "registry", "other-loopback-plain-http", "elsewhere-system-cas"],
)
def test_local_platform_ca_goes_only_to_the_platform_s_registries_which_speak_tls(
    address: str, ca_cert: str | None, plain_http: bool
) -> None:
    environ = {
        "HELLO_REGISTRY": "127.0.0.1:5000",
        "HELLO_TOKEN_REGISTRY": "127.0.0.1:5443",
        "HELLO_CA_CERT": "/ca/ca.crt",
        "DOCKER_CONFIG": "/nowhere",
    }

    registry = from_environment(address, environ)

    assert (registry.ca_cert, registry.plain_http) == (ca_cert, plain_http)


def test_stack_registry_asks_the_token_registry_with_the_stack_s_credentials_and_the_platform_s_ca(
    tmp_path: Path,
) -> None:
    image = ImageRef(registry="127.0.0.1:5443", repository="hello-world", digest=IMAGE.digest)
    (tmp_path / "Pulumi.qa.yaml").write_text(
        f"config:\n  hello-world:image: {image}\n  hello-world:imagePull:\n    username: puller\n"
    )
    environ = {"HELLO_TOKEN_REGISTRY": "127.0.0.1:5443", "HELLO_CA_CERT": "/ca/ca.crt"}

    registry = stack_registry(image, tmp_path, "qa", lambda: "stack-password", environ)

    assert (registry.username, registry.ca_cert, registry.plain_http) == ("puller", "/ca/ca.crt", False)
