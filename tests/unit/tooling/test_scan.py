"""Security scans (tooling/scan/run.sh) of app/Dockerfile; tests/engine/test_render.py scans what `make render` writes.

The first run installs the pinned scanners from PyPI into ~/.cache/hello-pulumi/scan-venv
(a few minutes); later runs take seconds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SCAN = ROOT / "tooling" / "scan"
RUN = SCAN / "run.sh"
INSTALL_TIMEOUT_SECONDS = 1800

_CHECK = re.compile(r"^Check: (CKV\w+):")
_FILE = re.compile(r"^\s*File: (\S+?):\d+-\d+$")


def scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUN), *args], cwd=ROOT, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
    )


def failed_checks(output: str) -> set[tuple[str, str]]:
    """(check id, file name) of each failed check in checkov's compact CLI output."""
    found = set()
    check = None
    for line in output.splitlines():
        if match := _CHECK.match(line):
            check = match.group(1)
        elif (match := _FILE.match(line)) and check is not None:
            found.add((check, Path(match.group(1)).name))
            check = None
    return found


def test_dockerfile_has_no_finding_beyond_the_accepted_ones() -> None:
    result = scan("dockerfile")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


@pytest.mark.parametrize(("config", "key"), [(".checkov.yaml", "skip-check"), (".hadolint.yaml", "ignored")])
def test_every_accepted_finding_states_its_reason(config: str, key: str) -> None:
    path = SCAN / config
    lines = path.read_text().splitlines()
    accepted = yaml.safe_load(path.read_text()).get(key) or []

    for rule in accepted:
        (index,) = [i for i, line in enumerate(lines) if line.strip() == f"- {rule}"]
        start = index
        while lines[start - 1].strip().startswith("#"):
            start -= 1
        assert lines[start].strip().startswith(f"# {rule} ("), (
            f"{config}: {rule} needs a '# {rule} (...): why' above it"
        )
