"""Our Python language host (tooling/toolchain/language-python), asked by the real CLI what it runs on."""

from __future__ import annotations

import importlib.metadata
import json
import platform

import pytest

from tests.engine.fixtures import MakeWorkspace

pytestmark = pytest.mark.engine


def test_about_names_the_projects_interpreter_its_version_and_pip(make_workspace: MakeWorkspace) -> None:
    # The CLI asks the same of the host for every preview and update's metadata.
    workspace = make_workspace("qa")

    about = json.loads(workspace.pulumi("about", "--json").stdout)

    assert about["runtime"] == {
        "language": "python",
        "executable": str(workspace.directory / ".venv" / "bin" / "python"),
        "version": platform.python_version(),
        "toolchainVersion": as_semver(importlib.metadata.version("pip")),
    }


def as_semver(version: str) -> str:
    """pip's ``24.0`` as the host reports it, ``24.0.0``."""
    parts = version.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))
