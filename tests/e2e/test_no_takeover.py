"""A stack never takes over an object it did not create: the namespace of someone else stays theirs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.engine.fixtures import LocalRegistry, building_workspace, local_cluster

pytestmark = [pytest.mark.engine, pytest.mark.platform]

NAMESPACE = "hello-world-not-ours"
KUBECTL_CACHE = Path(os.environ.get("HELLO_RUN", "/var/lib/hello-pulumi")) / "kube" / "kubectl-cache"


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["kubectl", "--kubeconfig", os.environ["HELLO_KUBECONFIG"], "--cache-dir", str(KUBECTL_CACHE), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check)


def test_stack_refuses_a_namespace_that_exists_and_destroy_leaves_it(
    registry: LocalRegistry, pulumi_cli: str, tmp_path: Path
) -> None:
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    kubectl("create", "namespace", NAMESPACE)
    kubectl("label", "namespace", NAMESPACE, "owner=another-team")
    workspace = building_workspace(
        tmp_path, "takeover", registry, "hello-world-takeover", namespace=NAMESPACE, cluster=local_cluster()
    )
    try:
        result = workspace.up(check=False)
        workspace.pulumi("destroy", "--yes", "--skip-preview", check=False)

        assert result.returncode != 0
        assert "already exists" in result.stdout + result.stderr
        labels = json.loads(kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)["metadata"]["labels"]
        assert labels["owner"] == "another-team"
        assert "app.kubernetes.io/managed-by" not in labels
    finally:
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
