"""The image pull secret as a stack sets it: `imagePull.username`, the secret `imagePullPassword`, and
`cluster.createNamespace`; checked as plain settings, then run through the real program under mocks."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from settings.load import SettingsError, parse_settings
from tests.conftest import FAKE_DIGEST, PASSWORD, SECRET_SIG, Deploy
from tests.unit.components.test_pull_secret import unwrapped

IMAGE = f"registry.example.com/team/hello-world@{FAKE_DIGEST}"
SECRET = "kubernetes:core/v1:Secret"
PULL_KEYS = frozenset({"imagePullPassword"})


def pulling(**extra: Any) -> dict[str, Any]:
    return {"image": IMAGE, "imagePull": json.dumps({"username": "puller"}), "imagePullPassword": PASSWORD, **extra}


def problems_of(raw: dict[str, Any], secret_keys: frozenset[str] = PULL_KEYS) -> list[str]:
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, stack="staging", secret_keys=secret_keys)
    return error.value.problems


def test_pull_settings_parse_with_the_password_kept_as_given() -> None:
    settings = parse_settings(pulling(), stack="staging", secret_keys=PULL_KEYS)

    assert settings.image_pull is not None
    assert settings.image_pull.username == "puller"
    assert settings.image_pull_password == PASSWORD
    assert PASSWORD not in repr(settings)
    assert settings.cluster.create_namespace is True


@pytest.mark.parametrize(
    ("raw", "secret_keys", "message"),
    [
        (
            {"image": IMAGE, "imagePull": json.dumps({"username": "puller"})},
            PULL_KEYS,
            "imagePullPassword must be set with `pulumi config set --secret imagePullPassword <password>` "
            "with imagePull, got nothing",
        ),
        (
            {"image": IMAGE, "imagePullPassword": PASSWORD},
            PULL_KEYS,
            "imagePullPassword is only used with imagePull: expected no imagePullPassword, got one without a "
            "imagePull section",
        ),
        (
            pulling(),
            frozenset(),
            "imagePullPassword must be a secret (pulumi config set --secret imagePullPassword ...), "
            "got a plaintext value",
        ),
        (
            pulling(imagePull=json.dumps({"username": "a:b"})),
            PULL_KEYS,
            "imagePull.username must be the registry user (no ':'), got 'a:b'",
        ),
        (
            pulling(imagePull=json.dumps({})),
            PULL_KEYS,
            "imagePull.username must be the registry user (no ':'), got nothing",
        ),
        (
            pulling(imagePull=json.dumps({"username": "u", "password": "p"})),
            PULL_KEYS,
            "imagePull.password is not a known setting: expected one of username, got 'password'",
        ),
        (
            pulling(cluster=json.dumps({"createNamespace": "no"})),
            PULL_KEYS,
            "cluster.createNamespace must be true or false, got 'no'",
        ),
    ],
    ids=[
        "no-password",
        "password-alone",
        "plaintext-password",
        "colon-in-user",
        "no-user",
        "password-in-section",
        "namespace-flag",
    ],
)
def test_pull_settings_refuse_what_cannot_make_a_pull_secret(
    raw: dict[str, Any], secret_keys: frozenset[str], message: str
) -> None:
    problems = problems_of(raw, secret_keys)

    assert any(re.fullmatch(re.escape(message) + r".*", problem) for problem in problems), problems
    assert all(PASSWORD not in problem for problem in problems)


def test_stack_with_image_pull_deploys_a_pull_secret_for_the_images_registry(deploy: Deploy) -> None:
    config = {f"hello-world:{key}": value for key, value in pulling(nodePort="31678").items()}

    deployed = deploy("staging", config, ("hello-world:imagePullPassword",))

    data = deployed.one(SECRET).wire["data"]
    assert SECRET_SIG in data.values()
    document = json.loads(base64.b64decode(unwrapped(unwrapped(data)[".dockerconfigjson"])))
    assert list(document["auths"]) == ["registry.example.com"]
    assert document["auths"]["registry.example.com"]["username"] == "puller"
    pod = deployed.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "hello-world-pull"}]
    assert all(PASSWORD not in json.dumps(value) for value in deployed.outputs.values())


def test_stack_in_an_existing_namespace_creates_none(deploy: Deploy) -> None:
    config = {
        f"hello-world:{key}": value
        for key, value in pulling(cluster=json.dumps({"kubeconfig": "/k", "createNamespace": "false"})).items()
    }

    deployed = deploy("staging", config, ("hello-world:imagePullPassword",))

    assert deployed.of_type("kubernetes:core/v1:Namespace") == []
    assert deployed.one("kubernetes:apps/v1:Deployment").inputs["metadata"]["namespace"] == "hello-world-staging"


def test_rendered_stack_goes_without_the_pull_password_and_writes_no_secret(deploy: Deploy) -> None:
    """A render gets no secrets: its pods name the pull secret, which is made outside the stack."""
    raw = pulling(cluster=json.dumps({"renderTo": "/tmp/rendered"}))
    raw.pop("imagePullPassword")

    deployed = deploy("staging", {f"hello-world:{key}": value for key, value in raw.items()})

    assert deployed.of_type(SECRET) == []
    pod = deployed.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "hello-world-pull"}]
