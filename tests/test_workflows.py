"""The GitHub Actions workflows shipped for users: valid, and calling only make targets we test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}"
)


def test_workflows_exist_for_pull_requests_merges_and_promotion() -> None:
    assert [path.name for path in WORKFLOWS] == ["deploy-dev.yml", "promote.yml", "pull-request.yml"]


def test_workflows_validate_against_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_yamllint() -> None:
    result = subprocess.run(
        [str(BIN / "yamllint"), "-d", YAMLLINT_CONFIG, *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_calls_only_make_targets_the_makefile_has(workflow: Path) -> None:
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    commands = [line for line in workflow.read_text().splitlines() if not line.lstrip().startswith("#")]
    called = set(re.findall(r"\bmake ([a-z-]+)", "\n".join(commands)))

    assert called, "the workflow runs no make target"
    assert called <= targets, f"{workflow.name} calls {sorted(called - targets)}, which the Makefile lacks"
