"""`make preview` and `make up` of a stack that pins an image ask its registry first, and run nothing when the
registry does not serve it: a pod that cannot pull never starts, and the rollout would only time out.

Runs `python -m ops` against the stand-in pulumi of tests/unit/ops/test_deploy.py and stand-in registries on
loopback; no engine, no platform.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.deploy import promote_hint
from tests import ops_process
from tests.conftest import ROOT, serving
from tests.unit.ops.test_deploy import ops_project

PLACEHOLDER = "sha256:" + "0" * 64


@contextlib.contextmanager
def registry_answering(code: int) -> Iterator[str]:
    """A stand-in registry on loopback that answers every manifest question with ``code``; yields its address."""

    class Manifests(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(code)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Manifests) as port:
        yield f"127.0.0.1:{port}"


def run_ops(
    tmp_path: Path, address: str, action: str, **credentials: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`python -m ops ACTION prod` for prod pinning the placeholder digest at ``address``; returns what pulumi ran."""
    _, env, log = ops_project(tmp_path, "prod", registry=address)
    env = {key: value for key, value in env.items() if not key.startswith("REGISTRY_")}
    env.update(DOCKER_CONFIG=str(tmp_path / "docker"), **credentials)
    result = ops_process.run([action, "prod"], cwd=ROOT, env=env)
    return result, [json.loads(line)["args"][0] for line in log.read_text().splitlines()]


@pytest.mark.parametrize("action", ["preview", "up"])
def test_a_stack_pinning_an_image_its_registry_does_not_serve_runs_nothing_and_says_how_to_get_one(
    tmp_path: Path, action: str
) -> None:
    with registry_answering(404) as address:
        result, ran = run_ops(tmp_path, address, action)

    assert action not in ran
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: stack 'prod' pins image {address}/hello-world@{PLACEHOLDER}, which its registry must serve, got "
        "nothing; nothing ran. Give the stack an image that passed the stack before it: "
        "`make promote FROM=staging TO=prod`\n"
    )


def test_a_registry_that_refuses_the_credentials_runs_nothing(tmp_path: Path) -> None:
    with registry_answering(401) as address:
        result, ran = run_ops(
            tmp_path,
            address,
            "up",
            REGISTRY_ADDRESS=address,
            REGISTRY_USERNAME="me",
            REGISTRY_PASSWORD="not-the-password",
        )

    assert "up" not in ran
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(
        f"error: cannot check the image stack 'prod' pins, so nothing ran: registry {address} answered 401"
    )
    assert "not-the-password" not in result.stderr


def test_a_registry_that_wants_credentials_this_machine_lacks_is_said_and_the_preview_runs(tmp_path: Path) -> None:
    """Nodes may pull with their own credentials (an ECR node role): an up's rollout shows whether they can."""
    with registry_answering(401) as address:
        result, ran = run_ops(tmp_path, address, "preview")

    assert "preview" in ran
    assert result.returncode == 0, result.stderr
    assert f"warning: the image stack 'prod' pins was not checked: registry {address} answered 401" in result.stderr


@pytest.mark.parametrize(
    ("stack", "hint"),
    [
        ("staging", "`make promote FROM=dev TO=staging`"),
        ("prod", "`make promote FROM=staging TO=prod`"),
        ("qa", "`make promote FROM=<stack> TO=qa ARGS=--out-of-chain`"),
    ],
    ids=["staging", "prod", "out-of-chain"],
)
def test_promote_hint_names_the_stack_before_in_the_chain(stack: str, hint: str) -> None:
    assert promote_hint(stack) == hint
