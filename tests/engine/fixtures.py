"""Fixtures for tests that run the real Pulumi engine: the CLI, throwaway workspaces, the local registry."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ops.registry import Registry
from settings.local_platform import PINNED_BASE_IMAGE_VARIABLE, Platform
from tests.conftest import stack_config
from tests.engine.workspace import COMMAND_TIMEOUT_SECONDS, ROOT, Workspace

MakeWorkspace = Callable[..., Workspace]


def pinned_version(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    """The real pulumi CLI; fails (never skips) when `make tools` has not run.

    The source build must be the pinned version; a user's own CLI (the toolchain's path mode) was
    already checked against the SDK's floor by tooling/toolchain/mode.py, and any version from there on is fine.
    """
    path = shutil.which("pulumi")
    assert path, "no pulumi on PATH: run the tests through `make test` (it builds the tools)"
    version = subprocess.run([path, "version"], capture_output=True, text=True, check=True).stdout.strip()
    if os.environ.get("HELLO_TOOLCHAIN_MODE") != "path":
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


@dataclass(frozen=True)
class LocalRegistry:
    """The local platform's registry: its client, with the real credentials the tests push with."""

    client: Registry
    username: str
    password: str = field(repr=False)


def local_registry() -> LocalRegistry:
    """The local platform's registry and credentials, from tooling/platform/env.sh's variables."""
    password_file = Path(os.environ.get("HELLO_REGISTRY_PASSWORD_FILE", "/var/lib/hello-pulumi/registry/password"))
    assert password_file.exists(), f"{password_file} missing: start the platform with `make platform`"
    username = os.environ.get("HELLO_REGISTRY_USER", "hello")
    password = password_file.read_text().strip()
    address = os.environ.get("HELLO_REGISTRY", "127.0.0.1:5000")
    source = f"the local registry's {username} ({password_file})"
    ca_cert = os.environ.get("HELLO_CA_CERT")  # it speaks TLS from the platform's CA
    return LocalRegistry(Registry(address, username, password, source, ca_cert), username, password)


def token_registry_user(user_variable: str, password_variable: str) -> LocalRegistry:
    """The local platform's token-auth registry (tooling/platform/token-registry.sh) as one of its users, from
    env.sh's variables: ``HELLO_TOKEN_REGISTRY_USER`` (pull and push) or ``HELLO_TOKEN_REGISTRY_READER``."""
    password_file = Path(os.environ[password_variable])
    assert password_file.exists(), f"{password_file} missing: start the platform with `make platform`"
    username, password = os.environ[user_variable], password_file.read_text().strip()
    address, ca_cert = os.environ["HELLO_TOKEN_REGISTRY"], os.environ["HELLO_CA_CERT"]
    source = f"the token registry's {username} ({password_file})"
    return LocalRegistry(Registry(address, username, password, source, ca_cert), username, password)


@pytest.fixture(scope="session")
def token_registry() -> LocalRegistry:
    """The token-auth registry `make platform` started, as its user with pull and push rights; fails when it does
    not answer 401 with a Bearer challenge, over TLS from the platform's CA."""
    found = token_registry_user("HELLO_TOKEN_REGISTRY_USER", "HELLO_TOKEN_REGISTRY_PASSWORD_FILE")
    context = ssl.create_default_context(cafile=os.environ["HELLO_CA_CERT"])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://{found.client.address}/v2/", timeout=5, context=context)
    assert refused.value.code == 401, f"registry at {found.client.address} must ask for a token"
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer realm="), refused.value.headers
    return found


@pytest.fixture(scope="session")
def registry() -> LocalRegistry:
    """The registry `make platform` started; fails when it is not running."""
    found = local_registry()
    context = ssl.create_default_context(cafile=os.environ["HELLO_CA_CERT"])  # it speaks TLS from the platform's CA
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://{found.client.address}/v2/", timeout=5, context=context)
    assert refused.value.code == 401, f"registry at {found.client.address} must ask for credentials"
    return found


def docker_config(directory: Path, *logins: LocalRegistry) -> Path:
    """A Docker config folder (for ``DOCKER_CONFIG``) whose ``auths`` hold each registry user, as ``docker login``
    writes them; the file is 0600, like Docker's."""
    directory.mkdir(parents=True, exist_ok=True)
    auths = {
        login.client.address: {"auth": base64.b64encode(f"{login.username}:{login.password}".encode()).decode()}
        for login in logins
    }
    path = directory / "config.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps({"auths": auths}))
    return directory


def local_cluster() -> str:
    """The `cluster` setting of a stack on the local platform's cluster."""
    return json.dumps({"kubeconfig": os.environ["HELLO_KUBECONFIG"]})


def local_checker_image() -> str:
    """The image the verification Job runs on the local platform: its Node base image, pinned by the digest its
    registry serves, as tooling/platform/base-image.sh recorded it (`make up` fills it into the stack copy)."""
    recorded = Platform.from_environment().pinned_base_image
    assert recorded, (
        f"${PINNED_BASE_IMAGE_VARIABLE} names no recorded base image: start the platform with `make platform`"
    )
    return recorded


def local_verification(given: str | None = None) -> str:
    """The ``verification`` setting of a stack on the local platform: ``given`` (JSON) with its checker image."""
    return json.dumps({**json.loads(given or "{}"), "checkerImage": local_checker_image()})


def building_workspace(base: Path, stack: str, registry: LocalRegistry, repository: str, **settings: str) -> Workspace:
    """A dev-like stack that builds app/ into its own repository of the registry, pushing with its real credentials,
    and checked from the platform's Node base image as `make up` would check it.

    Args:
        settings: Further settings by key (without the project prefix), as the stack file holds them.
    """
    config = stack_config("dev")
    build = json.loads(config["hello-world:build"])
    config["hello-world:build"] = json.dumps(
        {**build, "registry": registry.client.address, "repository": repository, "username": registry.username}
    )
    config.update({f"hello-world:{key}": value for key, value in settings.items()})
    config["hello-world:verification"] = local_verification(settings.get("verification"))
    workspace = Workspace.create(base, stack, config)
    workspace.env["DOCKER_HOST"] = f"unix://{os.environ['HELLO_DOCKER_SOCK']}"
    workspace.set_secret("registryPassword", registry.password)
    return workspace


class Teardowns:
    """Destroys that run in the background: each stack has its own namespace and node port, so no later test
    waits for one (mostly pods draining). The session's end waits for them all and fails on any that failed."""

    def __init__(self) -> None:
        self.running: list[tuple[str, Path, subprocess.Popen[bytes]]] = []

    def destroy(self, *workspaces: Workspace) -> None:
        for workspace in workspaces:
            log = workspace.backend.parent / f"destroy-{workspace.stack}.log"
            started = workspace.start("destroy", "--yes", "--skip-preview", log=log)
            self.running.append((f"destroy of {workspace.stack} in {workspace.directory}", log, started))

    def wait(self) -> list[str]:
        """Waits for every destroy; returns the output of each one that failed."""
        failed = []
        for what, log, process in self.running:
            if process.wait(COMMAND_TIMEOUT_SECONDS) != 0:
                failed.append(f"the {what} exited {process.returncode}:\n{log.read_text()}")
        self.running.clear()
        return failed


@pytest.fixture(scope="session")
def teardowns() -> Iterator[Teardowns]:
    """Destroys stacks in the background; at the session's end, every destroy must have succeeded."""
    started = Teardowns()
    yield started
    failed = started.wait()
    assert not failed, "\n\n".join(failed)
