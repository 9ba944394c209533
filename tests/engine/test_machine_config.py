"""This machine's copy of a stack file (.state/stacks) is what every path that runs pulumi reads: promotion too."""

from __future__ import annotations

import pytest
from pulumi import automation as auto

from delivery.promote import target_registry
from image_ref import ImageRef
from settings.stack_files import machine_config, stack_file
from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace

pytestmark = pytest.mark.engine

PULL_PASSWORD = "pull-password-for-the-machine-copy"
IMAGE = ImageRef(registry="127.0.0.1:5999", repository="hello-world", digest="sha256:" + "ab" * 32)


def test_promotion_reads_a_pull_password_kept_in_the_machine_copy(make_workspace: MakeWorkspace) -> None:
    workspace = make_workspace("qa", {**stack_config("staging"), "hello-world:imagePull": {"username": "puller"}})
    tracked = stack_file(workspace.directory, "qa").read_bytes()
    # What `tooling/scripts/stack.sh qa config set --secret imagePullPassword` does, the password on stdin.
    copy = machine_config(workspace.directory, "qa")
    workspace.pulumi("config", "set", "--secret", "imagePullPassword", "--config-file", str(copy), stdin=PULL_PASSWORD)
    target = auto.select_stack(
        "qa", work_dir=str(workspace.directory), opts=auto.LocalWorkspaceOptions(env_vars=workspace.env)
    )

    registry = target_registry(IMAGE, workspace.directory, target)

    assert (registry.address, registry.username, registry.password) == ("127.0.0.1:5999", "puller", PULL_PASSWORD)
    assert stack_file(workspace.directory, "qa").read_bytes() == tracked
    assert "imagePullPassword" in copy.read_text()
