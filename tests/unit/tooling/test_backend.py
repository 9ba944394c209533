"""tooling/scripts/backend.sh: the state folder and a file backend are private to their owner (0700).

The script is sourced by bash with a fake `pulumi` first on PATH that only records that it ran: these
tests are about folder modes and the backend's stacks, not the engine, and the script must not run pulumi.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

BACKEND_SH = ROOT / "tooling" / "scripts" / "backend.sh"


def source_backend(
    tmp_path: Path, state: Path, backend_url: str, passphrase_from: str, then: str = "true"
) -> subprocess.CompletedProcess[str]:
    """Sources backend.sh as the Makefile does (bash -euo pipefail, umask 022 like most logins), then runs ``then``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$@" >>{tmp_path / "pulumi-ran"}\n')
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
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f'umask 022 && source "$1" && {then}', "bash", str(BACKEND_SH)],
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


def test_backend_script_runs_no_pulumi_command(tmp_path: Path) -> None:
    source_backend(tmp_path, tmp_path / "state", f"file://{tmp_path / 'backend'}", "file")

    assert not (tmp_path / "pulumi-ran").exists()


@pytest.mark.parametrize(
    ("backend_url", "checkpoint", "known"),
    [
        ("file://{tmp}/backend", "backend/.pulumi/stacks/hello-world/dev.json", True),
        ("file://{tmp}/backend", "backend/.pulumi/stacks/hello-world/dev.json.gz", True),
        ("file://{tmp}/backend", "backend/.pulumi/stacks/hello-world/staging.json", False),
        ("file://{tmp}/backend", "backend/.pulumi/stacks/other-project/dev.json", False),
        ("file://~", "home/.pulumi/stacks/hello-world/dev.json", True),
        ("s3://bucket/{tmp}", "backend/.pulumi/stacks/hello-world/dev.json", False),
    ],
    ids=["checkpoint", "gzipped", "another-stack", "another-project", "home-folder", "another-backend"],
)
def test_a_stack_is_known_only_from_its_checkpoint_in_the_file_backend(
    tmp_path: Path, backend_url: str, checkpoint: str, known: bool
) -> None:
    (tmp_path / checkpoint).parent.mkdir(parents=True)
    (tmp_path / checkpoint).write_text("{}")

    result = source_backend(
        tmp_path,
        tmp_path / "state",
        backend_url.format(tmp=tmp_path),
        "environment",
        then="if hello_stack_in_backend dev; then echo known; else echo unknown; fi",
    )

    assert result.stdout == ("known\n" if known else "unknown\n")
