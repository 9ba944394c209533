"""`make preview` and `make up` of a stack that pins an image ask its registry first, and run nothing when the
registry does not serve it: a pod that cannot pull never starts, and the rollout would only time out.

Runs `python -m ops` against the stand-in pulumi of tests/unit/ops/test_deploy.py and stand-in registries on
loopback; no engine, no platform.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.deploy import promote_hint
from tests.unit.ops.test_deploy import ops_project

PLACEHOLDER = "sha256:" + "0" * 64


def registry_answering(code: int) -> type[http.server.BaseHTTPRequestHandler]:
    class Manifests(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(code)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Manifests


@pytest.fixture(params=[404, 401], ids=["serves-nothing", "wants-credentials"])
def registry(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), registry_answering(request.param))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("action", ["preview", "up"])
def test_a_stack_pinning_an_image_its_registry_does_not_serve_runs_nothing_and_says_how_to_get_one(
    tmp_path: Path, registry: tuple[str, int], action: str
) -> None:
    address, code = registry
    _, env, log = ops_project(tmp_path, "prod", registry=address)
    env = {key: value for key, value in env.items() if not key.startswith("REGISTRY_")}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")

    result = subprocess.run(
        [sys.executable, "-m", "ops", action, "prod"], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    image = f"{address}/hello-world@{PLACEHOLDER}"
    ran = [json.loads(line)["args"][0] for line in log.read_text().splitlines()]
    assert action not in ran
    if code == 404:
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"error: stack 'prod' pins image {image}, which its registry must serve, got nothing; nothing ran. "
            "Give the stack an image that passed the stack before it: `make promote FROM=staging TO=prod`\n"
        )
    else:
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(
            f"error: cannot check the image stack 'prod' pins, so nothing ran: registry {address} answered 401"
        )


@pytest.mark.parametrize(
    ("stack", "hint"),
    [
        ("staging", "`make promote FROM=dev TO=staging`"),
        ("prod", "`make promote FROM=staging TO=prod`"),
        ("qa", "`make promote FROM=<stack> TO=qa ARGS=--out-of-chain`"),
    ],
    ids=["staging", "prod", "out-of-chain"],
)
def test_promote_hint_names_the_stack_before_in_the_chain(stack: str, hint: str) -> None:
    assert promote_hint(stack) == hint
