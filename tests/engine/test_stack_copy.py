"""This machine's copy of a stack file (.state/stacks) is what every path that runs pulumi reads: promotion too."""

from __future__ import annotations

import pytest

from image_ref import ImageRef
from ops.engine import Engine
from ops.promotion import target_registry
from ops.stack_copy import write_stack_copy
from settings.stack_files import stack_file
from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace

pytestmark = pytest.mark.engine

PULL_PASSWORD = "pull-password-for-the-machine-copy"
IMAGE = ImageRef(registry="127.0.0.1:5999", repository="hello-world", digest="sha256:" + "ab" * 32)


def test_promotion_reads_a_pull_password_kept_in_the_machine_copy(make_workspace: MakeWorkspace) -> None:
    workspace = make_workspace("qa", {**stack_config("staging"), "hello-world:imagePull": {"username": "puller"}})
    tracked = stack_file(workspace.directory, "qa").read_bytes()
    # What `pulumi config set --secret imagePullPassword --config-file <copy>` does, the password on stdin.
    copy = write_stack_copy(workspace.directory, "qa")
    workspace.pulumi("config", "set", "--secret", "imagePullPassword", "--config-file", str(copy), stdin=PULL_PASSWORD)
    engine = Engine(workspace.directory, env=workspace.env)
    target = engine.stack("qa")

    registry = target_registry(IMAGE, workspace.directory, target, engine)

    assert (registry.address, registry.username, registry.password) == ("127.0.0.1:5999", "puller", PULL_PASSWORD)
    assert stack_file(workspace.directory, "qa").read_bytes() == tracked
    assert "imagePullPassword" in copy.read_text()
