"""lib.sh's `serve`, which keeps each of the platform's daemons running: run by bash with a real HTTP server on
a free loopback port standing for a daemon. Nothing here needs root or the platform."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PLATFORM = ROOT / "tooling" / "platform"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Daemon:
    """A `python3 -m http.server` that `serve` starts and keeps, with its files in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.address = f"127.0.0.1:{free_port()}"
        self.pidfile = folder / "daemon.pid"

    def serve(self, fingerprint: str) -> subprocess.CompletedProcess[str]:
        host, port = self.address.split(":")
        script = f"""
            set -euo pipefail
            source "{PLATFORM}/env.sh"; source "{PLATFORM}/lib.sh"
            START_TIMEOUT=20 STOP_TIMEOUT=5 DAEMON_ADDRESS={self.address}
            answers() {{ curl -s -o /dev/null -m 2 "http://$DAEMON_ADDRESS/"; }}
            serve daemon DAEMON_ADDRESS "{self.pidfile}" "{self.folder}/daemon.log" "{self.folder}/fingerprint" \
              "$1" answers "any answer on /" -- python3 -m http.server --bind {host} {port}
        """
        return subprocess.run(
            ["bash", "-c", script, "bash", fingerprint],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def stop(self) -> None:
        if self.pidfile.exists():
            subprocess.run(["kill", str(self.pid())], check=False)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    started = Daemon(tmp_path)
    yield started
    started.stop()


def test_serve_starts_a_daemon_then_leaves_it_running_while_its_fingerprint_holds(daemon: Daemon) -> None:
    first = daemon.serve("one")
    pid = daemon.pid()
    again = daemon.serve("one")

    assert first.returncode == 0, first.stderr
    assert (daemon.folder / "fingerprint").read_text() == "one\n"
    assert again.returncode == 0, again.stderr
    assert daemon.pid() == pid
    assert f"daemon already running on {daemon.address} (pid {pid})" in again.stderr


def test_serve_restarts_a_daemon_started_from_other_inputs(daemon: Daemon) -> None:
    daemon.serve("one")
    pid = daemon.pid()

    renewed = daemon.serve("two")

    assert renewed.returncode == 0, renewed.stderr
    assert daemon.pid() != pid
    assert (daemon.folder / "fingerprint").read_text() == "two\n"


def test_serve_refuses_an_address_someone_else_serves(daemon: Daemon) -> None:
    host, port = daemon.address.split(":")
    theirs = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", host, port], stderr=subprocess.DEVNULL)
    try:
        subprocess.run(
            [
                "curl",
                "-s",
                "--retry",
                "20",
                "--retry-connrefused",
                "--retry-delay",
                "0",
                "-o",
                "/dev/null",
                "-m",
                "10",
                f"http://{daemon.address}/",
            ],
            check=True,
            timeout=30,
        )

        refused = daemon.serve("one")
    finally:
        theirs.terminate()
        theirs.wait(timeout=10)

    assert refused.returncode == 1
    assert (
        f"error: something else already serves {daemon.address}; stop it or set DAEMON_ADDRESS to a free address"
        in refused.stderr
    )
    assert not daemon.pidfile.exists()
