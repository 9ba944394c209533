"""The path mode of `make tools`: a pulumi already on PATH, at a version other than the pin, is used as it is.

Starts, all on this machine and without a network: the CLI built from source relinked under another
version (`tooling/toolchain/build.sh cli-as`: a link with the warm Go cache, then kept under
~/.cache/hello-pulumi/tests), a fresh Pulumi home with the built provider plugins installed through
`pulumi plugin install --file`, `make tools`, and a real `pulumi preview` of the dev stack through
`python -m ops` with the policy pack, in a throwaway copy of the program with its own backend.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, stack_config
from tests.engine.workspace import ROOT, Workspace

pytestmark = pytest.mark.engine

ON_PATH_VERSION = "3.261.0"
"""Newer than the pin (requirements.txt), as a user's CLI usually is."""
BUILD_TIMEOUT_SECONDS = 3600
"""A cold source build of the toolchain, when `make tools` has not run (the warm run takes seconds)."""
COMMAND_TIMEOUT_SECONDS = 900
TOOLCHAIN = ROOT / "tooling" / "toolchain"


@dataclass(frozen=True)
class CliOnPath:
    """A release-like install of the CLI on PATH and a Pulumi home of its own."""

    bin: Path
    """The CLI and, beside it, the Python language host and the SDK's shims."""
    home: Path
    """PULUMI_HOME, holding only the plugins installed from the built binaries."""
    env: dict[str, str]
    """The environment of a user with that CLI: no TOOLCHAIN, no source build on PATH."""


def run(
    command: list[str], env: Mapping[str, str], cwd: Path = ROOT, timeout: int = COMMAND_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{result.args} exited {result.returncode}\n{output}"
    return output


def source_build_env() -> dict[str, str]:
    """The variables env.sh sets for the source build (HELLO_PULUMI_BIN, HELLO_PROVIDERS_DIR, pins...)."""
    script = f'source "{ROOT}/tooling/platform/env.sh" && source "{TOOLCHAIN}/env.sh" && env -0'
    result = run(["bash", "-c", script], {**os.environ, "TOOLCHAIN": "source"})
    succeeded(result)
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def cli_on_path(tmp_path_factory: pytest.TempPathFactory) -> CliOnPath:
    built = source_build_env()
    cache = Path(built["HELLO_CACHE"])
    source_bin = built["HELLO_PULUMI_BIN"]
    # What `make tools` builds here, reused (seconds) or built; the relink needs its language host and Go cache.
    succeeded(run([str(TOOLCHAIN / "build.sh")], built, timeout=BUILD_TIMEOUT_SECONDS))
    bin_dir = cache / "tests" / "cli-on-path" / "bin"
    succeeded(run([str(TOOLCHAIN / "build.sh"), "cli-as", ON_PATH_VERSION, str(bin_dir)], built))

    home = tmp_path_factory.mktemp("pulumi-home")
    path = [str(bin_dir), *(d for d in os.environ["PATH"].split(os.pathsep) if d != source_bin)]
    env = {**os.environ, "PATH": os.pathsep.join(path), "PULUMI_HOME": str(home)}
    for name in ("TOOLCHAIN", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"):
        env.pop(name, None)
    providers = Path(built["HELLO_PROVIDERS_DIR"])
    for name, version in (
        ("kubernetes", built["HELLO_KUBERNETES_VERSION"]),
        ("docker-build", built["HELLO_DOCKER_BUILD_VERSION"]),
    ):
        binary = providers / f"{name}-{version}" / f"pulumi-resource-{name}"
        succeeded(run(["pulumi", "plugin", "install", "resource", name, version, "--file", str(binary)], env))
    return CliOnPath(bin=bin_dir, home=home, env=env)


def test_make_tools_uses_the_cli_on_path_and_says_so_in_one_line(cli_on_path: CliOnPath) -> None:
    output = succeeded(run(["make", "--no-print-directory", "tools"], cli_on_path.env))

    mode_lines = [line for line in output.splitlines() if line.startswith("toolchain:")]
    assert mode_lines == [
        f"toolchain: using {cli_on_path.bin}/pulumi from PATH (v{ON_PATH_VERSION}; "
        f"the pinned SDK {pinned_sdk()} supports CLI 3.x from v3.1.0); plugins install as Pulumi does"
    ]
    assert "go build" not in output
    pins = source_build_env()
    assert (
        f"plugins: kubernetes {pins['HELLO_KUBERNETES_VERSION']} and "
        f"docker-build {pins['HELLO_DOCKER_BUILD_VERSION']} already installed"
    ) in output
    assert f"v{ON_PATH_VERSION}\n" in output


def test_make_tools_in_the_path_mode_builds_when_asked_to(cli_on_path: CliOnPath) -> None:
    output = succeeded(run(["make", "--no-print-directory", "tools", "TOOLCHAIN=source"], cli_on_path.env))

    assert "toolchain: building the pinned CLI and plugins from Go modules: asked for (TOOLCHAIN=source)" in output
    assert f"v{pinned_sdk()}\n" in output


def test_preview_of_the_dev_stack_runs_on_the_cli_on_path_with_the_policy_pack(
    cli_on_path: CliOnPath, tmp_path: Path
) -> None:
    workspace = Workspace.create(tmp_path, "dev", stack_config("dev"))
    ops = workspace.add_ops()
    workspace.env = {
        **{k: v for k, v in cli_on_path.env.items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"},
        "PULUMI_BACKEND_URL": workspace.env["PULUMI_BACKEND_URL"],
        "PULUMI_CONFIG_PASSPHRASE": workspace.env["PULUMI_CONFIG_PASSPHRASE"],
        # The password comes from the stack's secret, not from the local platform's file.
        "HELLO_REGISTRY_PASSWORD_FILE": str(tmp_path / "no-password"),
    }
    workspace.set_secret("registryPassword", PASSWORD)
    # As `make preview` runs it: the Makefile's environment, then `python -m ops preview`.
    script = (
        f'source "{ROOT}/tooling/platform/env.sh" && source "{TOOLCHAIN}/env.sh" && '
        'echo "cli: $(command -v pulumi) $(pulumi version) home: $PULUMI_HOME" && '
        f"exec {shlex.join(ops)} preview dev"
    )

    output = succeeded(run(["bash", "-c", script], workspace.env, cwd=workspace.directory))

    assert f"cli: {cli_on_path.bin}/pulumi v{ON_PATH_VERSION} home: {cli_on_path.home}\n" in output
    # The engine's table of the policy packs it ran: name|local|the pack's folder, then the version.
    assert re.search(r"Policy Packs run:\n.*\n\s+hello-world-kubernetes\|local\|\S*/policy\s+0\.1\.0\n", output), output

    assert "docker-build:index:Image" in output
    assert "kubernetes:apps/v1:Deployment" in output
    assert PASSWORD not in output


def pinned_sdk() -> str:
    return source_build_env()["HELLO_PULUMI_VERSION"]
