"""The one module that runs pulumi: stacks opened through the Automation API, signals handled once.

Everything that drives Pulumi from outside the program (deploy, review, promotion, rollback, render)
opens its stacks here and runs the CLI through :class:`PulumiRunner`, so that a stop signal cancels
pulumi gracefully and is waited for, a new stack never writes its salt into a tracked stack file,
and each stack opens with its own passphrase.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from pulumi import automation as auto
from pulumi.automation._stack import StackInitMode  # Stack.select makes the base class; ours is made alike
from pulumi.automation.errors import CommandError as CommandError  # raised to every caller
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

from ops import PROJECT_DIR, backend
from settings.stack_files import restoring

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop an operation the way Ctrl-C does: pulumi cancels, then the operation cleans up."""
SIGNAL_CHECK_SECONDS = 0.2
"""Longest blocking wait: a signal that lands just before a wait would otherwise be handled only after it."""
STACK_TYPE = "pulumi:pulumi:Stack"
# Pulumi repeats the resource's URN inside its error; the message already names the resource.
_URN_PREAMBLE = re.compile(r'resource "urn:[^"]*" was successfully created, but ')
SUMMARY_MAX_CHARS = 400
"""How much of an engine error a message quotes."""


class Interrupted(BaseException):
    """A stop signal ended the operation; raised once pulumi has exited.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int, detail: str) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}: {detail}")

    @property
    def exit_code(self) -> int:
        """The shell's code for death by this signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class PulumiMissingError(Exception):
    """The pulumi CLI is not where it is looked for."""


def require_pulumi(command: str = "pulumi") -> None:
    """Checks that the pulumi CLI is there before anything runs (a lock, a backend, a stack file copy).

    Raises:
        PulumiMissingError: When ``command`` is not an executable on PATH (or, with a slash, at that path).
    """
    if shutil.which(command) is None:
        raise PulumiMissingError(_missing(command))


def _missing(command: str) -> str:
    return f"the pulumi CLI must be on PATH (`make tools` builds it), got no {command!r}"


class PulumiRunner(auto.PulumiCommand):
    """The pulumi CLI, run so that a stop signal (SIGINT, SIGTERM, SIGHUP) cancels it and is waited for.

    pulumi runs in its own process group, so a Ctrl-C in the terminal reaches it only through us,
    once: as SIGINT, pulumi's own graceful cancel. Outside a pulumi command, a signal stops the
    operation at once where it is interruptible (:class:`Interrupted`), and is only noted where it
    is not (while a stack file is put back, while pulumi deploys).
    """

    # The CLI's version is asked once, when the Automation API first needs it, not when a runner is made.
    def __init__(self, command: str = "pulumi") -> None:  # no super().__init__(): it would ask the version now
        self.command = command
        self._version: VersionInfo | None = None
        self.interrupted: int | None = None
        """The first stop signal received, if any."""
        self.deployed = False
        """Whether a ``pulumi up`` has succeeded."""
        self._running: subprocess.Popen[str] | None = None
        self._starting = False
        self._cancel_on_start = False
        self._interruptible = True
        self._stdin: str | None = None
        self.stop_detail = "nothing was deployed"
        """What an :class:`Interrupted` raised outside a pulumi command says was left."""

    @property
    def version(self) -> VersionInfo | None:
        """The CLI's version, asked of the CLI the first time it is needed.

        Raises:
            PulumiMissingError: When there is no such CLI.
        """
        if self._version is None:
            try:
                found = subprocess.run(
                    [self.command, "version"],
                    env={**child_environment(os.environ), "PULUMI_SKIP_UPDATE_CHECK": "true"},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            except FileNotFoundError:
                raise PulumiMissingError(_missing(self.command)) from None
            self._version = VersionInfo.parse(found.strip().removeprefix("v"))
        return self._version

    @version.setter
    def version(self, value: VersionInfo | None) -> None:
        self._version = value

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Callable[[str], object] | None = None,
        on_error: Callable[[str], object] | None = None,
    ) -> auto.CommandResult:
        """Runs one pulumi command as the Automation API asks, and waits for it to exit whatever signal comes."""
        self._stop_if_interrupted()
        separator = args.index("--") if "--" in args else len(args)
        self.version  # noqa: B018 - a missing CLI is named here, before anything else runs
        command = [self.command, *([] if "--non-interactive" in args[:separator] else ["--non-interactive"]), *args]
        env = {**child_environment(os.environ), **additional_env, "PULUMI_AUTOMATION_API": "true"}
        stdin, self._stdin = self._stdin, None
        stdout: list[str] = []
        stderr: list[str] = []
        # A signal while pulumi starts is only noted, so that no pulumi runs on unseen; it is passed on below.
        self._starting = True
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                encoding="utf-8",
                process_group=0,
            )
            self._running = process
        finally:
            self._starting = False
        if self._cancel_on_start:
            self._cancel_on_start = False
            process.send_signal(signal.SIGINT)
        try:
            if stdin is not None:
                assert process.stdin is not None
                with suppress(BrokenPipeError):
                    process.stdin.write(stdin)
                process.stdin.close()
            readers = [
                threading.Thread(target=_drain, args=(process.stdout, on_output, stdout), daemon=True),
                threading.Thread(target=_drain, args=(process.stderr, on_error, stderr), daemon=True),
            ]
            for reader in readers:
                reader.start()
            for reader in readers:
                while reader.is_alive():
                    reader.join(SIGNAL_CHECK_SECONDS)
            code = process.wait()
        finally:
            self._running = None
        self.deployed = self.deployed or (args[0] == "up" and code == 0)
        self._stop_if_interrupted()
        result = auto.CommandResult(stdout="\n".join(stdout), stderr="\n".join(stderr), code=code)
        if code != 0:
            raise create_command_error(result)
        return result

    def run_with_input(self, args: list[str], cwd: str, env: Mapping[str, str], text: str) -> auto.CommandResult:
        """Runs one pulumi command with ``text`` on its standard input: a secret never goes on a command line."""
        self._stdin = text
        return self.run(args, cwd, env)

    @contextmanager
    def stopping_on_signals(self) -> Iterator[None]:
        """Inside, SIGINT, SIGTERM and SIGHUP stop the operation as described on the class."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def interruptible(self, interruptible: bool = True) -> Iterator[None]:
        """Whether a signal stops the block at once (:class:`Interrupted`), or is only noted and passed to pulumi.

        Entering an interruptible block after a signal was noted stops right there.
        """
        previous, self._interruptible = self._interruptible, interruptible
        try:
            self._stop_if_interrupted()
            yield
        finally:
            self._interruptible = previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self.interrupted is None
        if first:
            self.interrupted = signum
        process = self._running
        if process is not None:
            _tell(f"{signal.Signals(signum).name} received: cancelling pulumi and waiting for it to exit")
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        elif self._starting:
            self._cancel_on_start = True
        elif first and self._interruptible:
            raise Interrupted(signum, self.stop_detail)

    def _stop_if_interrupted(self) -> None:
        if self.interrupted is not None and self._interruptible:
            raise Interrupted(self.interrupted, self.stop_detail)


def _drain(stream: IO[str], callback: Callable[[str], object] | None, lines: list[str]) -> None:
    """Reads a pipe to its end, so pulumi never blocks on it, even when the callback fails (a hung-up terminal)."""
    for line in iter(stream.readline, ""):
        stripped = line.rstrip()
        lines.append(stripped)
        if callback is not None:
            try:
                callback(stripped)
            except OSError:
                callback = None
    stream.close()


def _tell(message: str) -> None:
    """Writes to stderr from a signal handler: no buffered stream, which the interrupted code may be using."""
    with suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), f"{message}\n".encode())


STACK_PASSPHRASE = re.compile(r"PULUMI_CONFIG_PASSPHRASE_(?!FILE\Z)[A-Z0-9_]+")
"""A per-stack passphrase variable, such as ``PULUMI_CONFIG_PASSPHRASE_PROD`` (not the local ``..._FILE``)."""
OURS_ONLY = frozenset({"REGISTRY_PASSWORD"})
"""Secrets of this process's own registry checks (ops/registry.py): the program and its providers never read them."""


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What every pulumi process inherits: the environment without any stack's own passphrase or our registry password.

    A command for one stack gets that stack's passphrase back as ``PULUMI_CONFIG_PASSPHRASE`` (:func:`passphrase_env`,
    through its workspace); a plugin or policy pack of one stack never sees another stack's passphrase.
    """
    return {key: value for key, value in environ.items() if not (STACK_PASSPHRASE.fullmatch(key) or key in OURS_ONLY)}


def passphrase_env(stack: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The stack's own passphrase, when the environment holds one for it (``PULUMI_CONFIG_PASSPHRASE_<STACK>``).

    CI keeps the stacks' passphrases apart (PULUMI_CONFIG_PASSPHRASE_PROD only in the prod
    environment), and a promotion reads one stack and deploys another.
    """
    variable = "PULUMI_CONFIG_PASSPHRASE_" + re.sub(r"[^A-Z0-9]", "_", stack.split("/")[-1].upper())
    passphrase = environ.get(variable)
    return {"PULUMI_CONFIG_PASSPHRASE": passphrase} if passphrase else {}


@dataclass
class Engine:
    """Opens this project's stacks and runs pulumi for them, all through one :class:`PulumiRunner`."""

    work_dir: Path = PROJECT_DIR
    runner: PulumiRunner = field(default_factory=PulumiRunner)
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for every command (a throwaway backend and passphrase, say)."""

    def stack(self, name: str, *, create: bool = False) -> auto.Stack:
        """The stack ``name`` of the project in ``work_dir``; with ``create``, made first when the backend lacks it.

        Creating a stack writes its encryption salt into ``Pulumi.<stack>.yaml``: it is created beside a
        scratch copy of Pulumi.yaml instead, so that a tracked stack file is never written here.

        Raises:
            CommandError: When pulumi cannot select (or create) the stack.
        """
        self._prepared_backend()
        options = self.workspace_options(name)
        try:
            return self._select(name, options)
        except CommandError:
            if not create:
                raise
        with tempfile.TemporaryDirectory(prefix="stack-init-") as scratch:
            shutil.copy2(self.work_dir / "Pulumi.yaml", scratch)
            workspace = auto.LocalWorkspace(
                work_dir=scratch, pulumi_command=options.pulumi_command, env_vars=options.env_vars
            )
            workspace.create_stack(name)
        return self._select(name, options)

    def _select(self, name: str, options: auto.LocalWorkspaceOptions) -> auto.Stack:
        # `pulumi stack select` writes a missing encryption salt into the tracked stack file: it is put back.
        # The salt reaches this machine's copy instead, when a command runs with `--config-file`.
        with restoring(self.work_dir, name.split("/")[-1]):
            workspace = auto.LocalWorkspace(
                work_dir=str(self.work_dir), pulumi_command=options.pulumi_command, env_vars=options.env_vars
            )
            return Stack(name, workspace, StackInitMode.SELECT)

    def throwaway_stack(self, name: str, program_dir: Path) -> auto.Stack:
        """A new stack of the program copy in ``program_dir`` (its own backend comes through ``env``)."""
        self._prepared_backend()
        return auto.create_stack(name, work_dir=str(program_dir), opts=self.workspace_options(name))

    def set_secret(self, stack: auto.Stack, key: str, value: str, *, config_file: Path | None = None) -> None:
        """Sets a secret setting, the value on pulumi's standard input (``ps`` shows every argument)."""
        args = ["config", "set", "--secret", key, "--stack", stack.name]
        args += ["--config-file", str(config_file)] if config_file else []
        self.runner.run_with_input(args, stack.workspace.work_dir, stack.workspace.env_vars, value)

    def remove_setting(self, stack: auto.Stack, key: str, *, config_file: Path | None = None) -> None:
        """Removes a setting from the stack's config file."""
        args = ["config", "rm", key, "--stack", stack.name]
        args += ["--config-file", str(config_file)] if config_file else []
        self.runner.run(args, stack.workspace.work_dir, stack.workspace.env_vars)

    def get_secret(self, stack: auto.Stack, key: str, *, config_file: Path | None = None) -> str:
        """A setting's value, decrypted; it travels on a pipe, never on a command line.

        Raises:
            CommandError: When the stack has no such setting.
        """
        args = ["config", "get", key, "--json", "--stack", stack.name]
        args += ["--config-file", str(config_file)] if config_file else []
        result = self.runner.run(args, stack.workspace.work_dir, stack.workspace.env_vars)
        return str(json.loads(result.stdout)["value"])

    def _prepared_backend(self) -> None:
        backend.prepare({**os.environ, **self.env})

    def workspace_options(self, name: str) -> auto.LocalWorkspaceOptions:
        """How the stack ``name`` is opened: through our runner, with its own passphrase if the environment has one."""
        env = {**passphrase_env(name), **self.env}
        return auto.LocalWorkspaceOptions(pulumi_command=self.runner, env_vars=env or None)


class Stack(auto.Stack):
    """The Automation API's stack, except that an up does not read the stack back.

    After each up the Automation API starts the CLI three more times: for the outputs (twice, with and
    without secrets) and for the last history entry. That is 1.0 s of a 3.6 s no-op ``make up``, and nothing
    of ours reads them from an up's result: the outputs an up needs come from its events
    (:meth:`EventLog.stack_outputs`). Outside an up, :meth:`outputs` and :meth:`info` ask the CLI as before.
    """

    _up_started: datetime | None = None

    def up(self, *args: Any, **kwargs: Any) -> auto.UpResult:
        """:meth:`auto.Stack.up`, whose result has no outputs and a summary made here: a successful update
        from its start to now, with nothing else known."""
        self._up_started = datetime.now(UTC)
        try:
            return super().up(*args, **kwargs)
        finally:
            self._up_started = None

    def outputs(self) -> auto.OutputMap:
        return super().outputs() if self._up_started is None else {}

    def info(self, show_secrets: bool = True) -> auto.UpdateSummary | None:
        if self._up_started is None:
            return super().info(show_secrets)
        return auto.UpdateSummary(
            kind="update",
            start_time=self._up_started,
            message="",
            environment={},
            config={},
            result="succeeded",  # asked only once the update succeeded
            end_time=datetime.now(UTC),
        )


@dataclass
class EventLog:
    """The engine events of one operation, kept for what comes after it (a summary, a failure's cause)."""

    events: list[auto.EngineEvent] = field(default_factory=list)

    def __call__(self, event: auto.EngineEvent) -> None:
        self.events.append(event)

    def stack_outputs(self) -> dict[str, Any]:
        """The stack's outputs as the engine reported them at the end of the operation (a secret shows as
        ``[secret]``), or nothing if it reported none."""
        reported = [
            event.res_outputs_event.metadata.new.outputs
            for event in self.events
            if event.res_outputs_event is not None
            and event.res_outputs_event.metadata.type == STACK_TYPE
            and event.res_outputs_event.metadata.new is not None
        ]
        return dict(reported[-1] or {}) if reported else {}

    def first_error(self) -> str:
        """The first resource's error (``<name> (<type>): <error>``), else the first error, in short."""
        errors = [
            event.diagnostic_event
            for event in self.events
            if event.diagnostic_event is not None and event.diagnostic_event.severity == "error"
        ]
        by_resource = [error for error in errors if error.urn and _type_and_name(error.urn)[0] != STACK_TYPE]
        if by_resource:
            type_, name = _type_and_name(by_resource[0].urn or "")
            found = f"{name} ({type_}): {_one_line(_URN_PREAMBLE.sub('', by_resource[0].message))}"
        elif errors:
            found = _one_line(errors[0].message)
        else:
            found = "pulumi exited non-zero"
        return found if len(found) <= SUMMARY_MAX_CHARS else found[: SUMMARY_MAX_CHARS - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _type_and_name(urn: str) -> tuple[str, str]:
    """A URN's resource type (the last of its parent chain) and name."""
    parts = urn.split("::")
    return parts[2].split("$")[-1], parts[3]
