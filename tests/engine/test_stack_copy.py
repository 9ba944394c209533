"""This machine's copy of a stack file (.state/stacks) is what every path that runs pulumi reads: promotion too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from image_ref import ImageRef
from ops.engine import Engine
from ops.promotion import target_registry
from ops.stack_copy import stack_copy_file
from settings.stack_files import stack_file
from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace
from tests.engine.workspace import ROOT, Workspace

pytestmark = pytest.mark.engine

PULL_PASSWORD = "pull-password-for-the-machine-copy"
IMAGE = ImageRef(registry="127.0.0.1:5999", repository="hello-world", digest="sha256:" + "ab" * 32)


def test_promotion_reads_a_pull_password_kept_in_the_machine_copy(make_workspace: MakeWorkspace) -> None:
    workspace = make_workspace("qa", {**stack_config("staging"), "hello-world:imagePull": {"username": "puller"}})
    tracked = stack_file(workspace.directory, "qa").read_bytes()
    copy = set_pull_password(workspace)
    engine = Engine(workspace.directory, env=workspace.env)
    target = engine.stack("qa")

    registry = target_registry(IMAGE, workspace.directory, target, engine)

    assert (registry.address, registry.username, registry.password) == ("127.0.0.1:5999", "puller", PULL_PASSWORD)
    assert stack_file(workspace.directory, "qa").read_bytes() == tracked
    assert "imagePullPassword" in copy.read_text()


def set_pull_password(workspace: Workspace, *extra: str, password: str = PULL_PASSWORD) -> Path:
    """`make secret STACK=qa KEY=imagePullPassword` in the workspace's copy, the password on stdin."""
    result = subprocess.run(
        [sys.executable, "-m", "ops", "secret", "qa", "imagePullPassword", *extra],
        cwd=ROOT,
        env={**workspace.env, "HELLO_PROJECT_DIR": str(workspace.directory)},
        input=password,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return stack_copy_file(workspace.directory, "qa")


def test_a_secret_set_on_this_machine_goes_to_its_copy_and_never_to_the_tracked_file(
    make_workspace: MakeWorkspace,
) -> None:
    workspace = make_workspace("qa", stack_config("staging"))
    tracked = stack_file(workspace.directory, "qa").read_bytes()

    copy = set_pull_password(workspace)
    stored = workspace.pulumi("config", "get", "imagePullPassword", "--config-file", str(copy)).stdout.strip()
    encrypted = copy.read_text()
    set_pull_password(workspace, "--remove")

    assert stored == PULL_PASSWORD
    assert "imagePullPassword" in encrypted
    assert PULL_PASSWORD not in encrypted
    assert stack_file(workspace.directory, "qa").read_bytes() == tracked
    assert "imagePullPassword" not in copy.read_text()
