"""The image path with the real engine, Docker engine and registry: build, push, digest, secrets.

Starts nothing itself: `make test` starts the platform (Docker engine and registry) first.
Only the image resources are deployed here (`--target`); the cluster side is the e2e's.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.engine.fixtures import LocalRegistry, building_workspace
from tests.engine.workspace import Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "imagetest"
REPOSITORY = "hello-world-imagetest"
IMAGE = "docker-build:index:Image"
COMPONENT_URN = f"urn:pulumi:{STACK}::hello-world::hello-world:index:ContainerImage::app"
IMAGE_URN = f"urn:pulumi:{STACK}::hello-world::hello-world:index:ContainerImage${IMAGE}::app-image"
REGISTRY_LOG = Path(os.environ.get("HELLO_RUN", "/var/lib/hello-pulumi")) / "registry" / "registry.log"


def up_image(workspace: Workspace, check: bool = True) -> str:
    result = workspace.up("--target", COMPONENT_URN, "--target", IMAGE_URN, check=check)
    return result.stdout + result.stderr


def pushed_manifests() -> int:
    """Manifest uploads the registry has logged so far to this test's repository: other tests push to
    their own repositories at the same time, on other workers."""
    return len(re.findall(rf'"PUT /v2/{re.escape(REPOSITORY)}/manifests/', REGISTRY_LOG.read_text()))


def digest_of(workspace: Workspace) -> str:
    digest: str = workspace.resource_outputs(IMAGE)["digest"]
    return digest


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str) -> Workspace:
    """A stack whose image was built and pushed once, with the registry's real credentials."""
    workspace = building_workspace(tmp_path_factory.mktemp("image"), STACK, registry, REPOSITORY)
    up_image(workspace)
    return workspace


def test_up_pushes_an_image_the_registry_serves_by_digest(deployed: Workspace, registry: LocalRegistry) -> None:
    digest = digest_of(deployed)

    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert registry.client.served_digest(REPOSITORY, digest) == digest
    assert registry.client.served_digest(REPOSITORY, STACK) == digest


def test_second_up_changes_nothing_and_pushes_nothing(deployed: Workspace) -> None:
    before = (digest_of(deployed), pushed_manifests())

    deployed.pulumi("preview", "--expect-no-changes", "--target", COMPONENT_URN, "--target", IMAGE_URN)
    up_image(deployed)

    assert (digest_of(deployed), pushed_manifests()) == before


def resources(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """Each resource's identity, inputs and outputs by URN: what a failed update must not change. The
    checkpoint's order and its registration metadata (source positions, stack traces) may change."""
    kept = ("type", "id", "inputs", "outputs", "parent", "dependencies")
    return {
        resource["urn"]: {key: resource.get(key) for key in kept}
        for resource in workspace.state(show_secrets=True)["deployment"]["resources"]
    }


def test_wrong_password_fails_clearly_and_keeps_the_state(deployed: Workspace, registry: LocalRegistry) -> None:
    server = deployed.directory / "app" / "server.js"
    original = server.read_text()
    state_before = resources(deployed)
    server.write_text(original.replace("Hello World", "Hello Wrong Password"))
    deployed.set_secret("registryPassword", "not-the-password")
    try:
        output = up_image(deployed, check=False)
    finally:
        server.write_text(original)
        deployed.set_secret("registryPassword", registry.password)

    assert re.search(r"401 Unauthorized|authentication required|unauthorized", output, re.IGNORECASE), output
    assert "not-the-password" not in output
    assert resources(deployed) == state_before


def test_changed_app_gets_a_new_digest(deployed: Workspace, registry: LocalRegistry) -> None:
    before = digest_of(deployed)
    server = deployed.directory / "app" / "server.js"
    server.write_text(server.read_text().replace("Hello World", "Hello Changed World"))

    up_image(deployed)

    after = digest_of(deployed)
    assert after != before
    assert registry.client.served_digest(REPOSITORY, after) == after


def test_state_never_holds_the_password_in_plaintext(deployed: Workspace, registry: LocalRegistry) -> None:
    files = [path for path in deployed.backend.rglob("*") if path.is_file()]

    assert files, "the backend holds no state file"
    for path in files:
        assert registry.password.encode() not in path.read_bytes(), path
    assert registry.password not in json.dumps(deployed.state())
