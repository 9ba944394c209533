"""`pulumi preview` of every stack file with the real engine, non-interactive, as code review runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, stack_config
from tests.engine.fixtures import MakeWorkspace
from tests.engine.workspace import steps_by_op

pytestmark = pytest.mark.engine

KUBERNETES = {
    ("hello-world:index:WebService", "hello-world"),
    ("kubernetes:core/v1:Namespace", "hello-world-namespace"),
    ("kubernetes:apps/v1:Deployment", "hello-world-deployment"),
    ("kubernetes:core/v1:Service", "hello-world-service"),
    ("kubernetes:core/v1:Service", "hello-world-verify-target"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "hello-world-network-policy"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "hello-world-deny-egress"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "hello-world-verify-network-policy"),
    ("kubernetes:policy/v1:PodDisruptionBudget", "hello-world-disruption-budget"),
    ("kubernetes:batch/v1:Job", "hello-world-verify"),
    ("pulumi:providers:kubernetes", "cluster"),
}
EXPECTED_CREATES = {
    "dev": KUBERNETES
    | {
        ("hello-world:index:ContainerImage", "app"),
        ("docker-build:index:Image", "app-image"),
    },
    "staging": KUBERNETES,
    "prod": KUBERNETES | {("kubernetes:networking.k8s.io/v1:Ingress", "hello-world-ingress")},
}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_preview_of_stack_file_lists_exactly_the_expected_resources(make_workspace: MakeWorkspace, stack: str) -> None:
    workspace = make_workspace(stack, stack_config(stack))
    if "hello-world:build" in stack_config(stack):
        workspace.set_secret("registryPassword", PASSWORD)

    preview = workspace.preview_json()

    creates = steps_by_op(preview).get("create", set())
    assert creates - {("pulumi:pulumi:Stack", f"hello-world-{stack}")} == EXPECTED_CREATES[stack]
    assert set(steps_by_op(preview)) <= {"create", "same"}
    assert PASSWORD not in workspace.pulumi("preview", "--diff").stdout


def test_preview_with_a_bad_setting_fails_with_the_settings_error(make_workspace: MakeWorkspace) -> None:
    config = {**stack_config("staging"), "hello-world:nodePort": "99999", "hello-world:replica": "2"}
    workspace = make_workspace("staging", config)

    result = workspace.pulumi("preview", check=False)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "stack 'staging' has 2 problems in its settings:" in output
    assert "nodePort must be an integer from 30000 to 32767, got '99999'" in output
    assert "(did you mean 'replicas'?)" in output
    assert "Traceback" not in output


UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: nobody
  user: {token: not-a-real-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: nobody}
current-context: nowhere
"""


def test_preview_without_a_reachable_cluster_still_lists_the_resources(
    make_workspace: MakeWorkspace, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    config = {**stack_config("staging"), "hello-world:cluster": json.dumps({"kubeconfig": str(kubeconfig)})}
    workspace = make_workspace("staging", config)

    preview = workspace.preview_json()

    creates = steps_by_op(preview).get("create", set())
    assert creates - {("pulumi:pulumi:Stack", "hello-world-staging")} == EXPECTED_CREATES["staging"]
    assert not [d for d in preview.get("diagnostics", []) if d.get("severity") == "error"]
