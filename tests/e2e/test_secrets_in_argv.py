"""No secret ever goes on a command line: a sampler reads every /proc/*/cmdline while each path that
handles the registry password runs, and must see the commands but never the password."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.engine.fixtures import LocalRegistry
from tests.engine.workspace import ROOT, Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]


PUBLISH_CHECK_RUNS = 5
"""At most this many runs of base-image.sh, until the sampler sees its curl."""


class ArgvSampler:
    """Reads the command line of every process, over and over, until stopped."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.leaks: set[str] = set()
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if argv:
                    self.seen.add(argv.replace(b"\0", b" ").decode(errors="replace")[:200])
                    if self.secret in argv:
                        self.leaks.add(argv.replace(self.secret, b"<secret>").decode(errors="replace"))

    @contextmanager
    def watching(self) -> Iterator[ArgvSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)

    def saw(self, fragment: str) -> bool:
        return any(fragment in argv for argv in self.seen)


def test_setting_a_stack_secret_keeps_it_off_the_command_line(pulumi_cli: str, tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path, "argv")
    password = secrets.token_hex(16)

    with ArgvSampler(password).watching() as sampler:
        workspace.set_secret("registryPassword", password)

    assert sampler.saw("config set --secret registryPassword")
    assert sampler.leaks == set()
    assert workspace.pulumi("config", "get", "registryPassword").stdout.strip() == password


def test_make_up_password_step_keeps_it_off_the_command_line(pulumi_cli: str, tmp_path: Path) -> None:
    """`make preview` (python -m ops) sets the local registry's password on a stack, in a copy of the project."""
    project = tmp_path / "project"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.split():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    (project / ".venv").symlink_to(ROOT / ".venv")
    password = secrets.token_hex(16)
    (tmp_path / "password").write_text(password)
    env = {
        **os.environ,
        "HELLO_REGISTRY_PASSWORD_FILE": str(tmp_path / "password"),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-passphrase",
    }
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)

    with ArgvSampler(password).watching() as sampler:
        result = subprocess.run(
            [sys.executable, "-m", "ops", "preview", "dev"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert result.returncode == 0, result.stdout + result.stderr
    copy = project / ".state" / "stacks" / "Pulumi.dev.yaml"
    stored = subprocess.run(
        ["pulumi", "config", "get", "registryPassword", "--stack", "dev", "--config-file", str(copy)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert stored.stdout.strip() == password  # the secret was set, and reads back
    assert sampler.saw("config set --secret registryPassword")
    assert sampler.leaks == set()


def test_base_image_publish_check_keeps_the_password_off_the_command_line(registry: LocalRegistry) -> None:
    script = ROOT / "tooling" / "platform" / "base-image.sh"

    with ArgvSampler(registry.password).watching() as sampler:
        # The warm path runs one curl of a few milliseconds, which a sampler on a busy machine can miss: a few runs,
        # until it is seen (it leaks or not the same way each time).
        for _ in range(PUBLISH_CHECK_RUNS):
            subprocess.run([str(script), "up"], capture_output=True, text=True, timeout=300, check=True)
            if sampler.saw("curl"):
                break

    assert sampler.saw("curl")
    assert sampler.leaks == set()


def test_render_of_a_building_stack_keeps_the_password_off_the_command_line(
    pulumi_cli: str, registry: LocalRegistry, tmp_path: Path
) -> None:
    from ops.render import render

    os.environ.setdefault("DOCKER_HOST", f"unix://{os.environ['HELLO_DOCKER_SOCK']}")
    with ArgvSampler(registry.password).watching() as sampler:
        render("dev", tmp_path / "out", registry_password=registry.password)

    assert sampler.saw("pulumi")
    assert sampler.leaks == set()
