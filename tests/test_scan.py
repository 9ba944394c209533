"""Security scans (scan/run.sh): app/Dockerfile and every stack's mock-rendered manifests have no new finding.

The first run installs the pinned scanners from PyPI into ~/.cache/hello-pulumi/scan-venv
(a few minutes); later runs take seconds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from scan.render_mock import api_version_and_kind, render
from tests.conftest import ROOT, Deploy

RUN = ROOT / "scan" / "run.sh"
STACKS = ("dev", "staging", "prod")
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


def test_mock_rendered_manifests_have_no_finding(deploy: Deploy, tmp_path: Path) -> None:
    written = [path for stack in STACKS for path in render(stack, tmp_path, deploy)]

    result = scan("manifests", str(tmp_path))

    assert {path.name.split("-")[0] for path in written} == set(STACKS)
    found = failed_checks(result.stdout)
    assert found == set(), result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_mock_rendering_writes_each_stacks_kubernetes_objects(deploy: Deploy, tmp_path: Path) -> None:
    written = render("prod", tmp_path, deploy)

    objects = [yaml.safe_load(path.read_text()) for path in written]
    kinds = {obj["kind"]: obj for obj in objects}
    assert objects[0]["kind"] == "Namespace"
    assert {(obj["apiVersion"], kind) for kind, obj in kinds.items()} >= {
        ("v1", "Namespace"),
        ("apps/v1", "Deployment"),
        ("networking.k8s.io/v1", "Ingress"),
        ("v1", "Service"),
    }
    assert all(path.read_text().startswith("# MOCK RENDERING") for path in written)
    assert kinds["Deployment"]["metadata"]["namespace"] == "hello-world-prod"
    assert kinds["Deployment"]["spec"]["replicas"] == 3
    # Numbers come back from protobuf as floats; manifests carry them as integers.
    assert kinds["Service"]["spec"]["ports"][0]["port"] == 80
    assert isinstance(kinds["Service"]["spec"]["ports"][0]["port"], int)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("kubernetes:core/v1:Service", ("v1", "Service")),
        ("kubernetes:apps/v1:Deployment", ("apps/v1", "Deployment")),
        ("kubernetes:networking.k8s.io/v1:Ingress", ("networking.k8s.io/v1", "Ingress")),
        ("pulumi:providers:kubernetes", None),
        ("docker-build:index:Image", None),
    ],
    ids=["core", "apps", "dotted-group", "provider", "other-package"],
)
def test_mock_rendering_derives_api_version_and_kind_from_the_type_token(
    token: str, expected: tuple[str, str] | None
) -> None:
    assert api_version_and_kind(token) == expected


@pytest.mark.parametrize(("config", "key"), [(".checkov.yaml", "skip-check"), (".hadolint.yaml", "ignored")])
def test_every_accepted_finding_states_its_reason(config: str, key: str) -> None:
    path = ROOT / "scan" / config
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
