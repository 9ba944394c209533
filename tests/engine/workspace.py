"""A throwaway copy of the project with its own local backend, driven through the real pulumi CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.program_copy import copy_program
from settings.stack_files import replace_plain_config

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_SECONDS = 900


def copy_checkout(directory: Path) -> None:
    """Copies what a checkout holds (tracked files and new ones not ignored, as the working tree has them)
    to ``directory``, sharing the project's .venv; copy2 keeps times, so make sees that .venv as built."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in listed.split("\0"):
        if name and (ROOT / name).is_file():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, directory / name)
    (directory / ".venv").symlink_to(ROOT / ".venv")


class PulumiError(AssertionError):
    """A pulumi command exited non-zero; carries its output for the assertion message."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(f"pulumi {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")


@dataclass
class Workspace:
    """A copy of the program in ``directory``, with stacks kept in ``backend``.

    Each test gets its own, so stacks, state and the app's source can be changed freely.
    """

    directory: Path
    backend: Path
    stack: str
    env: dict[str, str] = field(default_factory=dict)
    last_seconds: float = 0.0

    @classmethod
    def create(cls, base: Path, stack: str, config: Mapping[str, Any] | None = None) -> Workspace:
        directory = copy_program(base / "project", ROOT)
        backend = base / "backend"
        backend.mkdir()
        env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": "throwaway-test-passphrase",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        workspace = cls(directory=directory, backend=backend, stack=stack, env=env)
        workspace.pulumi("stack", "init", stack, stack_flag=False)
        if config is not None:
            workspace.write_config(config)
        return workspace

    def sibling(self, stack: str, config: Mapping[str, Any] | None = None) -> Workspace:
        """Another stack of the same project copy and backend."""
        other = Workspace(directory=self.directory, backend=self.backend, stack=stack, env=dict(self.env))
        other.pulumi("stack", "init", stack, stack_flag=False)
        if config is not None:
            other.write_config(config)
        return other

    def add_ops(self) -> list[str]:
        """Copies the operations core and the policy pack into the copy; returns `python -m ops`, to run there.

        Run from the copy, `python -m ops` works on the copy's stacks with the copy's policy pack, as `make` does.
        """
        skipped = shutil.ignore_patterns("__pycache__")
        for part in ("ops", "policy"):
            shutil.copytree(ROOT / part, self.directory / part, ignore=skipped)
        return [sys.executable, "-m", "ops"]

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Replaces the stack's plain config (secrets are added with :meth:`set_secret`)."""
        replace_plain_config(self.directory, self.stack, config)

    def set_secret(self, key: str, value: str) -> None:
        # On standard input: an argument would show in ps.
        self.pulumi("config", "set", "--secret", key, stdin=value)

    def pulumi(
        self, *args: str, check: bool = True, stack_flag: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = ["pulumi", *args, "--non-interactive"]
        if stack_flag:
            command += ["--stack", self.stack]
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            input=stdin if stdin is not None else "",
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        self.last_seconds = time.monotonic() - started
        if check and result.returncode != 0:
            raise PulumiError(command, result)
        return result

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """``pulumi ARGS`` on the stack, in the background, its output in ``log``."""
        with log.open("wb") as output:
            return subprocess.Popen(
                ["pulumi", *args, "--non-interactive", "--stack", self.stack],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def preview_json(self, *extra: str) -> dict[str, Any]:
        result = self.pulumi("preview", "--json", *extra)
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.pulumi("up", "--yes", "--skip-preview", *extra, check=check)

    def outputs(self) -> dict[str, Any]:
        result = self.pulumi("stack", "output", "--json", "--show-secrets")
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def state(self, show_secrets: bool = False) -> dict[str, Any]:
        """The stack's checkpoint, as `pulumi stack export` gives it.

        Secrets stay encrypted unless asked; each checkpoint write encrypts them anew, so
        comparing two states needs them decrypted.
        """
        flags = ["--show-secrets"] if show_secrets else []
        document: dict[str, Any] = json.loads(self.pulumi("stack", "export", *flags).stdout)
        return document

    def resource_outputs(self, type_: str) -> dict[str, Any]:
        (found,) = [r for r in self.state()["deployment"]["resources"] if r["type"] == type_]
        outputs: dict[str, Any] = found.get("outputs", {})
        return outputs

    def urn(self, type_: str) -> str:
        (found,) = [r for r in self.state()["deployment"]["resources"] if r["type"] == type_]
        urn: str = found["urn"]
        return urn


def steps_by_op(preview: Mapping[str, Any]) -> dict[str, set[tuple[str, str]]]:
    """Groups a `pulumi preview --json` document's steps as op -> {(type, name)}."""
    grouped: dict[str, set[tuple[str, str]]] = {}
    for step in preview.get("steps", []):
        urn = step["urn"]
        type_ = urn.split("::")[2].split("$")[-1]
        name = urn.split("::")[3]
        grouped.setdefault(step["op"], set()).add((type_, name))
    return grouped
