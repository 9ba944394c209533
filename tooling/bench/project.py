"""A throwaway copy of the whole project, with a backend and stacks of its own, that the bench times."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings.stack_files import read_engine_config, replace_plain_config

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE_PREFIX = "bench"
"""Stack S of a bench's copy runs in namespace ``bench-<token>-S``: apart from the project's own stacks, the
tests and any other bench running at the same time."""
REPOSITORY = "hello-world-bench"
"""Registry repository the copy's dev builds into, apart from the project's ``hello-world``."""
COMMAND_TIMEOUT_SECONDS = 900
SKIPPED = (".git", ".venv", ".state", ".ci", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")
# Inherited from an outer `make bench`: MAKEFLAGS would hand its command-line variables (STACK=...)
# to every inner make, and the passphrase variables would open the project's stacks, not the copy's.
DROPPED_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "STACK", "STACKS", "FROM", "TO", "OUT", "ARGS", "QUICK")


class BenchError(RuntimeError):
    """A command the bench times failed; the bench's figures would mean nothing."""


def _export(source: Path, commit: str, directory: Path) -> None:
    """The files of ``commit``, as git holds them (a working tree others are editing may not run)."""
    archive = subprocess.run(
        ["git", "-C", str(source), "archive", "--format=tar", "--", commit],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise BenchError(f"commit must name a commit of {source}, got {commit!r}: {archive.stderr.decode().strip()}")
    directory.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")


def isolated(config: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A stack's settings in the bench's copy: its own namespace and repository, a node port the cluster picks.

    Everything else stays: the copy's dev builds, pushes and deploys the same resources as the project's dev.
    """
    changed: dict[str, Any] = {key: value for key, value in config.items() if key != "hello-world:nodePort"}
    changed["hello-world:namespace"] = namespace
    if isinstance(build := changed.get("hello-world:build"), Mapping):
        changed["hello-world:build"] = {**build, "repository": REPOSITORY}
    return changed


@dataclass
class Project:
    """The copy in ``directory``; its state (backend, passphrase) lives in ``state``, both under ``root``."""

    root: Path
    directory: Path
    env: dict[str, str]
    namespaces: dict[str, str]
    """Namespace of each of the copy's stacks, ``bench-<token>-<stack>``."""

    @classmethod
    def create(cls, source: Path = ROOT, commit: str | None = None) -> Project:
        """Copies ``source``'s working tree, or its ``commit``, and points the copy's stacks at the bench's namespaces.

        No node port is fixed: the cluster picks one, so a bench never takes a port that a stack of the
        project or a test holds.
        """
        root = Path(tempfile.mkdtemp(prefix="hello-bench-"))
        directory = root / "project"
        if commit is None:
            shutil.copytree(source, directory, ignore=shutil.ignore_patterns(*SKIPPED), symlinks=True)
        else:
            _export(source, commit, directory)
            # The copy shares the project's virtualenv, already built from these requirements: a checkout's
            # new mtime must not make `make` rebuild it. An older commit may have no requirements-dev.txt.
            for requirements in ("requirements.txt", "requirements-dev.txt"):
                if (directory / requirements).exists():
                    shutil.copystat(source / requirements, directory / requirements)
        (directory / ".venv").symlink_to((source / ".venv").resolve())
        # A repository of its own: some tests ask git which files the project tracks.
        for git in (["init", "-q"], ["add", "--all"], ["commit", "-q", "--no-verify", "-m", "bench copy"]):
            subprocess.run(
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *git],
                cwd=directory,
                capture_output=True,
                check=True,
            )
        state = root / "state"
        (state / "backend").mkdir(parents=True, mode=0o700)
        passphrase = state / "passphrase"
        passphrase.write_text(secrets.token_hex(24))
        passphrase.chmod(0o600)
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in DROPPED_ENV and not key.startswith("PULUMI_CONFIG_PASSPHRASE")
        }
        env.update(
            HELLO_STATE=str(state),
            PULUMI_BACKEND_URL=f"file://{state / 'backend'}",
            PULUMI_CONFIG_PASSPHRASE_FILE=str(passphrase),
        )
        token = secrets.token_hex(3)
        namespaces = {stack: f"{NAMESPACE_PREFIX}-{token}-{stack}" for stack in ("dev", "staging", "prod")}
        project = cls(root=root, directory=directory, env=env, namespaces=namespaces)
        for stack, namespace in namespaces.items():
            project.isolate(stack, namespace)
        return project

    def isolate(self, stack: str, namespace: str) -> None:
        replace_plain_config(self.directory, stack, isolated(read_engine_config(self.directory, stack), namespace))

    def run(
        self,
        *command: str,
        cwd: Path | None = None,
        accept: tuple[int, ...] = (0,),
        env: Mapping[str, str] | None = None,
    ) -> float:
        """Runs ``command`` in the copy, with ``env`` added to its environment, and returns the seconds it took.

        Raises:
            BenchError: When it exits with a status outside ``accept``, with the end of its output.
        """
        seconds, result = self.timed(*command, cwd=cwd, env=env)
        if result.returncode not in accept:
            tail = (result.stdout + result.stderr)[-3000:]
            raise BenchError(f"{' '.join(command)} must exit {accept}, got {result.returncode}:\n{tail}")
        return seconds

    def timed(
        self, *command: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=cwd or self.directory,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        return time.monotonic() - started, result

    def output(self, *command: str, cwd: Path | None = None) -> str:
        _, result = self.timed(*command, cwd=cwd)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(command)} must exit 0, got {result.returncode}:\n{result.stderr[-3000:]}")
        return result.stdout

    def tracked(self, name: str) -> bytes:
        """A file of the copy as it was copied, before the bench changed it (the copy's own git holds it)."""
        result = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=self.directory, capture_output=True, check=False)
        if result.returncode != 0:
            raise BenchError(f"{name} must be a file of the copied project, got: {result.stderr.decode().strip()}")
        return result.stdout

    def pulumi(
        self, *args: str, stack: str = "dev", cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> float:
        return self.run("pulumi", *args, "--non-interactive", "--stack", stack, cwd=cwd, env=env)

    def stack_outputs(self, stack: str = "dev") -> dict[str, Any]:
        text = self.output("pulumi", "stack", "output", "--json", "--non-interactive", "--stack", stack)
        outputs: dict[str, Any] = json.loads(text)
        return outputs

    def make(self, *args: str) -> float:
        return self.run("make", "--no-print-directory", "-C", str(self.directory), *args)

    def remove(self) -> None:
        """Destroys whatever the copy's stacks run and deletes the copy; a failure here only warns."""
        listed = json.loads(self.output("pulumi", "stack", "ls", "--json", "--non-interactive") or "[]")
        stacks = [stack for stack in ("staging", "dev") if stack in {entry["name"] for entry in listed}]
        # Side by side: the stacks share no resource, and each destroy mostly waits for its pods to drain.
        with ThreadPoolExecutor(max_workers=max(len(stacks), 1)) as pool:
            destroys = {
                stack: pool.submit(self.pulumi, "destroy", "--yes", "--skip-preview", stack=stack) for stack in stacks
            }
            for stack, destroy in destroys.items():
                try:
                    destroy.result()
                except (BenchError, subprocess.TimeoutExpired) as error:
                    print(f"warning: {stack} of the bench copy was not destroyed: {error}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)
