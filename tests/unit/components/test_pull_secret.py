"""The image pull secret of WebService, under the recording mocks: its document, its secrecy, who uses it."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pulumi
import pytest

from components import PullSecretArgs, WebService
from tests.conftest import PASSWORD, SECRET_SIG, Deployed
from tests.unit.components.test_components import settle, web_service_args

SECRET = "kubernetes:core/v1:Secret"
REGISTRY = "registry.example.com"


def unwrapped(value: Any) -> Any:
    """A value as sent, out of the secret marker that wraps it on the wire."""
    return value["value"] if isinstance(value, dict) and SECRET_SIG in value.values() else value


def pull(password: Any = PASSWORD, **overrides: Any) -> PullSecretArgs:
    return PullSecretArgs(**{"registry": REGISTRY, "username": "puller", "password": password, **overrides})


def test_web_service_pulls_with_a_dockerconfigjson_secret_in_its_namespace(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args(image_pull=pull(pulumi.Output.secret(PASSWORD)))))

    secret = recorded.one(SECRET)
    assert secret.name == "web-pull-secret"
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert secret.inputs["metadata"]["name"] == "web-pull"
    assert secret.inputs["metadata"]["namespace"] == "web-test"
    document = json.loads(base64.b64decode(unwrapped(unwrapped(secret.wire["data"])[".dockerconfigjson"])))
    auth = base64.b64encode(f"puller:{PASSWORD}".encode()).decode()
    assert document == {"auths": {REGISTRY: {"username": "puller", "password": PASSWORD, "auth": auth}}}


@pytest.mark.parametrize("password", [PASSWORD, "secret-output"], ids=["plain-input", "secret-output"])
def test_web_service_sends_the_pull_secret_only_as_a_secret(recorded: Deployed, password: str) -> None:
    given = pulumi.Output.secret(PASSWORD) if password == "secret-output" else PASSWORD
    settle(lambda: WebService("web", web_service_args(image_pull=pull(given))))

    wire = recorded.one(SECRET).wire
    data = wire["data"]
    # Either the whole map or its one value travels wrapped in the secret marker, never bare.
    wrapped = data if SECRET_SIG in data.values() else data[".dockerconfigjson"]
    assert SECRET_SIG in wrapped.values()
    assert PASSWORD not in json.dumps({key: value for key, value in wire.items() if key != "data"})


def test_web_service_pods_and_check_reference_the_pull_secret(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args(image_pull=pull())))

    app = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    check = recorded.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["spec"]
    assert app["imagePullSecrets"] == [{"name": "web-pull"}]
    assert check["imagePullSecrets"] == [{"name": "web-pull"}]


def test_web_service_without_image_pull_makes_no_secret_and_references_none(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args()))

    assert recorded.of_type(SECRET) == []
    app = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    check = recorded.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in app
    assert "imagePullSecrets" not in check


def test_web_service_with_a_secret_made_elsewhere_only_references_it(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args(image_pull=pull(password=None))))

    assert recorded.of_type(SECRET) == []
    app = recorded.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert app["imagePullSecrets"] == [{"name": "web-pull"}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"registry": "https://ghcr.io"}, "image_pull.registry must be a registry host[:port], got 'https://ghcr.io'"),
        ({"registry": ""}, "image_pull.registry must be a registry host[:port], got ''"),
        ({"username": ""}, "image_pull.username must be a non-empty user without ':', got ''"),
        ({"username": "a:b"}, "image_pull.username must be a non-empty user without ':', got 'a:b'"),
    ],
    ids=["registry-url", "no-registry", "no-user", "colon-in-user"],
)
def test_pull_secret_args_refuse_what_the_kubelet_could_not_use(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pull(**overrides)


def test_web_service_in_a_namespace_that_exists_creates_none_and_deploys_into_it(recorded: Deployed) -> None:
    settle(lambda: WebService("web", web_service_args(create_namespace=False, image_pull=pull())))

    assert recorded.of_type("kubernetes:core/v1:Namespace") == []
    namespaced = [r for r in recorded.resources if r.type.startswith("kubernetes:")]
    assert {r.inputs["metadata"]["namespace"] for r in namespaced} == {"web-test"}
    assert {r.type for r in namespaced} >= {SECRET, "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"}
