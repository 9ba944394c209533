"""The source build's Pulumi home keeps no automatic debug log of each command (tooling/toolchain/build.sh).

The CLI writes one by default, compressing and encrypting every record as it comes: about a third of the
engine's CPU in a preview. Starts the real CLI on a throwaway file backend.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine


@pytest.mark.skipif(
    os.environ.get("HELLO_TOOLCHAIN_MODE") != "source", reason="only the source build's Pulumi home is ours to set"
)
def test_the_cli_writes_no_automatic_log_into_the_source_builds_home(pulumi_cli: str, tmp_path: Path) -> None:
    logs = Path(os.environ["PULUMI_HOME"]) / "logs"
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path}", "PULUMI_CONFIG_PASSPHRASE": "unused"}

    listed = subprocess.run([pulumi_cli, "stack", "ls", "--all"], cwd=tmp_path, env=env, capture_output=True, text=True)

    assert listed.returncode == 0, listed.stderr
    assert logs.is_file()
    assert not logs.is_symlink()
    assert logs.stat().st_size == 0
