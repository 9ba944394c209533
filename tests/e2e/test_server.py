"""app/server.js while it drains: readiness (/healthz) fails so no new request is routed to it, liveness (/livez)
does not, so the kubelet never restarts a pod that is still finishing its requests.

Runs server.js in the platform's Node base image on the local Docker engine (no network), and asks it from inside
its own container. Needs the local platform's engine and base image, which `make platform` starts.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.engine.workspace import ROOT

pytestmark = [pytest.mark.platform]

START_SECONDS = 30
# Asks the server inside its container and prints the status and the body, or 0 when nothing answered.
ASK = (
    "require('http').get('http://127.0.0.1:8080' + process.argv[1], {timeout: 2000}, (res) => { let body = ''; "
    "res.on('data', (chunk) => { body += chunk; }).on('end', () => console.log(res.statusCode, body.trim())); })"
    ".on('error', () => console.log(0));"
)


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{os.environ['HELLO_DOCKER_SOCK']}"}
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture
def server() -> Iterator[str]:
    """server.js running in a container of its own, draining for 30 s after SIGTERM; yields the container's name."""
    name = f"hello-server-{secrets.token_hex(4)}"
    docker(
        "run", "--detach", "--rm", "--name", name, "--network", "none", "--user", "65532:65532",
        "--env", "SHUTDOWN_DRAIN_SECONDS=30", "--volume", f"{ROOT / 'app' / 'server.js'}:/app/server.js:ro",
        os.environ.get("HELLO_BASE_IMAGE", "hello-pulumi/node-base:local"), "node", "/app/server.js",
    )  # fmt: skip
    try:
        yield name
    finally:
        subprocess.run(
            ["docker", "rm", "--force", name],
            env={**os.environ, "DOCKER_HOST": f"unix://{os.environ['HELLO_DOCKER_SOCK']}"},
            capture_output=True,
            timeout=60,
            check=False,
        )


def answer(container: str, path: str) -> str:
    """``<status> <body>`` of a GET of ``path``, or ``0`` when nothing answered."""
    return docker("exec", container, "node", "-e", ASK, path).stdout.strip()


def test_while_draining_readiness_fails_and_liveness_stays_healthy(server: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while answer(server, "/livez") == "0":
        assert time.monotonic() < deadline, f"server.js did not answer within {START_SECONDS} s"
        time.sleep(0.5)
    assert answer(server, "/healthz") == "200 ok"
    assert answer(server, "/livez") == "200 ok"

    docker("kill", "--signal", "TERM", server)

    assert answer(server, "/healthz") == "503 draining"
    assert answer(server, "/livez") == "200 ok"
    assert answer(server, "/") == "200 Hello World", "a request that still arrives while draining is served"
