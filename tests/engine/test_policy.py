"""The policy pack through the real engine: mandatory rules stop a preview, advisory ones warn, and
`make preview` holds a stack without its own enforcement levels to every rule as mandatory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import stack_config
from tests.engine.fixtures import MakeWorkspace
from tests.engine.workspace import ROOT

pytestmark = pytest.mark.engine

RULE = "kubernetes-apps-v1-deployment-min-replicas"


def policy_flags(stack: str) -> list[str]:
    return [
        "--policy-pack",
        str(ROOT / "policy"),
        "--policy-pack-config",
        str(ROOT / "policy" / "config" / f"{stack}.json"),
    ]


def test_mandatory_violation_fails_the_real_preview_with_the_rules_message(make_workspace: MakeWorkspace) -> None:
    workspace = make_workspace("prod", {**stack_config("prod"), "hello-world:replicas": "2"})

    result = workspace.pulumi("preview", *policy_flags("prod"), check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"[mandatory] [severity: medium]  {RULE}" in output
    assert "spec.replicas is 2, expected at least 3" in output


def test_advisory_violation_only_warns(make_workspace: MakeWorkspace) -> None:
    workspace = make_workspace("staging", {**stack_config("staging"), "hello-world:replicas": "1"})

    result = workspace.pulumi("preview", *policy_flags("dev"), check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[advisory] [severity: medium]  {RULE}" in result.stdout


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_files_pass_their_own_policy_config(make_workspace: MakeWorkspace, stack: str) -> None:
    workspace = make_workspace(stack, stack_config(stack))

    result = workspace.pulumi("preview", *policy_flags(stack), check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "violation" not in result.stdout.lower()


def test_make_preview_of_a_stack_without_its_own_policy_config_fails_on_a_mandatory_rule(
    make_workspace: MakeWorkspace, tmp_path: Path
) -> None:
    workspace = make_workspace("qa", {**stack_config("staging"), "hello-world:replicas": "1"})
    ops = workspace.add_ops()
    # `python -m ops` runs in a Pulumi home of its own here, which sees the built plugins.
    home = tmp_path / "pulumi-home"
    home.mkdir()
    plugins = Path(workspace.env.get("PULUMI_HOME", Path.home() / ".pulumi")) / "plugins"
    (home / "plugins").symlink_to(plugins)
    env = {
        **workspace.env,
        "PULUMI_HOME": str(home),
        "HELLO_REGISTRY": "127.0.0.1:5000",
        "HELLO_REGISTRY_PASSWORD_FILE": str(tmp_path / "no-password"),
    }

    result = subprocess.run(
        [*ops, "preview", "qa"],
        cwd=workspace.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"[mandatory] [severity: medium]  {RULE}" in output
    assert "spec.replicas is 1, expected at least 2" in output
