"""Fixtures for tests that run the real Pulumi engine: the CLI, throwaway workspaces, the local registry."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.engine.workspace import ROOT, Workspace

MakeWorkspace = Callable[..., Workspace]


def pinned_version(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    """The real pulumi CLI at the pinned version; fails (never skips) when `make tools` has not run."""
    path = shutil.which("pulumi")
    assert path, "no pulumi on PATH: run the tests through `make test` (it builds the tools)"
    version = subprocess.run([path, "version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version == f"v{pinned_version('pulumi')}", f"pulumi {version} on PATH, requirements.txt pins another"
    return path


@pytest.fixture
def make_workspace(pulumi_cli: str, tmp_path: Path) -> MakeWorkspace:
    """Creates throwaway workspaces under this test's tmp_path."""
    count = 0

    def make(stack: str, config: Mapping[str, Any] | None = None) -> Workspace:
        nonlocal count
        count += 1
        return Workspace.create(tmp_path / f"w{count}", stack, config)

    return make


class Registry:
    """The local platform's registry, spoken to over its HTTP API with real credentials."""

    def __init__(self, address: str, username: str, password: str) -> None:
        self.address = address
        self.username = username
        self.password = password

    def _request(self, method: str, path: str) -> urllib.request.Request:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(f"http://{self.address}{path}", method=method)
        request.add_header("Authorization", f"Basic {token}")
        request.add_header(
            "Accept",
            ", ".join(
                [
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                ]
            ),
        )
        return request

    def served_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry serves for a tag or digest, or None when it serves nothing."""
        request = self._request("HEAD", f"/v2/{repository}/manifests/{reference}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                digest: str = response.headers["Docker-Content-Digest"]
                return digest
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The registry `make platform` started; fails when it is not running."""
    password_file = Path(os.environ.get("HELLO_REGISTRY_PASSWORD_FILE", "/var/lib/hello-pulumi/registry/password"))
    assert password_file.exists(), f"{password_file} missing: start the platform with `make platform`"
    registry = Registry(
        os.environ.get("HELLO_REGISTRY", "127.0.0.1:5000"),
        os.environ.get("HELLO_REGISTRY_USER", "hello"),
        password_file.read_text().strip(),
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{registry.address}/v2/", timeout=5)
    assert refused.value.code == 401, f"registry at {registry.address} must ask for credentials"
    return registry
