"""tooling/scripts/backend.sh: the state folder and a file backend are private to their owner (0700).

The script is sourced by bash with a fake `pulumi` first on PATH that does nothing: these tests are
about folder modes, not the engine.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

BACKEND_SH = ROOT / "tooling" / "scripts" / "backend.sh"


def source_backend(tmp_path: Path, state: Path, backend_url: str, passphrase_from: str) -> None:
    """Sources backend.sh as the Makefile does (bash -euo pipefail), with umask 022 like most logins."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pulumi"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "HELLO_STATE": str(state),
        "PULUMI_BACKEND_URL": backend_url,
    }
    if passphrase_from == "environment":
        env["PULUMI_CONFIG_PASSPHRASE"] = "from-the-environment"
    else:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(state / "passphrase")
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", 'umask 022 && source "$1"', "bash", str(BACKEND_SH)],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.mark.parametrize("passphrase_from", ["environment", "file"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing-0755"])
@pytest.mark.parametrize("backend_inside_state", [True, False], ids=["backend-in-state", "backend-elsewhere"])
def test_backend_script_makes_the_state_and_backend_folders_0700(
    tmp_path: Path, passphrase_from: str, existing: bool, backend_inside_state: bool
) -> None:
    state = tmp_path / "state" / "hello-pulumi"
    backend = state / "backend" if backend_inside_state else tmp_path / "elsewhere" / "backend"
    if existing:
        for folder in (state, backend):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        if passphrase_from == "file":
            (state / "passphrase").write_text("kept\n")

    source_backend(tmp_path, state, f"file://{backend}", passphrase_from)

    assert {"state": mode(state), "backend": mode(backend)} == {"state": "0o700", "backend": "0o700"}


def test_backend_script_makes_pulumis_folder_private_for_a_backend_in_the_home_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".pulumi").mkdir(parents=True)
    (home / ".pulumi").chmod(0o755)
    home.chmod(0o755)

    source_backend(tmp_path, tmp_path / "state", "file://~", "environment")

    assert {"home": mode(home), ".pulumi": mode(home / ".pulumi")} == {"home": "0o755", ".pulumi": "0o700"}
