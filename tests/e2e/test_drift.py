"""Drift found before it bites: `python -m ops drift` (what `make drift` runs) after a hand-made change, then `up`.

Deploys one dev-like stack on the local cluster (its own namespace, node port and repository), scales its
Deployment with kubectl behind Pulumi's back, and checks that the drift check names the field and changes
nothing, and that `python -m ops up` (what `make up` runs) puts the cluster back. Needs the local platform.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_exercise import kube_object, kubectl
from tests.engine.fixtures import LocalRegistry, Teardowns, building_workspace, local_cluster
from tests.engine.workspace import COMMAND_TIMEOUT_SECONDS, Workspace

pytestmark = [pytest.mark.engine, pytest.mark.platform]

STACK = "drift"
NODE_PORT = 31691
NAMESPACE = "hello-world-drift"
REPOSITORY = "hello-world-drift"
EXIT_DRIFT = 4


@dataclass
class Deployed:
    """The deployed stack and the `python -m ops` that runs in its project copy."""

    workspace: Workspace
    ops: list[str]

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ops, command, STACK],
            cwd=self.workspace.directory,
            env=self.workspace.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry, pulumi_cli: str, teardowns: Teardowns
) -> Iterator[Deployed]:
    workspace = building_workspace(
        tmp_path_factory.mktemp("drift"),
        STACK,
        registry,
        REPOSITORY,
        nodePort=str(NODE_PORT),
        namespace=NAMESPACE,
        cluster=local_cluster(),
    )
    made = Deployed(workspace, workspace.add_ops())
    try:
        workspace.up()
        yield made
    finally:
        teardowns.destroy(workspace)


def replicas() -> int:
    found: int = kube_object("deployment", "hello-world", NAMESPACE)["spec"]["replicas"]
    return found


def deployment_in_state(workspace: Workspace) -> dict[str, object]:
    resources = workspace.state()["deployment"]["resources"]
    (found,) = [r for r in resources if r["type"] == "kubernetes:apps/v1:Deployment"]
    inputs: dict[str, object] = found["inputs"]
    return inputs


def test_drift_finds_none_right_after_a_deploy(deployed: Deployed) -> None:
    result = deployed.run("drift")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No drift" in result.stdout


def test_drift_names_the_field_kubectl_scaled_and_changes_nothing(deployed: Deployed) -> None:
    kubectl("scale", "deployment/hello-world", "-n", NAMESPACE, "--replicas=3")
    state_before = deployment_in_state(deployed.workspace)

    result = deployed.run("drift")

    assert result.returncode == EXIT_DRIFT, result.stdout + result.stderr
    assert "- **changed in the cluster** `kubernetes:apps/v1:Deployment` `hello-world-deployment`" in result.stdout
    assert "  - `spec.replicas`: 2 → 3" in result.stdout
    assert deployment_in_state(deployed.workspace) == state_before
    assert replicas() == 3


def test_up_puts_the_drifted_field_back_and_drift_then_finds_none(deployed: Deployed) -> None:
    up = deployed.run("up")
    after = deployed.run("drift")

    assert up.returncode == 0, up.stdout + up.stderr
    assert replicas() == 2
    assert after.returncode == 0, after.stdout + after.stderr


def test_drift_of_a_stack_never_deployed_fails_as_unchecked(deployed: Deployed, tmp_path: Path) -> None:
    (deployed.workspace.directory / "Pulumi.nowhere.yaml").write_text("config: {}\n")
    try:
        result = subprocess.run(
            [*deployed.ops, "drift", "nowhere"],
            cwd=deployed.workspace.directory,
            env=deployed.workspace.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        (deployed.workspace.directory / "Pulumi.nowhere.yaml").unlink()

    assert result.returncode == 1, result.stdout + result.stderr
    assert "pulumi could not open stack 'nowhere', so it was not checked" in result.stderr
