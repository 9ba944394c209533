"""`make render`: a stack's manifests written by the kubernetes provider's render mode, through
the real engine, with the policy pack; validated against the cluster version's schema and scanned,
secrets absent; an earlier render replaced whole, a failed one leaving OUT as it was."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from ops.program_copy import copy_program
from ops.render import MARKER, RenderError, marker_text, render
from settings.stack_files import set_settings
from tests.conftest import ROOT, stack_config
from tests.engine.fixtures import LocalRegistry

pytestmark = pytest.mark.engine

CLUSTER_VERSION = os.environ.get("HELLO_K8S_VERSION", "v1.34.4").lstrip("v")
BIN = Path(sys.executable).parent
SCAN = ROOT / "tooling" / "scan" / "run.sh"


def objects(files: list[Path]) -> dict[str, dict[str, Any]]:
    """The rendered objects by kind, and by kind/name where a kind has several (the two Services)."""
    loaded = [yaml.safe_load(path.read_text()) for path in files]
    return {obj["kind"]: obj for obj in loaded} | {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in loaded}


def test_render_writes_every_object_of_prod_and_applies_nothing(pulumi_cli: str, tmp_path: Path) -> None:
    # `make render` always passes the local registry's password; a stack that does not build ignores it.
    written = render("prod", tmp_path / "prod", registry_password="unused-password")

    rendered = objects(written)
    assert {key for key in rendered if "/" not in key} == {
        "Namespace",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "Ingress",
        "PodDisruptionBudget",
        "Job",
    }
    assert {"Service/hello-world", "Service/hello-world-verify-target"} <= set(rendered)
    container = rendered["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == stack_config("prod")["hello-world:image"]
    assert rendered["Service/hello-world"]["spec"]["ports"][0]["nodePort"] == 31613
    assert all(path.is_relative_to(tmp_path / "prod") for path in written)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rendered_manifests_validate_against_the_clusters_schema(pulumi_cli: str, tmp_path: Path, stack: str) -> None:
    written = render(stack, tmp_path / stack)

    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", CLUSTER_VERSION, *map(str, written)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(written)


def test_rendered_manifests_pass_the_security_scan(pulumi_cli: str, tmp_path: Path) -> None:
    for stack in ("staging", "prod"):
        render(stack, tmp_path / stack)

    result = subprocess.run([str(SCAN), "manifests", str(tmp_path)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.platform
def test_render_of_a_building_stack_never_writes_the_registry_password(
    pulumi_cli: str, registry: LocalRegistry, tmp_path: Path
) -> None:
    os.environ.setdefault("DOCKER_HOST", f"unix://{os.environ['HELLO_DOCKER_SOCK']}")

    written = render("dev", tmp_path / "dev", registry_password=registry.password)

    assert objects(written)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "127.0.0.1:5000/hello-world@sha256:"
    )
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert registry.password.encode() not in path.read_bytes(), path
    scanned = subprocess.run([str(SCAN), "manifests", str(tmp_path)], capture_output=True, text=True, check=False)
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr


def test_render_again_replaces_its_own_earlier_render_whole(pulumi_cli: str, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    earlier = render("staging", out)
    (earlier[0]).write_text("kind: Edited\n")  # a file render wrote, edited since: still render's to replace

    written = render("prod", out)

    listed = sorted(path.relative_to(out).as_posix() for path in written)
    marker = json.loads((out / MARKER).read_text())
    assert (marker["stack"], marker["files"]) == ("prod", listed)
    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()) == sorted(
        [MARKER, *listed]
    )
    assert "Ingress" in objects(written)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rendered"], "no scratch folder is left beside OUT"


def test_render_again_refuses_a_render_that_gained_a_file_and_deletes_nothing(pulumi_cli: str, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    render("staging", out)
    (out / "stale.yaml").write_text("kind: Stale\n")
    before = sorted(path.relative_to(out).as_posix() for path in out.rglob("*"))

    with pytest.raises(RenderError, match=re.escape(f"got '{out}' holding stale.yaml; nothing was deleted")):
        render("prod", out)

    assert sorted(path.relative_to(out).as_posix() for path in out.rglob("*")) == before


def test_render_of_a_stack_that_breaks_a_mandatory_rule_fails_and_leaves_out_as_it_was(
    pulumi_cli: str, tmp_path: Path
) -> None:
    project = copy_program(tmp_path / "project", ROOT)
    shutil.copy2(ROOT / "Pulumi.prod.yaml", project / "Pulumi.prod.yaml")
    set_settings(project, "prod", {"replicas": "2"})
    out = tmp_path / "rendered"
    out.mkdir()
    (out / MARKER).write_text(marker_text("prod", ["earlier.yaml"]))
    (out / "earlier.yaml").write_text("kind: Namespace\n")

    with pytest.raises(auto.errors.CommandError, match=r"spec\.replicas is 2, expected at least 3"):
        render("prod", out, work_dir=project)

    assert sorted(path.name for path in out.iterdir()) == sorted([MARKER, "earlier.yaml"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project", "rendered"]


def test_render_of_prod_with_a_second_service_writes_both_behind_one_ingress_and_validates(
    pulumi_cli: str, tmp_path: Path
) -> None:
    project = copy_program(tmp_path / "project", ROOT)
    shutil.copy2(ROOT / "Pulumi.prod.yaml", project / "Pulumi.prod.yaml")
    second = {"name": "hello-v2", "message": "Hello World v2", "path": "/v2"}
    set_settings(project, "prod", {"services": [second]})

    written = render("prod", tmp_path / "rendered", work_dir=project)

    loaded = [yaml.safe_load(path.read_text()) for path in written]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for obj in loaded:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    assert sorted(by_kind["Deployment"]) == ["hello-v2", "hello-world"]
    (v2,) = by_kind["Deployment"]["hello-v2"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "MESSAGE", "value": "Hello World v2"} in v2["env"]
    assert "type" not in by_kind["Service"]["hello-v2"]["spec"]  # a ClusterIP: reached through the Ingress
    (ingress,) = by_kind["Ingress"].values()
    (rule,) = ingress["spec"]["rules"]
    assert [(path["path"], path["backend"]["service"]["name"]) for path in rule["http"]["paths"]] == [
        ("/", "hello-world"),
        ("/v2", "hello-v2"),
    ]
    assert len(by_kind["Job"]) == 2  # each service's own check
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", CLUSTER_VERSION, *map(str, written)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
