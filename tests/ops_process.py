"""`python -m ops` as a process of its own, forked from a server that has already imported the libraries ops loads.

A new interpreter spends about 0.7 s of CPU importing pulumi, grpc, oras and cryptography before ops runs a line,
and the mock tests start some sixty of them. Forked from multiprocessing's forkserver, which imported those once,
each process still has its own pid, environment, working directory, standard streams and signal dispositions,
and imports ops itself, from its working directory first, as `python -m ops` does. What a new interpreter does
at start (the import of ops and of its heavy libraries, in a fresh ``sys.modules``) is held by
tests/unit/settings/test_reference.py, which starts real ones.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing import reduction
from pathlib import Path
from typing import IO, Any

PRELOADED = (
    "pulumi",
    "pulumi.automation",
    "oras.provider",
    "requests",
    "jsonschema",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.serialization",
    "filelock",
    "yaml",
)
"""Third-party modules only: ops's own modules are imported anew in every process, in its environment."""
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(list(PRELOADED))
_INTERPRETER_PATH = [entry for entry in sys.path if entry.startswith((sys.prefix, sys.base_prefix))]
"""The standard library and site-packages: what a new interpreter's ``sys.path`` holds after its first entry."""


class _Streams:
    """The child's standard input, output and error: file descriptors handed to the forkserver as it forks."""

    def __init__(self, *fds: int) -> None:
        self.fds = fds

    def __reduce__(self) -> tuple[Any, ...]:
        # Only while multiprocessing pickles the process for the forkserver can a descriptor travel with it.
        return (_received, tuple(reduction.DupFd(fd) for fd in self.fds))


def _received(*duplicates: Any) -> list[int]:
    return [duplicate.detach() for duplicate in duplicates]


def _run_ops(args: list[str], cwd: str, env: dict[str, str], streams: list[int]) -> None:
    """In the forked child: become `python -m ops ARGS` run in ``cwd`` with ``env``; exits with its exit code."""
    for target, fd in enumerate(streams):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    # The streams and bytecode as a new interpreter sets them up from its environment (PYTHONUNBUFFERED: none of
    # the streams buffers what is written; else only standard output holds what it writes until it is flushed).
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own, open until it exits
    sys.stdout = io.TextIOWrapper(_output(1, unbuffered), write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(
        _output(2, unbuffered), errors="backslashreplace", line_buffering=True, write_through=unbuffered
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    extra = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [cwd, *extra, *_INTERPRETER_PATH]
    sys.argv = ["-m", *args]
    runpy.run_module("ops", run_name="__main__", alter_sys=True)


def _output(fd: int, unbuffered: bool) -> io.FileIO | io.BufferedWriter:
    raw = io.FileIO(fd, "w", closefd=False)
    return raw if unbuffered else io.BufferedWriter(raw)


class OpsProcess:
    """A running `python -m ops`, with the part of :class:`subprocess.Popen`'s interface the tests use; its
    standard output and error are text pipes."""

    def __init__(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdin: int | None) -> None:
        self.args = [sys.executable, "-m", "ops", *args]
        self.returncode: int | None = None
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        own_stdin = stdin is None or stdin == subprocess.DEVNULL
        if stdin is not None and stdin < 0 and not own_stdin:
            raise ValueError(f"stdin must be DEVNULL or a file descriptor, got {stdin!r}")
        in_fd = os.open(os.devnull, os.O_RDONLY) if own_stdin or stdin is None else stdin
        try:
            self._process = _CONTEXT.Process(
                target=_run_ops,
                args=(list(args), str(cwd), dict(env), _Streams(in_fd, out_write, err_write)),
                daemon=True,  # a process a failed test left running ends with the test worker
            )
            self._process.start()
        finally:
            for fd in (out_write, err_write, *([in_fd] if own_stdin else [])):
                os.close(fd)
        assert self._process.pid is not None
        self.pid: int = self._process.pid
        self.stdout: IO[str] = open(out_read)  # noqa: SIM115 - closed by communicate
        self.stderr: IO[str] = open(err_read)  # noqa: SIM115

    def __enter__(self) -> OpsProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stdout.close()
        self.stderr.close()
        self.wait()

    def poll(self) -> int | None:
        if self.returncode is None and not self._process.is_alive():
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.poll() is None:
            assert timeout is not None
            raise subprocess.TimeoutExpired(self.args, timeout)
        assert self.returncode is not None
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Reads standard output and error to their end and waits for the process to exit."""
        read: dict[str, str] = {}
        readers = [
            threading.Thread(target=lambda name=name, stream=stream: read.update({name: stream.read()}), daemon=True)
            for name, stream in (("stdout", self.stdout), ("stderr", self.stderr))
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout)
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(timeout)
        self.stdout.close()
        self.stderr.close()
        return read["stdout"], read["stderr"]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdin: int | None = None) -> OpsProcess:
    """Starts `python -m ops ARGS` in ``cwd`` with exactly ``env``; ``stdin`` is a file descriptor, or /dev/null."""
    return OpsProcess(args, cwd=cwd, env=env, stdin=stdin)


def run(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs `python -m ops ARGS` to its end, as :func:`subprocess.run` with ``capture_output`` and ``text``;
    ``input``, if given, is its standard input (a few lines: a pipe holds them without a reader)."""
    if input is None:
        process = start(args, cwd=cwd, env=env)
    else:
        read, write = os.pipe()
        with open(write, "w") as given:
            given.write(input)
        try:
            process = start(args, cwd=cwd, env=env, stdin=read)
        finally:
            os.close(read)
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode is not None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
