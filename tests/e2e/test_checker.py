"""The verification runs from a checker image of its own: an image that would pass a check run by its own `node`
is still refused when its server answers wrong.

Needs the full local platform, which `make test` starts. Deploys one dev-like stack (namespace
hello-world-checker, node port 31701, repository hello-world-checker) with the real engine; the tests run in
file order and share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.test_exercise import kube_image, kubectl
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_checker_image, local_cluster
from tests.engine.workspace import Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

NAMESPACE = "hello-world-checker"
NODE_PORT = 31701
ROLLOUT_TIMEOUT_SECONDS = 60

# A `node` that says every inline script passed, in front of the real one: the image's own check would pass it.
LYING_NODE = """#!/bin/sh
if [ "$1" = "-e" ]; then echo "check passed"; exit 0; fi
exec /usr/bin/node "$@"
"""
# Healthy to both probes, so the rollout completes; every other path answers 500 (with the expected text).
FAILING_SERVER = """'use strict';
require('http').createServer((req, res) => {
  const probe = req.url === '/healthz' || req.url === '/livez';
  res.writeHead(probe ? 200 : 500, { 'Content-Type': 'text/plain' });
  res.end(probe ? 'ok\\n' : 'Hello World\\n');
}).listen(Number(process.env.PORT || 8080));
"""


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Workspace]:
    made = building_workspace(
        tmp_path_factory.mktemp("checker"),
        "dev",
        registry,
        "hello-world-checker",
        namespace=NAMESPACE,
        nodePort=str(NODE_PORT),
        rolloutTimeoutSeconds=str(ROLLOUT_TIMEOUT_SECONDS),
        cluster=local_cluster(),
    )
    try:
        yield made
    finally:
        teardowns.destroy(made)


def job_images() -> list[str]:
    """The images of every verification Job's pod in the namespace."""
    jobs = json.loads(kubectl("get", "jobs", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    return [container["image"] for job in jobs for container in job["spec"]["template"]["spec"]["containers"]]


def test_a_good_image_passes_a_check_run_from_the_platforms_node_base_image(workspace: Workspace) -> None:
    workspace.up()

    app = workspace.outputs()["imageRef"]
    assert workspace.outputs()["verifiedImageRef"] == app
    assert job_images() == [local_checker_image()]
    assert app not in job_images()


def test_an_image_whose_own_node_would_pass_but_whose_server_answers_500_is_refused(workspace: Workspace) -> None:
    verified = workspace.outputs()["verifiedImageRef"]
    app = workspace.directory / "app"
    (app / "server.js").write_text(FAILING_SERVER)
    (app / "node").write_text(LYING_NODE)
    (app / "node").chmod(0o755)
    dockerfile = (app / "Dockerfile").read_text()
    (app / "Dockerfile").write_text(
        dockerfile.replace("COPY server.js .", "COPY server.js .\nCOPY node /usr/local/bin/")
    )
    (app / ".dockerignore").write_text("*\n!server.js\n!node\n")

    result = workspace.up(check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "kubernetes:batch/v1:Job" in output, output
    liar = kube_image(NAMESPACE)
    assert liar != verified, "the rollout itself completed: both probes answer"
    assert workspace.outputs()["verifiedImageRef"] == verified
    assert liar not in job_images()
