"""`make up`'s path leaves the working tree clean: this machine's secrets and salt never reach a tracked file.

Runs `python -m ops` (what `make up` and `make destroy` run) on the dev stack of a git copy of the
project, against a throwaway backend: it builds app/, pushes to the local registry and deploys on the local
cluster, then destroys. Needs the local platform, which `make test` starts.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from settings.stack_files import read_settings, set_settings
from tests.engine.workspace import copy_checkout

pytestmark = [pytest.mark.engine, pytest.mark.platform]

# Its own port, namespace and repository: the copy's dev must not meet a real `make up` of dev.
NODE_PORT = "31671"
NAMESPACE = "hello-world-cleantree"
REPOSITORY = "hello-world-cleantree"
COMMAND_TIMEOUT_SECONDS = 900


@dataclass
class Copy:
    """A git repository holding the project's files, with dev moved to a port and namespace of its own."""

    directory: Path
    env: dict[str, str]

    def ops(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops", command, "dev"],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )

    def git(self, *args: str) -> str:
        command = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args]
        return subprocess.run(command, cwd=self.directory, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def copy(pulumi_cli: str, tmp_path: Path) -> Iterator[Copy]:
    directory = tmp_path / "project"
    copy_checkout(directory)
    build = read_settings(directory, "dev")["build"]
    set_settings(
        directory, "dev", {"nodePort": NODE_PORT, "namespace": NAMESPACE, "build": {**build, "repository": REPOSITORY}}
    )
    # pulumi runs in a Pulumi home of its own here, which sees the built plugins.
    home = tmp_path / "pulumi-home"
    home.mkdir()
    (home / "plugins").symlink_to(Path(os.environ.get("PULUMI_HOME", Path.home() / ".pulumi")) / "plugins")
    env = {
        **os.environ,
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-passphrase",
        "DOCKER_HOST": f"unix://{os.environ['HELLO_DOCKER_SOCK']}",
    }
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    made = Copy(directory=directory, env=env)
    made.git("init", "--quiet")
    made.git("add", "--all")
    made.git("commit", "--quiet", "--message", "the project")
    yield made
    made.ops("destroy")


def test_make_up_and_destroy_leave_the_tracked_stack_file_as_it_was(copy: Copy) -> None:
    tracked = copy.directory / "Pulumi.dev.yaml"
    before = tracked.read_bytes()
    password = Path(os.environ["HELLO_REGISTRY_PASSWORD_FILE"]).read_text()

    up = copy.ops("up")

    assert up.returncode == 0, up.stdout + up.stderr
    assert "Hello" in up.stdout.splitlines()[-1], up.stdout
    assert tracked.read_bytes() == before
    assert copy.git("status", "--porcelain", "--untracked-files=all") == ""
    machine = copy.directory / ".state" / "stacks" / "Pulumi.dev.yaml"
    assert stat.S_IMODE(machine.stat().st_mode) == 0o600
    document = yaml.safe_load(machine.read_text())
    assert set(document["config"]["hello-world:registryPassword"]) == {"secure"}
    assert document["encryptionsalt"].startswith("v1:")
    assert password not in machine.read_text()

    again = copy.ops("preview")
    destroy = copy.ops("destroy")

    assert again.returncode == 0, again.stdout + again.stderr
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    assert tracked.read_bytes() == before
    assert copy.git("status", "--porcelain", "--untracked-files=all") == ""
